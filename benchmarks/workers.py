"""Wall time of the same runs with 1 and 2 workers, on the local backend and on a local Ray instance.

One worker executes one run at a time with every CPU thread; two workers execute two runs at once
with half the threads each. Each configuration starts from an empty output directory, and the time
includes starting the workers (and Ray). The runs are identical across configurations (the test
suite checks their numbers are too), so the ratio is the speed-up of the scheduler alone.

    python benchmarks/workers.py [--runs 4] [--updates 2000] [--algo td3_bc]

On a cluster the same code path schedules one Ray task per run on every node; with N CPUs per node
and --cpus-per-run 1, up to N runs per node execute at once, so the speed-up grows with the number
of nodes as long as runs outnumber CPUs and the shared output directory keeps up (each run writes a
checkpoint every --checkpoint-every updates and one record at the end).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--algo", default="td3_bc")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="offrl-workers-"))
    os.environ.setdefault("MINARI_DATASETS_PATH", str(root / "minari"))
    from offrl_bench.data.make import DatasetRequest, make_dataset
    from offrl_bench.execution.runner import RunSpec
    from offrl_bench.execution.scheduler import execute

    request = DatasetRequest("Pendulum-v1", "expert", episodes=20, name="bench/pendulum/expert-v0")
    make_dataset(request, log=lambda message: None)
    specs = [RunSpec(args.algo, request.dataset_id, seed, updates=args.updates, eval_every=args.updates,
                     eval_episodes=5, checkpoint_every=1000) for seed in range(args.runs)]
    cpus = os.cpu_count() or 1
    try:
        import ray  # noqa: F401

        backends = ("local", "ray")
    except ImportError:
        backends = ("local",)
        print("ray is not installed (pip install 'offrl-bench[ray]'): local backend only")

    print(f"{args.runs} {args.algo} runs x {args.updates} updates on Pendulum-v1, {cpus} CPUs")
    for backend in backends:
        seconds = {}
        for workers in (1, 2):
            out = root / f"{backend}-{workers}"
            started = time.perf_counter()
            outcome = execute(specs, out, workers=workers, quiet=True, backend=backend,
                              cpus_per_run=max(1, cpus // workers))
            seconds[workers] = time.perf_counter() - started
            assert len(outcome.completed) == args.runs, outcome.failed
            print(f"  {backend:5s} {workers} worker{'s' if workers > 1 else ' '}: {seconds[workers]:6.1f} s")
        print(f"  {backend:5s} speed-up of 2 workers over 1: {seconds[1] / seconds[2]:.2f}x")


if __name__ == "__main__":
    main()
