"""Published reference leaderboards, and how a user's results compare with them.

The project publishes the records of each suite it ran, each row from one clean revision (see
:mod:`offrl_bench.trust.provenance` for which rows are still current), in
``results/reference/<suite>/`` of the repository; the package ships the same ``runs.jsonl`` files
as ``offrl_bench/reference/<suite>/`` so installed copies have them too. User runs never write
there: ``run --suite X`` writes to ``results/X/``.

Rule: a leaderboard row *agrees* with the published row when the 95% interval of the difference of
their mean per-seed scores contains 0 (for an ``ALL`` row a seed's score is its mean over the row's
tasks). The interval is Welch's with Hsu's df, the claims engine's calibrated independent interval
(:func:`offrl_bench.records.statistics.mean_difference`), not the paired one although the seeds
match: on another CPU the same seed diverges in the floats after a few updates (a rerun of the
default suite on another machine matched 30 of 175 runs bit for bit), so the two runs of a seed
are not a paired design, and treating them as one would call a 0.4-point float drift a
disagreement. Overlapping IQM intervals, the rule before, is a far more lenient test. Rows are
matched on (dataset, wrapper, algorithm variant) and compared only when both ran with the same
settings (updates, evaluation episodes, config overrides, precision).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

import offrl_bench
from offrl_bench.records.leaderboard import DERIVED_COLUMNS, LEADERBOARD_COLUMNS, leaderboard
from offrl_bench.records.run_store import RunStore
from offrl_bench.records.statistics import mean_difference
from offrl_bench.trust import provenance as row_provenance
from offrl_bench.trust.provenance import provenance, row_of

RULE = "the 95% interval of the difference of mean per-seed scores contains 0"


def reference_roots() -> list[Path]:
    """Where references are looked for: the repository's ``results/reference`` (a source checkout),
    then the copy installed with the package."""
    package = Path(offrl_bench.__file__).resolve().parent
    return [package.parent / "results" / "reference", package / "reference"]


def reference_dir(suite: str) -> Path | None:
    for root in reference_roots():
        if (root / suite / "runs.jsonl").is_file():
            return root / suite
    return None


@dataclass
class RowComparison:
    key: str  # "dataset · wrapper · algorithm"
    yours: tuple[float, float, float]  # IQM, CI low, CI high (shown)
    published: tuple[float, float, float]
    difference: tuple[float, float, float]  # yours - published: mean per-seed score, 95% interval (decides)
    stale: str = ""  # the published row's stale label: its code changed since it ran

    @property
    def agrees(self) -> bool:
        return self.difference[1] <= 0 <= self.difference[2]


@dataclass
class ReferenceComparison:
    suite: str
    reference: Path
    revision: str | None
    date: str
    rows: list[RowComparison] = field(default_factory=list)
    different_settings: list[str] = field(default_factory=list)  # rows both have, run with other settings

    @property
    def agreeing(self) -> int:
        return sum(row.agrees for row in self.rows)

    def summary(self) -> str:
        where = f"revision {self.revision}, {self.date}"
        text = (f"{self.agreeing}/{len(self.rows)} rows agree with the published {self.suite} leaderboard "
                f"({where}; rule: {RULE})")
        stale = sum(bool(row.stale) for row in self.rows)
        if stale:
            text += (f"; {stale} published rows are stale at HEAD (their code changed since they ran; "
                     "offrl-bench reference status)")
        if self.different_settings:
            text += f"; {len(self.different_settings)} rows ran with other settings and were not compared"
        return text

    def disagreements(self) -> list[str]:
        fmt = lambda t: f"{t[0]:.1f} [{t[1]:.1f}, {t[2]:.1f}]"  # noqa: E731
        return [f"{row.key}: yours {fmt(row.yours)}, published {fmt(row.published)} (IQM); difference of means "
                f"{row.difference[0]:+.1f} [{row.difference[1]:+.1f}, {row.difference[2]:+.1f}]"
                + (f" ({row.stale})" if row.stale else "") for row in self.rows if not row.agrees]

    def stale_rows(self) -> list[str]:
        return [f"{row.key}: {row.stale}" for row in self.rows if row.stale]


def _settings(record: dict) -> tuple:
    """What a run computed, apart from its seed and where it ran."""
    spec = dict(record.get("spec") or {})
    for key in ("seed", "suite", "device"):
        spec.pop(key, None)
    return tuple(sorted((k, str(v)) for k, v in spec.items()))


def _per_seed(runs: list[dict]) -> np.ndarray:
    """A row's score per seed: the mean over its tasks of that seed's runs."""
    by_seed: dict[int, list[float]] = {}
    for run in runs:
        by_seed.setdefault(run["seed"], []).append(run["normalized_score"])
    return np.array([np.mean(scores) for _, scores in sorted(by_seed.items())], dtype=float)


@dataclass(frozen=True)
class _Row:
    iqm: tuple[float, float, float]  # IQM, CI low, CI high
    settings: frozenset  # the run settings of its runs (see _settings)
    run_ids: tuple[str, ...]
    per_seed: np.ndarray  # the row's score per seed (see _per_seed)


def _rows(records: list[dict], frame: pd.DataFrame | None = None) -> dict[str, _Row]:
    """Each row's IQM interval, run settings, run ids and per-seed scores, from ``frame`` (the
    records' leaderboard with run ids) when the caller has it: a leaderboard's bootstrap takes
    seconds per suite."""
    frame = leaderboard(records, with_run_ids=True) if frame is None else frame
    by_id = {record["run_id"]: record for record in records}
    variant_columns = [c for c in frame.columns
                       if c not in LEADERBOARD_COLUMNS and c not in DERIVED_COLUMNS and c != "run_ids"]
    found = {}
    for row in frame.to_dict("records"):
        variant = ",".join(f"{c}={row[c]}" for c in variant_columns
                           if not (isinstance(row[c], float) and math.isnan(row[c])) and row[c] != "")
        key = f"{row['dataset']} · {row['wrapper']} · {row['algorithm']}" + (f"[{variant}]" if variant else "")
        runs = [by_id[run_id] for run_id in row["run_ids"]]
        found[key] = _Row((row["normalized_iqm"], row["ci_low"], row["ci_high"]),
                          frozenset(_settings(run) for run in runs), tuple(row["run_ids"]), _per_seed(runs))
    return found


def compare_with_reference(records: list[dict], directory: Path | None = None,
                           frame: pd.DataFrame | None = None) -> ReferenceComparison | None:
    """How ``records`` (one suite's) compare with that suite's published reference; None when there
    is no reference, or ``directory`` is the reference itself. ``frame``: the records' leaderboard
    built ``with_run_ids``, if already computed."""
    suites = {record["suite"] for record in records}
    if len(suites) != 1:
        return None
    suite = suites.pop()
    reference = reference_dir(suite)
    if reference is None or (directory is not None and Path(directory).resolve() == reference.resolve()):
        return None
    published_records = list(RunStore(reference).records().values())
    date = max(record.get("finished_at", "") for record in published_records)[:10]
    comparison = ReferenceComparison(suite, reference, provenance(published_records).describe(), date)
    published = _rows(published_records)
    labels = row_provenance.stale_labels(reference, published_records) or {}
    stale_runs = {record["run_id"]: labels[row_of(record)] for record in published_records if row_of(record) in labels}
    for key, yours in _rows(records, frame).items():
        theirs = published.get(key)
        if theirs is None or any(math.isnan(x) for x in (*yours.iqm, *theirs.iqm)):
            continue
        if yours.settings != theirs.settings:  # for an ALL row: also a different set of tasks
            comparison.different_settings.append(key)
            continue
        stale = next((stale_runs[run] for run in theirs.run_ids if run in stale_runs), "")
        difference = mean_difference(yours.per_seed[:, None], theirs.per_seed[:, None], paired=False)
        comparison.rows.append(RowComparison(key, yours.iqm, theirs.iqm,
                                             (difference.estimate, *difference.interval(0.95)), stale))
    return comparison

