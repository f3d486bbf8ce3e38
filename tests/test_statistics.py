"""The claims engine's intervals cover at their nominal rate at the sample size claims use.

2,000 simulated experiments per case, 5 seeds per side, at a fixed seed: normal, skewed
(log-normal) and bounded (scaled beta, 0-100) scores, independent and paired designs. Every case
must cover the true difference of means >= 93% of the time (95% nominal). The rliable percentile
bootstrap the engine used before covers 84% (paired) and 89% (independent) on the normal cases;
``test_percentile_bootstrap_undercovers`` keeps that measured so the comparison stays honest.
"""

from __future__ import annotations

import numpy as np
import pytest

from offrl_bench.records.statistics import difference_interval, mean_difference

SIMULATIONS, SEEDS = 2_000, 5


def _lognormal(rng, size, mean, sd, sigma=0.5):
    """Right-skewed (skewness 1.75 at sigma 0.5) with the given mean and standard deviation."""
    draws = rng.lognormal(0.0, sigma, size)
    return mean + sd * (draws - np.exp(sigma ** 2 / 2)) / np.sqrt((np.exp(sigma ** 2) - 1) * np.exp(sigma ** 2))


def _cases(rng) -> dict[str, tuple[np.ndarray, np.ndarray, float, bool]]:
    """name -> (A, B, true mean difference, paired), A and B of shape (simulations, seeds)."""
    shape = (SIMULATIONS, SEEDS)
    seed_effect = lambda: rng.normal(0.0, 15.0, shape)  # noqa: E731 (what a shared seed shares)
    quality = rng.beta(2, 2, shape)
    return {
        "independent normal, equal spread": (rng.normal(60, 10, shape), rng.normal(50, 10, shape), 10.0, False),
        "independent normal, 3x spread": (rng.normal(60, 30, shape), rng.normal(50, 10, shape), 10.0, False),
        "independent log-normal, equal spread": (_lognormal(rng, shape, 60, 10), _lognormal(rng, shape, 50, 10),
                                                 10.0, False),
        "independent log-normal, 3x spread": (_lognormal(rng, shape, 60, 30), _lognormal(rng, shape, 50, 10),
                                              10.0, False),
        "independent beta(0.5,2) vs beta(2,2), x100": (100 * rng.beta(0.5, 2, shape), 100 * rng.beta(2, 2, shape),
                                                       100 * (0.2 - 0.5), False),
        "independent beta(2,2) vs beta(2,5), x100": (100 * rng.beta(2, 2, shape), 100 * rng.beta(2, 5, shape),
                                                     100 * (0.5 - 2 / 7), False),
        "paired bounded, skewed side": (100 * (0.7 * quality + 0.3 * rng.beta(0.5, 2, shape)),
                                        100 * (0.7 * quality + 0.3 * rng.beta(2, 2, shape)), 30 * (0.2 - 0.5), True),
    } | _paired_cases(rng, shape, seed_effect)


def _paired_cases(rng, shape, seed_effect):
    shared = seed_effect()
    normal = seed_effect()
    return {"paired normal": (normal + rng.normal(60, 10, shape), normal + rng.normal(50, 3, shape), 10.0, True),
            "paired log-normal, 3x spread": (shared + _lognormal(rng, shape, 60, 30),
                                             shared + _lognormal(rng, shape, 50, 10), 10.0, True)}


def _coverage(a, b, truth, paired, interval) -> float:
    hits = [low <= truth <= high for low, high in (interval(a[i, :, None], b[i, :, None], paired)
                                                   for i in range(len(a)))]
    return float(np.mean(hits))


CASES = _cases(np.random.default_rng(0))


@pytest.mark.parametrize("name", sorted(CASES))
def test_mean_difference_covers_at_five_seeds(name):
    a, b, truth, paired = CASES[name]
    coverage = _coverage(a, b, truth, paired, lambda x, y, p: mean_difference(x, y, p).interval(0.95))
    assert coverage >= 0.93, f"{name}: {coverage:.3f}"


@pytest.mark.slow
def test_percentile_bootstrap_undercovers():
    """Why the engine left rliable's bootstrap for per-task claims: on the normal cases it covers
    well under 95% (200 simulations each: it resamples 2,000 times per interval, 20 s in all;
    measured 87.5% and 85.5%, and 88.0% and 83.5% on 400)."""
    for name in ("independent normal, equal spread", "paired normal"):
        a, b, truth, paired = CASES[name]
        coverage = _coverage(a[:200], b[:200], truth, paired,
                             lambda x, y, p: difference_interval(x, y, "mean", p)[1:])
        assert coverage < 0.91, f"{name}: {coverage:.3f}"


def test_paired_and_independent_statistics_differ_where_they_should():
    """A shared seed effect much larger than the effect: pairing decides it, Welch cannot."""
    rng = np.random.default_rng(1)
    seed_effect = rng.normal(0, 30, (5, 1))
    a, b = seed_effect + 8 + rng.normal(0, 1, (5, 1)), seed_effect + rng.normal(0, 1, (5, 1))
    paired, independent = mean_difference(a, b, paired=True), mean_difference(a, b, paired=False)
    assert paired.interval()[0] > 0 > independent.interval()[0]
    assert paired.df == 4 and independent.df == 4 and paired.method == "paired t"
    assert paired.p_above(0) < 0.001 and paired.p_below(0) > 0.999
