"""Import D4RL-format HDF5 files into Minari.

The D4RL layout is flat arrays of equal length: ``observations, actions, rewards, terminals,
timeouts`` and optionally ``next_observations`` (``infos/*`` is ignored). Episodes end where
``terminals | timeouts``; a trailing segment that ends with neither is kept as a truncated episode.

Without ``next_observations`` the next state of an episode's last step is unknown. As in D4RL's
``qlearning_dataset``: after a terminal step it does not matter (the value is masked), so the last
observation is repeated; after a timeout it does matter, so that final transition is dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np

from offrl_bench.core.errors import UsageError
from offrl_bench.core.rollout import Episode
from offrl_bench.data import behaviour
from offrl_bench.data.datasets import validate_dataset_id, write_dataset
from offrl_bench.envs import make_env

REQUIRED = ("observations", "actions", "rewards", "terminals", "timeouts")


def read_d4rl_arrays(path: Path) -> dict[str, np.ndarray]:
    import h5py

    if not path.is_file():
        raise UsageError(f"D4RL file '{path}' does not exist")
    try:
        with h5py.File(path, "r") as f:
            missing = [key for key in REQUIRED if key not in f]
            if missing:
                raise UsageError(f"'{path}' is not a D4RL file: missing {', '.join(missing)} "
                                 f"(found: {', '.join(sorted(f.keys())) or 'nothing'}; "
                                 f"required: {', '.join(REQUIRED)})")
            keys = [*REQUIRED, *(["next_observations"] if "next_observations" in f else [])]
            arrays = {}
            for key in keys:
                if not isinstance(f[key], h5py.Dataset):
                    raise UsageError(f"'{path}': '{key}' must be an array, found a group")
                arrays[key] = f[key][()]
    except OSError as exc:
        raise UsageError(f"'{path}' is not a readable HDF5 file ({exc})") from exc
    for key, array in arrays.items():
        if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
                or array.dtype == np.bool_):
            raise UsageError(f"'{path}': '{key}' has non-numeric dtype {array.dtype}; expected integers, floats "
                             "or booleans")
    for key in ("rewards", "terminals", "timeouts"):  # one value per step; (N, 1) columns are accepted
        array = arrays[key]
        if array.ndim == 2 and array.shape[1] == 1:
            arrays[key] = array[:, 0]
        elif array.ndim != 1:
            raise UsageError(f"'{path}': '{key}' must hold one value per step, shape (N,), but has shape "
                             f"{array.shape}")
    n = len(arrays["rewards"])
    wrong = [f"{k} has {len(a)}" for k, a in arrays.items() if a.ndim == 0 or len(a) != n]
    if wrong:
        raise UsageError(f"'{path}': arrays must all have {n} rows (like rewards) but {', '.join(wrong)}")
    if n == 0:
        raise UsageError(f"'{path}' holds no transitions")
    return arrays


def split_episodes(arrays: dict[str, np.ndarray], observation_space, action_space) -> list[Episode]:
    """Cut the flat arrays into episodes at ``terminals | timeouts``."""
    observations = arrays["observations"].astype(observation_space.dtype)
    if observations.shape[1:] != observation_space.shape:
        raise UsageError(f"observations have shape {observations.shape[1:]} per step but the environment's "
                         f"observation space has {observation_space.shape}")
    actions = arrays["actions"]
    if isinstance(action_space, gym.spaces.Discrete):
        actions = actions.reshape(len(actions), -1)
        if actions.shape[1] != 1 or not np.all(np.mod(actions, 1) == 0):
            raise UsageError("the environment has discrete actions; 'actions' must be one integer per step")
        actions = actions[:, 0].astype(np.int64)
    elif actions.shape[1:] != action_space.shape:
        raise UsageError(f"actions have shape {actions.shape[1:]} per step but the environment's action space has "
                         f"{action_space.shape}")
    terminals = arrays["terminals"].astype(bool).reshape(-1)
    timeouts = arrays["timeouts"].astype(bool).reshape(-1) & ~terminals
    next_observations = arrays.get("next_observations")
    ends = np.flatnonzero(terminals | timeouts)
    if len(ends) == 0 or ends[-1] != len(terminals) - 1:
        ends = np.append(ends, len(terminals) - 1)  # trailing segment: a truncated episode

    episodes, start = [], 0
    for end in ends:
        steps = slice(start, end + 1)
        terminal = bool(terminals[end])
        if next_observations is not None:
            same = np.isclose(next_observations[start:end], observations[start + 1:end + 1], rtol=1e-5, atol=1e-6)
            mismatch = np.flatnonzero(~same.all(axis=tuple(range(1, same.ndim))))  # one-step episodes: none
            if len(mismatch):
                row = start + int(mismatch[0])
                raise UsageError(f"next_observations[{row}] differs from observations[{row + 1}] inside an episode "
                                 f"(row {row}); Minari stores one observation sequence per episode")
            obs = np.concatenate([observations[steps], next_observations[end:end + 1].astype(observations.dtype)])
        elif terminal:
            obs = np.concatenate([observations[steps], observations[end:end + 1]])
        else:  # unknown next state after a cut: drop the last transition
            obs = observations[steps]
            steps = slice(start, end)
        length = steps.stop - steps.start
        if length > 0:
            rewards = arrays["rewards"][steps].astype(np.float64).reshape(-1)
            done = np.zeros(length, dtype=bool)
            terminations, truncations = done.copy(), done.copy()
            terminations[-1], truncations[-1] = terminal, not terminal
            episodes.append(Episode(seed=-1, episode_return=float(rewards.sum()), length=length, observations=obs,
                                    actions=actions[steps], rewards=rewards, terminations=terminations,
                                    truncations=truncations))
        start = end + 1
    return episodes


def import_d4rl(
    path: Path,
    env_id: str,
    dataset_id: str,
    ref_min_score: float | None = None,
    ref_max_score: float | None = None,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> Path:
    validate_dataset_id(dataset_id)
    arrays = read_d4rl_arrays(Path(path))
    env = make_env(env_id)
    observation_space, action_space = env.observation_space, env.action_space
    env.close()
    episodes = split_episodes(arrays, observation_space, action_space)
    if not episodes:
        raise UsageError(f"'{path}' contains no complete transition")
    ref_notes = {}
    if ref_min_score is None:
        ref_min_score = behaviour.mean_return(
            lambda: make_env(env_id), behaviour.random_policy(action_space, np.random.default_rng(0)), 100)
        ref_notes["ref_min_source"] = "uniform random policy, 100 episodes"
    if ref_max_score is None:
        ref_max_score = max(e.episode_return for e in episodes)
        ref_notes["ref_max_source"] = "best episode return in the imported file (pass --ref-max for an expert score)"
        log(f"note: no --ref-max given; using the best episode return in the file ({ref_max_score:.1f})")
    metadata = {"env_id": env_id, "source": f"D4RL HDF5 {Path(path).name}", "wrapper": "",
                "has_next_observations": "next_observations" in arrays, **ref_notes}
    target = write_dataset(dataset_id, episodes, env_id, observation_space, action_space, ref_min_score,
                           ref_max_score, algorithm_name="d4rl-import", metadata=metadata, overwrite=overwrite)
    log(f"imported {path} as {dataset_id}: {len(episodes)} episodes, {sum(e.length for e in episodes)} steps")
    return target
