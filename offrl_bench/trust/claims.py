"""Claims: a paper's finding as data, decided from run records by a named statistical rule.

A :class:`Claim` says which runs it compares (two sides, :class:`Rows`), what it asserts about
them (a direction, or an equivalence or non-inferiority margin) and on which statistic. Claims
register under the ``offrl_bench.claims`` entry-point group (an entry point names one claim or a
tuple of them), exactly like algorithms and suites, so a plugin package can ship its paper's claims.

Rule (``bootstrap``): the 95% stratified-bootstrap interval (rliable, 2,000 resamples) of the
difference ``statistic(A) - statistic(B)`` of normalised scores over seeds. Independent samples
are resampled independently; ``paired`` claims (the same trained agent evaluated twice, e.g. on
the default and a perturbed environment) resample the per-seed differences. Against the claim's
boundary (0, or the margin) the interval decides:

- ``reproduced``: the whole interval is on the side the claim asserts;
- ``contradicted``: the whole interval is on the other side;
- ``inconclusive``: it straddles the boundary. The seeds needed are estimated from the interval's
  width, which shrinks as 1/sqrt(seeds): ~n * (half-width / distance to the boundary)^2.

A claim with several comparisons (one per algorithm, say) is reproduced when all are, contradicted
when any is, and inconclusive otherwise. Comparisons with fewer than ``min_seeds`` seeds on a side
are marked indicative.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from offrl_bench.core import registry
from offrl_bench.core.errors import PluginError, UsageError, one_of
from offrl_bench.records.leaderboard import MIN_SEEDS, NO_WRAPPER, variant_name
from offrl_bench.records.run_store import RunStore
from offrl_bench.records.statistics import difference_interval
from offrl_bench.trust import provenance
from offrl_bench.trust.provenance import row_of

#: What a claim asserts about the difference d = A - B, with margin m >= 0.
RELATIONS = {
    "greater": "A > B",
    "less": "A < B",
    "at_least": "A >= B - margin",
    "at_most": "A <= B + margin",
    "equivalent": "|A - B| < margin",
}
STATISTICS = ("mean", "iqm")
#: What is compared per run: its final normalised score, or the environment steps (or updates) it
#: took to first reach a normalised score (runs that never do count with their whole budget, so
#: the claim "A reaches it sooner" is not helped by B's failures being censored), or for a claim
#: whose ``source`` is a CSV, that file's ``value`` column.
METRICS = ("score", "steps_to_score", "value")
RUNS = "runs.jsonl"
REPRODUCED, CONTRADICTED, INCONCLUSIVE, NO_DATA = "reproduced", "contradicted", "inconclusive", "no data"
STALE = "stale"  # a row the comparison rests on is stale at HEAD (offrl-bench reference status)
FIELDS = ("algorithm", "dataset", "wrapper")


@dataclass(frozen=True)
class Rows:
    """One side of a comparison: the runs whose fields match these shell patterns (``fnmatch``).

    ``algorithm`` is the leaderboard name with its variant columns, e.g. ``iql`` or
    ``ssorl(iql)[label_fraction=0.1]`` (brackets are literal here, not pattern classes);
    ``wrapper`` is ``none`` for the default environment. A tuple gives alternatives.
    """

    algorithm: str | tuple[str, ...] = "*"
    dataset: str | tuple[str, ...] = "*"
    wrapper: str | tuple[str, ...] = "*"

    def matches(self, values: dict[str, str]) -> bool:
        return all(_match(values[name], getattr(self, name)) for name in FIELDS)

    def describe(self) -> str:
        parts = [f"{name}={'|'.join(_as_tuple(getattr(self, name)))}" for name in FIELDS if getattr(self, name) != "*"]
        return ", ".join(parts) or "all runs"


def _as_tuple(patterns: str | tuple[str, ...]) -> tuple[str, ...]:
    return (patterns,) if isinstance(patterns, str) else tuple(patterns)


def _match(value: str, patterns: str | tuple[str, ...]) -> bool:
    escape = lambda p: p.replace("[", "[[]").replace("]", "[]]").replace("[[[]]", "[[]")  # noqa: E731
    return any(fnmatch.fnmatchcase(value, escape(pattern)) for pattern in _as_tuple(patterns))


@dataclass(frozen=True)
class Claim:
    """A paper's finding, tested as ``A <relation> B`` on the runs of an output directory.

    ``per``: fields that must be equal on both sides of one comparison (e.g. ``("algorithm",)``:
    each algorithm is compared with itself under another wrapper). ``each``: fields that split side
    A into separate comparisons against the same B (e.g. each offline-RL algorithm against BC).
    Tasks left in one comparison (several datasets) are the columns of rliable's runs x tasks matrix.
    """

    name: str
    paper: str
    statement: str
    a: Rows
    b: Rows
    relation: str
    margin: float = 0.0
    per: tuple[str, ...] = ()
    each: tuple[str, ...] = ()
    paired: bool = False
    statistic: str = "mean"
    metric: str = "score"
    #: for ``steps_to_score``: the normalised score to reach
    threshold: float = 90.0
    min_seeds: int = MIN_SEEDS
    rule: str = "bootstrap"
    #: where the compared values live in the directory: the run records, or a CSV a benchmark writes
    #: with columns algorithm, dataset, wrapper, seed, value (one row per measurement)
    source: str = RUNS

    def __post_init__(self) -> None:
        if self.relation not in RELATIONS:
            raise ValueError(f"claim '{self.name}': relation '{self.relation}'; {one_of(RELATIONS)}")
        if self.statistic not in STATISTICS or self.metric not in METRICS or self.rule != "bootstrap":
            raise ValueError(f"claim '{self.name}': statistic {one_of(STATISTICS)}, metric {one_of(METRICS)}, "
                             "rule 'bootstrap'")
        if (self.source == RUNS) == (self.metric == "value"):
            raise ValueError(f"claim '{self.name}': metric 'value' goes with a CSV source, the others with {RUNS}")
        if self.margin < 0 or (self.relation == "equivalent" and self.margin == 0):
            raise ValueError(f"claim '{self.name}': margin must be >= 0 (> 0 for 'equivalent')")
        if not set(self.per) | set(self.each) <= set(FIELDS):
            raise ValueError(f"claim '{self.name}': per/each fields {one_of(FIELDS)}")

    @property
    def assertion(self) -> str:
        text = RELATIONS[self.relation]
        return text.replace("margin", f"{self.margin:g}") if self.margin else text


@dataclass
class Comparison:
    label: str  # what this comparison holds fixed, e.g. "algorithm=bc, dataset=offrl/pendulum/expert-v0"
    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    difference: float
    low: float
    high: float
    verdict: str
    more_seeds: int | None = None  # for inconclusive ones: ~seeds per side to add
    #: "stale since abc1234: why" when a row either side rests on is stale at HEAD: no verdict then
    stale: str = ""

    def numbers(self, metric: str = "score") -> str:
        """Both sides' means, and the difference of the claim's statistic with its interval."""
        unit, spec = _unit_and_format(metric)
        return (f"A {self.mean_a:{spec}}{unit} (n={self.n_a}), B {self.mean_b:{spec}}{unit} (n={self.n_b}), "
                f"A-B {self.difference:+{spec}} [{self.low:+{spec}}, {self.high:+{spec}}]")

    def effect(self, metric: str = "score") -> str:
        """The difference with its unit and interval alone, e.g. ``-22938 steps [-49152, +6554]``."""
        unit, spec = _unit_and_format(metric)
        return f"{self.difference:+{spec}}{unit} [{self.low:+{spec}}, {self.high:+{spec}}]"


def _unit_and_format(metric: str) -> tuple[str, str]:
    """How a metric's values are printed: their unit and format spec."""
    return {"steps_to_score": (" steps", ".0f"), "value": ("", ".4f")}.get(metric, ("", ".1f"))


@dataclass
class Verdict:
    claim: Claim
    comparisons: list[Comparison] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        verdicts = {c.verdict for c in self.comparisons}
        if not verdicts:
            return NO_DATA
        if STALE in verdicts:
            return STALE
        if CONTRADICTED in verdicts:
            return CONTRADICTED
        return REPRODUCED if verdicts == {REPRODUCED} else INCONCLUSIVE

    @property
    def indicative(self) -> bool:
        return any(min(c.n_a, c.n_b) < self.claim.min_seeds for c in self.comparisons)

    def text(self) -> str:
        """The verdict as printed: with the seeds it needs when inconclusive, and the indicative mark."""
        verdict = self.verdict
        if verdict == STALE:
            return next(c.stale for c in self.comparisons if c.verdict == STALE)
        if verdict == INCONCLUSIVE:
            needed = [c.more_seeds for c in self.comparisons if c.verdict == INCONCLUSIVE]
            if None in needed:
                verdict += " (the estimate sits on the boundary: no number of seeds decides it)"
            else:
                verdict += f" (needs ~{max(needed)} more seeds)"
        if self.indicative:
            fewest = min(min(c.n_a, c.n_b) for c in self.comparisons)
            verdict += f", indicative only ({fewest} seeds < {self.claim.min_seeds})"
        return verdict


def _values(record: dict) -> dict[str, str]:
    return {"algorithm": variant_name(record), "dataset": record["dataset"], "wrapper": record["wrapper"] or NO_WRAPPER}


def _run_value(claim: Claim, record: dict) -> float | None:
    if claim.metric == "value":
        return float(record["value"])
    if claim.metric == "score":
        return record["normalized_score"]
    curve = record.get("learning_curve")
    if not curve:
        return None  # records made before learning curves were recorded
    return next((float(step) for step, score in curve if score >= claim.threshold), float(record["updates"]))


def _matrix(claim: Claim, records: list[dict]) -> tuple[np.ndarray, list[int]] | None:
    """(seeds x tasks) values of one side, on the seeds every task has, and those seeds."""
    by_task: dict[tuple, dict[int, float]] = {}
    for record in records:
        value = _run_value(claim, record)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        by_task.setdefault((record["dataset"], record["wrapper"]), {})[record["seed"]] = value
    if not by_task:
        return None
    seeds = sorted(set.intersection(*(set(values) for values in by_task.values())))
    if not seeds:
        return None
    return np.array([[by_task[task][seed] for task in sorted(by_task)] for seed in seeds], dtype=float), seeds


def _decide(claim: Claim, low: float, high: float) -> str:
    m = claim.margin
    if claim.relation == "equivalent":
        if -m < low and high < m:
            return REPRODUCED
        return CONTRADICTED if low >= m or high <= -m else INCONCLUSIVE
    boundary, above = {"greater": (0.0, True), "less": (0.0, False), "at_least": (-m, True),
                       "at_most": (m, False)}[claim.relation]
    if low > boundary:
        return REPRODUCED if above else CONTRADICTED
    if high < boundary:
        return CONTRADICTED if above else REPRODUCED
    return INCONCLUSIVE


def _more_seeds(claim: Claim, n: int, difference: float, low: float, high: float) -> int | None:
    """~Seeds per side to add until an interval of this centre, shrinking as 1/sqrt(n), excludes the
    boundary; None when the estimate sits on the boundary."""
    m = claim.margin
    boundaries = (-m, m) if claim.relation == "equivalent" else (
        {"greater": 0.0, "less": 0.0, "at_least": -m, "at_most": m}[claim.relation],)
    distance = min(abs(difference - b) for b in boundaries)
    half_width = max(high - low, 1e-12) / 2
    if distance < 1e-9:
        return None
    return max(1, math.ceil(n * (half_width / distance) ** 2) - n)


def evaluate_claim(claim: Claim, records: Iterable[dict], stale: dict[tuple, str] | None = None) -> Verdict:
    """Every comparison of ``claim`` that the records make possible, each with its verdict; a
    comparison resting on a row in ``stale`` (row -> label, see :func:`offrl_bench.trust.provenance.stale_labels`)
    is ``stale`` instead."""
    records = list(records)
    sides = {"a": [], "b": []}
    for record in records:
        values = _values(record)
        for side, rows in (("a", claim.a), ("b", claim.b)):
            if rows.matches(values):
                sides[side].append((values, record))
    groups: dict[tuple, dict[str, list[dict]]] = {}
    for values, record in sides["a"]:
        key = tuple(values[name] for name in (*claim.per, *claim.each))
        groups.setdefault(key, {"a": [], "b": []})["a"].append(record)
    for values, record in sides["b"]:
        shared = tuple(values[name] for name in claim.per)
        for key, group in groups.items():
            if key[:len(claim.per)] == shared:
                group["b"].append(record)
    verdict = Verdict(claim)
    for key, group in sorted(groups.items()):
        a, b = _matrix(claim, group["a"]), _matrix(claim, group["b"])
        if a is None or b is None or a[0].shape[1] != b[0].shape[1]:
            continue
        (matrix_a, seeds_a), (matrix_b, seeds_b) = a, b
        if claim.paired:
            common = sorted(set(seeds_a) & set(seeds_b))
            if not common:
                continue
            matrix_a = matrix_a[[seeds_a.index(s) for s in common]]
            matrix_b = matrix_b[[seeds_b.index(s) for s in common]]
        difference, low, high = difference_interval(matrix_a, matrix_b, claim.statistic, claim.paired)
        decided = _decide(claim, low, high)
        rows = [row_of(record) for record in group["a"] + group["b"]] if stale else []
        labels = [stale[row] for row in rows if row in stale]
        if labels:
            decided = STALE
        label = ", ".join(f"{name}={value}" for name, value in zip((*claim.per, *claim.each), key))
        verdict.comparisons.append(Comparison(
            label or "all", len(matrix_a), len(matrix_b), float(matrix_a.mean()), float(matrix_b.mean()),
            difference, low, high, decided,
            _more_seeds(claim, min(len(matrix_a), len(matrix_b)), difference, low, high)
            if decided == INCONCLUSIVE else None, labels[0] if labels else ""))
    return verdict


def installed() -> list[Claim]:
    """Every installed :class:`Claim`, in entry-point name order. An entry point names one claim or
    a tuple of them (a paper's findings)."""
    found = []
    for name in sorted(registry.available(registry.CLAIMS)):
        value = registry.load(registry.CLAIMS, name)
        members = value if isinstance(value, (tuple, list)) else (value,)
        if not members or not all(isinstance(claim, Claim) for claim in members):
            raise PluginError(f"claim plugin '{name}' ({registry.available(registry.CLAIMS)[name].value}) must be "
                              "an offrl_bench.api.Claim or a tuple of them")
        found += members
    return found


def named(patterns: tuple[str, ...] | list[str]) -> list[Claim]:
    """The installed claims whose name matches any of these shell patterns (all of them if none)."""
    return [c for c in installed() if not patterns or any(fnmatch.fnmatchcase(c.name, p) for p in patterns)]


def evaluate_directory(directory: Path, claims: list[Claim] | None = None) -> list[Verdict]:
    """The verdict of every installed claim (or of ``claims``) on the records in ``directory``."""
    store = RunStore(Path(directory))
    if not store.records_path.exists():
        raise UsageError(f"no run records in '{directory}' (expected {store.records_path})")
    sources = {RUNS: list(store.records().values())}
    stale = provenance.stale_labels(Path(directory), sources[RUNS])
    verdicts = []
    for claim in claims if claims is not None else installed():
        if claim.source not in sources:
            sources[claim.source] = read_measurements(Path(directory) / claim.source)
        verdicts.append(evaluate_claim(claim, sources[claim.source], stale if claim.source == RUNS else None))
    return verdicts


def read_measurements(path: Path) -> list[dict]:
    """A claim source CSV as records (none when the file is absent: that claim has no data here)."""
    if not path.exists():
        return []
    frame = pd.read_csv(path, dtype={"algorithm": str, "dataset": str, "wrapper": str})
    missing = {"algorithm", "dataset", "wrapper", "seed", "value"} - set(frame.columns)
    if missing:
        raise UsageError(f"claim source '{path}' lacks columns: {', '.join(sorted(missing))}")
    frame["wrapper"] = frame["wrapper"].fillna(NO_WRAPPER)
    return frame.to_dict("records")


def verdict_table(verdicts: list[Verdict]) -> pd.DataFrame:
    """One row per claim: paper, claim, verdict, and the numbers behind it."""
    rows = []
    for v in verdicts:
        numbers = "; ".join(f"{c.label}: {c.numbers(v.claim.metric)}"
                            + (f" -> {c.verdict}" if len(v.comparisons) > 1 else "")
                            for c in v.comparisons) or no_data_reason(v.claim)
        rows.append({"paper": v.claim.paper, "claim": v.claim.name, "asserts": v.claim.statement,
                     "verdict": v.text(), "numbers": numbers})
    return pd.DataFrame(rows, columns=["paper", "claim", "asserts", "verdict", "numbers"])


def no_data_reason(claim: Claim) -> str:
    if claim.source != RUNS:
        return f"no measurements: {claim.source} is not in this directory"
    return "no runs here match both sides"


def markdown(verdicts: list[Verdict]) -> str:
    """The verdict table as Markdown (the claims tables in docs/ are this text)."""
    lines = ["| paper | claim | verdict | numbers (A-B: difference of means, 95% bootstrap CI) |", "|---|---|---|---|"]
    for row in verdict_table(verdicts).to_dict("records"):
        cells = [row["paper"], f"**{row['claim']}**: {row['asserts']}", row["verdict"], row["numbers"]]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"
