"""Offline policy selection: FQE's estimates, and 'offrl-bench ope' over a run's kept checkpoints."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from offrl_bench.execution import ope
from offrl_bench.execution.runner import RunSpec, _cached_dataset, build_algorithm, execute_run
from offrl_bench.records.leaderboard import CSV_FLOAT_FORMAT
from offrl_bench.records.run_store import RunStore
from tests.conftest import assert_usage_error


def test_fqe_estimates_the_discounted_return_of_a_policy_that_acts_like_the_data(pendulum_expert):
    """BC trained on expert data acts like the behaviour policy, where FQE is on firm ground: its
    estimate is near the data's own discounted return over FQE's horizon (after k target updates
    the target network holds the k-step return). Same seed, same estimate."""
    config = ope.FQEConfig(updates=2_000)
    horizon = config.updates // config.target_update_interval
    dataset = _cached_dataset(pendulum_expert, "cpu")
    policy = build_algorithm(RunSpec("bc", pendulum_expert, seed=0), dataset)
    generator = torch.Generator().manual_seed(0)
    for _ in range(1_000):
        policy.update(policy.sample(dataset, 256, generator))
    bounds = dataset.episode_starts.tolist() + [len(dataset)]
    behaviour = np.mean([sum(config.gamma ** t * float(dataset.rewards[start + t])
                             for t in range(min(horizon, end - start))) for start, end in zip(bounds[:-1], bounds[1:])])
    estimate = ope.fqe_value(policy, dataset, config, seed=0)
    assert estimate == pytest.approx(behaviour, rel=0.25), (estimate, behaviour)
    assert ope.fqe_value(policy, dataset, config, seed=0) == estimate


def test_ope_command_selects_checkpoints_adds_leaderboard_columns_and_resumes(pendulum_expert, cli, tmp_path,
                                                                             monkeypatch):
    store = RunStore(tmp_path)
    for seed, wrapper in ((0, ""), (1, ""), (0, "stori:partial:mode=drop,p=0.3")):
        execute_run(RunSpec("bc", pendulum_expert, seed=seed, updates=300, eval_every=100, checkpoint_every=100,
                            eval_episodes=2, wrapper=wrapper), store)
    fits = []
    fqe_value = ope.fqe_value
    monkeypatch.setattr(ope, "fqe_value", lambda *args: fits.append(1) or fqe_value(*args))
    result = cli("ope", str(tmp_path), "--updates", "200")
    assert result.code == 0, result.err
    lines = [json.loads(line) for line in (tmp_path / ope.FILE_NAME).open()]
    assert len(lines) == 3 and all([step for step, _, _ in line["checkpoints"]] == [100, 200, 300] for line in lines)
    # the run under STORI noise trained the same policy as seed 0's plain run: fitted once, same estimates
    by_wrapper = {store.records()[line["run_id"]]["wrapper"]: line for line in lines
                  if store.records()[line["run_id"]]["seed"] == 0}
    assert [e for _, e, _ in by_wrapper[""]["checkpoints"]] == [
        e for _, e, _ in by_wrapper["stori:partial:mode=drop,p=0.3"]["checkpoints"]]
    assert len(fits) == 6
    scores = {line["run_id"]: [score for _, _, score in line["checkpoints"]] for line in lines}
    for run_id, record in store.records().items():  # the true scores are the runs' own evaluations
        assert [score for _, score in record["learning_curve"]] == scores[run_id]

    plain = [r for r in store.records().values() if not r["wrapper"]]
    row = next(row for row in csv.DictReader((tmp_path / "leaderboard.csv").open())
               if row["dataset"] == pendulum_expert and row["wrapper"] == "none")
    chosen = ope.selections(lines)
    def as_written(value):  # the CSV holds 6 significant digits: compare exactly that, on any CPU
        return float(CSV_FLOAT_FORMAT % value)

    assert float(row["fqe_selected"]) == as_written(np.mean([chosen[r["run_id"]].selected for r in plain]))
    assert float(row["oracle_best"]) == as_written(np.mean([max(scores[r["run_id"]]) for r in plain]))
    assert float(row["oracle_best"]) >= max(float(row["fqe_selected"]), float(row["normalized_mean"]))
    correlation = list(csv.DictReader((tmp_path / "ope_rank_correlation.csv").open()))
    assert [(r["dataset"], r["wrapper"], r["checkpoints"]) for r in correlation] == [
        (pendulum_expert, "none", "6"), (pendulum_expert, "stori:partial:mode=drop,p=0.3", "3")]

    again = cli("ope", str(tmp_path), "--updates", "200")  # nothing left to evaluate
    assert again.code == 0 and "FQE 1/" not in again.err and len(fits) == 6
    assert "over 3 runs, the FQE-selected checkpoint scores" in again.out
    assert len((tmp_path / ope.FILE_NAME).read_text().splitlines()) == 3


def test_ope_usage_errors(cli, tmp_path):
    assert_usage_error(cli("ope", str(tmp_path)), "no run records")
    (tmp_path / "runs.jsonl").write_text("")
    assert_usage_error(cli("ope", str(tmp_path), "--algos", "nope"), "unknown algorithm 'nope'")
    assert_usage_error(cli("ope", str(tmp_path), "--updates", "0"), "--updates")


def test_every_kind_of_trained_policy_snapshot_loads_for_fqe(cartpole_expert, tmp_path):
    """Offline (BCQ) and offline-to-online (BC -> PPO, an SB3 model whose snapshot leaves out the
    training-only state its load_state_dict reads) snapshots both load and get estimates."""
    store = RunStore(tmp_path)
    small_ppo = (("batch_size", "64"), ("n_envs", "2"), ("n_steps", "64"), ("bc_updates", "20"),
                 ("demonstrations", "3"))
    for spec in (RunSpec("bcq", cartpole_expert, seed=0, updates=100, eval_every=100, eval_episodes=1),
                 RunSpec("bc_ppo", cartpole_expert, seed=0, updates=256, eval_every=256, eval_episodes=1,
                         overrides=small_ppo)):
        execute_run(spec, store)
    lines = ope.evaluate_directory(tmp_path, ope.FQEConfig(updates=50))
    assert len(lines) == 2 and all(len(line["checkpoints"]) == 1 for line in lines), lines
