"""Claims: a paper's finding as data, decided from run records by a stated statistical rule.

A :class:`Claim` says which runs it compares (two sides, :class:`Rows`), what it asserts about
them (a direction with its minimum effect of interest, or a non-inferiority or equivalence margin),
and which of its comparisons are *primary*: the paper's headline setting, at most four. Claims
register under the ``offrl_bench.claims`` entry-point group (an entry point names one claim or a
tuple of them), exactly like algorithms and suites, so a plugin package can ship its paper's claims.

Rule (the statistics are in :mod:`offrl_bench.trust.claim_statistics`):

- each comparison estimates the difference of mean per-seed values A - B with a 95% t-interval,
  paired when the records show a paired design, Welch's otherwise (coverage >= 93% at 5 seeds,
  checked by simulation in ``tests/test_statistics.py``);
- it is tested against the claim's boundary (the minimum effect or margin, not 0);
- the primary comparisons decide under Holm's correction (family-wise error 5%): ``reproduced``
  when every one of them is decided in the claimed direction, ``contradicted`` when any is decided
  against it, ``inconclusive`` otherwise, with the seeds that would decide it. A comparison whose
  sides both sit within a point of 100 is ``at ceiling`` and counts for nothing. Secondary
  comparisons are shown with their intervals and decide nothing.

Comparisons with fewer than ``min_seeds`` seeds on a side are marked indicative.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from offrl_bench.core import registry
from offrl_bench.core.errors import PluginError, UsageError, one_of
from offrl_bench.records.leaderboard import MIN_SEEDS
from offrl_bench.records.run_store import RunStore
from offrl_bench.records.statistics import MeanDifference, bootstrap_difference, mean_difference
from offrl_bench.trust import claim_sources, claim_statistics, provenance
from offrl_bench.trust.claim_sources import any_still_rising, failing_requirement, run_fields, value_matrix
from offrl_bench.trust.provenance import row_of

#: What a claim asserts about the difference d = A - B, with margin m >= 0 (for ``greater`` and
#: ``less``: the minimum effect of interest).
RELATIONS = {
    "greater": "A > B + margin",
    "less": "A < B - margin",
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
AT_CEILING = "at ceiling"  # both sides within a point of the maximum: no evidence either way
#: a run a comparison rests on did not pass the check its claim requires of it (``Claim.requires``),
#: e.g. MOREC's dynamics reward did not learn: no verdict then
UNTRAINED = "untrained"
FIELDS = ("algorithm", "dataset", "wrapper", "data_wrapper", "env")
#: the most primary comparisons a claim may name: its verdict is the paper's headline, not a sweep
MAX_PRIMARY = 4


@dataclass(frozen=True)
class Rows:
    """One side of a comparison: the runs whose fields match these shell patterns (``fnmatch``).

    ``algorithm`` is the leaderboard name with its variant columns, e.g. ``iql`` or
    ``ssorl(iql)[label_fraction=0.1]`` (brackets are literal here, not pattern classes);
    ``wrapper`` is ``none`` for the default environment; ``data_wrapper`` is the wrapper active when the
    run's dataset was collected (``none`` for clean data,
    :func:`~offrl_bench.records.leaderboard.data_wrapper_of`) and ``env`` the environment id, both
    of run records only (a claim source CSV has neither). A tuple gives alternatives; a pattern
    starting with ``!`` excludes what it matches (``("*/mixed-v0", "!*/minatar-breakout/*")``: every
    mixed dataset but Breakout's; negative patterns alone exclude from everything).
    """

    algorithm: str | tuple[str, ...] = "*"
    dataset: str | tuple[str, ...] = "*"
    wrapper: str | tuple[str, ...] = "*"
    data_wrapper: str | tuple[str, ...] = "*"
    env: str | tuple[str, ...] = "*"

    def matches(self, values: dict[str, str]) -> bool:
        """Whether these patterns match ``values`` on every field it has (a comparison's key holds
        only the fields the claim splits on)."""
        return all(_match(values[name], getattr(self, name)) for name in FIELDS if name in values)

    def describe(self) -> str:
        parts = [f"{name}={'|'.join(_as_tuple(getattr(self, name)))}" for name in FIELDS if getattr(self, name) != "*"]
        return ", ".join(parts) or "all runs"


def _as_tuple(patterns: str | tuple[str, ...]) -> tuple[str, ...]:
    return (patterns,) if isinstance(patterns, str) else tuple(patterns)


def _match(value: str, patterns: str | tuple[str, ...]) -> bool:
    escape = lambda p: p.replace("[", "[[]").replace("]", "[]]").replace("[[[]]", "[[]")  # noqa: E731
    included = [pattern for pattern in _as_tuple(patterns) if not pattern.startswith("!")]
    excluded = [pattern[1:] for pattern in _as_tuple(patterns) if pattern.startswith("!")]
    return (not included or any(fnmatch.fnmatchcase(value, escape(pattern)) for pattern in included)) \
        and not any(fnmatch.fnmatchcase(value, escape(pattern)) for pattern in excluded)


@dataclass(frozen=True)
class Claim:
    """A paper's finding, tested as ``A <relation> B`` on the runs of an output directory.

    ``per``: fields that must be equal on both sides of one comparison (e.g. ``("algorithm",)``:
    each algorithm is compared with itself under another wrapper). ``each``: fields that split side
    A into separate comparisons against the same B (e.g. each offline-RL algorithm against BC).
    Tasks left in one comparison (several datasets) are averaged per seed.

    ``margin``: for ``greater``/``less`` the minimum effect of interest (the whole interval must
    clear it), for the others the non-inferiority or equivalence margin; with ``relative_margin``
    a fraction of B's mean (for metrics without a common scale: steps, errors). ``primary``: the
    comparisons that decide the verdict, matched on the ``per`` and ``each`` fields (None: all of
    them, for a claim that can only ever form a few).
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
    relative_margin: bool = False
    primary: Rows | None = None
    statistic: str = "mean"
    metric: str = "score"
    #: for ``steps_to_score``: the normalised score to reach
    threshold: float = 90.0
    min_seeds: int = MIN_SEEDS
    #: the decision rule (module docstring): t-intervals against the margin, Holm over the primaries
    rule: str = "holm"
    #: where the compared values live in the directory: the run records, or a CSV a benchmark writes
    #: (:func:`~offrl_bench.trust.claim_sources.read_measurements` says its columns)
    source: str = RUNS
    #: for a CSV source: the command that writes it (``DIR``: the output directory)
    produced_by: str = ""
    #: (a run's metric, what to call its failure): a comparison is decided only when every run on
    #: side A records the metric as 1, in its ``final_losses`` or its CSV row, e.g.
    #: ``("dynamics_reward_learned", "reward untrained")``; a run without the metric fails it
    requires: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        if self.relation not in RELATIONS:
            raise ValueError(f"claim '{self.name}': relation '{self.relation}'; {one_of(RELATIONS)}")
        if self.statistic not in STATISTICS or self.metric not in METRICS or self.rule != "holm":
            raise ValueError(f"claim '{self.name}': statistic {one_of(STATISTICS)}, metric {one_of(METRICS)}, "
                             "rule 'holm'")
        if (self.source == RUNS) == (self.metric == "value"):
            raise ValueError(f"claim '{self.name}': metric 'value' goes with a CSV source, the others with {RUNS}")
        if self.margin < 0 or (self.relation == "equivalent" and self.margin == 0):
            raise ValueError(f"claim '{self.name}': margin must be >= 0 (> 0 for 'equivalent')")
        if not set(self.per) | set(self.each) <= set(FIELDS):
            raise ValueError(f"claim '{self.name}': per/each fields {one_of(FIELDS)}")
        if self.primary is not None and any(getattr(self.primary, name) != "*" for name in FIELDS
                                            if name not in (*self.per, *self.each)):
            raise ValueError(f"claim '{self.name}': primary may only select on the per/each fields "
                             f"({', '.join((*self.per, *self.each)) or 'none'})")

    @property
    def assertion(self) -> str:
        text = RELATIONS[self.relation]
        if not self.margin:
            return text.replace(" + margin", "").replace(" - margin", "")
        return text.replace("margin", self.margin_text)

    @property
    def margin_text(self) -> str:
        return f"{self.margin:.0%} of B" if self.relative_margin else f"{self.margin:g}"

    @property
    def boundary_name(self) -> str:
        return "minimum effect" if self.relation in ("greater", "less") else "margin"


@dataclass
class Comparison:
    label: str  # what this comparison holds fixed, e.g. "algorithm=bc, dataset=offrl/pendulum/expert-v0"
    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    difference: float
    low: float  # the 95% interval of the difference (unadjusted)
    high: float
    verdict: str
    more_seeds: int | None = None  # for inconclusive ones: ~seeds per side to add
    #: why the comparison has no verdict: "stale since abc1234: why" when a row either side rests on is
    #: stale at HEAD, or what its claim requires and how many runs fail it ("reward untrained (...)")
    undecided: str = ""
    paired: bool = False
    method: str = ""  # the statistic: "paired t", "Welch t (Hsu df)" or "bootstrap"
    primary: bool = True
    #: for a primary comparison the Holm-adjusted p-value of its decision, for a secondary one the
    #: unadjusted one (the smaller of the two one-sided tests, doubled)
    p_value: float = math.nan
    boundary: float = 0.0  # the margin or minimum effect it was tested against, in the metric's units
    #: the sides ("A", "B" or "A, B") resting on a row still rising at its last evaluation
    #: (:func:`offrl_bench.records.leaderboard.still_rising`): its score measures the budget too
    rising: str = ""

    def numbers(self, metric: str = "score") -> str:
        """Both sides' means, the difference with its interval, the statistic and the p-value."""
        unit, spec = _unit_and_format(metric)
        role = "primary, Holm p" if self.primary else "secondary, p"
        return (f"A {self.mean_a:{spec}}{unit} (n={self.n_a}), B {self.mean_b:{spec}}{unit} (n={self.n_b}), "
                f"A-B {self.difference:+{spec}} [{self.low:+{spec}}, {self.high:+{spec}}] "
                f"({self.method}; {role}={_p(self.p_value)})"
                + (f" [still rising: {self.rising}]" if self.rising else ""))

    def effect(self, metric: str = "score") -> str:
        """The difference with its unit and interval alone, e.g. ``-22938 steps [-49152, +6554]``."""
        unit, spec = _unit_and_format(metric)
        return f"{self.difference:+{spec}}{unit} [{self.low:+{spec}}, {self.high:+{spec}}]"


def _p(p: float) -> str:
    return "n/a" if math.isnan(p) else "<0.001" if p < 0.001 else f"{p:.3f}"


def _unit_and_format(metric: str) -> tuple[str, str]:
    """How a metric's values are printed: their unit and format spec."""
    return {"steps_to_score": (" steps", ".0f"), "value": ("", ".4f")}.get(metric, ("", ".1f"))


@dataclass
class Verdict:
    claim: Claim
    comparisons: list[Comparison] = field(default_factory=list)

    @property
    def primary(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.primary]

    @property
    def evidence(self) -> list[Comparison]:
        """The primary comparisons that count: not stale, not untrained, not at ceiling."""
        return [c for c in self.primary if c.verdict not in (STALE, UNTRAINED, AT_CEILING)]

    @property
    def verdict(self) -> str:
        if not self.comparisons:
            return NO_DATA
        for undecided in (STALE, UNTRAINED):
            if any(c.verdict == undecided for c in self.primary):
                return undecided
        evidence = self.evidence
        if not evidence:
            return AT_CEILING if self.primary else INCONCLUSIVE
        verdicts = {c.verdict for c in evidence}
        if CONTRADICTED in verdicts:
            return CONTRADICTED
        return REPRODUCED if verdicts == {REPRODUCED} else INCONCLUSIVE

    @property
    def indicative(self) -> bool:
        return any(min(c.n_a, c.n_b) < self.claim.min_seeds for c in self.evidence)

    def design(self) -> str:
        """How the verdict was reached, e.g. ``paired; minimum effect 5; 2 primary, 2 in the claimed
        direction, 0 against``."""
        claim, evidence = self.claim, self.evidence
        methods = {"paired" if c.paired else "independent" for c in evidence} or {
            "paired" if c.paired else "independent" for c in self.comparisons}
        parts = ["/".join(sorted(methods)), f"{claim.boundary_name} {claim.margin_text}"]
        if not self.primary:
            parts.append(f"no primary comparison here ({claim.primary.describe() if claim.primary else ''}), "
                         f"{len(self.comparisons)} secondary")
            return "; ".join(parts)
        ceiling = sum(c.verdict == AT_CEILING for c in self.primary)
        parts.append(f"{len(self.primary)} primary, {sum(c.verdict == REPRODUCED for c in evidence)} in the claimed "
                     f"direction, {sum(c.verdict == CONTRADICTED for c in evidence)} against"
                     + (f", {ceiling} at ceiling (no evidence)" if ceiling else ""))
        secondary = len(self.comparisons) - len(self.primary)
        if secondary:
            parts.append(f"{secondary} secondary")
        return "; ".join(parts)

    def text(self) -> str:
        """The verdict as printed: with its design, the seeds it needs when inconclusive, and the
        indicative mark."""
        verdict = self.verdict
        if verdict == NO_DATA:
            return verdict
        if verdict in (STALE, UNTRAINED):
            return next(c.undecided for c in self.primary if c.verdict == verdict)
        text = f"{verdict} ({self.design()})"
        if verdict == INCONCLUSIVE and self.evidence:
            needed = [c.more_seeds for c in self.evidence if c.verdict == INCONCLUSIVE]
            if None in needed:
                text += ", no estimate of the seeds it needs (an estimate on the boundary, or one seed a side)"
            else:
                text += f", needs ~{max(needed)} more seeds"
        if self.indicative:
            fewest = min(min(c.n_a, c.n_b) for c in self.evidence)
            text += f", indicative only ({fewest} seeds < {self.claim.min_seeds})"
        rising = sum(bool(c.rising) for c in self.evidence)
        if rising:
            text += f", rests on still-rising rows ({rising} of {len(self.evidence)} primary comparisons)"
        return text


def _difference(claim: Claim, matrix_a: np.ndarray, matrix_b: np.ndarray, paired: bool) -> MeanDifference:
    if claim.statistic == "iqm":
        return bootstrap_difference(matrix_a, matrix_b, "iqm", paired)
    return mean_difference(matrix_a, matrix_b, paired)


def _decision(p_for: float, p_against: float, p: float, alpha: float = claim_statistics.ALPHA) -> str:
    if not p <= alpha:  # also NaN: one seed a side has no spread to test
        return INCONCLUSIVE
    return REPRODUCED if p_for <= p_against else CONTRADICTED


def evaluate_claim(claim: Claim, records: Iterable[dict], stale: dict[tuple, str] | None = None) -> Verdict:
    """Every comparison of ``claim`` that the records make possible, each with its verdict; a
    comparison resting on a row in ``stale`` (row -> label, see :func:`offrl_bench.trust.provenance.stale_labels`)
    is ``stale`` instead."""
    records = list(records)
    sides = {"a": [], "b": []}
    for record in records:
        values = run_fields(record)
        for side, rows in (("a", claim.a), ("b", claim.b)):
            if rows.matches(values):
                sides[side].append((values, record))
    keys = (*claim.per, *claim.each)
    groups: dict[tuple, dict[str, list[dict]]] = {}
    for values, record in sides["a"]:
        key = tuple(values[name] for name in keys)
        groups.setdefault(key, {"a": [], "b": []})["a"].append(record)
    for values, record in sides["b"]:
        shared = tuple(values[name] for name in claim.per)
        for key, group in groups.items():
            if key[:len(claim.per)] == shared:
                group["b"].append(record)
    verdict = Verdict(claim)
    tests: list[tuple[Comparison, MeanDifference, float, float]] = []
    for key, group in sorted(groups.items()):
        a, b = value_matrix(claim, group["a"]), value_matrix(claim, group["b"])
        if a is None or b is None or a[0].shape[1] != b[0].shape[1]:
            continue
        (matrix_a, seeds_a), (matrix_b, seeds_b) = a, b
        paired = seeds_a == seeds_b and claim_statistics.paired_by_design(group["a"], group["b"], claim.source != RUNS)
        difference = _difference(claim, matrix_a, matrix_b, paired)
        mean_a, mean_b = float(matrix_a.mean()), float(matrix_b.mean())
        boundary = claim.margin * abs(mean_b) if claim.relative_margin else claim.margin
        p_for, p_against = claim_statistics.p_values(claim.relation, boundary, difference)
        low, high = difference.interval(0.95)
        values = dict(zip(keys, key))
        comparison = Comparison(
            ", ".join(f"{name}={value}" for name, value in values.items()) or "all", len(matrix_a), len(matrix_b),
            mean_a, mean_b, difference.estimate, low, high, INCONCLUSIVE, paired=paired, method=difference.method,
            primary=claim.primary is None or claim.primary.matches(values), boundary=boundary)
        if claim.metric == "score":
            comparison.rising = ", ".join(side for side in ("a", "b") if any_still_rising(group[side])).upper()
        rows = [row_of(record) for record in group["a"] + group["b"]] if stale else []
        labels = [stale[row] for row in rows if row in stale]
        failing = failing_requirement(claim.requires, group["a"])
        if labels:
            comparison.verdict, comparison.undecided = STALE, labels[0]
        elif failing:
            comparison.verdict, comparison.undecided = UNTRAINED, failing
        elif claim.metric == "score" and min(mean_a, mean_b) >= 100 - claim_statistics.CEILING_DISTANCE:
            comparison.verdict = AT_CEILING
        verdict.comparisons.append(comparison)
        tests.append((comparison, difference, p_for, p_against))
    primary = [test for test in tests if test[0].primary and test[0].verdict == INCONCLUSIVE]
    adjusted = claim_statistics.holm([2 * min(p_for, p_against) for _, _, p_for, p_against in primary])
    for (comparison, _, p_for, p_against), p in zip(primary, adjusted):
        comparison.p_value = p
        comparison.verdict = _decision(p_for, p_against, p)
    level = 1 - claim_statistics.ALPHA / max(1, len(primary))  # Holm's first, strictest step
    for comparison, difference, p_for, p_against in tests:
        if not comparison.primary and comparison.verdict == INCONCLUSIVE:
            comparison.p_value = min(1.0, 2 * min(p_for, p_against))
            comparison.verdict = _decision(p_for, p_against, comparison.p_value)
        if comparison.verdict == INCONCLUSIVE:
            comparison.more_seeds = claim_statistics.more_seeds(
                claim.relation, comparison.boundary, difference, min(comparison.n_a, comparison.n_b),
                level if comparison.primary else 0.95)
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
            sources[claim.source] = claim_sources.read_measurements(Path(directory) / claim.source)
        verdicts.append(evaluate_claim(claim, sources[claim.source], stale if claim.source == RUNS else None))
    return verdicts
