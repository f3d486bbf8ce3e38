"""Property-based round trips of every file format offrl-bench reads: D4RL HDF5 files, Minari
dataset directories written by Minari itself, and run checkpoints.

The generators make *valid* files with extreme shapes: episodes of one and two steps, ending in a
terminal or a timeout (and a file that stops mid-episode), values from 1e-30 to 1e30, every dtype
and column layout the formats allow. Each case must either round-trip exactly, checked against an
oracle written here from the format's definition, or be refused with one clear ``UsageError``.
``pytest`` runs 60 cases per format, ``pytest --slow`` 300, ``pytest --thorough`` 2,000, and
``--format-cases N`` any number (``FORMAT_CASES`` in conftest).
"""

from __future__ import annotations

import dataclasses
import shutil
import warnings

import gymnasium as gym
import h5py
import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from offrl_bench.core import registry
from offrl_bench.core.errors import PluginError, UsageError
from offrl_bench.data.d4rl import import_d4rl
from offrl_bench.data.datasets import dataset_path, has_action_free_episodes, load_dataset, open_dataset

CASES = settings(settings.get_profile("file-formats"))

#: name -> (observation shape, action space) of the environments the D4RL files claim to come from
ENVIRONMENTS = {"Pendulum-v1": ((3,), gym.spaces.Box(-2.0, 2.0, (1,), np.float32)),
                "CartPole-v1": ((4,), gym.spaces.Discrete(2))}
SCALES = (1.0, 1e-30, 1e-3, 1e3, 1e30)

lengths = st.one_of(st.sampled_from([1, 2]), st.integers(1, 30))  # one and two steps half the time


@st.composite
def episodes_plan(draw, trailing: bool) -> list[tuple[int, str | None]]:
    """Episode lengths and how each ends: 'terminal', 'timeout' or (the last one only) None."""
    plan = [(draw(lengths), draw(st.sampled_from(["terminal", "timeout"]))) for _ in range(draw(st.integers(1, 5)))]
    if trailing and draw(st.booleans()):
        plan[-1] = (plan[-1][0], None)  # the file stops mid-episode
    return plan


@dataclasses.dataclass
class D4RLCase:
    env_id: str
    plan: list[tuple[int, str | None]]
    arrays: dict[str, np.ndarray]
    observations: list[np.ndarray]  # per episode: its steps' observations plus the one after the last


@st.composite
def d4rl_files(draw) -> D4RLCase:
    env_id = draw(st.sampled_from(sorted(ENVIRONMENTS)))
    obs_shape, action_space = ENVIRONMENTS[env_id]
    plan = draw(episodes_plan(trailing=True))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    float_type = draw(st.sampled_from([np.float32, np.float64]))
    scale = draw(st.sampled_from(SCALES))
    observations = [(rng.standard_normal((length + 1, *obs_shape)) * scale).astype(float_type)
                    for length, _ in plan]
    n = sum(length for length, _ in plan)
    flags = {"terminals": np.zeros(n, bool), "timeouts": np.zeros(n, bool)}
    end = -1
    for length, how in plan:
        end += length
        if how:
            flags[f"{how}s"][end] = True
    if isinstance(action_space, gym.spaces.Discrete):
        actions = rng.integers(0, action_space.n, n).astype(draw(st.sampled_from([np.int64, np.int32, np.float32])))
        actions = actions.reshape(n, 1) if draw(st.booleans()) else actions
    else:
        actions = rng.uniform(-2.0, 2.0, (n, 1)).astype(float_type)
    flag_type = draw(st.sampled_from([bool, np.float32, np.int64]))
    column = draw(st.booleans())  # (N, 1) columns, as some D4RL files have
    arrays = {"observations": np.concatenate([o[:-1] for o in observations]), "actions": actions,
              "rewards": (rng.standard_normal(n) * draw(st.sampled_from(SCALES))).astype(float_type)}
    for key, values in flags.items():
        arrays[key] = values.astype(flag_type).reshape(n, 1) if column else values.astype(flag_type)
    if draw(st.booleans()):
        arrays["next_observations"] = np.concatenate([o[1:] for o in observations])
    return D4RLCase(env_id, plan, arrays, observations)


def expected_transitions(case: D4RLCase) -> dict[str, np.ndarray]:
    """The transitions the import must produce, from the D4RL conventions (the module docstring of
    offrl_bench.data.d4rl): with next_observations every step is kept; without, the next state of a
    terminal step is its own observation, and the last step before a timeout or the file's end
    has no next state and is dropped."""
    keys = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")
    out: dict[str, list] = {key: [] for key in keys}
    has_next = "next_observations" in case.arrays
    start = 0
    for (length, how), episode in zip(case.plan, case.observations):
        rows = slice(start, start + length)
        obs = episode[:-1]
        nxt = episode[1:].copy()
        kept = length
        if not has_next:
            if how == "terminal":
                nxt[-1] = obs[-1]
            else:
                kept = length - 1
        if kept:
            out["observations"].append(obs[:kept])
            out["next_observations"].append(nxt[:kept])
            out["actions"].append(case.arrays["actions"][rows][:kept])
            out["rewards"].append(case.arrays["rewards"][rows][:kept])
            done = np.zeros(kept, np.float32)
            out["terminals"].append(done.copy())
            out["timeouts"].append(done.copy())
            out["terminals" if how == "terminal" else "timeouts"][-1][-1] = 1.0
        start += length
    return {key: np.concatenate(values) if values else np.zeros(0) for key, values in out.items()}


@CASES
@given(case=d4rl_files())
def test_valid_d4rl_files_round_trip(case):
    path = dataset_path("formats/source-v0").parent / "d4rl-case.hdf5"
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for key, array in case.arrays.items():
            f.create_dataset(key, data=array)
    expected = expected_transitions(case)
    try:
        import_d4rl(path, case.env_id, "formats/d4rl-v0", -1.0, 1.0, overwrite=True, log=lambda m: None)
    except UsageError as exc:
        assert len(expected["rewards"]) == 0, f"a valid file was refused: {exc}"
        assert "contains no complete transition" in str(exc) and "\n" not in str(exc)
        return
    loaded = load_dataset("formats/d4rl-v0")
    obs_type = np.float32
    np.testing.assert_array_equal(loaded.observations.numpy(), expected["observations"].astype(obs_type))
    np.testing.assert_array_equal(loaded.next_observations.numpy(), expected["next_observations"].astype(obs_type))
    np.testing.assert_array_equal(loaded.rewards.numpy(), expected["rewards"].astype(np.float32))
    np.testing.assert_array_equal(loaded.terminals.numpy(), expected["terminals"])
    np.testing.assert_array_equal(loaded.timeouts.numpy(), expected["timeouts"])
    actions = expected["actions"]
    if isinstance(ENVIRONMENTS[case.env_id][1], gym.spaces.Discrete):
        np.testing.assert_array_equal(loaded.actions.numpy(), actions.reshape(-1).astype(np.int64))
    else:
        np.testing.assert_array_equal(loaded.actions.numpy(), actions.astype(np.float32))


@dataclasses.dataclass
class MinariCase:
    observation_space: gym.spaces.Space
    action_space: gym.spaces.Space
    episodes: list[dict]  # observations (T+1), actions (T), rewards, terminations, truncations
    action_free: list[int]  # episodes whose actions are all NaN


@st.composite
def minari_datasets(draw) -> MinariCase:
    """Datasets as Minari itself writes them for someone else's environment: any Box observation
    shape (a Dict observation space now and then), Box or Discrete actions, no offrl-bench metadata."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    obs_type = draw(st.sampled_from([np.float32, np.float64]))
    if draw(st.integers(0, 19)) == 0:
        observation_space = gym.spaces.Dict({"x": gym.spaces.Box(-1, 1, (2,), np.float32)})
    else:
        shape = draw(st.sampled_from([(1,), (3,), (17,), (2, 3)]))
        observation_space = gym.spaces.Box(-np.inf, np.inf, shape, obs_type)
    if draw(st.booleans()):
        action_space = gym.spaces.Discrete(draw(st.sampled_from([2, 7])))
    else:
        bound = draw(st.sampled_from([1.0, 2.0, 1e3]))
        action_space = gym.spaces.Box(-bound, bound, (draw(st.sampled_from([1, 2, 6])),), np.float32)
    scale = draw(st.sampled_from(SCALES))
    episodes, action_free = [], []
    for index, (length, how) in enumerate(draw(episodes_plan(trailing=False))):
        observation = (lambda t: {"x": rng.uniform(-1, 1, (t, 2)).astype(np.float32)}
                       if isinstance(observation_space, gym.spaces.Dict)
                       else (rng.standard_normal((t, *observation_space.shape)) * scale).astype(obs_type))
        if isinstance(action_space, gym.spaces.Discrete):
            actions = rng.integers(0, action_space.n, length)
        elif draw(st.integers(0, 4)) == 0:
            actions = np.full((length, *action_space.shape), np.nan, np.float32)
            action_free.append(index)
        else:
            actions = rng.uniform(action_space.low, action_space.high, (length, *action_space.shape)).astype(np.float32)
        ends = np.zeros(length, bool)
        episodes.append({"observations": observation(length + 1), "actions": actions,
                         "rewards": (rng.standard_normal(length) * draw(st.sampled_from(SCALES))).tolist(),
                         "terminations": [*ends[:-1], how == "terminal"],
                         "truncations": [*ends[:-1], how == "timeout"]})
    return MinariCase(observation_space, action_space, episodes, action_free)


def _write_with_minari(dataset_id: str, case: MinariCase) -> None:
    import minari
    from minari.data_collector import EpisodeBuffer

    shutil.rmtree(dataset_path(dataset_id), ignore_errors=True)
    buffers = [EpisodeBuffer(id=i, observations=e["observations"], actions=e["actions"], rewards=e["rewards"],
                             terminations=e["terminations"], truncations=e["truncations"], infos={})
               for i, e in enumerate(case.episodes)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        minari.create_dataset_from_buffers(dataset_id, buffers, observation_space=case.observation_space,
                                           action_space=case.action_space, algorithm_name="elsewhere",
                                           data_format="hdf5")


@CASES
@given(case=minari_datasets())
def test_minari_directories_written_by_minari_round_trip(case):
    _write_with_minari("formats/minari-v0", case)
    try:
        loaded = load_dataset("formats/minari-v0")
    except UsageError as exc:
        assert isinstance(case.observation_space, gym.spaces.Dict), f"a valid dataset was refused: {exc}"
        assert "has Dict observations" in str(exc) and "\n" not in str(exc)
        return
    assert not isinstance(case.observation_space, gym.spaces.Dict)
    flat = lambda rows: rows.reshape(len(rows), -1).astype(np.float32)  # noqa: E731
    episodes = case.episodes
    np.testing.assert_array_equal(loaded.observations.numpy(),
                                  np.concatenate([flat(e["observations"][:-1]) for e in episodes]))
    np.testing.assert_array_equal(loaded.next_observations.numpy(),
                                  np.concatenate([flat(e["observations"][1:]) for e in episodes]))
    np.testing.assert_array_equal(loaded.rewards.numpy(), np.concatenate([e["rewards"] for e in episodes])
                                  .astype(np.float32))
    np.testing.assert_array_equal(loaded.terminals.numpy(), np.concatenate([e["terminations"] for e in episodes]))
    np.testing.assert_array_equal(loaded.timeouts.numpy(), np.concatenate([e["truncations"] for e in episodes]))
    assert loaded.n_episodes == len(episodes) and loaded.episode_lengths.tolist() == [len(e["rewards"])
                                                                                     for e in episodes]
    actions = np.concatenate([e["actions"] for e in episodes])
    if isinstance(case.action_space, gym.spaces.Discrete):
        np.testing.assert_array_equal(loaded.actions.numpy(), actions.astype(np.int64))
    else:
        np.testing.assert_array_equal(loaded.actions.numpy(), actions.reshape(len(actions), -1))
    # action-free episodes (all actions NaN) are found the same way before a run and when it loads
    labelled = np.concatenate([np.full(len(e["rewards"]), i not in case.action_free) for i, e in enumerate(episodes)])
    assert loaded.action_free == bool(case.action_free)
    assert has_action_free_episodes(open_dataset("formats/minari-v0")) == bool(case.action_free)
    if case.action_free:
        np.testing.assert_array_equal(loaded.labelled.numpy(), labelled)


#: Offline algorithms whose checkpoints the property test writes and reads (MOPO and SS-ORL train
#: models in setup(), minutes per case; their resumes are tested in test_model_based and test_ssorl).
CHECKPOINTED = ("bc", "td3_bc", "iql", "cql", "bcq", "dt")


@st.composite
def checkpointed_runs(draw) -> tuple[MinariCase, str, tuple, int, int]:
    """A dataset with extreme shapes, an algorithm that supports its actions with extreme network and
    batch sizes, and how many updates come before and after the checkpoint."""
    case = draw(minari_datasets().filter(lambda c: isinstance(c.observation_space, gym.spaces.Box)
                                         and not c.action_free))
    kind = "discrete" if isinstance(case.action_space, gym.spaces.Discrete) else "continuous"
    algo = draw(st.sampled_from([a for a in CHECKPOINTED if kind in registry.algorithm_class(a).action_spaces]))
    batch = ("batch_size", str(draw(st.sampled_from([1, 2, 5]))))
    if algo == "dt":
        overrides = (batch, ("context", str(draw(st.sampled_from([1, 2, 5])))), ("embedding_dim", "8"),
                     ("layers", "1"), ("warmup_steps", "2"))
    else:
        overrides = (batch, ("width", str(draw(st.sampled_from([1, 3, 16])))), ("depth", str(draw(st.integers(1, 2)))))
    if algo == "bcq":
        overrides += (("vae_width", "8"),)
    return case, algo, overrides, draw(st.integers(0, 4)), draw(st.integers(1, 3))


def _train(algorithm, dataset, sampler: torch.Generator, updates: int) -> list[dict]:
    from offrl_bench.execution.runner import _checked_losses

    batch_size = algorithm.config.batch_size
    return [_checked_losses("x", algorithm.update(algorithm.sample(dataset, batch_size, sampler)), 0)
            for _ in range(updates)]


@CASES
@given(run=checkpointed_runs())
def test_checkpoints_round_trip(run, tmp_path_factory):
    """Train k updates, checkpoint, restore into a fresh algorithm (as a resumed run does), train j
    more: losses, weights and actions equal those of k + j uninterrupted updates."""
    from offrl_bench.execution.runner import RunSpec, build_algorithm, load_checkpoint, save_checkpoint

    case, algo, overrides, before, after = run
    _write_with_minari("formats/checkpoint-v0", case)
    dataset = load_dataset("formats/checkpoint-v0")
    spec = RunSpec(algo, "formats/checkpoint-v0", seed=3, overrides=tuple(sorted(overrides)))

    def fresh() -> tuple:
        torch.manual_seed(spec.seed)
        algorithm = build_algorithm(spec, dataset)
        algorithm.setup(dataset)
        return algorithm, torch.Generator().manual_seed(spec.seed)

    reference, sampler = fresh()
    try:
        expected = _train(reference, dataset, sampler, before + after)
    except PluginError as exc:  # float32 overflows on values near 1e30: refused in one line, data named
        scale = max(np.abs(dataset.rewards.numpy()).max(), np.abs(dataset.observations.numpy()).max())
        assert "produced non-finite" in str(exc) and scale > 1e6, str(exc)
        return

    first, sampler = fresh()
    losses = _train(first, dataset, sampler, before)
    path = tmp_path_factory.mktemp("checkpoint") / "checkpoint.pt"
    save_checkpoint(path, first, sampler, before, 0.0, losses[-1] if losses else {}, 0.0)
    torch.manual_seed(12345)  # whatever the process did in between must not matter
    resumed, sampler = fresh()
    state = load_checkpoint(path, resumed, sampler, "cpu")
    assert state["updates_done"] == before
    assert losses + _train(resumed, dataset, sampler, after) == expected
    observations = dataset.observations[:4].numpy()
    if resumed.episodic:
        for slot in range(len(observations)):
            reference.start_episode(slot)
            resumed.start_episode(slot)
        slots = list(range(len(observations)))
        np.testing.assert_array_equal(resumed.act(observations, slots), reference.act(observations, slots))
    else:
        np.testing.assert_array_equal(resumed.act(observations), reference.act(observations))
