"""How far fp32 updates are from the FLOP ceiling, and the two floors under an eager update.

For BC, TD3+BC and IQL on Pendulum-v1 data, batch 256, 256x256 MLPs, one process:

- updates/s (median of 3 x 300 updates) and their share of the fp32 ceiling, which is this CPU's
  2048^3 matmul rate divided by the update's FLOPs, as in ``throughput.py``;
- the matmul floor: the update's matmul time per update (torch profiler, 50 updates) and the rate
  an update of nothing but those matmuls would reach, as a share of the ceiling;
- the dispatch floor: the same algorithm at width 8 and batch 8, where every kernel is trivial, so
  what remains is Python, the dispatcher, autograd and the optimizer steps;
- the time per update that 70% of the ceiling allows.

An eager update costs at least its matmuls plus its dispatch floor; when these two floors together
exceed the 70% budget, no change to the code around the kernels reaches it.

    python benchmarks/fp32_floor.py [--dataset offrl/pendulum/medium-v0] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import gemm_flops_per_second  # noqa: E402
from update_profile import matmul_seconds, profile, updates_per_second  # noqa: E402

SHARE = 0.7  # the goal of issue 24: fp32 updates at 70% of their ceiling


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="offrl/pendulum/medium-v0")
    parser.add_argument("--algos", default="bc,td3_bc,iql")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()

    from offrl_bench.data.datasets import load_dataset
    from offrl_bench.execution.runner import RunSpec, build_algorithm

    torch.set_num_threads(args.threads)
    dataset = load_dataset(args.dataset)
    peak = gemm_flops_per_second(torch.float32)
    print(f"{args.dataset}; {args.threads} torch threads; 2048^3 fp32 matmul: {peak / 1e9:.1f} GFLOP/s")
    print(f"{'algorithm':9s} {'upd/s':>7s} {'ceiling':>8s} {'share':>6s} {'ms/upd':>7s} {'matmul ms':>9s} "
          f"{'matmul bound':>12s} {'dispatch floor ms':>17s} {'70% budget ms':>13s}")
    for name in args.algos.split(","):
        rates, matmul, flops = {}, 0.0, 0.0
        for width, batch_size in ((256, 256), (8, 8)):
            torch.manual_seed(0)
            spec = RunSpec(name, args.dataset, 0, overrides=(("width", str(width)),))
            algorithm = build_algorithm(spec, dataset)
            algorithm.setup(dataset)
            generator = torch.Generator().manual_seed(0)

            def update() -> None:
                algorithm.update(dataset.sample(batch_size, generator))  # noqa: B023 (called in this iteration)

            rates[width] = statistics.median(updates_per_second(update, 300) for _ in range(3))
            if width == 256:
                op_seconds, flops = profile(update, 50)
                matmul = matmul_seconds(op_seconds)
        ceiling = peak / flops
        print(f"{name:9s} {rates[256]:7.1f} {ceiling:8.0f} {rates[256] / ceiling:6.0%} {1e3 / rates[256]:7.2f} "
              f"{matmul * 1e3:9.2f} {1 / matmul / ceiling:12.0%} {1e3 / rates[8]:17.2f} "
              f"{1e3 / (SHARE * ceiling):13.2f}")


if __name__ == "__main__":
    main()
