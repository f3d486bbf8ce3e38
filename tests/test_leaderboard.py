"""Leaderboard CSV: the DESIGN.md §4 contract and the statistics behind it."""

import csv

import numpy as np
import pytest

from offrl_bench.execution.evaluation import normalized_score
from offrl_bench.records.leaderboard import LEADERBOARD_COLUMNS, leaderboard, write_leaderboard
from offrl_bench.records.run_store import RunStore


def record(suite, dataset, algorithm, seed, normalized, ret=None, wrapper=""):
    return {"run_id": f"{suite}-{dataset}-{algorithm}-{wrapper}-{seed}", "suite": suite, "dataset": dataset,
            "wrapper": wrapper, "algorithm": algorithm, "seed": seed, "normalized_score": normalized,
            "return_mean": normalized if ret is None else ret, "updates": 1000, "train_seconds": 2.0}


def test_columns_in_contract_order():
    assert LEADERBOARD_COLUMNS == (
        "suite,dataset,wrapper,algorithm,n_seeds,return_mean,return_std,normalized_mean,normalized_iqm,"
        "ci_low,ci_high,updates,train_seconds,updates_per_second").split(",")


def test_rows_and_aggregates(tmp_path):
    rng = np.random.default_rng(0)
    records = [record("s", d, a, seed, float(rng.normal(50 if a == "bc" else 0, 10)))
               for d in ("d1", "d2") for a in ("bc", "random") for seed in range(5)]
    frame = leaderboard(records)
    assert list(frame.columns) == LEADERBOARD_COLUMNS
    assert list(zip(frame.dataset, frame.algorithm)) == [
        ("d1", "bc"), ("d1", "random"), ("d2", "bc"), ("d2", "random"), ("ALL", "bc"), ("ALL", "random")]
    d1_bc = np.array([r["normalized_score"] for r in records if r["dataset"] == "d1" and r["algorithm"] == "bc"])
    row = frame.iloc[0]
    assert row.n_seeds == 5 and row.normalized_mean == pytest.approx(d1_bc.mean())
    assert row.return_std == pytest.approx(d1_bc.std(ddof=1))
    assert row.ci_low <= row.normalized_iqm <= row.ci_high
    assert row.updates_per_second == pytest.approx(500)
    all_bc = frame[(frame.dataset == "ALL") & (frame.algorithm == "bc")].iloc[0]
    pooled = np.array([r["normalized_score"] for r in records if r["algorithm"] == "bc"])
    assert all_bc.normalized_mean == pytest.approx(pooled.mean())
    assert np.isnan(all_bc.return_mean)  # raw returns of different tasks are not averaged
    assert all_bc.ci_low < all_bc.normalized_iqm < all_bc.ci_high
    # clearly separated algorithms have disjoint intervals
    all_random = frame[(frame.dataset == "ALL") & (frame.algorithm == "random")].iloc[0]
    assert all_random.ci_high < all_bc.ci_low

    path = tmp_path / "lb.csv"
    write_leaderboard(frame, path)
    header = next(csv.reader(path.open()))
    assert header == LEADERBOARD_COLUMNS
    assert not list(tmp_path.glob(".lb.csv.*"))  # temp file renamed away


def test_iqm_matches_rliable_and_is_reproducible():
    from rliable import metrics

    scores = [0.0, 10.0, 20.0, 30.0, 1000.0, 40.0, 50.0, 60.0]
    records = [record("s", "d", "a", i, s) for i, s in enumerate(scores)]
    first, second = leaderboard(records), leaderboard(records)
    assert first.iloc[0].normalized_iqm == pytest.approx(metrics.aggregate_iqm(np.array(scores)[:, None]))
    assert first.iloc[0].normalized_iqm < first.iloc[0].normalized_mean  # the outlier is trimmed
    assert first.equals(second)


def test_the_bootstraps_iqm_is_rliables_bit_for_bit():
    """statistics.aggregate_iqm replaces rliable's (scipy's trim_mean) inside every bootstrap for
    speed; it must give the very same float for any matrix a leaderboard or claim can hold."""
    from rliable import metrics

    from offrl_bench.records.statistics import aggregate_iqm

    rng = np.random.default_rng(0)
    for runs in range(1, 12):
        for tasks in (1, 2, 3, 7):
            for scores in (rng.normal(50, 30, (runs, tasks)), rng.integers(0, 3, (runs, tasks)).astype(float),
                           rng.lognormal(3, 2, (runs, tasks)), np.full((runs, tasks), 100.4)):
                assert aggregate_iqm(scores) == metrics.aggregate_iqm(scores), (runs, tasks, scores)


def test_the_bootstraps_probability_of_improvement_is_rliables_bit_for_bit():
    from rliable import metrics

    from offrl_bench.records.statistics import improvement_probability

    rng = np.random.default_rng(1)
    for runs_x, runs_y in ((1, 1), (2, 5), (5, 5), (7, 3), (10, 10)):
        for tasks in (1, 3):
            for draw in (lambda n: rng.normal(50, 30, (n, tasks)), lambda n: rng.integers(0, 4, (n, tasks)) * 25.0):
                x, y = draw(runs_x), draw(runs_y)
                assert improvement_probability(x, y) == metrics.probability_of_improvement(x, y), (x, y)
                assert improvement_probability(x, x) == metrics.probability_of_improvement(x, x) == 0.5
    # NaN propagates, from either side, and through the mean over tasks
    clean, with_nan = np.array([[0.5, 3.0], [2.0, 4.0]]), np.array([[1.0, 3.5], [np.nan, 5.0]])
    for x, y in ((with_nan, clean), (clean, with_nan)):
        assert np.isnan(improvement_probability(x, y)) and np.isnan(metrics.probability_of_improvement(x, y))


def test_unequal_seed_counts_use_a_rectangular_matrix():
    records = [record("s", "d1", "a", i, 10.0 * i) for i in range(4)]
    records += [record("s", "d2", "a", i, 5.0) for i in range(2)]
    frame = leaderboard(records)
    assert frame[frame.dataset == "ALL"].iloc[0].n_seeds == 2


def test_rebuilt_from_records(tmp_path):
    store = RunStore(tmp_path)
    for r in [record("s", "d", "a", i, float(i)) for i in range(3)]:
        store.append(r)
    assert leaderboard(list(store.records().values())).iloc[0].n_seeds == 3


def test_algorithm_variants_get_rows_and_extra_columns_of_their_own():
    """A meta-algorithm's configurations (SS-ORL at several label fractions) are kept apart, with
    their extra columns after the contract's, and aggregated separately; plain runs leave them empty."""
    records = []
    for fraction, score in ((0.1, 40.0), (1.0, 80.0)):
        for seed in range(3):
            for dataset in ("d1", "d2"):
                entry = record("s", dataset, "ssorl", seed, score + seed)
                entry.update(run_id=f"{entry['run_id']}-{fraction}", algorithm_label="ssorl(iql)",
                             columns={"label_fraction": fraction})
                records.append(entry)
    records += [record("s", "d1", "bc", seed, 10.0) for seed in range(3)]
    frame = leaderboard(records)
    assert list(frame.columns) == LEADERBOARD_COLUMNS + ["label_fraction", "warning"]  # 3 seeds: indicative
    rows = frame[frame.algorithm == "ssorl(iql)"]
    assert sorted(zip(rows.dataset, rows.label_fraction)) == [
        ("ALL", 0.1), ("ALL", 1.0), ("d1", 0.1), ("d1", 1.0), ("d2", 0.1), ("d2", 1.0)]
    assert (rows.n_seeds == 3).all()
    assert rows[(rows.dataset == "ALL") & (rows.label_fraction == 0.1)].normalized_mean.item() == pytest.approx(41)
    assert np.isnan(frame[frame.algorithm == "bc"].label_fraction).all()


def test_rows_whose_runs_record_an_untrained_component_are_warned():
    """An algorithm records ``<component>_learned`` = 0 in its losses when a learned part of it did
    not learn (MOPO+MOREC's dynamics reward): its rows and their ALL row say so in ``warning``."""
    records = [record("s", "d1", "mopo", seed, 50.0) for seed in range(5)]
    for seed in range(5):
        filtered = record("s", "d1", "mopo+morec", seed, 50.0)
        filtered["final_losses"] = {"dynamics_reward_learned": float(seed >= 2), "td_loss": 1.0}
        records.append(filtered)
    frame = leaderboard(records).set_index(["dataset", "algorithm"])
    assert frame.loc[("d1", "mopo+morec"), "warning"] == "dynamics reward untrained in 2 of 5 runs"
    assert frame.loc[("ALL", "mopo+morec"), "warning"] == "dynamics reward untrained in 2 of 5 runs"
    assert frame.loc[("d1", "mopo"), "warning"] == ""
    for entry in records[5:]:
        entry["final_losses"]["dynamics_reward_learned"] = 1.0
    assert "warning" not in leaderboard(records).columns  # every run learned, 5 seeds: nothing to warn


def test_drop_from_default_is_the_score_lost_under_each_wrapper():
    """Hand-computed: BC falls from a mean of 90 to 60 under action noise (a drop of 30 points);
    IQL gains 5 (a drop of -5). The default rows drop 0; aggregates have no drop."""
    noisy = "stori:action:p=0.3"
    scores = {("bc", ""): (80, 90, 100), ("bc", noisy): (50, 60, 70), ("iql", ""): (30, 40, 50),
              ("iql", noisy): (40, 45, 50)}
    records = [record("s", "d", algorithm, seed, float(score), wrapper=wrapper)
               for (algorithm, wrapper), values in scores.items() for seed, score in enumerate(values)]
    frame = leaderboard(records).set_index(["dataset", "algorithm", "wrapper"])
    assert frame.loc[("d", "bc", noisy), "drop_from_default"] == pytest.approx(30.0)
    assert frame.loc[("d", "iql", noisy), "drop_from_default"] == pytest.approx(-5.0)
    assert frame.loc[("d", "bc", "none"), "drop_from_default"] == 0.0
    assert frame.loc[frame.index.get_level_values("dataset") == "ALL", "drop_from_default"].isna().all()


def test_normalized_scores_beyond_the_reference_scores_are_kept():
    """Above expert and below random are findings, not errors: nothing is clipped to [0, 100]."""
    assert normalized_score(150.0, 0.0, 100.0) == pytest.approx(150.0)
    assert normalized_score(-30.0, 10.0, 50.0) == pytest.approx(-100.0)
    assert normalized_score(np.array([0.0, 500.0]), -100.0, 400.0) == pytest.approx([20.0, 120.0])
    assert np.isnan(normalized_score(5.0, None, 10.0)) and np.isnan(normalized_score(5.0, 10.0, 10.0))
    frame = leaderboard([record("s", "d", "a", seed, score) for seed, score in enumerate((130.0, -20.0, 50.0))])
    assert frame.iloc[0].normalized_mean == pytest.approx(160.0 / 3)


def test_rates_and_spreads_of_short_and_single_seed_rows():
    """updates/s is updates over train seconds for any positive time (below one second too); one
    seed has a return spread of 0, not NaN."""
    fast = [dict(record("s", "d", "a", seed, 50.0, ret=r), train_seconds=0.5) for seed, r in enumerate((10.0, 14.0))]
    single = [record("s", "d", "b", 0, 50.0, ret=12.0)]
    untimed = [dict(record("s", "d", "c", 0, 50.0), updates=0, train_seconds=0.0)]
    frame = leaderboard(fast + single + untimed).set_index(["dataset", "algorithm"])
    assert frame.loc[("d", "a"), "updates_per_second"] == pytest.approx(2000.0)
    assert frame.loc[("d", "a"), "return_std"] == pytest.approx(np.std([10.0, 14.0], ddof=1))
    assert frame.loc[("d", "b"), "return_std"] == 0.0 and frame.loc[("d", "b"), "return_mean"] == 12.0
    assert np.isnan(frame.loc[("d", "c"), "updates_per_second"])


def test_bootstrap_intervals_leave_the_global_numpy_rng_alone():
    """rliable draws from NumPy's global RNG; the leaderboard seeds it for the bootstrap and puts
    the caller's state back."""
    np.random.seed(123)
    expected = np.random.random(3)
    np.random.seed(123)
    leaderboard([record("s", "d", "a", seed, float(seed)) for seed in range(5)])
    assert np.random.random(3) == pytest.approx(expected)


def test_every_bootstrap_is_the_same_whatever_the_global_numpy_rng_holds():
    """Profiles, paired and unpaired differences and probabilities of improvement resample from
    NumPy's global RNG inside rliable; each is seeded, so the caller's RNG state cannot change them."""
    from offrl_bench.records.statistics import difference_interval, performance_profiles, probability_of_improvement

    rng = np.random.default_rng(0)
    scores = {"a": rng.normal(50, 20, (5, 3)), "b": rng.normal(40, 20, (5, 3))}

    def everything():
        profiles, bands = performance_profiles(scores, np.array([25.0, 50.0]))
        return (profiles, bands, difference_interval(scores["a"], scores["b"], "iqm", paired=False),
                difference_interval(scores["a"], scores["b"], "mean", paired=True), probability_of_improvement(scores))

    np.random.seed(1)
    first = everything()
    np.random.seed(2)
    second = everything()
    for name in scores:
        assert np.array_equal(first[0][name], second[0][name]) and np.array_equal(first[1][name], second[1][name])
    assert first[2] == second[2] and first[3] == second[3] and first[4].equals(second[4])


def test_data_wrapper_names_the_wrapper_the_data_were_collected_under():
    """STORI's two settings, told apart: agents trained on clean data and on data collected under
    action noise, both evaluated under it. The collection wrapper comes from the registered suite's
    dataset request (records do not hold it), for runs outside the suite too; a dataset no suite
    makes is ``unknown``, and a leaderboard of such datasets alone has no column."""
    noisy = "stori:action:p=0.3"
    clean, collected = "offrl/pendulum/expert-v0", "offrl/pendulum/expert-stori-action-p-0_3-v0"
    records = [record(suite, dataset, "bc", seed, 50.0 + seed, wrapper=noisy)
               for suite, dataset in (("stori", clean), ("stori", collected), ("", collected), ("", "my/own-v0"))
               for seed in range(5)]
    frame = leaderboard(records).set_index(["suite", "dataset"])
    assert frame.loc[("stori", clean), "data_wrapper"] == ""
    assert frame.loc[("stori", collected), "data_wrapper"] == noisy
    assert frame.loc[("", collected), "data_wrapper"] == noisy
    assert frame.loc[("", "my/own-v0"), "data_wrapper"] == "unknown"
    assert frame.loc[("stori", "ALL"), "data_wrapper"] == "mixed"
    assert "data_wrapper" not in leaderboard([r for r in records if r["dataset"] == "my/own-v0"])


def test_a_row_whose_score_still_climbs_over_its_last_interval_is_marked_still_rising():
    """Hand-made curves, 5 seeds, evaluations at 1,000 and 2,000 updates: gains of 5-7 points
    (95% lower bound above 2) are still rising; gains of 0-4 points (bound below 2) are not, nor are
    seeds that disagree; a row without two evaluations has no mark."""
    def runs(algorithm, gains, points=2):
        return [{**record("s", "d", algorithm, seed, 60.0 + gain),
                 "learning_curve": [[1000, 60.0], [2000, 60.0 + gain]][-points:]} for seed, gain in enumerate(gains)]

    records = runs("rising", [5, 6, 7, 5, 6]) + runs("flat", [0, 4, 2, 1, 3]) + runs("noisy", [30, -20, 25, -15, 10]) \
        + runs("once", [5, 6, 7, 5, 6], points=1)
    frame = leaderboard(records).set_index(["dataset", "algorithm"])
    assert frame.loc[("d", "rising"), "still_rising"] == "yes"
    assert frame.loc[("d", "rising"), "last_gain"] == pytest.approx(5.8)
    assert frame.loc[("d", "rising"), "warning"].startswith("still rising: +5.8 [+4.8, +6.8] over the last 1000 updates")
    assert [frame.loc[("d", name), "still_rising"] for name in ("flat", "noisy", "once")] == ["no", "no", ""]
    assert frame.loc[("ALL", "rising"), "still_rising"] == ""
    assert "still_rising" not in leaderboard([r for r in records if r["algorithm"] == "once"])
