"""Sanity floors: does every algorithm of a suite learn at that suite's budget?

For each (suite, algorithm or variant, environment) it trains the algorithm with the suite's
overrides and budget on that environment's *expert* data, next to BC, and prints ``learned`` where
the mean normalised score reaches 50 while BC reaches 90, ``under-budget`` where it does not, and
``no-anchor`` where BC itself stays below 90 (the check then judges nothing). See
:mod:`offrl_bench.trust.budget` for why.

    python benchmarks/budget_check.py --suite default [--seeds 0,1,2,3,4] [--workers 2] [--out DIR]

Runs go to ``results/budget-check/<suite>/`` (re-running resumes); the verdicts go to
``budget_check.csv`` there. ``--only mopo+morec`` (repeatable; leaderboard names) runs only that
algorithm's check runs, e.g. after a change to it: seed the output directory's ``runs.jsonl`` with
the published check's records (``budget-check/runs.jsonl`` of the reference) without that
algorithm's, and the verdicts cover every check run finished there. ``--publish`` also writes them
next to the suite's published reference, where every leaderboard of that suite reads them, with the
check's records in ``budget-check/``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from offrl_bench.core import registry
from offrl_bench.core.config import build_config
from offrl_bench.core.errors import OffrlBenchError
from offrl_bench.data.make import make_missing_datasets
from offrl_bench.execution import scheduler
from offrl_bench.execution.runner import preflight
from offrl_bench.records.run_store import RunStore
from offrl_bench.trust import budget

REPOSITORY = Path(__file__).resolve().parents[1]


def main() -> None:
    try:
        check()
    except OffrlBenchError as exc:  # bad input or a broken plugin: one line, the CLI's exit codes
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)


def check() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", action="append", required=True, help="suite name (repeatable)")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (default: the suite's)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=None, help="output dir (default results/budget-check/<suite>)")
    parser.add_argument("--only", action="append", default=None,
                        help="run only these algorithms' check runs (leaderboard names, repeatable)")
    parser.add_argument("--publish", action="store_true",
                        help="also write the verdicts to the suite's reference dir in this checkout")
    args = parser.parse_args()
    try:
        seeds = tuple(int(s) for s in args.seeds.split(",")) if args.seeds else None
    except ValueError:
        parser.error(f"--seeds takes comma-separated integers, got {args.seeds!r}")
    if args.out and len(args.suite) > 1:
        parser.error("--out takes one suite at a time")
    for name in args.suite:
        runs = budget.check_suite(registry.suite(name), seeds)
        out = Path(args.out or f"results/budget-check/{name}")
        make_missing_datasets(runs.datasets)
        specs = runs.runs()
        chosen = [spec for spec in specs if args.only is None or label(spec) in args.only]
        if not chosen:
            parser.error(f"--only {', '.join(args.only)}: no check runs of suite {name} have these names; "
                         f"accepted: {', '.join(sorted({label(spec) for spec in specs}))}")
        preflight(chosen)
        outcome = scheduler.execute(chosen, out, workers=args.workers, command=" ".join(sys.argv))
        if outcome.failed or outcome.failed_earlier:
            sys.exit(f"{len(outcome.failed + outcome.failed_earlier)} check runs failed; see {out / 'failures.jsonl'}")
        wanted = {spec.run_id for spec in specs}
        records = [r for run_id, r in RunStore(out).records().items() if run_id in wanted]
        verdicts = budget.verdicts(records)
        budget.write(verdicts, out / budget.FILE_NAME)
        print(f"suite {name}: floor {budget.FLOOR:g} normalised on expert data where BC reaches {budget.ANCHOR:g}")
        print(budget.table(verdicts), end="")
        print(f"wrote {out / budget.FILE_NAME}")
        if args.publish:
            # the checkout this script belongs to, also where offrl-bench is installed non-editable
            reference = REPOSITORY / "results" / "reference" / name
            if not (reference / "runs.jsonl").is_file():
                sys.exit(f"no published reference of suite {name} in {reference}")
            budget.write(verdicts, reference / budget.FILE_NAME)
            (reference / "budget-check").mkdir(exist_ok=True)  # the records behind the verdicts
            for file in ("runs.jsonl", "commands.jsonl"):
                shutil.copyfile(out / file, reference / "budget-check" / file)
            print(f"wrote {reference / budget.FILE_NAME} and {reference / 'budget-check'}/")


def label(spec) -> str:
    """A check run's leaderboard name (``mopo+morec`` for ``mopo`` with ``filter=morec``)."""
    cls = registry.algorithm_class(spec.algo)
    return cls.leaderboard_name(build_config(cls, spec.overrides))


if __name__ == "__main__":
    main()
