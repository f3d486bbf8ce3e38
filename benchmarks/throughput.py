"""Gradient updates per second: offrl-bench vs d3rlpy 2.x, side by side on the same data.

Same dataset (a local Minari dataset, default Pendulum-v1 mixed), same networks (256x256 ReLU MLPs),
batch 256, CPU, same number of torch threads; each side's time includes its own batch sampling.
d3rlpy pins gymnasium 1.0.0, so it runs in its own virtual environment, which this script creates on
first use (``--d3rlpy-venv``, default ``.venv-d3rlpy``) with ``pip install -c constraints.txt d3rlpy==2.8.1``.

    python benchmarks/throughput.py [--algos bc,td3_bc,iql,cql] [--updates 500] [--rounds 3] [--threads 2]

``--algos`` also takes ``bcq`` (continuous BCQ, with both sides' VAE at the paper's 750x750).

Prints updates/s of d3rlpy and of offrl-bench in fp32 and with ``--precision bf16`` (bfloat16
autocast), and the ratios offrl-bench / d3rlpy per algorithm. Then, from the torch profiler, the time
each side's update spends in matrix multiplications and the updates/s that bounds in fp32; and each
side's FLOPs per update with the ceiling this CPU's best matmul rate puts on them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from update_profile import matmul_seconds, profile, updates_per_second

REPO = Path(__file__).resolve().parent.parent

D3RLPY_SIDE = r"""
import json, sys
import numpy as np, torch, d3rlpy
from d3rlpy.models.encoders import VectorEncoderFactory
from d3rlpy.preprocessing import StandardObservationScaler, MinMaxActionScaler

path, algos, updates, threads, profiled = sys.argv[1], sys.argv[2].split(","), *map(int, sys.argv[3:6])
sys.path.insert(0, sys.argv[6])
from update_profile import profile, updates_per_second
torch.set_num_threads(threads)
data = np.load(path)
dataset = d3rlpy.dataset.MDPDataset(data["observations"], data["actions"], data["rewards"], data["terminals"],
                                    timeouts=data["timeouts"])
encoder = VectorEncoderFactory([256, 256])
observations = data["observations"]
scalers = lambda: dict(  # noqa: E731  (given their statistics up front, as offrl-bench's setup() computes them)
    observation_scaler=StandardObservationScaler(mean=observations.mean(0), std=observations.std(0) + 1e-3),
    action_scaler=MinMaxActionScaler(minimum=data["action_low"], maximum=data["action_high"]))
common = lambda: dict(batch_size=256, actor_encoder_factory=encoder, critic_encoder_factory=encoder,  # noqa: E731
                      **scalers())
configs = {
    "bc": lambda: d3rlpy.algos.BCConfig(batch_size=256, encoder_factory=encoder, learning_rate=3e-4,
                                        action_scaler=scalers()["action_scaler"]),
    "td3_bc": lambda: d3rlpy.algos.TD3PlusBCConfig(**common()),
    "iql": lambda: d3rlpy.algos.IQLConfig(value_encoder_factory=encoder, **common()),
    "cql": lambda: d3rlpy.algos.CQLConfig(n_action_samples=10, **common()),
    # offrl-bench's BCQ defaults: the paper's 750x750 VAE, 10 VAE samples per next state in the target
    "bcq": lambda: d3rlpy.algos.BCQConfig(imitator_encoder_factory=VectorEncoderFactory([750, 750]),
                                          n_action_samples=10, **common()),
}
results = {}
for name in algos:
    d3rlpy.seed(0)
    algo = configs[name]().create(device="cpu:0")
    algo.build_with_dataset(dataset)
    update = lambda: algo.update(dataset.sample_transition_batch(256))  # noqa: E731
    results[name] = [updates_per_second(update, updates)]
    if profiled:
        results[name] += profile(update, profiled)
print(json.dumps(results))
"""

#: Updates profiled per algorithm, in the first round only.
PROFILED_UPDATES = 50


def gemm_flops_per_second(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """This CPU's matrix-multiplication rate at the current thread count: best of a few square matmuls.

    A square 2048 matmul runs near the CPU's peak, which no MLP update's smaller matmuls beat; an
    update's matmul FLOPs divided by this rate is the least time any implementation needs for it.
    """
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best


def ensure_d3rlpy_venv(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv} with d3rlpy 2.8.1 (once)...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-c", str(REPO / "constraints.txt"),
                        "d3rlpy==2.8.1"], check=True)
    return python


def offrl_bench_rates(dataset_id: str, dataset, algos: list[str], updates: int, precision: str, profiled: int
                      ) -> dict[str, list]:
    """Per algorithm: [updates/s], followed by profile()'s two results when ``profiled`` > 0."""
    from offrl_bench.execution.runner import RunSpec, build_algorithm, update_autocast

    rates = {}
    for name in algos:
        torch.manual_seed(0)
        algorithm = build_algorithm(RunSpec(name, dataset_id, 0), dataset)
        algorithm.setup(dataset)
        generator = torch.Generator().manual_seed(0)
        autocast = update_autocast("cpu", precision)  # as `run --precision`: entered once per update

        def update() -> None:
            batch = dataset.sample(256, generator)
            with autocast:
                algorithm.update(batch)

        rates[name] = [updates_per_second(update, updates)]
        if profiled:
            rates[name] += profile(update, profiled)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--quality", default="mixed")
    parser.add_argument("--algos", default="bc,td3_bc,iql,cql")
    parser.add_argument("--updates", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--d3rlpy-venv", type=Path, default=REPO / ".venv-d3rlpy")
    args = parser.parse_args()
    for option in ("updates", "rounds", "threads"):
        if getattr(args, option) < 1:
            parser.error(f"--{option} must be at least 1, got {getattr(args, option)}")
    algos = args.algos.split(",")
    torch.set_num_threads(args.threads)
    os.environ.setdefault("MINARI_DATASETS_PATH", tempfile.mkdtemp(prefix="offrl-bench-throughput-"))

    from offrl_bench.data.datasets import dataset_exists, load_dataset
    from offrl_bench.data.make import DatasetRequest, make_dataset

    request = DatasetRequest(args.env, args.quality, name=f"bench/{args.env.lower()}-{args.quality}-v0")
    if not dataset_exists(request.dataset_id):
        make_dataset(request, log=lambda m: None)
    dataset = load_dataset(request.dataset_id)
    with tempfile.TemporaryDirectory() as tmp:
        arrays = Path(tmp) / "data.npz"
        np.savez(arrays, observations=dataset.observations.numpy(), actions=dataset.actions.numpy(),
                 rewards=dataset.rewards.numpy(), terminals=dataset.terminals.numpy(),
                 timeouts=dataset.timeouts.numpy(), action_low=dataset.spec.action_space.low,
                 action_high=dataset.spec.action_space.high)
        python = ensure_d3rlpy_venv(args.d3rlpy_venv)
        # Rounds alternate the sides, so that a slow spell of this shared machine hits both; each
        # round gives a ratio, summarised by the median. Only the first round is profiled.
        theirs, fp32, bf16 = [], [], []
        for round_index in range(args.rounds):
            profiled = PROFILED_UPDATES if round_index == 0 else 0
            theirs.append(json.loads(subprocess.run(
                [str(python), "-c", D3RLPY_SIDE, str(arrays), ",".join(algos), str(args.updates),
                 str(args.threads), str(profiled), str(Path(__file__).resolve().parent)],
                check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            ).stdout.strip().splitlines()[-1]))
            fp32.append(offrl_bench_rates(request.dataset_id, dataset, algos, args.updates, "fp32", profiled))
            bf16.append(offrl_bench_rates(request.dataset_id, dataset, algos, args.updates, "bf16", 0))

    print(f"{args.env} {args.quality}: {len(dataset)} transitions; batch 256, 256x256 MLPs, {args.threads} "
          f"torch threads, {args.updates} timed updates each, {args.rounds} rounds; d3rlpy runs fp32")
    print("updates/s: median over rounds; ratio: median of the per-round ratios [lowest, highest]")
    print(f"{'algorithm':10} {'d3rlpy':>8} {'ours fp32':>10} {'ratio':>20} {'ours bf16':>10} {'ratio':>20}")
    for name in algos:
        base = [r[name][0] for r in theirs]
        cells = []
        for ours in (fp32, bf16):
            rates = [r[name][0] for r in ours]
            ratios = [a / b for a, b in zip(rates, base)]
            cells.append(f"{np.median(rates):10.1f} {np.median(ratios):6.2f}x [{min(ratios):.2f}, {max(ratios):.2f}]")
        print(f"{name:10} {np.median(base):8.1f} {cells[0]} {cells[1]}")
    print("per round, d3rlpy / ours fp32 / ours bf16:")
    for name in algos:
        print(f"  {name:8} " + "; ".join(f"{t[name][0]:.1f} / {f[name][0]:.1f} / {b[name][0]:.1f}"
                                           for t, f, b in zip(theirs, fp32, bf16)))
    # The matmul bound: updates/s if an update cost nothing but its matrix multiplications.
    target = {name: 2 * float(np.median([r[name][0] for r in theirs])) for name in algos}
    print("\nmatrix multiplications per update (ms), fp32, and the bound they set (updates/s):")
    print(f"{'algorithm':10} {'d3rlpy':>8} {'ours':>8} {'our bound':>10} {'2x d3rlpy':>10}")
    for name in algos:
        ours_matmul = matmul_seconds(fp32[0][name][1])
        print(f"{name:10} {matmul_seconds(theirs[0][name][1]) * 1e3:8.2f} {ours_matmul * 1e3:8.2f} "
              f"{1 / ours_matmul:10.1f} {target[name]:10.1f}")
    # The hardware ceiling: the same FLOPs at this CPU's best matmul rate. It does not depend on how
    # well either library's kernels run, so it bounds any implementation of the same arithmetic.
    peak = {dtype: gemm_flops_per_second(dtype) for dtype in (torch.float32, torch.bfloat16)}
    print(f"\nthis CPU's matmul rate (2048x2048 @ 2048x2048, {args.threads} threads): "
          f"fp32 {peak[torch.float32] / 1e9:.0f} GFLOP/s, bf16 {peak[torch.bfloat16] / 1e9:.0f} GFLOP/s")
    print("GFLOP per update and the ceiling that rate sets (updates/s):")
    print(f"{'algorithm':10} {'d3rlpy':>8} {'ours':>8} {'fp32 ceiling':>13} {'bf16 ceiling':>13} {'2x d3rlpy':>10}")
    for name in algos:
        ours_flops = fp32[0][name][2]
        print(f"{name:10} {theirs[0][name][2] / 1e9:8.3f} {ours_flops / 1e9:8.3f} "
              f"{peak[torch.float32] / ours_flops:13.1f} {peak[torch.bfloat16] / ours_flops:13.1f} "
              f"{target[name]:10.1f}")


if __name__ == "__main__":
    main()
