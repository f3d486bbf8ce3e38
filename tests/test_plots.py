"""`offrl-bench plot`: figures and rliable aggregates from run records."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from offrl_bench.analysis.plots import _stori_settings, plot_directory, score_matrices, scores_by_task
from offrl_bench.records.leaderboard import leaderboard
from offrl_bench.records.statistics import aggregate_table, probability_of_improvement
from tests.conftest import assert_usage_error


def write_runs(directory, algorithms=(("good", 80), ("bad", 40)), datasets=("d1", "d2"), wrappers=("",),
               seeds=range(3)):
    rng = np.random.default_rng(0)
    records = []
    for name, level in algorithms:
        for dataset in datasets:
            for wrapper in wrappers:
                for seed in seeds:
                    run_id = f"{name}-{dataset}-{wrapper}-{seed}"
                    curve = [level * (k + 1) / 3 + rng.normal(0, 3) for k in range(3)]
                    run_dir = directory / "runs" / run_id
                    run_dir.mkdir(parents=True)
                    (run_dir / "metrics.jsonl").write_text("".join(
                        json.dumps({"updates": 100 * (k + 1), "normalized_score": score}) + "\n"
                        for k, score in enumerate(curve)))
                    penalty = 10 if wrapper.startswith("stori") or wrapper == "levels:test" else 0
                    records.append({"run_id": run_id, "suite": "s", "dataset": dataset, "wrapper": wrapper,
                                    "algorithm": name, "seed": seed, "normalized_score": curve[-1] - penalty,
                                    "return_mean": curve[-1], "updates": 300, "train_seconds": 1.0})
    (directory / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


def test_plots_and_aggregates_agree_with_the_leaderboard(tmp_path):
    records = write_runs(tmp_path)
    written = {path.name for path in plot_directory(tmp_path)}
    assert written == {"learning_curves.png", "aggregates.png", "aggregates.csv", "performance_profiles.png",
                       "probability_of_improvement.png", "probability_of_improvement.csv"}
    aggregates = pd.read_csv(tmp_path / "plots" / "aggregates.csv")
    board = leaderboard(records)
    for algorithm in ("good", "bad"):
        iqm = aggregates[(aggregates.algorithm == algorithm) & (aggregates.metric == "iqm")].iloc[0]
        row = board[(board.dataset == "ALL") & (board.algorithm == algorithm)].iloc[0]
        assert (iqm.value, iqm.ci_low, iqm.ci_high) == pytest.approx((row.normalized_iqm, row.ci_low, row.ci_high),
                                                                     rel=1e-5)  # the CSV keeps 6 digits
    improvement = pd.read_csv(tmp_path / "plots" / "probability_of_improvement.csv")
    good_over_bad = improvement[(improvement.x == "good") & (improvement.y == "bad")].iloc[0]
    assert good_over_bad.probability == 1.0 and good_over_bad.ci_low > 0.9


@pytest.fixture
def saved_figures(monkeypatch):
    """Every figure ``plot_directory`` saves, by file name, with the artists it was saved with."""
    from matplotlib.figure import Figure

    figures = {}
    savefig = Figure.savefig

    def capture(self, path, *args, **kwargs):
        figures[Path(path).name] = self
        return savefig(self, path, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", capture)
    return figures


def test_figures_draw_the_numbers_of_the_records(tmp_path, saved_figures):
    """What each figure draws, against values computed here from the records and metrics files."""
    from matplotlib.image import imread
    from scipy.stats import trim_mean

    noisy = "stori:action:p=0.3"
    records = write_runs(tmp_path, wrappers=("", noisy))
    plot_directory(tmp_path)
    for name in saved_figures:
        image = imread(tmp_path / "plots" / name)
        assert min(image.shape[:2]) > 50 and image.std() > 0.05, name  # a drawing, not an empty canvas

    # learning curves: a panel per task, a line per algorithm: the mean over seeds at each evaluation
    panels = {axis.get_title(): axis for axis in saved_figures["learning_curves.png"].axes if axis.get_title()}
    assert set(panels) == {"d1", "d2", f"d1\n{noisy}", f"d2\n{noisy}"}
    for record in records:
        if record["seed"] != 0:
            continue
        title = record["dataset"] + (f"\n{noisy}" if record["wrapper"] else "")
        line = next(line for line in panels[title].get_lines() if line.get_label() == record["algorithm"])
        curves = [[json.loads(point)["normalized_score"] for point in (tmp_path / "runs" / run["run_id"] /
                                                                       "metrics.jsonl").open()]
                  for run in records if run["run_id"][:-1] == record["run_id"][:-1]]
        assert list(line.get_xdata()) == [100, 200, 300]
        assert line.get_ydata() == pytest.approx(np.mean(curves, axis=0))

    # aggregates: bars for bad then good, per metric over all 12 runs of each
    final = {name: np.array([r["normalized_score"] for r in records if r["algorithm"] == name])
             for name in ("bad", "good")}
    expected = {"iqm": lambda x: trim_mean(x, 0.25), "mean": np.mean,
                "optimality gap": lambda x: np.mean(100 - np.minimum(x, 100))}
    for axis in saved_figures["aggregates.png"].axes:
        metric = axis.get_title().split(": ")[1]
        if metric in expected:
            widths = [bar.get_width() for bar in axis.patches]
            assert widths == pytest.approx([expected[metric](final[n]) for n in ("bad", "good")]), metric

    # performance profiles: the share of an algorithm's runs above each threshold
    axis = saved_figures["performance_profiles.png"].axes[0]
    for line in axis.get_lines():
        thresholds = line.get_xdata()
        shares = [np.mean(final[line.get_label()] > tau) for tau in thresholds]
        assert line.get_ydata() == pytest.approx(shares)

    def scores(algorithm, dataset, wrapper):
        return np.array([r["normalized_score"] for r in records
                         if (r["algorithm"], r["dataset"], r["wrapper"]) == (algorithm, dataset, wrapper)])

    # probability of improvement: P(bad > good), per task over all pairs of runs, averaged over tasks
    tasks = [(d, w) for d in ("d1", "d2") for w in ("", noisy)]
    wins = np.mean([np.mean(scores("bad", *task)[:, None] > scores("good", *task)[None, :]) for task in tasks])
    assert [bar.get_width() for bar in saved_figures["probability_of_improvement.png"].axes[0].patches] == \
        pytest.approx([wins])

    # STORI drops: default-env mean minus wrapper mean, averaged over the two datasets
    def mean_score(algorithm, dataset, wrapper):
        return scores(algorithm, dataset, wrapper).mean()

    drops = [np.mean([mean_score(name, d, "") - mean_score(name, d, noisy) for d in ("d1", "d2")])
             for name in ("bad", "good")]
    bars = saved_figures["stori_drops.png"].axes[0].patches
    assert [bar.get_height() for bar in bars] == pytest.approx(drops)
    assert all(drop > 5 for drop in drops)  # write_runs takes 10 points off under a wrapper


def test_statistics_match_rliable_definitions():
    scores = {"a": np.array([[10.0, 20.0], [30.0, 40.0], [50.0, 60.0], [70.0, 80.0]]), "b": np.full((4, 2), 45.0)}
    table = aggregate_table(scores).set_index(["algorithm", "metric"]).value
    assert table["a", "mean"] == pytest.approx(45.0) and table["a", "median"] == pytest.approx(45.0)
    assert table["a", "iqm"] == pytest.approx(45.0)  # middle half: 30, 40, 50, 60
    assert table["b", "optimality_gap"] == pytest.approx(55.0)  # against a normalised score of 100
    assert aggregate_table(scores).equals(aggregate_table(scores))  # seeded bootstrap
    pairs = probability_of_improvement(scores).set_index(["x", "y"]).probability
    assert pairs["a", "b"] + pairs["b", "a"] == pytest.approx(1.0)


def test_wrapper_and_level_split_figures(tmp_path):
    write_runs(tmp_path / "stori", wrappers=("", "stori:action:p=0.3"))
    assert "stori_drops.png" in {p.name for p in plot_directory(tmp_path / "stori")}
    write_runs(tmp_path / "levels", wrappers=("levels:train", "levels:test"))
    names = {p.name for p in plot_directory(tmp_path / "levels")}
    assert "generalization_gap.png" in names
    groups = scores_by_task(write_runs(tmp_path / "again", wrappers=("levels:train", "levels:test")))
    assert set(score_matrices(groups, common_tasks=False)) == {"s, levels:test", "s, levels:train"}  # never pooled


def test_algorithms_with_different_tasks_aggregate_over_their_own(tmp_path):
    """Like the leaderboard's ALL rows; probability of improvement needs tasks in common."""
    records = write_runs(tmp_path / "a", algorithms=(("td3_bc", 70),), datasets=("pendulum",))
    records += write_runs(tmp_path / "b", algorithms=(("bcq", 60),), datasets=("cartpole",))
    groups = scores_by_task(records)
    own = score_matrices(groups, common_tasks=False)["s"]
    assert own["td3_bc"].shape == (3, 1) and own["bcq"].shape == (3, 1)
    assert score_matrices(groups, common_tasks=True) == {}


def test_runs_without_metrics_files_still_get_the_aggregate_figures(tmp_path):
    write_runs(tmp_path)
    for metrics in tmp_path.glob("runs/*/metrics.jsonl"):
        metrics.unlink()
    assert "learning_curves.png" not in {p.name for p in plot_directory(tmp_path)}


def test_plot_command(cli, tmp_path):
    write_runs(tmp_path)
    result = cli("plot", str(tmp_path))
    assert result.code == 0 and "aggregates.png" in result.out
    assert_usage_error(cli("plot", str(tmp_path / "empty")), "no run records")


def test_sample_efficiency_of_online_runs(tmp_path):
    """Online runs get a curve against environment steps and, per seed, the steps to reach 90."""
    curves = {0: [10, 95, 99], 1: [50, 60, 92], 2: [0, 20, 40]}
    records = []
    for seed, scores in curves.items():
        run_dir = tmp_path / "runs" / f"ppo-{seed}"
        run_dir.mkdir(parents=True)
        (run_dir / "metrics.jsonl").write_text("".join(
            json.dumps({"updates": 1000 * (k + 1), "normalized_score": s}) + "\n" for k, s in enumerate(scores)))
        records.append({"run_id": f"ppo-{seed}", "suite": "s", "dataset": "d", "wrapper": "", "algorithm": "ppo",
                        "paradigm": "online", "seed": seed, "normalized_score": scores[-1],
                        "return_mean": scores[-1], "updates": 3000, "train_seconds": 1.0})
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    written = {path.name for path in plot_directory(tmp_path)}
    assert {"sample_efficiency.png", "sample_efficiency.csv"} <= written and "learning_curves.png" not in written
    row = pd.read_csv(tmp_path / "plots" / "sample_efficiency.csv").iloc[0]
    assert row.mean_score_over_training == pytest.approx(np.mean([np.mean(c) for c in curves.values()]))
    assert row.steps_to_90_per_seed == "2000 3000 never" and row.seeds_reaching_90 == 2
    assert np.isnan(row.median_steps_to_90)  # not every seed got there
    # runs finish in any order with several workers: the same records in another order, the same CSV
    first = (tmp_path / "plots" / "sample_efficiency.csv").read_text()
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in reversed(records)))
    plot_directory(tmp_path)
    assert (tmp_path / "plots" / "sample_efficiency.csv").read_text() == first


def test_the_stori_settings_figure_draws_both_settings_of_each_type(tmp_path, saved_figures):
    """Agents trained on data collected under action noise and evaluated under it, beside agents
    trained on clean data and evaluated under it: each bar is that row's normalised mean (one
    environment), each dashed line the clean agents' score in the plain environment."""
    noisy = "stori:action:p=0.3"
    clean, collected = "offrl/pendulum/expert-v0", "offrl/pendulum/expert-stori-action-p-0_3-v0"
    scores = {("bc", clean, ""): 90.0, ("bc", clean, noisy): 70.0, ("bc", collected, noisy): 60.0,
              ("iql", clean, ""): 80.0, ("iql", clean, noisy): 50.0, ("iql", collected, noisy): 65.0}
    records = [{"run_id": f"{algorithm}-{dataset}-{wrapper}-{seed}", "suite": "stori", "dataset": dataset,
                "wrapper": wrapper, "algorithm": algorithm, "seed": seed, "normalized_score": score + seed,
                "return_mean": score, "updates": 300, "train_seconds": 1.0}
               for (algorithm, dataset, wrapper), score in scores.items() for seed in range(3)]
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert "stori_settings.png" in {p.name for p in plot_directory(tmp_path)}
    axis = saved_figures["stori_settings.png"].axes[0]
    bars = {label: [bar.get_height() for bar in container]
            for container, label in zip(axis.containers, [c.get_label() for c in axis.containers])}
    assert bars == {"bc, trained where tested": [61.0], "bc, clean data": [71.0],
                    "iql, trained where tested": [66.0], "iql, clean data": [51.0]}
    assert sorted(line.get_ydata()[0] for line in axis.get_lines()) == [81.0, 91.0]
    # agents trained on the noisy data but evaluated in the plain environment only: no figure
    untested = leaderboard([{**r, "wrapper": ""} if r["dataset"] == collected else r for r in records])
    assert not _stori_settings(untested, tmp_path / "none.png") and not (tmp_path / "none.png").exists()
