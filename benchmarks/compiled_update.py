"""Does a compiled update beat the eager one? ``torch.compile`` (inductor on CPU) of a whole
``update``, against the same algorithm eager, side by side in one process.

For each algorithm: two copies built from one seed, one with ``update`` compiled; both take the same
batches (one sampler seed each) and the same torch RNG state before every update, with inductor's
``fallback_random`` so that compiled code draws the eager random numbers. Prints the compile time
(the first updates), updates/s of each (median of 3 x 300 updates after warm-up), their ratio, the
largest parameter difference after the paired updates, and the number of updates a run needs
before the compile time is paid back (none when compiled is not faster).

    python benchmarks/compiled_update.py [--algos td3_bc,iql] [--dataset offrl/pendulum/expert-v0] [--cpp-wrapper]

The dataset must exist (``offrl-bench data make Pendulum-v1 --quality expert``). Time it on a quiet
machine: another process on a core moves these numbers more than compilation does.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from update_profile import updates_per_second  # noqa: E402

PAIRED_UPDATES = 200
BATCH_SIZE = 256


def tensors(state):
    """Every tensor in a (nested) state dict, in order."""
    if isinstance(state, torch.Tensor):
        yield state
    elif isinstance(state, dict):
        for value in state.values():
            yield from tensors(value)
    elif isinstance(state, (list, tuple)):
        for value in state:
            yield from tensors(value)


def main() -> None:
    from offrl_bench.core.errors import OffrlBenchError

    try:
        compare()
    except OffrlBenchError as exc:  # an unknown algorithm or a missing dataset: one line, the CLI's exit codes
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)


def compare() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="offrl/pendulum/expert-v0")
    parser.add_argument("--algos", default="td3_bc,iql")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--cpp-wrapper", action="store_true", help="inductor's C++ wrapper instead of Python's")
    args = parser.parse_args()

    import torch._inductor.config as inductor

    from offrl_bench.data.datasets import load_dataset
    from offrl_bench.execution.runner import RunSpec, build_algorithm

    inductor.fallback_random = True  # compiled code draws the same random numbers as eager code
    inductor.cpp_wrapper = args.cpp_wrapper
    torch.set_num_threads(args.threads)
    dataset = load_dataset(args.dataset)
    print(f"{args.dataset}; {args.threads} torch threads; batch {BATCH_SIZE}; torch {torch.__version__}; "
          f"inductor cpp_wrapper={args.cpp_wrapper}")
    print(f"{'algorithm':9s} {'compile s':>9s} {'eager upd/s':>11s} {'compiled':>9s} {'ratio':>6s} "
          f"{'max |param diff|':>16s} {'break-even updates':>18s}")
    for name in args.algos.split(","):
        copies = []
        for _ in range(2):
            torch.manual_seed(0)
            algorithm = build_algorithm(RunSpec(name, args.dataset, 0), dataset)
            algorithm.setup(dataset)
            copies.append(algorithm)
        eager, compiled = copies
        compiled.update = torch.compile(compiled.update)
        samplers = [torch.Generator().manual_seed(0) for _ in copies]
        compile_seconds = 0.0
        for step in range(PAIRED_UPDATES):
            for algorithm, sampler in zip(copies, samplers):
                torch.manual_seed(step)
                started = time.perf_counter()
                algorithm.update(dataset.sample(BATCH_SIZE, sampler))
                if algorithm is compiled and step < 3:  # compilation happens in the first updates
                    compile_seconds += time.perf_counter() - started
        difference = max((a.double() - b.double()).abs().max().item() for a, b in
                         zip(tensors(eager.state_dict()), tensors(compiled.state_dict())) if a.is_floating_point())
        sampler = torch.Generator().manual_seed(1)
        rates = [statistics.median(updates_per_second(lambda a=algorithm: a.update(dataset.sample(BATCH_SIZE, sampler)),
                                                      300) for _ in range(3)) for algorithm in copies]
        saved_per_update = 1 / rates[0] - 1 / rates[1]
        break_even = f"{compile_seconds / saved_per_update:,.0f}" if saved_per_update > 0 else "never"
        print(f"{name:9s} {compile_seconds:9.1f} {rates[0]:11.1f} {rates[1]:9.1f} {rates[1] / rates[0]:6.2f} "
              f"{difference:16.1e} {break_even:>18s}")


if __name__ == "__main__":
    main()
