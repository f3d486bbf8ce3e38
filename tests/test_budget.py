"""Sanity floors: the check runs, the verdict rules, and how leaderboards mark under-budget rows."""

import csv
import dataclasses

import pytest

from conftest import PUBLISHED_REFERENCES, REPO, published_leaderboard
from offrl_bench.core import registry
from offrl_bench.data.make import DatasetRequest, make_missing_datasets
from offrl_bench.execution import scheduler
from offrl_bench.records.leaderboard import leaderboard
from offrl_bench.records.run_store import RunStore
from offrl_bench.suites import Suite
from offrl_bench.trust import budget, provenance, reference


def record(algorithm, dataset, env_id, seed, normalized, suite="s", updates=1000, wrapper=""):
    return {"run_id": f"{suite}-{dataset}-{algorithm}-{wrapper}-{seed}-{updates}", "suite": suite,
            "dataset": dataset, "env_id": env_id, "wrapper": wrapper, "algorithm": algorithm, "seed": seed,
            "normalized_score": normalized, "return_mean": normalized, "updates": updates, "train_seconds": 1.0}


def check_records(scores: dict[str, list[float]], env_id="Env-v0", dataset="d/expert", updates=1000):
    return [record(algo, dataset, env_id, seed, score, updates=updates)
            for algo, values in scores.items() for seed, score in enumerate(values)]


def test_the_check_of_the_default_suite_trains_every_part_at_its_budget_on_expert_data():
    suite = registry.suite("default")
    specs = budget.check_suite(suite).runs()
    suite_specs = suite.runs()
    assert {s.suite for s in specs} == {"default"}
    assert all("/expert" in s.dataset for s in specs)
    assert not any(s.algo == "random" for s in specs)
    checked = {(s.algo, s.overrides) for s in specs}
    assert {(s.algo, s.overrides) for s in suite_specs} == checked  # every algorithm and variant, nothing else
    for env in ("pendulum", "cartpole", "minigrid"):  # BC anchors every environment
        assert any(s.algo == "bc" and f"/{env}" in s.dataset for s in specs)
    budgets = {}
    for spec in suite_specs:
        budget_of = (spec.updates, spec.eval_every, spec.eval_episodes)
        budgets.setdefault((spec.algo, spec.overrides), set()).add(budget_of)
    for spec in specs:  # the suite's budgets and evaluation settings, unchanged; BC, the anchor, at every part's
        allowed = set().union(*budgets.values()) if spec.algo == "bc" else budgets[(spec.algo, spec.overrides)]
        assert (spec.updates, spec.eval_every, spec.eval_episodes) in allowed
    mopo = {s.updates for s in specs if s.algo == "mopo"}
    assert mopo == {8_000} and {s.updates for s in specs if s.algo == "bc"} == {2_000, 8_000}  # anchored at 8,000
    assert {s.seed for s in specs} == {0, 1, 2, 3, 4}
    # Where the suite already trains on expert data, the check is the very same run.
    assert {s.run_id for s in specs} & {s.run_id for s in suite_specs}
    assert {s.wrapper for s in specs} == {"", "levels:train"}  # never a perturbation
    assert len(budget.check_suite(suite, seeds=(0,)).runs()) == len(specs) // 5


def test_a_suite_checks_each_dataset_on_its_own_expert_data_of_the_same_levels_and_size():
    """The generalization suite's expert datasets differ in levels and size, and its medium data has
    an expert twin: every check run is one of the suite's own runs, so the check costs nothing."""
    suite = registry.suite("generalization")
    specs = budget.check_suite(suite).runs()
    experts = {r.dataset_id for r in suite.datasets if r.quality == "expert"}
    assert {s.dataset for s in specs} == experts
    assert {s.run_id for s in specs} <= {s.run_id for s in suite.runs()}


@pytest.mark.parametrize("score, verdict", [(50.0, "learned"), (49.9, "under-budget"), (100.0, "learned")])
def test_the_floor_is_50_where_bc_reaches_90(score, verdict):
    found = budget.verdicts(check_records({"bc": [90.0, 90.0], "x": [score, score]}))
    assert dict(zip(found.algorithm, found.verdict)) == {"bc": "learned", "x": verdict}
    row = found[found.algorithm == "x"].iloc[0]
    assert (row.normalized_mean, row.bc_normalized_mean, row.n_seeds) == (score, 90.0, 2)


def test_the_printed_verdicts_name_the_dataset_of_each_check():
    records = check_records({"bc": [95.0], "x": [60.0]}, dataset="d/expert-25-levels-v0")
    records += check_records({"bc": [95.0], "x": [10.0]}, dataset="d/expert-200-levels-v0")
    lines = budget.table(budget.verdicts(records)).splitlines()
    assert any("x" in line and "d/expert-25-levels-v0" in line and "learned" in line for line in lines)
    assert any("x" in line and "d/expert-200-levels-v0" in line and "under-budget" in line for line in lines)


def test_the_most_trained_bc_check_anchors_every_budget_on_the_same_data():
    records = check_records({"bc": [80.0, 80.0], "x": [60.0, 60.0]}, updates=1000)
    records += check_records({"bc": [95.0, 95.0], "y": [60.0, 60.0]}, updates=4000)
    found = budget.verdicts(records + check_records({"z": [60.0]}, updates=40_000))  # e.g. an online budget
    assert set(found.verdict) == {"learned"} and set(found.bc_normalized_mean) == {95.0}


def test_without_a_bc_anchor_at_90_the_check_judges_nothing():
    found = budget.verdicts(check_records({"bc": [95.0, 84.0], "x": [10.0, 12.0]}))
    assert set(found.verdict) == {"no-anchor"}
    found = budget.verdicts(check_records({"x": [10.0, 12.0]}))
    assert list(found.verdict) == ["no-anchor"]


def test_leaderboard_marks_rows_and_the_all_row_that_averages_an_under_budget_task():
    checks = budget.verdicts(check_records({"bc": [100.0], "iql": [100.0]}, env_id="A-v0")
                             + check_records({"bc": [100.0], "iql": [10.0]}, env_id="B-v0"))
    suite = [record(algo, f"{env}/medium", f"{env}-v0", seed, 40.0 + seed)
             for algo in ("bc", "iql") for env in ("A", "B") for seed in range(5)]
    frame = leaderboard(suite, budget=budget.BudgetVerdicts(checks))
    marks = {(row.dataset, row.algorithm): row.budget for row in frame.itertuples()}
    assert marks == {("A/medium", "bc"): "learned", ("B/medium", "bc"): "learned", ("ALL", "bc"): "learned",
                     ("A/medium", "iql"): "learned", ("B/medium", "iql"): "under-budget",
                     ("ALL", "iql"): "under-budget"}
    assert list(frame.columns)[-1] == "budget"
    baseline = [record("random", "A/medium", "A-v0", seed, 0.0) for seed in range(5)]
    assert set(leaderboard(baseline, budget=budget.BudgetVerdicts(checks)).budget) == {"baseline"}
    assert "budget" not in leaderboard(suite).columns  # no verdicts: no column


def test_a_verdict_applies_only_at_the_budget_it_was_checked_at():
    checks = budget.verdicts(check_records({"bc": [100.0], "iql": [10.0]}, env_id="A-v0", updates=1000))
    suite = [record("iql", "A/medium", "A-v0", seed, 40.0, updates=4000) for seed in range(5)]
    suite += [record("iql", "B/medium", "B-v0", seed, 40.0, updates=1000) for seed in range(5)]
    frame = leaderboard(suite, budget=budget.BudgetVerdicts(checks))
    assert set(frame.budget) == {"unchecked"}  # 4,000 updates is not what was checked; B was not checked


def test_a_row_on_checked_data_takes_that_datas_verdict_else_its_environments():
    """The stori suite checks each expert dataset it trains on, clean and collected under a type:
    a row on one of them takes that check's verdict (here: IQL learned on clean data, under budget on
    noisy data, and nothing judged where BC stays under 90); a row on data not checked takes its
    environment's, under budget when any check there says so."""
    checks = budget.verdicts(check_records({"bc": [100.0], "iql": [95.0]}, dataset="clean")
                             + check_records({"bc": [95.0], "iql": [20.0]}, dataset="noisy")
                             + check_records({"bc": [30.0], "iql": [20.0]}, dataset="masked"))
    verdicts = budget.BudgetVerdicts(checks)
    marks = {dataset: verdicts(record("iql", dataset, "Env-v0", 0, 50.0))
             for dataset in ("clean", "noisy", "masked", "medium")}
    assert marks == {"clean": "learned", "noisy": "under-budget", "masked": "unchecked", "medium": "under-budget"}
    checks = budget.verdicts(check_records({"bc": [100.0], "iql": [95.0]}, dataset="clean")
                             + check_records({"bc": [30.0], "iql": [20.0]}, dataset="masked"))
    assert budget.BudgetVerdicts(checks)(record("iql", "medium", "Env-v0", 0, 50.0)) == "learned"


def test_verdicts_come_from_the_results_directory_else_from_the_published_reference(tmp_path, monkeypatch):
    published = tmp_path / "reference" / "s"
    published.mkdir(parents=True)
    (published / "runs.jsonl").write_text("")
    monkeypatch.setattr(reference, "reference_roots", lambda: [tmp_path / "reference"])
    budget.write(budget.verdicts(check_records({"bc": [100.0], "iql": [10.0]})), published / budget.FILE_NAME)
    results = tmp_path / "results"
    results.mkdir()
    assert set(budget.load(results, {"s"}).verdict) == {"learned", "under-budget"}
    assert budget.load(results, {"other"}) is None
    budget.write(budget.verdicts(check_records({"bc": [100.0], "iql": [100.0]})), results / budget.FILE_NAME)
    assert set(budget.load(results, {"s"}).verdict) == {"learned"}  # the directory's own check wins


def test_cli_leaderboard_and_report_show_the_marks(tmp_path, cli):
    store = RunStore(tmp_path)
    for seed in range(5):
        for algo in ("bc", "iql"):
            store.append(record(algo, "A/medium", "A-v0", seed, 60.0 + seed))
    budget.write(budget.verdicts(check_records({"bc": [100.0], "iql": [12.0]}, env_id="A-v0")),
                 tmp_path / budget.FILE_NAME)
    result = cli("leaderboard", str(tmp_path))
    assert result.code == 0, result.err
    assert "under-budget" in result.out and "rows measure the budget, not the method" in " ".join(result.out.split())
    rows = list(csv.DictReader(open(tmp_path / "leaderboard.csv")))
    assert {(r["dataset"], r["algorithm"]): r["budget"] for r in rows} == {
        ("A/medium", "bc"): "learned", ("A/medium", "iql"): "under-budget",
        ("ALL", "bc"): "learned", ("ALL", "iql"): "under-budget"}
    assert cli("report", str(tmp_path)).code == 0
    assert "under-budget" in (tmp_path / "report.html").read_text()


def test_an_algorithm_that_cannot_learn_at_its_budget_is_found_under_budget(tmp_path):
    """Real training: BC learns CartPole expert data in 500 updates; BCQ with a learning rate of 1e-9
    is the same untrained network after 500 updates, and the check must say so."""
    suite = Suite("starved", "", datasets=(DatasetRequest("CartPole-v1", "medium"),), algorithms=("bcq",),
                  overrides={"bcq": (("lr", "1e-9"),)}, seeds=(0, 1), updates=500, eval_every=500,
                  checkpoint_every=500, eval_episodes=5)
    check = budget.check_suite(suite)
    make_missing_datasets([dataclasses.replace(request, episodes=10) for request in check.datasets],
                          log=lambda m: None)
    scheduler.execute(check.runs(), tmp_path, quiet=True)
    found = budget.verdicts(list(RunStore(tmp_path).records().values()))
    assert dict(zip(found.algorithm, found.verdict)) == {"bc": "learned", "bcq": "under-budget"}, found
    assert found.bc_normalized_mean.min() >= 90 and found.set_index("algorithm").normalized_mean["bcq"] < 50


def test_each_verdict_names_the_revision_of_its_own_runs():
    def run(algorithm, seed, revision):
        return {"suite": "s", "algorithm": algorithm, "algorithm_label": algorithm, "env_id": "E", "dataset": "d",
                "wrapper": "", "updates": 100, "seed": seed, "normalized_score": 95.0,
                "versions": {"git_revision": revision}}
    found = budget.verdicts([run("bc", 0, "a" * 40), run("bc", 1, "a" * 40), run("iql", 0, "b" * 40),
                             run("cql", 0, "a" * 40), run("cql", 1, "b" * 40)])
    assert dict(zip(found.algorithm, found.git_revision)) == {"bc": "a" * 40, "iql": "b" * 40, "cql": "mixed"}


@pytest.mark.parametrize("suite", [directory.name for directory in PUBLISHED_REFERENCES])
def test_published_verdicts_cover_every_row_of_the_published_leaderboard(suite):
    directory = reference.reference_dir(suite)
    checks = budget.read(directory / budget.FILE_NAME)
    # The verdicts are what the shipped check runs give, each row's runs from one clean revision (a
    # check resumed at a later revision reran only the rows whose code changed), named in the row.
    runs = list(RunStore(REPO / "results" / "reference" / suite / "budget-check").records().values())
    assert (directory / budget.FILE_NAME).read_text() == budget.csv_text(budget.verdicts(runs))
    assert all(r["versions"]["git_dirty"] is False for r in runs)
    assert "mixed" not in set(checks.git_revision)
    for revision in set(checks.git_revision):
        assert provenance.reference_problems([r for r in runs if r["versions"]["git_revision"] == revision],
                                             REPO) == []
    for row in checks.itertuples():  # each verdict follows from its own numbers
        expected = ("no-anchor" if not row.bc_normalized_mean >= budget.ANCHOR else
                    "learned" if row.normalized_mean >= budget.FLOOR else "under-budget")
        assert row.verdict == expected, row
    frame = published_leaderboard(directory)  # its budget column is BudgetVerdicts(checks)
    # a row goes unchecked only where a check had no valid BC anchor (and docs/concepts/sanity-floors.md says so),
    # or where an algorithm's check was withdrawn after a change to it: it then has no verdict, and the
    # sanity-floors page gives the command that checks it again
    anchored = not (checks.verdict == budget.NO_ANCHOR).any()
    floors_page = " ".join((REPO / "docs" / "concepts" / "sanity-floors.md").read_text().split())
    withdrawn = {name for name in frame.algorithm[frame.budget == budget.UNCHECKED]
                 if name not in set(checks.algorithm) and f"--suite {suite} --only {name}" in floors_page}
    checked = frame[~frame.algorithm.isin(withdrawn)]
    assert set(checked.budget) <= {budget.LEARNED, budget.UNDER_BUDGET, budget.BASELINE} | (
        set() if anchored else {budget.UNCHECKED})
    assert set(frame.budget[frame.algorithm == "random"]) <= {"baseline"}
    published = list(csv.DictReader(open(directory / "leaderboard.csv")))
    assert [r["budget"] for r in published] == list(frame.budget)
