"""Where a claim reads its values: the fields of a run record, a benchmark's measurement CSV, the
per-seed values of one side of a comparison, the check a claim requires of every run it rests on
(:attr:`offrl_bench.trust.claims.Claim.requires`), and whether a side rests on a still-rising row."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from offrl_bench.core.errors import UsageError
from offrl_bench.records.leaderboard import (
    NO_WRAPPER,
    data_wrapper_of,
    last_interval_gain,
    still_rising,
    variant_name,
)

if TYPE_CHECKING:
    from offrl_bench.trust.claims import Claim


def run_fields(record: dict) -> dict[str, str]:
    """The fields claims select runs on: leaderboard algorithm name, dataset, wrapper, and for run
    records the dataset's collection wrapper and the environment id."""
    fields = {"algorithm": variant_name(record), "dataset": record["dataset"],
              "wrapper": record["wrapper"] or NO_WRAPPER}
    if "run_id" in record:
        fields.update(data_wrapper=data_wrapper_of(record) or NO_WRAPPER, env=record.get("env_id", ""))
    return fields


def failing_requirement(requires: tuple[str, str] | None, records: list[dict]) -> str:
    """Why ``records`` (a comparison's side A) do not meet a claim's ``requires`` (empty when they
    do, or it requires nothing): each run must record ``metric`` as 1."""
    if requires is None:
        return ""
    metric, failure = requires
    failed: dict[str, int] = {}
    for record in records:
        value = record.get(metric, (record.get("final_losses") or {}).get(metric))
        if value is None or (isinstance(value, float) and math.isnan(value)) or float(value) != 1:
            name = run_fields(record)["algorithm"]
            failed[name] = failed.get(name, 0) + 1
    if not failed:
        return ""
    counts = {name: sum(run_fields(record)["algorithm"] == name for record in records) for name in failed}
    return f"{failure} ({', '.join(f'{k} of {counts[n]} runs of {n}' for n, k in sorted(failed.items()))}: " \
           f"{metric} is not 1)"


def read_measurements(path: Path) -> list[dict]:
    """A claim source CSV as records (none when the file is absent: that claim has no data here).

    Contract: columns algorithm, dataset, wrapper, seed, value, one row per measurement. A seed
    names one unit of replication (e.g. one trained model), and the rows of that seed measure that
    unit: sides that share their seeds are paired."""
    if not path.exists():
        return []
    frame = pd.read_csv(path, dtype={"algorithm": str, "dataset": str, "wrapper": str})
    missing = {"algorithm", "dataset", "wrapper", "seed", "value"} - set(frame.columns)
    if missing:
        raise UsageError(f"claim source '{path}' lacks columns: {', '.join(sorted(missing))}")
    frame["wrapper"] = frame["wrapper"].fillna(NO_WRAPPER)
    return frame.to_dict("records")


def write_measurements(path: Path, rows: list[dict]) -> None:
    """Write a claim source CSV (the columns of :func:`read_measurements`, and any a claim's
    ``requires`` reads), replacing the file; its folder is made when missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def run_value(claim: Claim, record: dict) -> float | None:
    """What a claim compares of one run: its final normalised score, the steps it took to reach the
    claim's threshold (its budget if it never did; None without a learning curve), or a CSV row's value."""
    if claim.metric == "value":
        return float(record["value"])
    if claim.metric == "score":
        return record["normalized_score"]
    curve = record.get("learning_curve")
    if not curve:
        return None  # records made before learning curves were recorded
    return next((float(step) for step, score in curve if score >= claim.threshold), float(record["updates"]))


def value_matrix(claim: Claim, records: list[dict]) -> tuple[np.ndarray, list[int]] | None:
    """(seeds x tasks) values of one side, on the seeds every task has, and those seeds."""
    by_task: dict[tuple, dict[int, float]] = {}
    for record in records:
        value = run_value(claim, record)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        by_task.setdefault((record["dataset"], record["wrapper"]), {})[record["seed"]] = value
    if not by_task:
        return None
    seeds = sorted(set.intersection(*(set(values) for values in by_task.values())))
    if not seeds:
        return None
    return np.array([[by_task[task][seed] for task in sorted(by_task)] for seed in seeds], dtype=float), seeds


def any_still_rising(records: list[dict]) -> bool:
    """Whether any row (dataset, wrapper, algorithm variant) of these runs is still rising."""
    rows: dict[tuple, list[dict]] = {}
    for record in records:
        rows.setdefault((record["dataset"], record["wrapper"], variant_name(record)), []).append(record)
    return any((gain := last_interval_gain(runs)) is not None and still_rising(gain[0]) for runs in rows.values())
