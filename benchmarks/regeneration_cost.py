"""What the code in this checkout costs the published references: the stale rows, and the worker
time their reruns took.

A published row is stale when code its runs execute, its dataset recipe or its resolved config
changed since it ran (``offrl-bench reference status``, :mod:`offrl_bench.trust.provenance`). Only stale
rows are rerun (``offrl-bench reference regenerate``), or attested when the change is
behaviour-neutral (``offrl-bench reference attest``). Make the change first, then:

    python benchmarks/regeneration_cost.py [SUITE ...] [--workers 2]

Worker time is setup + gradient updates + evaluation, from the stale rows' records; it leaves out
worker start-up, dataset building, checkpoints and idle workers at the end, so ``worker-h /
workers`` is a lower bound on the wall time of a regeneration. The sanity-floor check runs
(``budget-check/``) carry no row provenance and are not counted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from offrl_bench.core.errors import UsageError, one_of
from offrl_bench.records.run_store import RunStore
from offrl_bench.trust import provenance

REPO = Path(__file__).resolve().parent.parent


def worker_seconds(record: dict) -> float:
    return sum(record.get(key) or 0.0 for key in ("setup_seconds", "train_seconds", "eval_seconds"))


def main() -> None:
    try:
        report()
    except UsageError as exc:  # bad input: one line and the CLI's exit code, no traceback
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)


def report() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suites", nargs="*", help="published references to cost (default: all)")
    parser.add_argument("--workers", type=int, default=2, help="workers a regeneration would run on (default 2)")
    args = parser.parse_args()
    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    root = REPO / "results" / "reference"
    available = sorted(path.parent.name for path in root.glob("*/runs.jsonl"))
    unknown = [suite for suite in args.suites if suite not in available]
    if unknown:
        raise UsageError(f"no published reference '{unknown[0]}'; {one_of(available)}")
    head = provenance.HeadState(REPO)
    print(f"{'reference':<20}{'stale rows':>12}{'stale runs':>12}{'rerun worker-h':>16}")
    total = 0.0
    for suite in args.suites or available:
        records = list(RunStore(root / suite).records().values())
        statuses = provenance.status(root / suite, records, head)
        by_row = provenance.rows(records)
        stale_runs = [run for row in statuses if not row.fresh for run in by_row[row.row]]
        hours = sum(map(worker_seconds, stale_runs)) / 3600
        total += hours
        print(f"{suite:<20}{f'{sum(not r.fresh for r in statuses)}/{len(statuses)}':>12}"
              f"{f'{len(stale_runs)}/{len(records)}':>12}{hours:>16.2f}")
    print(f"total: {total:.2f} worker-h, at least {total / args.workers:.2f} h of wall time on {args.workers} workers")


if __name__ == "__main__":
    main()
