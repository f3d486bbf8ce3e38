"""D4RL HDF5 -> Minari import on files built here with h5py in the real D4RL layout."""

import h5py
import numpy as np
import pytest

from conftest import run_cli_process
from offrl_bench.core.errors import UsageError
from offrl_bench.data.d4rl import import_d4rl
from offrl_bench.data.datasets import load_dataset, open_dataset


def write_d4rl(path, lengths, ends, obs_dim=3, action_dim=1, next_observations=True, discrete=False, seed=0):
    """Episodes of the given lengths; ``ends[i]`` is 'terminal', 'timeout' or None (file ends mid-episode)."""
    rng = np.random.default_rng(seed)
    n = sum(lengths)
    obs = rng.normal(size=(n, obs_dim)).astype(np.float32)
    next_obs = rng.normal(size=(n, obs_dim)).astype(np.float32)
    actions = rng.integers(0, 2, size=n) if discrete else rng.uniform(-2, 2, size=(n, action_dim)).astype(np.float32)
    rewards = rng.normal(size=n).astype(np.float32)
    terminals = np.zeros(n, dtype=bool)
    timeouts = np.zeros(n, dtype=bool)
    position = 0
    for length, end in zip(lengths, ends):
        # inside an episode the next observation is the following row (as in every D4RL file)
        next_obs[position:position + length - 1] = obs[position + 1:position + length]
        position += length
        if end == "terminal":
            terminals[position - 1] = True
        elif end == "timeout":
            timeouts[position - 1] = True
    with h5py.File(path, "w") as f:
        f["observations"], f["actions"], f["rewards"] = obs, actions, rewards
        f["terminals"], f["timeouts"] = terminals, timeouts
        if next_observations:
            f["next_observations"] = next_obs
        f["infos/qpos"] = rng.normal(size=(n, 2))  # D4RL files carry infos/*; they are ignored
    return dict(observations=obs, next_observations=next_obs, actions=actions, rewards=rewards)


def test_round_trip_with_next_observations(tmp_path):
    lengths, ends = [5, 7, 4], ["terminal", "timeout", None]
    arrays = write_d4rl(tmp_path / "d.hdf5", lengths, ends)
    import_d4rl(tmp_path / "d.hdf5", "Pendulum-v1", "test/d4rl/next-v0", ref_min_score=-1000, ref_max_score=0,
                log=lambda m: None)
    minari_dataset = open_dataset("test/d4rl/next-v0")
    assert minari_dataset.total_episodes == 3 and minari_dataset.total_steps == 16
    episodes = list(minari_dataset.iterate_episodes())
    assert [len(e.rewards) for e in episodes] == lengths
    assert [bool(e.terminations[-1]) for e in episodes] == [True, False, False]
    assert [bool(e.truncations[-1]) for e in episodes] == [False, True, True]  # trailing segment: truncated
    data = load_dataset("test/d4rl/next-v0")
    np.testing.assert_array_equal(data.observations.numpy(), arrays["observations"])
    np.testing.assert_array_equal(data.next_observations.numpy(), arrays["next_observations"])
    np.testing.assert_array_equal(data.actions.numpy(), arrays["actions"])
    np.testing.assert_allclose(data.rewards.numpy(), arrays["rewards"])
    assert (data.ref_min_score, data.ref_max_score) == (-1000, 0)


def test_one_step_episodes_import_from_the_command_line(tmp_path):
    """A one-step episode ending in a terminal, in a file with next_observations, crashed the import
    with a reshape error; it is an episode like any other."""
    arrays = write_d4rl(tmp_path / "d.hdf5", [1, 2, 1], ["terminal", "timeout", "terminal"])
    result = run_cli_process("data", "import-d4rl", str(tmp_path / "d.hdf5"), "--env", "Pendulum-v1",
                             "--name", "test/d4rl/one-step-v0", "--ref-min", "-1000", "--ref-max", "0")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "3 episodes, 4 steps" in result.stderr
    data = load_dataset("test/d4rl/one-step-v0")
    np.testing.assert_array_equal(data.next_observations.numpy(), arrays["next_observations"])
    assert data.terminals.tolist() == [1, 0, 0, 1] and data.timeouts.tolist() == [0, 0, 1, 0]


def test_without_next_observations_follows_qlearning_dataset(tmp_path):
    lengths, ends = [4, 6, 3], ["terminal", "timeout", "terminal"]
    arrays = write_d4rl(tmp_path / "d.hdf5", lengths, ends, next_observations=False)
    import_d4rl(tmp_path / "d.hdf5", "Pendulum-v1", "test/d4rl/nonext-v0", ref_min_score=-1, ref_max_score=1,
                log=lambda m: None)
    data = load_dataset("test/d4rl/nonext-v0")
    # terminal episodes keep every step; the timeout episode loses its last (next state unknown)
    assert data.n_episodes == 3 and len(data) == 4 + 5 + 3
    obs = arrays["observations"]
    np.testing.assert_array_equal(data.next_observations[:3].numpy(), obs[1:4])
    np.testing.assert_array_equal(data.observations[4:9].numpy(), obs[4:9])
    np.testing.assert_array_equal(data.next_observations[8].numpy(), obs[9])
    assert data.terminals.tolist() == [0, 0, 0, 1] + [0] * 5 + [0, 0, 1]


def test_inconsistent_next_observations_are_rejected(tmp_path):
    path = tmp_path / "d.hdf5"
    write_d4rl(path, [5], ["terminal"])
    with h5py.File(path, "r+") as f:
        f["next_observations"][1] += 1.0
    with pytest.raises(UsageError, match="next_observations.*row 1"):
        import_d4rl(path, "Pendulum-v1", "test/d4rl/inconsistent-v0", log=lambda m: None)


def test_discrete_actions_and_default_reference_scores(tmp_path):
    write_d4rl(tmp_path / "d.hdf5", [10, 8], ["terminal", "terminal"], obs_dim=4, discrete=True)
    import_d4rl(tmp_path / "d.hdf5", "CartPole-v1", "test/d4rl/discrete-v0", log=lambda m: None)
    data = load_dataset("test/d4rl/discrete-v0")
    assert data.spec.action_kind == "discrete" and data.actions.dtype.is_floating_point is False
    assert 10 < data.ref_min_score < 40  # measured random-policy return on CartPole
    assert data.ref_max_score == pytest.approx(max(data.episode_returns))
    assert "best episode" in data.metadata["ref_max_source"]


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda f: f.create_dataset("observations", data=np.zeros((3, 3))), "missing actions, rewards, terminals"),
        (lambda f: [f.create_dataset(k, data=np.zeros((3, 3) if k == "observations" else 3))
                    for k in ("observations", "actions", "rewards", "terminals")]
         + [f.create_dataset("timeouts", data=np.zeros(2))], "timeouts has 2"),
        (lambda f: [f.create_dataset(k, data=np.zeros((3, 5) if k == "observations" else (3, 1) if k == "actions"
                                                      else 3)) for k in
                    ("observations", "actions", "rewards", "terminals", "timeouts")], "observation space has (3,)"),
        (lambda f: [f.create_dataset(k, data=np.array([b"a", b"b", b"c"]) if k == "rewards" else
                                     np.zeros((3, 3) if k == "observations" else (3, 1) if k == "actions" else 3))
                    for k in ("observations", "actions", "rewards", "terminals", "timeouts")], "non-numeric"),
    ],
    ids=["missing-keys", "ragged", "wrong-obs-shape", "bad-dtype"],
)
def test_wrong_layout_is_rejected(tmp_path, build, message):
    path = tmp_path / "bad.hdf5"
    with h5py.File(path, "w") as f:
        build(f)
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        import_d4rl(path, "Pendulum-v1", "test/d4rl/bad-v0", log=lambda m: None)


def test_corrupt_and_missing_files(tmp_path):
    corrupt = tmp_path / "corrupt.hdf5"
    corrupt.write_bytes(b"\x89HDF\r\n garbage" * 10)
    with pytest.raises(UsageError, match="not a readable HDF5 file"):
        import_d4rl(corrupt, "Pendulum-v1", "test/d4rl/corrupt-v0", log=lambda m: None)
    with pytest.raises(UsageError, match="does not exist"):
        import_d4rl(tmp_path / "nope.hdf5", "Pendulum-v1", "test/d4rl/nope-v0", log=lambda m: None)
