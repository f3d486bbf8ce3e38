"""Minari dataset creation and loading into tensors."""

import signal
import subprocess
import sys

import pytest
import torch

from offrl_bench.core.errors import UsageError
from offrl_bench.data.datasets import dataset_path, load_dataset, local_dataset_ids, open_dataset
from offrl_bench.data.make import DatasetRequest, default_dataset_id, make_dataset
from tests.conftest import assert_usage_error


def test_expert_dataset_has_reference_scores_and_metadata(cartpole_expert):
    dataset = open_dataset(cartpole_expert)
    meta = dataset.storage.metadata
    # CartPole: a random policy lasts ~20 steps, the shipped expert reaches the 500-step limit.
    assert 10 < meta["ref_min_score"] < 40
    assert meta["ref_max_score"] > 450
    assert dataset.total_episodes == 10
    loaded = load_dataset(cartpole_expert)
    assert loaded.metadata["quality"] == "expert"
    assert "PPO checkpoint" in loaded.metadata["behaviour"]["expert"]["policy"]
    assert loaded.episode_returns.mean() > 0.8 * meta["ref_max_score"]


def test_loaded_tensors_are_consistent(cartpole_expert):
    data = load_dataset(cartpole_expert)
    n = len(data)
    assert data.observations.shape == (n, 4) and data.observations.dtype == torch.float32
    assert data.actions.shape == (n,) and data.actions.dtype == torch.int64
    assert data.rewards.shape == data.terminals.shape == data.timeouts.shape == (n,)
    # next_observations[i] == observations[i + 1] inside an episode
    starts = set(data.episode_starts.tolist())
    inside = [i for i in range(n - 1) if i + 1 not in starts]
    assert torch.equal(data.next_observations[inside], data.observations[[i + 1 for i in inside]])
    # every episode ends exactly once, with a terminal or a time-limit truncation
    ends = data.terminals + data.timeouts
    assert int(ends.sum()) == data.n_episodes
    assert float(data.rewards.sum()) == pytest.approx(data.episode_returns.sum())


def test_sampling_is_a_seeded_index_gather(cartpole_expert):
    data = load_dataset(cartpole_expert)
    a = data.sample(64, torch.Generator().manual_seed(3))
    b = data.sample(64, torch.Generator().manual_seed(3))
    assert len(a) == 64 and torch.equal(a.observations, b.observations) and torch.equal(a.actions, b.actions)
    row = (data.observations == a.observations[0]).all(dim=1).nonzero()[0, 0]
    assert torch.equal(data.next_observations[row], a.next_observations[0])


def test_continuous_dataset(pendulum_expert):
    data = load_dataset(pendulum_expert)
    assert data.actions.shape == (len(data), 1) and data.actions.dtype == torch.float32
    assert data.spec.action_kind == "continuous"
    assert len(data) == 20 * 200  # Pendulum episodes are always truncated at 200 steps
    assert data.timeouts.sum() == 20 and data.terminals.sum() == 0
    assert data.ref_max_score > data.ref_min_score


def test_mixed_quality_contains_all_three_behaviours():
    request = DatasetRequest("CartPole-v1", "mixed", episodes=9, name="test/cartpole/mixed-v0")
    make_dataset(request, log=lambda m: None)
    data = load_dataset(request.dataset_id)
    assert set(data.metadata["behaviour"]) == {"random", "medium", "expert"}
    returns = data.episode_returns
    # the first third comes from the random policy, the last from the expert
    assert returns[:3].mean() < 60 < returns[6:].mean()


def test_same_seed_same_data():
    first = DatasetRequest("CartPole-v1", "medium", episodes=3, name="test/cartpole/det-a-v0", seed=7)
    second = DatasetRequest("CartPole-v1", "medium", episodes=3, name="test/cartpole/det-b-v0", seed=7)
    for request in (first, second):
        make_dataset(request, log=lambda m: None)
    a, b = load_dataset(first.dataset_id), load_dataset(second.dataset_id)
    assert torch.equal(a.observations, b.observations) and torch.equal(a.actions, b.actions)


def test_a_dataset_sized_in_transitions_stops_at_the_first_episode_that_reaches_them():
    request = DatasetRequest("CartPole-v1", "random", steps=300, name="test/cartpole/steps-v0")
    make_dataset(request, log=lambda m: None)
    data = load_dataset(request.dataset_id)
    lengths = data.episode_lengths
    assert len(data) == int(lengths.sum()) >= 300 > int(lengths.sum() - lengths[-1])
    assert data.n_episodes > 8  # several collection batches: random CartPole episodes last ~20 steps


def test_episodes_and_steps_together_are_refused(cli):
    assert_usage_error(cli("data", "make", "CartPole-v1", "--episodes", "2", "--steps", "10"),
                       "give --episodes or --steps, not both")


def test_default_ids():
    assert default_dataset_id("CartPole-v1", "expert") == "offrl/cartpole/expert-v0"
    assert default_dataset_id("Pendulum-v1", "mixed", "levels:train") == "offrl/pendulum/mixed-levels-train-v0"


def test_missing_dataset_error_says_how_to_create_it(cartpole_expert):
    with pytest.raises(UsageError) as info:
        load_dataset("test/nothing-here-v0")
    message = str(info.value)
    assert "not found" in message and "data make" in message and "import-d4rl" in message
    assert cartpole_expert in message  # lists what is available


def test_existing_dataset_is_not_overwritten_silently(cartpole_expert):
    with pytest.raises(UsageError, match="already exists"):
        make_dataset(DatasetRequest("CartPole-v1", "random", episodes=2, name=cartpole_expert), log=lambda m: None)


#: Writes a dataset in a child process that SIGKILLs itself once Minari has written every file of it,
#: before offrl-bench publishes the dataset: a write caught in progress.
_KILLED_MID_WRITE = """
import os, signal, sys
import minari
from offrl_bench.data.make import DatasetRequest, make_dataset

write = minari.create_dataset_from_buffers

def write_then_die(*args, **kwargs):
    write(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)

minari.create_dataset_from_buffers = write_then_die
make_dataset(DatasetRequest("CartPole-v1", "random", episodes=int(sys.argv[2]), name=sys.argv[1]),
             overwrite=True, log=lambda m: None)
"""


def _write_killed_mid_way(dataset_id: str, episodes: int) -> None:
    process = subprocess.run([sys.executable, "-c", _KILLED_MID_WRITE, dataset_id, str(episodes)],
                             capture_output=True, text=True, timeout=120)
    assert process.returncode == -signal.SIGKILL, process.stderr


def test_half_written_dataset_never_appears():
    staged_before = set(dataset_path("").glob(".staging-*"))
    _write_killed_mid_way("test/cartpole/killed-v0", episodes=3)
    staged = set(dataset_path("").glob(".staging-*")) - staged_before
    assert len(staged) == 1 and list(staged.pop().rglob("main_data.hdf5"))  # the complete files, unpublished
    assert "test/cartpole/killed-v0" not in local_dataset_ids()
    assert all(not part.startswith(".") for i in local_dataset_ids() for part in i.split("/"))
    with pytest.raises(UsageError, match="not found"):
        load_dataset("test/cartpole/killed-v0")
    # an overwrite killed the same way leaves the old dataset whole
    make_dataset(DatasetRequest("CartPole-v1", "random", episodes=2, name="test/cartpole/rewritten-v0"),
                 log=lambda m: None)
    before = load_dataset("test/cartpole/rewritten-v0")
    _write_killed_mid_way("test/cartpole/rewritten-v0", episodes=5)
    after = load_dataset("test/cartpole/rewritten-v0")
    assert len(after.episode_starts) == 2 and torch.equal(after.observations, before.observations)


def test_corrupt_dataset_gives_clear_error():
    request = DatasetRequest("CartPole-v1", "random", episodes=2, name="test/cartpole/corrupt-v0")
    make_dataset(request, log=lambda m: None)
    data_file = dataset_path(request.dataset_id) / "data" / "main_data.hdf5"
    data_file.write_bytes(b"not an hdf5 file")
    with pytest.raises(UsageError, match="unreadable|malformed"):
        load_dataset(request.dataset_id)


@pytest.mark.parametrize("bad", ["no version", "a/b", "x/-v0", "a b-v0"])
def test_invalid_dataset_ids(bad):
    with pytest.raises(UsageError, match="invalid dataset id"):
        open_dataset(bad)


def test_unknown_quality():
    with pytest.raises(UsageError, match="unknown quality 'great'; one of: expert, medium, mixed, random"):
        make_dataset(DatasetRequest("CartPole-v1", "great"), log=lambda m: None)


def test_unknown_env():
    with pytest.raises(UsageError, match="cannot make environment 'NoSuchEnv-v0'"):
        make_dataset(DatasetRequest("NoSuchEnv-v0", "random"), log=lambda m: None)


@pytest.mark.parametrize("env_id", ["Hopper-v5", "HalfCheetah-v5"])
def test_shipped_mujoco_behaviour_policies_rank_expert_over_medium_over_random(env_id):
    """The MuJoCo checkpoints ship with the package (training them takes about an hour on a CPU)."""
    pytest.importorskip("mujoco", reason="needs the 'mujoco' extra")
    import numpy as np

    from offrl_bench.data import behaviour
    from offrl_bench.envs import make_env

    env_fn = lambda: make_env(env_id)  # noqa: E731
    assert behaviour.checkpoint_path(env_id, "expert").parent == behaviour.SHIPPED_DIR
    random = behaviour.mean_return(env_fn, behaviour.random_policy(env_fn().action_space, np.random.default_rng(0)), 3)
    medium, expert = (behaviour.mean_return(env_fn, behaviour.load_sb3_policy(env_id, level), 3)
                      for level in ("medium", "expert"))
    gap = expert - random
    assert medium > random + 0.25 * gap and expert > medium + 0.25 * gap


def test_a_sampled_behaviour_policy_draws_from_its_action_distribution_with_the_given_generator():
    """Procgen's experts act by sampling: the draws follow the policy's probabilities (chi-square),
    repeat for the same seed, and leave torch's and numpy's global generators alone."""
    import numpy as np
    from scipy import stats
    from stable_baselines3 import PPO

    from offrl_bench.data.behaviour import sb3_policy
    from offrl_bench.envs import make_env

    model = PPO("MlpPolicy", make_env("CartPole-v1"), seed=3, device="cpu", n_steps=64)
    observations = np.tile(np.array([[0.1, 0.5, -0.05, -0.4]], np.float32), (4000, 1))
    with torch.no_grad():
        tensor = model.policy.obs_to_tensor(observations[:1])[0]
        probs = model.policy.get_distribution(tensor).distribution.probs.numpy()[0].astype(np.float64)
    probs /= probs.sum()
    torch_state, numpy_state = torch.random.get_rng_state(), np.random.get_state()[1].copy()
    actions = sb3_policy(model, np.random.default_rng(7))(observations)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state)
    assert np.array_equal(actions, sb3_policy(model, np.random.default_rng(7))(observations))
    counts = np.bincount(actions, minlength=2)
    assert stats.chisquare(counts, probs * len(actions)).pvalue > 1e-3
    assert np.array_equal(sb3_policy(model)(observations[:5]), model.predict(observations[:5], deterministic=True)[0])


def test_a_sampled_checkpoint_refuses_to_act_without_a_seeded_generator(tmp_path, monkeypatch):
    import json

    from stable_baselines3 import PPO

    from offrl_bench.data import behaviour
    from offrl_bench.envs import make_env

    monkeypatch.setattr(behaviour, "SHIPPED_DIR", tmp_path)
    PPO("MlpPolicy", make_env("CartPole-v1"), seed=0, device="cpu", n_steps=64).save(tmp_path / "CartPole-v1-expert")
    (tmp_path / "CartPole-v1-expert.json").write_text(json.dumps({"algo": "PPO", "recipe": {"sampled": True}}))
    with pytest.raises(ValueError, match="acts by sampling: give it a seeded generator"):
        behaviour.load_sb3_policy("CartPole-v1", "expert")
    import numpy as np

    assert len(behaviour.load_sb3_policy("CartPole-v1", "expert", np.random.default_rng(0))(np.zeros((3, 4)))) == 3


def test_behaviour_training_saves_expert_and_medium_of_a_namespaced_id(tmp_path, monkeypatch):
    """Procgen's ids have a namespace (procgen/coinrun-v0): the checkpoints go to procgen/<game>-<level>.zip
    and the snapshots leave nothing behind; a recipe that samples scores its snapshots by sampling."""
    import gymnasium as gym
    import numpy as np

    from offrl_bench.data import behaviour

    env_id = "offrl-test/CartPole-v1"
    if env_id not in gym.registry:
        gym.register(env_id, entry_point="gymnasium.envs.classic_control.cartpole:CartPoleEnv", max_episode_steps=200)
    recipe = behaviour.Recipe("PPO", 512, snapshots=2, hyperparams=dict(n_steps=128, batch_size=64, n_epochs=1),
                              sampled=True)
    monkeypatch.setitem(behaviour.RECIPES, env_id, recipe)
    summary = behaviour.train_behaviour_policies(env_id, tmp_path, seed=0, log=lambda _: None)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == [
        f"{env_id}-{level}.{ext}" for level in ("expert", "medium") for ext in ("json", "zip")]
    assert summary["expert"]["recipe"]["sampled"] and summary["expert"]["snapshot_return"] > 0
    monkeypatch.setattr(behaviour, "SHIPPED_DIR", tmp_path)
    policy = behaviour.load_sb3_policy(env_id, "expert", np.random.default_rng(0))
    assert policy(np.zeros((2, 4), np.float32)).shape == (2,)
