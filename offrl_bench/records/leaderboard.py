"""The leaderboard: one row per (suite, dataset, wrapper, algorithm variant) from a directory's run
records (:mod:`offrl_bench.records.run_store`), with IQM and its interval, per-suite ``ALL`` rows and
the derived columns; ``leaderboard.csv`` can always be rebuilt from ``runs.jsonl``."""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from offrl_bench.core import registry
from offrl_bench.core.errors import OffrlBenchError
from offrl_bench.records.run_store import write_atomic
from offrl_bench.records.statistics import MeanDifference, interval_estimates, mean_difference

#: ★ DESIGN.md §4 — the leaderboard columns, in this order. Extra columns may only follow
#: (``drop_from_default`` is added when any row ran under a wrapper).
LEADERBOARD_COLUMNS = [
    "suite", "dataset", "wrapper", "algorithm", "n_seeds", "return_mean", "return_std", "normalized_mean",
    "normalized_iqm", "ci_low", "ci_high", "updates", "train_seconds", "updates_per_second",
]
#: Extra columns the leaderboard computes itself (after any algorithm's variant columns);
#: ``data_wrapper`` (the wrapper active when a row's dataset was collected, see :func:`data_wrapper_of`)
#: is added when any row's data are known to have been collected under one; ``warning``
#: marks the rows with fewer than MIN_SEEDS seeds and those with an untrained component (see
#: UNTRAINED_SUFFIX), when there are any.
DERIVED_COLUMNS = ("data_wrapper", "drop_from_default", "split", "generalization_gap", "last_gain", "still_rising",
                   "warning", "budget", "fqe_selected", "oracle_best", "stale")
#: A row is **still rising** when the paired per-seed gain of its normalised score over its last
#: evaluation interval has a 95% lower bound above this many points: its final score measures the
#: budget as much as the method. The sanity floor answers another question (does it learn at all).
RISING_GAIN = 2.0
#: Rows with fewer seeds are indicative only: their 95% interval is little more than the seed range.
MIN_SEEDS = 5
ALL = "ALL"
NO_WRAPPER = "none"
#: ``data_wrapper`` of a dataset that no registered suite makes: its collection is not known here
UNKNOWN_DATA_WRAPPER = "unknown"
#: A run's losses may check that a learned component of its algorithm learned: ``<component>_learned``
#: is 1 or 0 (MOPO+MOREC's ``dynamics_reward_learned``). A row any of whose runs records 0 is warned
#: "dynamics reward untrained in k of n runs".
UNTRAINED_SUFFIX = "_learned"
#: Every CSV the project writes holds floats to 6 significant digits; compare with what was written.
CSV_FLOAT_FORMAT = "%.6g"


class BudgetVerdicts(Protocol):
    """Sanity-floor verdicts (:mod:`offrl_bench.trust.budget` makes them): one per run record, and one
    for an ``ALL`` row from its tasks' verdicts."""

    def __call__(self, record: dict) -> str: ...

    def aggregate(self, verdicts: list[str]) -> str: ...


def _iqm_with_ci(scores: np.ndarray) -> tuple[float, float, float]:
    """IQM over runs of a (runs x tasks) score matrix and its 95% stratified-bootstrap CI (rliable)."""
    if np.isnan(scores).any():
        return math.nan, math.nan, math.nan
    return interval_estimates({"a": scores}, "iqm")["a"]


def _row(suite: str, dataset: str, wrapper: str, algorithm: str, runs: list[dict], scores: np.ndarray) -> dict:
    returns = np.array([r["return_mean"] for r in runs], dtype=float)
    iqm, low, high = _iqm_with_ci(scores)
    updates = float(np.mean([r["updates"] for r in runs]))
    seconds = float(np.mean([r["train_seconds"] for r in runs]))
    per_task = dataset != ALL
    return {
        "suite": suite, "dataset": dataset, "wrapper": wrapper, "algorithm": algorithm,
        "n_seeds": scores.shape[0],
        "return_mean": float(returns.mean()) if per_task else math.nan,
        "return_std": float(returns.std(ddof=1)) if per_task and len(returns) > 1 else (0.0 if per_task else math.nan),
        "normalized_mean": float(np.mean(scores)), "normalized_iqm": iqm, "ci_low": low, "ci_high": high,
        "updates": updates, "train_seconds": seconds,
        "updates_per_second": updates / seconds if seconds > 0 else math.nan,
    }


def variant_name(record: dict) -> str:
    """The leaderboard name of a run's algorithm with its variant columns, e.g. ``td3_bc`` or
    ``ssorl(iql)[label_fraction=0.1]``: one name per differently configured variant."""
    return _variant_label(*_variant(record))


def _variant_label(name: str, columns: tuple) -> str:
    return name + (f"[{','.join(f'{k}={v}' for k, v in columns)}]" if columns else "")


Task = tuple[str, str]  # (dataset, wrapper)


def scores_by_variant(records: list[dict]) -> dict[str, dict[Task, dict[int, float]]]:
    """Normalised scores by algorithm variant (:func:`variant_name`), task and seed."""
    scores: dict[str, dict[Task, dict[int, float]]] = {}
    for record in records:
        task = (record["dataset"], record["wrapper"] or NO_WRAPPER)
        scores.setdefault(variant_name(record), {}).setdefault(task, {})[record["seed"]] = record["normalized_score"]
    return scores


def _variant(record: dict) -> tuple[str, tuple]:
    """The leaderboard name of a run's algorithm and its extra columns, as a hashable key (records made
    before algorithms could name their variants have neither)."""
    columns = record.get("columns") or {}
    return record.get("algorithm_label") or record["algorithm"], tuple(sorted(columns.items()))


def leaderboard(records: list[dict], with_run_ids: bool = False,
                budget: BudgetVerdicts | None = None, selection: dict | None = None,
                stale: dict[tuple, str] | None = None) -> pd.DataFrame:
    """DESIGN.md §4 leaderboard: a row per (suite, dataset, wrapper, algorithm), then an ``ALL`` row
    per (suite, algorithm) aggregating normalised scores over its tasks (dataset x wrapper).

    "Algorithm" is the algorithm's leaderboard name plus its extra columns (e.g. ``ssorl(iql)`` at
    ``label_fraction`` 0.1), so each configured variant has rows of its own.
    The aggregate uses the same number of runs for every task (the smallest seed count, lowest seeds
    first) because a stratified bootstrap needs a runs x tasks matrix. ``with_run_ids`` adds a last
    column ``run_ids``: the runs behind each row (not part of the CSV).

    ``budget`` (:class:`offrl_bench.trust.budget.BudgetVerdicts`, or any callable with an
    ``aggregate`` method) gives the sanity-floor verdict of a run's algorithm at its budget; with it,
    a last column ``budget`` says ``learned``,
    ``under-budget``, ``unchecked`` or ``baseline`` (nothing to learn) per row, and an ``ALL`` row is
    ``under-budget`` when any task it averages is.

    ``selection`` (run id -> :class:`offrl_bench.execution.ope.Selection`, from ``offrl-bench ope``) adds
    ``fqe_selected`` and ``oracle_best``: the mean score of the checkpoints FQE selects and of the
    best ones, beside ``normalized_mean`` (the final checkpoints); empty unless every run of the row
    has a selection.

    ``stale`` (row -> label, :func:`offrl_bench.trust.provenance.stale_labels`) marks the rows of a published
    reference whose provenance is not current at HEAD: a last column ``stale`` holds the label
    (``stale since abc1234: why``), and an ``ALL`` row says how many of its tasks are stale.
    """
    if not records:
        return pd.DataFrame(columns=LEADERBOARD_COLUMNS)
    groups: dict[tuple, list[dict]] = {}
    for record in records:
        key = (record["suite"], record["dataset"], record["wrapper"] or NO_WRAPPER, _variant(record))
        groups.setdefault(key, []).append(record)
    rows, verdicts, labels = [], [], []
    for (suite, dataset, wrapper, (algorithm, columns)), runs in sorted(groups.items()):
        runs.sort(key=lambda r: r["seed"])
        labels.append((stale or {}).get((suite, dataset, wrapper, _variant_label(algorithm, columns)), ""))
        rows.append({**_row(suite, dataset, wrapper, algorithm, runs,
                            np.array([[r["normalized_score"]] for r in runs], dtype=float)), **dict(columns),
                     "run_ids": tuple(r["run_id"] for r in runs)})
        verdicts.append(budget(runs[0]) if budget else "")
    # Aggregates over a suite's tasks, separately per level split: train- and test-level scores
    # answer different questions and must not be averaged together.
    aggregates: dict[tuple, list[list[dict]]] = {}
    for (suite, _, wrapper, variant), runs in sorted(groups.items()):
        aggregates.setdefault((suite, variant, split_of(wrapper)), []).append(runs)
    for (suite, (algorithm, columns), split), tasks in sorted(aggregates.items()):
        n = min(len(runs) for runs in tasks)
        scores = np.array([[runs[i]["normalized_score"] for runs in tasks] for i in range(n)], dtype=float)
        used = [r for runs in tasks for r in runs[:n]]
        rows.append({**_row(suite, ALL, f"levels:{split}" if split else ALL, algorithm, used, scores),
                     **dict(columns), "run_ids": tuple(r["run_id"] for r in used)})
        verdicts.append(budget.aggregate([budget(runs[0]) for runs in tasks]) if budget else "")
        keys = [(suite, runs[0]["dataset"], runs[0]["wrapper"] or NO_WRAPPER, _variant_label(algorithm, columns))
                for runs in tasks]
        count = sum(key in (stale or {}) for key in keys)
        labels.append(f"stale: {count} of {len(keys)} tasks" if count else "")
    extra = sorted({name for row in rows for name in row} - set(LEADERBOARD_COLUMNS) - {"run_ids"})
    frame = pd.DataFrame(rows, columns=LEADERBOARD_COLUMNS + extra)
    by_id = {record["run_id"]: record for record in records}
    data_wrappers = [{data_wrapper_of(by_id[run_id]) for run_id in row["run_ids"]} for row in rows]
    if any(values - {"", UNKNOWN_DATA_WRAPPER} for values in data_wrappers):
        frame["data_wrapper"] = [values.pop() if len(values) == 1 else "mixed" for values in data_wrappers]
    wrappers = frame.wrapper[frame.dataset != ALL]
    if (wrappers == NO_WRAPPER).any() and (wrappers != NO_WRAPPER).any():
        frame["drop_from_default"] = _drop_from_default(frame, extra)
    splits = frame.wrapper.map(split_of)
    if (splits != "").any():
        frame["split"] = splits
        frame["generalization_gap"] = _generalization_gap(frame, extra)
    gains = [last_interval_gain([by_id[run_id] for run_id in row["run_ids"]]) if row["dataset"] != ALL else None
             for row in rows]
    rising = [gain is not None and still_rising(gain[0]) for gain in gains]
    if any(gain is not None for gain in gains):
        frame["last_gain"] = [gain[0].estimate if gain else math.nan for gain in gains]
        frame["still_rising"] = [("yes" if up else "no") if gain else "" for gain, up in zip(gains, rising)]
    warnings = [[f"indicative: {n} seeds < {MIN_SEEDS}"] if n < MIN_SEEDS else [] for n in frame.n_seeds]
    for row, notes, gain, up in zip(rows, warnings, gains, rising):
        notes += _untrained([by_id[run_id] for run_id in row["run_ids"]])
        if up:
            notes.append(rising_note(*gain))
    if any(warnings):
        frame["warning"] = ["; ".join(notes) for notes in warnings]
    if budget:
        frame["budget"] = verdicts
    if selection:
        for column, field_ in (("fqe_selected", "selected"), ("oracle_best", "oracle")):
            frame[column] = [float(np.mean([getattr(selection[run], field_) for run in row["run_ids"]]))
                             if all(run in selection for run in row["run_ids"]) else float("nan") for row in rows]
    if stale is not None:
        frame["stale"] = labels
    if with_run_ids:
        frame["run_ids"] = [row["run_ids"] for row in rows]
    return frame


def data_wrapper_of(record: dict) -> str:
    """The wrapper active when a run's dataset was collected: ``""`` for clean data, e.g.
    ``stori:action:p=0.3`` for data collected under action noise (STORI's setting: trained where it
    is tested) or ``levels:train`` for data from a level split's train levels; ``unknown`` for a
    dataset that no registered suite makes.

    A run's record does not hold it: records are written by the code that a published row's
    provenance pins (:mod:`offrl_bench.trust.provenance`), so adding a field there would stale every
    published row. It is read off the dataset requests of the registered suites instead, the run's own
    suite first: a dataset's id is made from its request, wrapper included, so one id is one request.
    """
    return _collection_wrapper(record.get("suite") or "", record["dataset"])


@cache
def _collection_wrapper(suite: str, dataset: str) -> str:
    for name in (suite, *sorted(registry.available(registry.SUITES))):
        wrapper = (_suite_datasets(name) or {}).get(dataset)
        if wrapper is not None:
            return wrapper
    return UNKNOWN_DATA_WRAPPER


@cache
def _suite_datasets(name: str) -> dict[str, str] | None:
    """Dataset id -> collection wrapper of the registered suite ``name``; None when there is no such
    suite or it fails to load."""
    if name not in registry.available(registry.SUITES):
        return None
    try:
        suite = registry.suite(name)
    except OffrlBenchError:
        return None
    return {request.dataset_id: request.wrapper for request in suite.datasets}


def last_interval_gain(runs: list[dict]) -> tuple[MeanDifference, int] | None:
    """The paired per-seed gain of the normalised score between the runs' last two evaluations, and
    the updates (or environment steps) between them; None when fewer than two runs, or any run
    without two evaluations at the same points as the others (e.g. records made before learning
    curves were recorded)."""
    curves = [run.get("learning_curve") or [] for run in runs]
    if len(runs) < 2 or any(len(curve) < 2 for curve in curves):
        return None
    if len({(curve[-2][0], curve[-1][0]) for curve in curves}) != 1:
        return None
    last = np.array([[curve[-1][1]] for curve in curves], dtype=float)
    before = np.array([[curve[-2][1]] for curve in curves], dtype=float)
    return mean_difference(last, before, paired=True), int(curves[0][-1][0] - curves[0][-2][0])


def still_rising(gain: MeanDifference) -> bool:
    """Whether a row's last-interval gain (:func:`last_interval_gain`) is established above RISING_GAIN."""
    return gain.interval(0.95)[0] > RISING_GAIN


def rising_note(gain: MeanDifference, interval: int) -> str:
    """E.g. ``still rising: +6.2 [+3.1, +9.3] over the last 1000 updates``."""
    low, high = gain.interval(0.95)
    return f"still rising: {gain.estimate:+.1f} [{low:+.1f}, {high:+.1f}] over the last {interval} updates"


def _untrained(runs: list[dict]) -> list[str]:
    """Warnings for the components the runs record as not learned (UNTRAINED_SUFFIX)."""
    counts: dict[str, int] = {}
    for run in runs:
        for key, value in (run.get("final_losses") or {}).items():
            if key.endswith(UNTRAINED_SUFFIX) and value == 0:
                counts[key] = counts.get(key, 0) + 1
    return [f"{key[:-len(UNTRAINED_SUFFIX)].replace('_', ' ')} untrained in {k} of {len(runs)} runs"
            for key, k in sorted(counts.items())]


def split_of(wrapper: str) -> str:
    """``"train"``/``"val"``/``"test"`` for a wrapper that evaluates on a level split, else ``""``."""
    from offrl_bench.envs.level_splits import split_of as parse

    return "" if wrapper in (NO_WRAPPER, ALL) else parse(wrapper)


def _same_task_and_variant(frame: pd.DataFrame, variant_columns: list[str]) -> pd.Series:
    """A key equal for rows of the same (suite, dataset, algorithm variant), whatever their wrapper."""
    return frame[["suite", "dataset", "algorithm", *variant_columns]].astype(str).agg("|".join, axis=1)


def _generalization_gap(frame: pd.DataFrame, variant_columns: list[str]) -> pd.Series:
    """Train-level minus test-level normalised score of the same (suite, dataset, algorithm), on every
    row of that group (aggregates included); NaN where either split is missing."""
    key = _same_task_and_variant(frame, variant_columns)
    train = pd.Series(frame.normalized_mean.to_numpy(), index=key)[(frame.split == "train").to_numpy()]
    test = pd.Series(frame.normalized_mean.to_numpy(), index=key)[(frame.split == "test").to_numpy()]
    gap = train - test
    return pd.Series(gap.reindex(key).to_numpy(), index=frame.index)


def _drop_from_default(frame: pd.DataFrame, variant_columns: list[str]) -> pd.Series:
    """Normalised score lost under a wrapper relative to the same (suite, dataset, algorithm) on the
    default environment (STORI type 3.1); NaN where there is no default row."""
    key = _same_task_and_variant(frame, variant_columns)
    default = pd.Series(frame.normalized_mean.to_numpy(), index=key)[(frame.wrapper == NO_WRAPPER).to_numpy()]
    baseline = default.reindex(key).to_numpy()
    return pd.Series(np.where(frame.dataset == ALL, np.nan, baseline - frame.normalized_mean.to_numpy()),
                     index=frame.index)


def leaderboard_csv(frame: pd.DataFrame) -> str:
    """The CSV text of a leaderboard, as ``leaderboard.csv`` holds it."""
    return frame.to_csv(index=False, float_format=CSV_FLOAT_FORMAT)


def write_leaderboard(frame: pd.DataFrame, path: Path) -> None:
    write_atomic(Path(path), leaderboard_csv(frame))
