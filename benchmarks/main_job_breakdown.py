"""Where the time of a suite run goes, from its records: per algorithm, the worker time spent in
setup (IDM, dynamics ensemble, MOREC's discriminators), gradient updates (or environment steps)
and evaluation episodes, and what is left of the workers' time for everything else (process and
dataset start-up, checkpoints, records, a worker idle at the end).

    python benchmarks/main_job_breakdown.py results/default --workers 2 [--wall SECONDS]

It then replays the suite's start order on ``--workers`` workers with each run's recorded duration
(setup, updates and evaluation; greedy list scheduling, the next run to the first free worker):
in suite order, and longest first (what ``offrl-bench run`` does, :mod:`offrl_bench.trust.durations`).
That is a simulation from recorded times, not a measurement: it leaves out start-up and dataset
loads, and the records' times depend on the load they ran under.

``--wall`` is the whole command's wall time (e.g. from /usr/bin/time); the time outside the run
phase (building datasets, starting workers, printing the leaderboard) is then that minus the run
phase, which begins at the command's ``started_at`` in commands.jsonl (written once the datasets
exist) and ends with the last record's ``finished_at``.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from datetime import datetime
from pathlib import Path


def repeated_training(records: list[dict]) -> float:
    """Worker seconds spent training agents identical to one another run trained: runs whose specs
    differ only in the evaluation wrapper train the same agent (offline runs never see the wrapper;
    online runs train on its training levels), and all but one of each such group repeat it."""
    from offrl_bench.envs.level_splits import training_wrapper

    groups: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        spec = dict(record["spec"])
        spec["wrapper"] = training_wrapper(spec["wrapper"]) if record.get("paradigm") != "offline" else ""
        groups[json.dumps(spec, sort_keys=True)].append(record)
    return sum((r.get("setup_seconds") or 0.0) + r["train_seconds"] for group in groups.values() for r in group[1:])


def makespan(durations: list[float], workers: int) -> float:
    """When the last of these runs ends, each started on the first free worker in this order."""
    import heapq

    free = [0.0] * workers
    for seconds in durations:
        heapq.heappush(free, heapq.heappop(free) + seconds)
    return max(free)


def schedules(records: list[dict], workers: int) -> tuple[float, float] | None:
    """Simulated run phases (suite order, longest first) of the suite the records belong to; None when
    the records are not exactly one registered suite's runs."""
    from offrl_bench.core import registry
    from offrl_bench.core.errors import OffrlBenchError
    from offrl_bench.trust.durations import longest_first, run_seconds

    suites = {record["suite"] for record in records}
    try:
        specs = registry.suite(suites.pop()).runs() if len(suites) == 1 else None
    except OffrlBenchError:
        return None
    seconds = {record["run_id"]: run_seconds(record) for record in records}
    if specs is None or {spec.run_id for spec in specs} != set(seconds):
        return None
    return (makespan([seconds[spec.run_id] for spec in specs], workers),
            makespan([seconds[spec.run_id] for spec in longest_first(specs)], workers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--wall", type=float, default=None, help="the whole command's wall time in seconds")
    args = parser.parse_args()
    records = [json.loads(line) for line in (args.directory / "runs.jsonl").read_text().splitlines() if line]
    commands = [json.loads(line) for line in (args.directory / "commands.jsonl").read_text().splitlines() if line]
    started = datetime.fromisoformat(commands[-1]["started_at"])
    finished = max(datetime.fromisoformat(r["finished_at"]) for r in records)
    run_phase = (finished - started).total_seconds()

    parts: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0.0])
    for record in records:
        part = parts[record.get("algorithm_label") or record["algorithm"]]
        part[0] += 1
        part[1] += record.get("setup_seconds") or 0.0
        part[2] += record["train_seconds"]
        part[3] += record.get("eval_seconds") or 0.0
    total = [sum(p[i] for p in parts.values()) for i in range(4)]
    worker_seconds = run_phase * args.workers
    print(f"{len(records)} runs in {args.directory}; run phase {run_phase / 60:.1f} min on {args.workers} workers "
          f"= {worker_seconds / 60:.1f} worker-min")
    print(f"{'algorithm':<28}{'runs':>5}{'setup s':>10}{'train s':>10}{'eval s':>9}{'share':>8}")
    for name, (runs, setup, train, evaluation) in sorted(parts.items(), key=lambda kv: -sum(kv[1][1:])):
        print(f"{name:<28}{runs:>5}{setup:>10.0f}{train:>10.0f}{evaluation:>9.0f}"
              f"{(setup + train + evaluation) / worker_seconds:>8.1%}")
    measured = sum(total[1:])
    print(f"{'all':<28}{total[0]:>5}{total[1]:>10.0f}{total[2]:>10.0f}{total[3]:>9.0f}"
          f"{measured / worker_seconds:>8.1%}")
    rest = worker_seconds - measured
    print(f"rest of the workers' time (start-up, dataset loads, checkpoints, records, idle at the end): "
          f"{rest:.0f} s ({rest / worker_seconds:.1%})")
    repeated = repeated_training(records)
    print(f"repeated training (setup + updates of a run whose agent another run already trained, differing only "
          f"in the evaluation wrapper): {repeated:.0f} s ({repeated / worker_seconds:.1%})")
    simulated = schedules(records, args.workers)
    if simulated:
        print(f"simulated run phase from the recorded durations on {args.workers} workers: suite order "
              f"{simulated[0] / 60:.1f} min, longest first {simulated[1] / 60:.1f} min (lower bound "
              f"{sum(total[1:]) / args.workers / 60:.1f} min)")
    if args.wall is not None:
        print(f"outside the run phase (building datasets, starting workers, the final leaderboard): "
              f"{args.wall - run_phase:.0f} s of {args.wall:.0f} s wall")


if __name__ == "__main__":
    main()
