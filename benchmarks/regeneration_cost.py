"""What changing some files costs the published references, before you change them.

A published reference must come from one clean revision whose pinned files (the algorithm,
environment and shared modules that computed each record, see ``offrl_bench.provenance``) are
still the files here; ``tests/test_references.py`` fails otherwise. So a change to a pinned file
means rerunning every reference with a record that pins it, all of its runs, at one new revision,
and rerunning the sanity-floor check's records that pin it (those rows keep their own revisions).
This prints, per reference, how many records the change stales and the worker time those reruns
took when the reference was made (setup + gradient updates + evaluation, from the records):

    python benchmarks/regeneration_cost.py algorithms/nn.py
    python benchmarks/regeneration_cost.py --since main --workers 2

Worker time leaves out worker start-up, dataset building, checkpoints and idle workers at the end,
so ``worker-h / workers`` is a lower bound on the wall time; the ``published run`` column is the
measured run phase of the reference's own command (its machine may have been shared).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from offrl_bench import provenance
from offrl_bench.errors import UsageError
from offrl_bench.results import read_jsonl

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Cost:
    stale: int  # records whose pinned files include a changed file
    total: int
    stale_seconds: float  # worker seconds the stale records took
    total_seconds: float


def worker_seconds(record: dict) -> float:
    return sum(record.get(key) or 0.0 for key in ("setup_seconds", "train_seconds", "eval_seconds"))


def stale_cost(records: list[dict], changed: set[str], root: Path) -> Cost:
    """How many of ``records`` pin a file in ``changed``, and their worker seconds."""
    pinned: dict[str, bool] = {}  # records that differ only in seed pin the same files
    stale = []
    for record in records:
        spec = record.get("spec") or {}
        key = json.dumps([record.get("algorithm"), (record.get("config") or {}).get("base"), record.get("wrapper"),
                          spec.get("wrapper"), record.get("dataset"), record.get("env_id")])
        if key not in pinned:
            pinned[key] = bool(changed & set(provenance.pinned_sources([record], root)))
        if pinned[key]:
            stale.append(record)
    return Cost(len(stale), len(records), sum(map(worker_seconds, stale)), sum(map(worker_seconds, records)))


def run_phase_hours(directory: Path, records: list[dict]) -> float | None:
    """The measured wall time from the reference command's start to its last record."""
    commands = list(read_jsonl(directory / "commands.jsonl"))
    if not commands or not records:
        return None
    started = datetime.fromisoformat(commands[-1]["started_at"])
    finished = max(datetime.fromisoformat(r["finished_at"]) for r in records)
    return (finished - started).total_seconds() / 3600


def changed_files(since: str, root: Path) -> list[str]:
    diff = subprocess.run(["git", "diff", "--name-only", since, "--"], capture_output=True, text=True, cwd=root)
    if diff.returncode != 0:
        raise UsageError(f"--since: cannot diff against '{since}' ({diff.stderr.strip().splitlines()[0]}); "
                         "give a revision of this checkout, e.g. main")
    return [line for line in diff.stdout.splitlines() if line]


def main() -> None:
    try:
        report()
    except UsageError as exc:  # bad input: one line and the CLI's exit code, no traceback
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)


def report() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", help="repository paths you intend to change")
    parser.add_argument("--since", help="take the files that this checkout changed since a revision (e.g. main)")
    parser.add_argument("--workers", type=int, default=2, help="workers a regeneration would run on (default 2)")
    args = parser.parse_args()
    if bool(args.files) == bool(args.since):
        raise UsageError("name the files you intend to change, or --since REVISION, not both")
    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    changed = set(changed_files(args.since, REPO) if args.since else args.files)
    unknown = sorted(path for path in args.files if not (REPO / path).exists())
    if unknown:
        raise UsageError(f"not files of this repository: {', '.join(unknown)}; give repository paths such as "
                         "algorithms/nn.py")

    print(f"changed: {', '.join(sorted(changed)) or 'nothing'}")
    print(f"{'reference':<20}{'stale runs':>12}{'rerun worker-h':>16}{'published run h':>17}"
          f"{'stale checks':>14}{'recheck worker-h':>18}")
    rerun = recheck = 0.0
    for directory in sorted((REPO / "results" / "reference").glob("*/runs.jsonl")):
        directory = directory.parent
        runs = list(read_jsonl(directory / "runs.jsonl"))
        checks = list(read_jsonl(directory / "budget-check" / "runs.jsonl"))
        run_cost, check_cost = stale_cost(runs, changed, REPO), stale_cost(checks, changed, REPO)
        # one stale record sends the whole reference to a new revision; check rows keep their own
        hours = run_cost.total_seconds / 3600 if run_cost.stale else 0.0
        rerun, recheck = rerun + hours, recheck + check_cost.stale_seconds / 3600
        measured = run_phase_hours(directory, runs)
        print(f"{directory.name:<20}{f'{run_cost.stale}/{run_cost.total}':>12}{hours:>16.2f}"
              f"{(f'{measured:.2f}' if measured is not None else '-'):>17}"
              f"{f'{check_cost.stale}/{check_cost.total}':>14}{check_cost.stale_seconds / 3600:>18.2f}")
    total = rerun + recheck
    print(f"total: {total:.2f} worker-h, at least {total / args.workers:.2f} h of wall time on {args.workers} workers")


if __name__ == "__main__":
    main()
