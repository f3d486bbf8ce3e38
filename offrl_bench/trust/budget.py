"""Sanity floors: does each algorithm of a suite learn at that suite's budget?

A benchmark that gives one method a tenth of the updates it needs measures the budget, not the
method. So before a suite's row is trusted, the same algorithm, with the same overrides and budget,
is trained on the *expert* data of each of the suite's environments, next to BC. On expert data a
method that learns at all must come close to the behaviour policy:

- the check is valid where BC reaches ``ANCHOR`` (90) normalised: the data and budget suffice for
  plain imitation;
- the algorithm has *learned* where its mean normalised score reaches ``FLOOR`` (50), and is
  *under-budget* otherwise.

``benchmarks/budget_check.py`` runs the check runs and writes the verdicts to ``budget_check.csv``;
the leaderboard reads them (from the results directory, else from the suite's published reference)
and marks every row of an algorithm and environment whose check failed, and every ``ALL`` row that
averages such a task in, as ``under-budget``. A verdict only applies to rows trained with the same
number of updates as its check runs.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd

from offrl_bench.core import registry
from offrl_bench.core.errors import OffrlBenchError
from offrl_bench.data.make import DatasetRequest
from offrl_bench.records.leaderboard import CSV_FLOAT_FORMAT, NO_WRAPPER, variant_name
from offrl_bench.records.run_store import write_atomic
from offrl_bench.suites import CombinedSuite, Suite

FLOOR = 50.0
ANCHOR = 90.0
ANCHOR_ALGORITHM = "bc"
FILE_NAME = "budget_check.csv"

LEARNED, UNDER_BUDGET, NO_ANCHOR, UNCHECKED = "learned", "under-budget", "no-anchor", "unchecked"
BASELINE = "baseline"  # an algorithm with nothing to learn (``random``): no floor applies
COLUMNS = ["suite", "algorithm", "env_id", "dataset", "wrapper", "updates", "n_seeds", "normalized_mean",
           "normalized_min", "bc_normalized_mean", "floor", "anchor", "verdict", "git_revision"]


def _parts(suite: Suite | CombinedSuite) -> tuple[Suite, ...]:
    return suite.parts if isinstance(suite, CombinedSuite) else (suite,)


def check_suite(suite: Suite | CombinedSuite, seeds: tuple[int, ...] | None = None) -> CombinedSuite:
    """The runs of the floor check of ``suite``, as a suite of its own (same name, so the records say
    which suite's budgets they test): each part's algorithms and variants, with the part's overrides
    and budgets, on the expert data of each of its environments, plus BC as the anchor. Algorithms
    with nothing to learn (``random``) are left out. Evaluation uses the dataset's own collection
    wrapper (e.g. ``levels:train``), never a perturbation: the question is whether training worked.

    The expert data of a dataset is the dataset itself where it is expert data, else the suite's
    own expert dataset of that environment and collection wrapper, else the default-sized one: so a
    suite whose expert rows are scored on their collection levels has its check runs among its own."""
    checked = []
    experts = {}
    for part in _parts(suite):
        for request in part.datasets:
            if request.quality == "expert":
                experts.setdefault((request.env_id, request.wrapper, request.seed), request)
    for part in _parts(suite):
        algorithms = tuple(a for a in part.algorithms if _trains(a))
        if ANCHOR_ALGORITHM not in algorithms:
            algorithms += (ANCHOR_ALGORITHM,)
        for request in part.datasets:
            expert = request if request.quality == "expert" else experts.get(
                (request.env_id, request.wrapper, request.seed),
                DatasetRequest(request.env_id, "expert", wrapper=request.wrapper, seed=request.seed))
            checked.append(dataclasses.replace(
                part, name=suite.name, datasets=(expert,), algorithms=algorithms,
                wrappers=(request.wrapper,), seeds=seeds or part.seeds,
                overrides={a: o for a, o in part.overrides.items() if a != ANCHOR_ALGORITHM}))
    return CombinedSuite(suite.name, f"sanity floors of suite {suite.name}", tuple(checked))


def _trains(algorithm: str) -> bool:
    try:
        return getattr(registry.algorithm_class(algorithm), "trains", True)
    except OffrlBenchError:  # records of an algorithm not installed here: judge them like any other
        return True


def verdicts(records: list[dict]) -> pd.DataFrame:
    """One verdict per (suite, algorithm variant, environment) from the records of check runs."""
    groups: dict[tuple, list[dict]] = {}
    for record in records:
        key = (record["suite"], variant_name(record), record["env_id"], record["dataset"],
               record["wrapper"] or NO_WRAPPER, int(record["updates"]))
        groups.setdefault(key, []).append(record)
    # BC's most-trained check on the same data anchors every group on it (check_suite trains BC at the
    # budget of each part, so a suite whose parts differ in budget has several BC groups per dataset)
    anchors = {}
    for (suite, name, env, dataset, wrapper, updates), runs in sorted(groups.items()):
        if name == ANCHOR_ALGORITHM:
            anchors[(suite, env, dataset, wrapper)] = float(np.mean([r["normalized_score"] for r in runs]))
    rows = []
    for (suite, name, env, dataset, wrapper, updates), runs in sorted(groups.items()):
        scores = np.array([r["normalized_score"] for r in runs], dtype=float)
        # the revision of this row's own runs: a check resumed at a later revision reruns only the
        # rows whose code changed, and each row says which code its verdict describes
        revision = {r.get("versions", {}).get("git_revision") for r in runs}
        anchor = anchors.get((suite, env, dataset, wrapper), math.nan)
        if not anchor >= ANCHOR:
            verdict = NO_ANCHOR
        else:
            verdict = LEARNED if scores.mean() >= FLOOR else UNDER_BUDGET
        rows.append({"suite": suite, "algorithm": name, "env_id": env, "dataset": dataset, "wrapper": wrapper,
                     "updates": updates, "n_seeds": len(runs), "normalized_mean": float(scores.mean()),
                     "normalized_min": float(scores.min()), "bc_normalized_mean": anchor, "floor": FLOOR,
                     "anchor": ANCHOR, "verdict": verdict,
                     "git_revision": next(iter(revision)) if len(revision) == 1 else "mixed"})
    return pd.DataFrame(rows, columns=COLUMNS)


def csv_text(frame: pd.DataFrame) -> str:
    """The text of ``budget_check.csv`` for verdicts ``frame``."""
    return frame.to_csv(index=False, float_format=CSV_FLOAT_FORMAT)


def write(frame: pd.DataFrame, path: Path) -> None:
    write_atomic(Path(path), csv_text(frame))


def read(path: Path) -> pd.DataFrame:
    with open(path, newline="") as f:
        frame = pd.DataFrame(list(csv.DictReader(f)), columns=COLUMNS)
    numbers = ("normalized_mean", "normalized_min", "bc_normalized_mean", "floor", "anchor")
    return frame.astype({"updates": int, "n_seeds": int, **dict.fromkeys(numbers, float)})


def load(directory: Path, suites: set[str]) -> pd.DataFrame | None:
    """The verdicts that apply to results in ``directory``: its own ``budget_check.csv``, plus, for
    suites it has none for, the published reference's. None when there are none at all."""
    from offrl_bench.trust.reference import reference_dir

    found = []
    own = Path(directory) / FILE_NAME
    if own.is_file():
        found.append(read(own))
    covered = set(found[0].suite) if found else set()
    for suite in sorted(suites - covered):
        reference = reference_dir(suite)
        if reference is not None and (reference / FILE_NAME).is_file():
            found.append(read(reference / FILE_NAME))
    return pd.concat(found, ignore_index=True) if found else None


def for_directory(directory: Path, records: list[dict]):
    """The ``budget`` argument of :func:`offrl_bench.records.leaderboard.leaderboard` for results in
    ``directory`` (see :func:`load`); None when no verdicts apply."""
    checks = load(directory, {record["suite"] for record in records})
    return BudgetVerdicts(checks) if checks is not None else None


class BudgetVerdicts:
    """The ``budget`` argument of :func:`offrl_bench.records.leaderboard.leaderboard`. Called with a
    record, the verdict of its (suite, algorithm variant) at its number of updates on the record's own
    dataset where that was checked (a suite of expert data collected under several wrappers checks
    each), else on its environment's expert data: ``under-budget`` if any check there says so,
    ``learned`` if one does, else ``unchecked`` (a check without a valid BC anchor judges nothing);
    :meth:`aggregate` gives an ``ALL`` row's verdict from its tasks'."""

    def __init__(self, checks: pd.DataFrame) -> None:
        self.on_dataset = {(row.suite, row.algorithm, row.env_id, row.dataset, int(row.updates)): row.verdict
                           for row in checks.itertuples()}
        self.on_environment: dict[tuple, set[str]] = {}
        for row in checks.itertuples():
            self.on_environment.setdefault((row.suite, row.algorithm, row.env_id, int(row.updates)), set()).add(
                row.verdict)

    def __call__(self, record: dict) -> str:
        if not _trains(record["algorithm"]):
            return BASELINE
        key = (record["suite"], variant_name(record), record["env_id"], int(record["updates"]))
        found = self.on_dataset.get((*key[:3], record["dataset"], key[3]))
        if found is None:
            found = next((v for v in (UNDER_BUDGET, LEARNED) if v in self.on_environment.get(key, ())), None)
        return found if found in (LEARNED, UNDER_BUDGET) else UNCHECKED

    @staticmethod
    def aggregate(verdicts: list[str]) -> str:
        """An ``ALL`` row averaging tasks with these verdicts: under-budget if any is."""
        if UNDER_BUDGET in verdicts:
            return UNDER_BUDGET
        if verdicts and all(v == BASELINE for v in verdicts):
            return BASELINE
        return LEARNED if verdicts and all(v == LEARNED for v in verdicts) else UNCHECKED


def table(checks: pd.DataFrame) -> str:
    """The verdicts as aligned text, one line per (suite, algorithm, expert dataset): the dataset, not
    only the environment, since a suite may check one environment on several (e.g. 25 to 200 levels)."""
    out = io.StringIO()
    for row in checks.itertuples():
        out.write(f"{row.suite:10} {row.algorithm:45} {row.dataset:50} {row.verdict:13} "
                  f"{row.normalized_mean:7.1f} (min {row.normalized_min:6.1f}, BC {row.bc_normalized_mean:6.1f}, "
                  f"{row.n_seeds} seeds, {row.updates} updates)\n")
    return out.getvalue()
