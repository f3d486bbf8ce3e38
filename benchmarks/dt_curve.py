"""Decision Transformer against BC, by updates: does DT learn where BC does, and beat it on mixed data?

The Decision Transformer paper and CORL report DT at or above BC on expert D4RL data and above it on
mixed data, after 100,000 updates. This trains DT (return-conditioned on the best dataset return)
and BC side by side on locally made datasets, evaluates both every ``--eval-every`` updates, and
prints the mean normalised score of each at every evaluation, with the 95% bootstrap interval of
the final difference DT − BC.

    python benchmarks/dt_curve.py --datasets offrl/pendulum/expert-v0,offrl/pendulum/mixed-v0 \
        --updates 4000 --set context=10 --set embedding_dim=64 --set layers=2 --set lr=6e-4 --set warmup_steps=400

Runs go to ``--out`` (default ``results/dt-curve``; re-running resumes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from offrl_bench.core.config import parse_set_options
from offrl_bench.core.errors import OffrlBenchError
from offrl_bench.execution import scheduler
from offrl_bench.execution.runner import RunSpec, preflight
from offrl_bench.records.run_store import RunStore
from offrl_bench.records.statistics import difference_interval


def main() -> None:
    try:
        compare()
    except OffrlBenchError as exc:  # bad input: one line, the CLI's exit codes
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)


def compare() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", required=True, help="comma-separated dataset ids")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--updates", type=int, default=4_000)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--eval-episodes", type=int, default=30)
    parser.add_argument("--set", dest="set_", action="append", default=[], metavar="KEY=VALUE",
                        help="DT config field (repeatable)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="results/dt-curve")
    args = parser.parse_args()
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds takes comma-separated integers, got {args.seeds!r}")
    dt_overrides = parse_set_options(tuple(args.set_))
    budget = dict(updates=args.updates, eval_every=args.eval_every, eval_episodes=args.eval_episodes,
                  checkpoint_every=args.eval_every)
    specs = [RunSpec(algo, dataset, seed, "", overrides=overrides, **budget)
             for dataset in args.datasets.split(",") for algo, overrides in (("dt", dt_overrides), ("bc", ()))
             for seed in seeds]
    preflight(specs)
    out = Path(args.out)
    scheduler.execute(specs, out, workers=args.workers)
    records = RunStore(out).records()
    print(f"DT {dict(dt_overrides)} vs BC, {len(seeds)} seeds, mean normalised score by updates")
    for dataset in args.datasets.split(","):
        curves = {}
        for algo in ("dt", "bc"):
            runs = [records[s.run_id] for s in specs if s.algo == algo and s.dataset == dataset]
            curves[algo] = np.array([[score for _, score in r["learning_curve"]] for r in runs])
            steps = [step for step, _ in runs[0]["learning_curve"]]
        print(f"{dataset}")
        print("  updates " + " ".join(f"{s:>7}" for s in steps))
        for algo, scores in curves.items():
            print(f"  {algo:7} " + " ".join(f"{v:7.1f}" for v in scores.mean(axis=0)))
        mean, low, high = difference_interval(curves["dt"][:, -1:], curves["bc"][:, -1:], "mean", paired=False)
        print(f"  final DT - BC: {mean:+.1f} [{low:+.1f}, {high:+.1f}] (95% bootstrap interval)")


if __name__ == "__main__":
    main()
