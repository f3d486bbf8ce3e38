"""``benchmarks/stori_model_calibration.py``, the measurement behind STORI's own claim: its truth is
the simulator stepped under the perturbation, and its calibration measures read what they should."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from conftest import REPO


@pytest.fixture(scope="module")
def calibration():
    spec = importlib.util.spec_from_file_location("stori_model_calibration",
                                                  REPO / "benchmarks" / "stori_model_calibration.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_truth_is_the_simulator_stepped_under_the_perturbation(calibration):
    observations, actions = calibration.queries("Pendulum-v1", "", 0, 20, seed=0)
    assert observations.shape == (20, 3) and actions.shape == (20, 1)
    clean = calibration.true_next("Pendulum-v1", "", observations, actions, 30, seed=0)
    assert clean.var(axis=0).max() == 0  # Pendulum is deterministic: one next state per query
    noisy = calibration.true_next("Pendulum-v1", "stori:action:p=0.3", observations, actions, 300, seed=0)
    moved = ~np.isclose(noisy, clean[:1]).all(-1)  # (samples, queries): the action was replaced
    assert 0.24 < moved.mean() < 0.36  # p = 0.3, less the rare replacement that lands on the same torque
    assert (noisy.var(axis=0)[:, 2] > 0).all()  # the angular velocity varies at every query
    kicked = calibration.true_next("Pendulum-v1", "stori:events:mode=state,p=0.05,sigma=0.1", observations,
                                   actions, 300, seed=0)
    assert 0.02 < (~np.isclose(kicked, clean[:1]).all(-1)).mean() < 0.08


def test_after_a_drift_queries_come_from_the_drifted_regime(calibration):
    observations, _ = calibration.queries("Pendulum-v1", "stori:drift:at=100,to=stori:action:p=0.3", 100, 30, seed=1)
    early, _ = calibration.queries("Pendulum-v1", "", 0, 30, seed=1)
    assert len(observations) == 30 and not np.allclose(observations, early)


def test_calibration_measures_read_a_calibrated_and_an_overconfident_model(calibration):
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(50, 3))
    sd = np.array([0.1, 0.5, 2.0])
    truth = mean + sd * rng.normal(size=(2_000, 50, 3))
    scale = np.ones(3)
    calibrated = calibration.measure(mean, np.broadcast_to(sd ** 2, (50, 3)), truth, scale)
    assert calibrated["ratio"] == pytest.approx([1, 1, 1], rel=0.05)
    assert calibrated["coverage"] == pytest.approx([0.9, 0.9, 0.9], abs=0.01)
    assert calibrated["predicted"] == pytest.approx(calibrated["true"], rel=0.05)
    overconfident = calibration.measure(mean, np.broadcast_to((sd / 2) ** 2, (50, 3)), truth, scale)
    assert overconfident["ratio"] == pytest.approx([0.25, 0.25, 0.25], rel=0.05)
    assert (overconfident["coverage"] < 0.65).all() and overconfident["nll"] > calibrated["nll"]


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "HalfCheetah-v5"])
def test_a_simulator_is_set_to_the_state_an_observation_encodes(env_id):
    """Step the environment, then set a fresh copy to the observation: both step to the same next
    observation with the same action (x, which HalfCheetah does not observe, changes nothing)."""
    import gymnasium as gym

    from offrl_bench.envs.simulator_state import set_state_from_observation

    pytest.importorskip("mujoco") if env_id.startswith("HalfCheetah") else None
    env, copy = gym.make(env_id).unwrapped, gym.make(env_id).unwrapped
    observation, _ = env.reset(seed=3)
    copy.reset(seed=4)
    action = env.action_space.sample()
    for _ in range(5):
        observation, *_ = env.step(action)
    set_state_from_observation(copy, observation)
    assert np.allclose(env.step(action)[0], copy.step(action)[0], atol=1e-6)


def test_csv_rows_of_one_environment_replace_only_that_environments(calibration, tmp_path):
    path = tmp_path / "calibration.csv"
    row = lambda dataset, value: {"algorithm": "a", "dataset": dataset, "wrapper": "none", "seed": 0,  # noqa: E731
                                  "value": value}
    calibration.write_rows(path, [row("pendulum", 1.0)])
    calibration.write_rows(path, [row("halfcheetah", 2.0)])
    calibration.write_rows(path, [row("pendulum", 3.0)])
    lines = path.read_text().splitlines()
    assert lines[0] == "algorithm,dataset,wrapper,seed,value"
    assert sorted(lines[1:]) == ["a,halfcheetah,none,0,2.0", "a,pendulum,none,0,3.0"]
