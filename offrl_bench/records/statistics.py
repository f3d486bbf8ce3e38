"""Statistics over runs and tasks.

- Aggregates across tasks with rliable (Agarwal et al., 2021, "Deep RL at the Edge of the
  Statistical Precipice"): IQM, mean, median and optimality gap with 95% stratified-bootstrap
  intervals, probability of improvement, and performance profiles. This is the field's convention
  for leaderboards and plots.
- The difference of two sides' mean per-seed score (:func:`mean_difference`), the estimand of a
  per-task claim and of the reference comparison: a t-interval, paired or Welch's. At 5 seeds per
  side the percentile bootstrap covers only 84-89% (paired/independent, normal scores), because
  resampling 5 values underestimates their spread; the t-intervals here cover >= 93% on normal,
  log-normal and bounded scores (``tests/test_statistics.py`` simulates it; docs/concepts/statistics.md has
  the table).

Scores are normalised scores (0 = random, 100 = expert), arranged per algorithm as a (runs x tasks)
matrix; the optimality gap is measured against 100.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

BOOTSTRAP_REPS = 2_000
METRICS = ("iqm", "mean", "median", "optimality_gap")


@contextlib.contextmanager
def seeded_bootstrap() -> Iterator[np.random.RandomState]:
    """rliable 1.2's stratified bootstrap draws from NumPy's *global* RNG whatever random_state it
    is given, so the global RNG is seeded for the duration and restored after: the same scores
    always give the same intervals, and the caller's global RNG is untouched."""
    saved = np.random.get_state()
    np.random.seed(0)
    try:
        with warnings.catch_warnings():  # arch deprecates the RandomState that rliable hands it
            warnings.simplefilter("ignore", FutureWarning)
            yield np.random.RandomState(0)
    finally:
        np.random.set_state(saved)


def aggregate_iqm(scores: np.ndarray) -> float:
    """rliable's ``aggregate_iqm``, the 25% trimmed mean over runs and tasks, computed operation for
    operation as it computes it (``scipy.stats.trim_mean(scores, 0.25, axis=None)``: one
    ``np.partition`` at the two cuts, then the mean of the middle), so every number is bit for bit
    the same. Without scipy's per-call argument handling, which took 90% of a leaderboard's
    bootstrap: 0.2 ms per call, 2,000 calls per row."""
    flat = np.asarray(scores, dtype=float).ravel()
    if flat.size == 0:
        return float("nan")
    low = int(0.25 * flat.size)
    high = flat.size - low
    return np.partition(flat, (low, high - 1))[low:high].mean()


def _aggregate(name: str) -> Callable[[np.ndarray], float]:
    from rliable import metrics

    return {"iqm": aggregate_iqm, "mean": metrics.aggregate_mean, "median": metrics.aggregate_median,
            "optimality_gap": lambda scores: metrics.aggregate_optimality_gap(scores, gamma=100)}[name]


def interval_estimates(scores: dict[str, np.ndarray], metric: str) -> dict[str, tuple[float, float, float]]:
    """(point, low, high) of ``metric`` for each algorithm's (runs x tasks) score matrix."""
    from rliable import library as rly

    if any(np.isnan(matrix).any() for matrix in scores.values()):
        raise ValueError("scores contain NaN (datasets without reference scores cannot be aggregated)")
    aggregate = _aggregate(metric)
    with seeded_bootstrap() as random_state:
        point, interval = rly.get_interval_estimates(scores, lambda x: np.array([aggregate(x)]), reps=BOOTSTRAP_REPS,
                                                     random_state=random_state)
    return {name: (float(point[name][0]), float(interval[name][0, 0]), float(interval[name][1, 0]))
            for name in scores}


def difference_interval(a: np.ndarray, b: np.ndarray, metric: str, paired: bool) -> tuple[float, float, float]:
    """``metric(a) - metric(b)`` for two (runs x tasks) score matrices, with its 95% stratified-bootstrap
    interval (rliable). Independent samples are resampled independently (rliable's
    StratifiedIndependentBootstrap, as for probability of improvement); ``paired`` ones (row i of
    ``a`` and of ``b`` come from one seed) resample the per-seed differences, whose ``metric`` is
    then the estimate."""
    from rliable import library as rly

    aggregate = _aggregate(metric)
    if paired:
        scores = {"d": np.asarray(a, dtype=float) - np.asarray(b, dtype=float)}
        func = lambda d: np.array([aggregate(d)])  # noqa: E731
    else:
        scores = {"d": (np.asarray(a, dtype=float), np.asarray(b, dtype=float))}
        func = lambda x, y: np.array([aggregate(x) - aggregate(y)])  # noqa: E731
    with seeded_bootstrap() as random_state:
        point, interval = rly.get_interval_estimates(scores, func, reps=BOOTSTRAP_REPS, random_state=random_state)
    return float(point["d"][0]), float(interval["d"][0, 0]), float(interval["d"][1, 0])


@dataclass(frozen=True)
class MeanDifference:
    """An estimate of mean(A) - mean(B) with its standard error and t degrees of freedom (``inf``
    for a normal approximation). ``method`` names the statistic: ``paired t``, ``Welch t (Hsu df)``
    or ``bootstrap``."""

    estimate: float
    standard_error: float
    df: float
    method: str

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        if self.standard_error == 0:
            return self.estimate, self.estimate
        half = _t_quantile(0.5 + level / 2, self.df) * self.standard_error
        return self.estimate - half, self.estimate + half

    def p_above(self, boundary: float) -> float:
        """One-sided p-value against H0: difference <= boundary (small when it is clearly above)."""
        return 1.0 - self._cdf(boundary)

    def p_below(self, boundary: float) -> float:
        """One-sided p-value against H0: difference >= boundary (small when it is clearly below)."""
        return self._cdf(boundary)

    def _cdf(self, boundary: float) -> float:
        """P(T <= t) at t = (estimate - boundary) / standard error."""
        if self.standard_error == 0:  # t = -inf, +inf, or 0/0 on the boundary
            return 0.0 if self.estimate < boundary else 1.0 if self.estimate > boundary else 0.5
        from scipy import stats

        t = (self.estimate - boundary) / self.standard_error
        return float(stats.norm.cdf(t) if math.isinf(self.df) else stats.t.cdf(t, self.df))


PAIRED, WELCH, BOOTSTRAP = "paired t", "Welch t (Hsu df)", "bootstrap"


def _t_quantile(q: float, df: float) -> float:
    from scipy import stats

    return float(stats.norm.ppf(q) if math.isinf(df) else stats.t.ppf(q, df))


def mean_difference(a: np.ndarray, b: np.ndarray, paired: bool) -> MeanDifference:
    """mean(a) - mean(b) of per-seed values (a row per seed; several columns, one per task, are
    averaged per seed first, so a seed stays the unit of replication).

    ``paired`` (row i of both from one seed, differing only in the factor compared): the paired
    t-interval of the per-seed differences, n - 1 df. Otherwise Welch's standard error with Hsu's
    conservative df, min(n_a, n_b) - 1, instead of Welch-Satterthwaite's: at n = 5 a skewed side
    with 3x the other's spread drops Welch-Satterthwaite's coverage to 92%, Hsu's keeps it at 95%.
    """
    a = np.asarray(a, dtype=float).reshape(len(a), -1).mean(axis=1)
    b = np.asarray(b, dtype=float).reshape(len(b), -1).mean(axis=1)
    if paired:
        if len(a) != len(b):
            raise ValueError("a paired difference needs one value per seed on both sides")
        d = a - b
        se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else math.nan
        return MeanDifference(float(d.mean()), se, len(d) - 1, PAIRED)
    variance = sum(x.var(ddof=1) / len(x) if len(x) > 1 else math.nan for x in (a, b))
    return MeanDifference(float(a.mean() - b.mean()), float(math.sqrt(variance)), min(len(a), len(b)) - 1, WELCH)


def bootstrap_difference(a: np.ndarray, b: np.ndarray, metric: str, paired: bool) -> MeanDifference:
    """:func:`difference_interval` as a :class:`MeanDifference`, its standard error read off the
    95% interval's width (normal approximation): for an aggregate such as IQM across tasks, whose
    coverage at 5 seeds is not calibrated (see module docstring)."""
    estimate, low, high = difference_interval(a, b, metric, paired)
    return MeanDifference(estimate, (high - low) / (2 * _t_quantile(0.975, math.inf)), math.inf, BOOTSTRAP)


def aggregate_table(scores: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per (algorithm, metric) with its point estimate and 95% CI."""
    rows = []
    for metric in METRICS:
        for name, (point, low, high) in interval_estimates(scores, metric).items():
            rows.append({"algorithm": name, "metric": metric, "value": point, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)


def improvement_probability(scores_x: np.ndarray, scores_y: np.ndarray) -> float:
    """rliable's ``probability_of_improvement``: P(X > Y) per task, ties counting half, averaged over
    tasks. rliable counts with ``scipy.stats.mannwhitneyu``'s U, a sum of midranks, which is exactly
    the number of pairs with x > y plus half the ties: counting the pairs gives the same float for
    every pair of score sets, without scipy's per-call argument handling (0.8 ms a call, 2,000 calls
    per pair of algorithms)."""
    probabilities = []
    for task in range(scores_x.shape[1]):
        x, y = scores_x[:, task], scores_y[:, task]
        if np.array_equal(x, y):
            probabilities.append(0.5)
        elif np.isnan(x).any() or np.isnan(y).any():
            probabilities.append(np.nan)  # as mannwhitneyu propagates it
        else:
            wins = (x[:, None] > y[None, :]).sum() + 0.5 * (x[:, None] == y[None, :]).sum()
            probabilities.append(np.float64(wins) / (len(x) * len(y)))
    return np.mean(probabilities)


def probability_of_improvement(scores: dict[str, np.ndarray]) -> pd.DataFrame:
    """P(X > Y) for every ordered pair of algorithms (X, Y), with its 95% CI. Needs the same task set."""
    from rliable import library as rly

    names = sorted(scores)
    ordered = [(x, y) for x in names for y in names if x != y]
    if not ordered:
        return pd.DataFrame(columns=["x", "y", "probability", "ci_low", "ci_high"])
    pairs = {str(i): (scores[x], scores[y]) for i, (x, y) in enumerate(ordered)}
    with seeded_bootstrap() as random_state:
        point, interval = rly.get_interval_estimates(pairs, improvement_probability,
                                                     reps=BOOTSTRAP_REPS, random_state=random_state)
    rows = []
    for i, (x, y) in enumerate(ordered):
        low, high = np.ravel(interval[str(i)])
        rows.append({"x": x, "y": y, "probability": float(np.ravel(point[str(i)])[0]), "ci_low": float(low),
                     "ci_high": float(high)})
    return pd.DataFrame(rows)


def performance_profiles(scores: dict[str, np.ndarray], thresholds: np.ndarray
                         ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Fraction of runs scoring above each threshold, and its 95% CI, per algorithm (rliable)."""
    from rliable import library as rly

    with seeded_bootstrap():
        return rly.create_performance_profile(scores, thresholds, reps=BOOTSTRAP_REPS)
