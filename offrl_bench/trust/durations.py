"""Longest runs first: the order a suite's pending runs start in, from the times its published
reference recorded.

Runs start in the order they are given. In suite order the slowest algorithms of the default suite
(MOPO and MOPO+MOREC, near its end) start late and can leave one worker running alone at the end.
Starting the longest runs first (list scheduling by decreasing duration, Graham's LPT rule) ends
with the shortest runs, so the workers finish close together. Only the order changes: run ids, records and
resume are the same, and a re-run still skips what has finished.

A run's expected duration is its own published record's setup, update and evaluation seconds where
the reference has its run id; else the mean over the reference's runs of the same algorithm variant
on the same dataset, scaled by updates; else of the same algorithm variant anywhere, scaled by
updates; else the median of the others (a run nothing is known about is neither first nor last).
Recorded times come from whatever machine and load made the reference, so they order runs; they
do not predict wall time.
"""

from __future__ import annotations

import statistics
from collections import defaultdict

from offrl_bench.execution.runner import RunSpec
from offrl_bench.records.run_store import RunStore
from offrl_bench.trust.reference import reference_dir


def run_seconds(record: dict) -> float:
    """A run's recorded worker time: setup, updates and evaluation."""
    return (record.get("setup_seconds") or 0.0) + (record.get("train_seconds") or 0.0) \
        + (record.get("eval_seconds") or 0.0)


def _variant(algo: str, overrides) -> tuple:
    return algo, tuple(sorted((str(k), str(v)) for k, v in overrides))


def expected_seconds(specs: list[RunSpec]) -> dict[str, float | None]:
    """Run id -> expected duration in seconds from the published references of the specs' suites
    (None where nothing is known)."""
    by_id: dict[str, float] = {}
    per_update: dict[tuple, list[float]] = defaultdict(list)  # (variant, dataset) and (variant,) -> s/update
    for suite in sorted({spec.suite for spec in specs}):
        directory = reference_dir(suite) if suite else None
        if directory is None:
            continue
        for run_id, record in RunStore(directory).records().items():
            seconds, spec = run_seconds(record), record.get("spec") or {}
            by_id[run_id] = seconds
            variant = _variant(spec.get("algo", record["algorithm"]), spec.get("overrides") or ())
            rate = seconds / max(1, int(record.get("updates") or 1))
            per_update[(variant, record["dataset"])].append(rate)
            per_update[(variant,)].append(rate)
    expected: dict[str, float | None] = {}
    for spec in specs:
        variant = _variant(spec.algo, spec.overrides)
        rates = per_update.get((variant, spec.dataset)) or per_update.get((variant,))
        expected[spec.run_id] = by_id.get(spec.run_id, statistics.fmean(rates) * spec.updates if rates else None)
    return expected


def longest_first(specs: list[RunSpec]) -> list[RunSpec]:
    """``specs`` ordered by decreasing expected duration; ties and unknown ones keep their order
    (unknown ones as if of the median duration)."""
    expected = expected_seconds(specs)
    known = [seconds for seconds in expected.values() if seconds is not None]
    if not known:
        return list(specs)
    middle = statistics.median(known)
    order = {spec.run_id: position for position, spec in enumerate(specs)}
    return sorted(specs, key=lambda spec: (-(expected[spec.run_id] if expected[spec.run_id] is not None else middle),
                                           order[spec.run_id]))
