"""How the claims engine decides one comparison and a claim's family of them.

- **The estimand** of a comparison is the difference of the two sides' mean per-seed value
  (several tasks in one comparison are averaged per seed), estimated by
  :func:`offrl_bench.records.statistics.mean_difference`: a paired t-interval when the design
  pairs the sides, Welch's with Hsu's df otherwise. A claim on ``statistic="iqm"`` uses rliable's
  stratified bootstrap instead, the field's convention for aggregates across tasks, whose coverage
  at 5 seeds is not calibrated (the verdict says "bootstrap").
- **Pairing comes from the records** (:func:`paired_by_design`), never from a flag on the claim.
- **Each comparison is tested against the claim's boundary**: its minimum effect of interest for
  a directional claim, its margin for non-inferiority and equivalence. ``p_for`` is small when the
  difference is clearly on the claimed side of the boundary, ``p_against`` when it is clearly on
  the other; a comparison decides at level alpha when ``2 * min(p_for, p_against) <= alpha``, which
  for one comparison is the whole 95% interval on one side of the boundary.
- **Holm's step-down** over a claim's primary comparisons keeps the family-wise error at alpha.
"""

from __future__ import annotations

import math

from offrl_bench.records.statistics import MeanDifference

ALPHA = 0.05
#: A comparison whose two sides both average within this many points of 100 (normalised: the
#: expert) is "at ceiling": the data cannot tell the two apart, so it is not evidence either way.
CEILING_DISTANCE = 1.0


def paired_by_design(a: list[dict], b: list[dict], measured: bool) -> bool:
    """Whether two sides *whose seeds match* (the caller checks that every seed is on both sides)
    are paired: runs of one seed differ only in the factor the claim compares. For run records
    that means the same learner (``algorithm``: a wrapper, dataset, label fraction or filter
    changes, the seed's initialisation and sampling stay) and the same budget and evaluation. For
    measurements from a claim source CSV (``measured``), a seed names one unit (e.g. one trained
    model), and every row of that seed measures it: the file's contract
    (:func:`offrl_bench.trust.claims.read_measurements`).
    """
    if measured:
        return True
    learners = {r["algorithm"] for r in a + b}
    settings = {_settings(r) for r in a + b}
    return len(learners) == 1 and len(settings) == 1


def _settings(record: dict) -> tuple:
    spec = record.get("spec") or {}
    return tuple(sorted((key, str(spec.get(key))) for key in ("updates", "eval_episodes", "precision") if key in spec))


def p_values(relation: str, boundary: float, difference: MeanDifference) -> tuple[float, float]:
    """(p_for, p_against) of one comparison against the claim's boundary (``boundary``: the margin or
    minimum effect, >= 0, in the difference's units)."""
    m = boundary
    if relation == "equivalent":  # two one-sided tests (TOST) for; either tail against
        return (max(difference.p_above(-m), difference.p_below(m)),
                min(difference.p_below(-m), difference.p_above(m)))
    if relation in ("greater", "at_least"):
        edge = m if relation == "greater" else -m
        return difference.p_above(edge), difference.p_below(edge)
    edge = -m if relation == "less" else m
    return difference.p_below(edge), difference.p_above(edge)


def holm(p: list[float], alpha: float = ALPHA) -> list[float]:
    """Holm-adjusted p-values: p_(i) * (k - i + 1), made monotone; decide where <= alpha."""
    order = sorted(range(len(p)), key=lambda i: (math.isnan(p[i]), p[i]))
    adjusted = [math.nan] * len(p)
    running = 0.0
    for rank, i in enumerate(order):
        if math.isnan(p[i]):
            break
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def more_seeds(relation: str, boundary: float, difference: MeanDifference, n: int, level: float) -> int | None:
    """~Seeds per side to add until an interval of this centre, at this level and shrinking as
    1/sqrt(n), excludes the boundary; None when the estimate sits on it (or has no spread)."""
    edges = (-boundary, boundary) if relation == "equivalent" else (
        {"greater": boundary, "less": -boundary, "at_least": -boundary, "at_most": boundary}[relation],)
    distance = min(abs(difference.estimate - edge) for edge in edges)
    low, high = difference.interval(level)
    half_width = (high - low) / 2
    if distance < 1e-9 or not math.isfinite(half_width):
        return None
    return max(1, math.ceil(n * (half_width / distance) ** 2) - n)
