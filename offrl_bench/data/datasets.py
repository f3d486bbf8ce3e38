"""Minari dataset storage: atomic writes, project metadata, and loading into contiguous tensors.

Training reads a dataset once into flat tensors; a batch is then a single index gather.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from offrl_bench.core.api import Batch, EnvSpec, is_image_space
from offrl_bench.core.errors import UsageError
from offrl_bench.core.rollout import Episode
from offrl_bench.data.frames import FrameBuffer, FrameView, stacked_space

#: Minari's own id grammar (minari.dataset.minari_dataset.DATASET_ID_RE), with the version required.
_ID = re.compile(r"^(?:[-_A-Za-z0-9][-_A-Za-z0-9/]*[-_A-Za-z0-9]+/)?[-_A-Za-z0-9]+?-v\d+$")
METADATA_KEY = "offrl_bench"
#: Namespaces of the datasets Minari publishes (``minari list remote``), e.g. ``mujoco/hopper/medium-v0``.
PUBLISHED_NAMESPACES = ("D4RL", "atari", "minigrid", "mujoco")


def _minari():
    # minari warns about optional extras it does not need here; keep user output clean.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import minari
    return minari


def datasets_root() -> Path:
    return Path(os.environ.get("MINARI_DATASETS_PATH", Path.home() / ".minari" / "datasets"))


def validate_dataset_id(dataset_id: str) -> None:
    if not _ID.match(dataset_id):
        raise UsageError(
            f"invalid dataset id '{dataset_id}'; expected [namespace/]name-vN using letters, digits, '_', '-'"
            " (e.g. offrl/cartpole/expert-v0)"
        )


def dataset_path(dataset_id: str) -> Path:
    return datasets_root() / dataset_id


def dataset_exists(dataset_id: str) -> bool:
    return (dataset_path(dataset_id) / "data" / "metadata.json").exists()


def local_dataset_ids() -> list[str]:
    root = datasets_root()
    if not root.exists():
        return []
    return sorted(str(p.parent.parent.relative_to(root)) for p in root.rglob("data/metadata.json")
                  if not any(part.startswith(".") for part in p.relative_to(root).parts))


@contextlib.contextmanager
def _staging_root() -> Iterator[Path]:
    """A hidden directory inside the datasets root used as MINARI_DATASETS_PATH while writing, so a
    dataset appears in the real root only complete (one rename) even if the process is killed."""
    root = datasets_root()
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(staging)
    try:
        yield staging
    finally:
        if previous is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous
        shutil.rmtree(staging, ignore_errors=True)


def write_dataset(
    dataset_id: str,
    episodes: Sequence[Episode],
    env_id: str,
    observation_space: gym.spaces.Space,
    action_space: gym.spaces.Space,
    ref_min_score: float | None,
    ref_max_score: float | None,
    algorithm_name: str,
    metadata: dict[str, Any],
    overwrite: bool = False,
) -> Path:
    """Write ``episodes`` as a Minari dataset (HDF5). ``metadata`` is stored as JSON in the dataset
    description under the key ``offrl_bench`` (behaviour policy, wrapper, seeds, level ids...).

    Image observations are stored as exact uint8 frames, gzip-compressed: Minari would store frames
    of 32x32 pixels and more as JPEG by default, which changes the pixels the behaviour policy saw.
    h5py decompresses transparently, so Minari reads the files as its own."""
    validate_dataset_id(dataset_id)
    target = dataset_path(dataset_id)
    if target.exists() and not overwrite:
        raise UsageError(f"dataset '{dataset_id}' already exists at {target}; pass --overwrite to replace it")
    minari = _minari()
    from minari.data_collector import EpisodeBuffer

    image = is_image_space(observation_space)
    buffers = [
        EpisodeBuffer(id=i, seed=e.seed, observations=e.observations, actions=e.actions, rewards=list(e.rewards),
                      terminations=list(e.terminations), truncations=list(e.truncations), infos={})
        for i, e in enumerate(episodes)
    ]
    with _staging_root() as staging, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        minari.create_dataset_from_buffers(
            dataset_id, buffers, env=env_id, observation_space=observation_space, action_space=action_space,
            ref_min_score=ref_min_score, ref_max_score=ref_max_score, algorithm_name=algorithm_name,
            author="offrl-bench", description=json.dumps({METADATA_KEY: metadata}), data_format="hdf5",
            **({"jpeg_encoding": False} if image else {}),
        )
        if image:
            _compress_frames(staging / dataset_id / "data" / "main_data.hdf5")
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / dataset_id, target)
    return target


def _compress_frames(path: Path, level: int = 4) -> None:
    """Rewrite a Minari HDF5 file with every episode's image observations gzip-compressed (into a new
    file: HDF5 does not give back the space of a deleted dataset)."""
    import h5py

    compressed = path.with_suffix(".compressing")
    with h5py.File(path, "r") as source, h5py.File(compressed, "w") as target:
        target.attrs.update(source.attrs)
        for name, episode in source.items():
            group = target.create_group(name)
            group.attrs.update(episode.attrs)
            for key, item in episode.items():
                if key != "observations":
                    source.copy(item, group, name=key)
                    continue
                frames = item[()]
                stored = group.create_dataset(key, data=frames, chunks=(min(len(frames), 256), *frames.shape[1:]),
                                              compression="gzip", compression_opts=level, shuffle=True)
                stored.attrs.update(item.attrs)
    os.replace(compressed, path)


def _missing_dataset_message(dataset_id: str) -> str:
    local = local_dataset_ids()
    hint = f"local datasets: {', '.join(local)}" if local else "no local datasets yet"
    if "/" in dataset_id and dataset_id.split("/", 1)[0] in PUBLISHED_NAMESPACES:
        return (f"dataset '{dataset_id}' not found in {datasets_root()}: it is one of Minari's published datasets; "
                f"download it once with 'minari download {dataset_id}' (offrl-bench never downloads at run "
                f"time), or copy its directory there; {hint}")
    return (
        f"dataset '{dataset_id}' not found in {datasets_root()} (set MINARI_DATASETS_PATH to change it); "
        f"create it with "
        f"'offrl-bench data make ENV_ID --quality expert --name {dataset_id}', import one with "
        f"'offrl-bench data import-d4rl FILE.hdf5 --env ENV_ID --name {dataset_id}', or, for a Minari dataset, "
        f"'minari download {dataset_id}'; {hint}"
    )


def evaluation_env_id(minari_dataset, dataset_id: str, env_id: str = "") -> str:
    """The Gymnasium id that evaluates policies trained on the dataset: ``env_id`` when given, else
    the dataset's ``env_spec``. Minari datasets may store none (then ``eval_env_spec`` may say it)."""
    if env_id:
        return env_id
    spec = minari_dataset.spec.env_spec
    if spec is not None:
        return spec.id
    try:  # Minari keeps the evaluation environment's spec as JSON in the metadata
        suggestion = json.loads(minari_dataset.storage.metadata.get("eval_env_spec") or "{}").get("id", "ENV_ID")
    except (json.JSONDecodeError, AttributeError):
        suggestion = "ENV_ID"
    raise UsageError(f"dataset '{dataset_id}' stores no env_spec, so offrl-bench cannot tell which environment "
                     f"evaluates it; pass --env {suggestion} (the Gymnasium id its data came from)")


def open_dataset(dataset_id: str):
    """The :class:`minari.MinariDataset` for a local id, with a clear error if absent or unreadable."""
    validate_dataset_id(dataset_id)
    if not dataset_exists(dataset_id):
        raise UsageError(_missing_dataset_message(dataset_id))
    minari = _minari()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return minari.load_dataset(dataset_id)
    except Exception as exc:
        raise UsageError(
            f"dataset '{dataset_id}' at {dataset_path(dataset_id)} is unreadable ({type(exc).__name__}: {exc}); "
            "delete it and make or import it again"
        ) from exc


def project_metadata(minari_dataset) -> dict[str, Any]:
    """The metadata offrl-bench stored in the description; empty for datasets made elsewhere."""
    try:
        return json.loads(minari_dataset.storage.metadata.get("description") or "{}").get(METADATA_KEY, {})
    except (json.JSONDecodeError, AttributeError):
        return {}


@dataclass
class TransitionDataset:
    """A whole dataset as flat tensors (transition ``i`` belongs to the episode starting at
    ``episode_starts[k] <= i``). Image datasets hold :class:`~offrl_bench.data.frames.FrameView`
    observations: uint8 frames stored once, indexed like tensors."""

    dataset_id: str
    spec: EnvSpec
    observations: torch.Tensor | FrameView
    actions: torch.Tensor
    rewards: torch.Tensor
    next_observations: torch.Tensor | FrameView
    terminals: torch.Tensor
    timeouts: torch.Tensor
    episode_starts: torch.Tensor
    episode_returns: np.ndarray
    ref_min_score: float | None = None
    ref_max_score: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    #: Per transition, whether its action is known; ``None`` when every action is. Unknown actions
    #: hold a placeholder (NaN, or -1 for discrete actions) that no algorithm can mistake for data.
    labelled: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.observations.shape[0])

    @property
    def n_episodes(self) -> int:
        return int(self.episode_starts.shape[0])

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        index = torch.randint(len(self), (batch_size,), generator=generator, device=self.observations.device)
        return Batch(
            observations=self.observations[index],
            actions=self.actions[index],
            rewards=self.rewards[index],
            next_observations=self.next_observations[index],
            terminals=self.terminals[index],
        )

    @property
    def action_free(self) -> bool:
        """True when some transitions have no action (see :mod:`offrl_bench.data.action_free`)."""
        return self.labelled is not None and not bool(self.labelled.all())

    @property
    def episode_lengths(self) -> torch.Tensor:
        return torch.diff(self.episode_starts, append=torch.tensor([len(self)], device=self.episode_starts.device))

    def episode_of_transitions(self) -> torch.Tensor:
        """The episode index of every transition."""
        positions = torch.arange(len(self), device=self.episode_starts.device)
        return torch.searchsorted(self.episode_starts, positions, right=True) - 1

    def to(self, device: str | torch.device) -> TransitionDataset:
        names = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts", "episode_starts")
        tensors = {name: getattr(self, name).to(device) for name in names}
        if self.labelled is not None:
            tensors["labelled"] = self.labelled.to(device)
        return TransitionDataset(**{**self.__dict__, **tensors})


def _flat_float(array: np.ndarray, n: int) -> np.ndarray:
    return np.asarray(array, dtype=np.float32).reshape(n, -1)


def load_dataset(dataset_id: str, env_id: str = "") -> TransitionDataset:
    """Read a local Minari dataset (Box observations; Discrete or Box actions) into tensors;
    ``env_id`` names the evaluation environment of a dataset without ``env_spec``."""
    dataset = open_dataset(dataset_id)
    env_id = env_id or (dataset.spec.env_spec.id if dataset.spec.env_spec else "")  # preflight names a missing one
    observation_space, action_space = dataset.observation_space, dataset.action_space
    if not isinstance(observation_space, gym.spaces.Box):
        raise UsageError(f"dataset '{dataset_id}' has {type(observation_space).__name__} observations; "
                         "offrl-bench trains on Box observations (flatten them with a wrapper when making the data)")
    if not isinstance(action_space, (gym.spaces.Box, gym.spaces.Discrete)):
        raise UsageError(f"dataset '{dataset_id}' has {type(action_space).__name__} actions; accepted: Box, Discrete")
    discrete = isinstance(action_space, gym.spaces.Discrete)
    frames = FrameBuffer(dataset.total_steps + dataset.total_episodes, observation_space.shape) \
        if is_image_space(observation_space) else None
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "next", "act", "rew", "term", "trunc")}
    returns = []
    try:
        for episode in dataset.iterate_episodes():
            n = len(episode.rewards)
            if frames is not None:  # images stay uint8 frames, stored once
                frames.add_episode(np.asarray(episode.observations, dtype=np.uint8)
                                   .reshape(n + 1, *frames.frames.shape[1:]))
            else:
                observations = _flat_float(episode.observations, n + 1)
                parts["obs"].append(observations[:-1])
                parts["next"].append(observations[1:])
            parts["act"].append(np.asarray(episode.actions, dtype=np.int64).reshape(n) if discrete
                                else _flat_float(episode.actions, n))
            parts["rew"].append(np.asarray(episode.rewards, dtype=np.float32).reshape(n))
            parts["term"].append(np.asarray(episode.terminations, dtype=np.float32).reshape(n))
            parts["trunc"].append(np.asarray(episode.truncations, dtype=np.float32).reshape(n))
            returns.append(float(np.sum(episode.rewards)))
    except (ValueError, KeyError, OSError) as exc:
        raise UsageError(f"dataset '{dataset_id}' has malformed episodes ({exc}); make or import it again") from exc
    if not returns:
        raise UsageError(f"dataset '{dataset_id}' has no episodes")
    lengths = np.array([len(r) for r in parts["rew"]])
    meta = project_metadata(dataset)
    stored = dataset.storage.metadata
    labelled = _labelled_transitions(dataset_id, parts["act"], meta, discrete)
    if frames is not None:
        stack = _frame_stack(dataset_id, meta)
        observations, next_observations = frames.views(stack)
        observation_space = stacked_space(observation_space, stack)
    else:
        observations = torch.from_numpy(np.concatenate(parts["obs"]))
        next_observations = torch.from_numpy(np.concatenate(parts["next"]))
    return TransitionDataset(
        dataset_id=dataset_id,
        spec=EnvSpec(observation_space, action_space, env_id=env_id,
                     wrapper=meta.get("wrapper", "")),
        observations=observations,
        actions=torch.from_numpy(np.concatenate(parts["act"])),
        rewards=torch.from_numpy(np.concatenate(parts["rew"])),
        next_observations=next_observations,
        terminals=torch.from_numpy(np.concatenate(parts["term"])),
        timeouts=torch.from_numpy(np.concatenate(parts["trunc"])),
        episode_starts=torch.from_numpy(np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)),
        episode_returns=np.array(returns),
        ref_min_score=stored.get("ref_min_score"),
        ref_max_score=stored.get("ref_max_score"),
        metadata=meta,
        labelled=labelled,
    )


def _frame_stack(dataset_id: str, meta: dict) -> int:
    """How many frames an observation stacks (the project metadata's ``frame_stack``; 1 if absent)."""
    stack = meta.get("frame_stack", 1)
    if not isinstance(stack, int) or isinstance(stack, bool) or stack < 1:
        raise UsageError(f"dataset '{dataset_id}' has frame_stack={stack!r} in its metadata; "
                         "expected a positive integer")
    return stack


def has_action_free_episodes(minari_dataset) -> bool:
    """Whether an opened Minari dataset has action-free episodes, by the rule of
    :func:`_labelled_transitions`, read before any run loads it (continuous actions: a scan of the
    actions, so that a dataset written outside offrl-bench is judged the same way)."""
    if project_metadata(minari_dataset).get("action_free_episodes"):
        return True
    if isinstance(minari_dataset.action_space, gym.spaces.Discrete):
        return False
    try:
        return any(np.isnan(np.asarray(episode.actions, dtype=np.float32)).all()
                   for episode in minari_dataset.iterate_episodes())
    except (ValueError, KeyError, OSError):
        return False  # malformed: load_dataset says how when the run reads it


def _labelled_transitions(dataset_id: str, actions: list[np.ndarray], meta: dict,
                          discrete: bool) -> torch.Tensor | None:
    """Which transitions have actions. An episode is action-free when the project metadata lists it
    under ``action_free_episodes`` or (continuous actions) when all its actions are NaN; action-free
    episodes get the placeholder action (NaN, or -1 when discrete). ``None`` if none is."""
    listed = meta.get("action_free_episodes", [])
    if any(not isinstance(i, int) or not 0 <= i < len(actions) for i in listed):
        raise UsageError(f"dataset '{dataset_id}' lists action_free_episodes outside 0..{len(actions) - 1}")
    free = set(listed) | {i for i, a in enumerate(actions) if not discrete and np.isnan(a).all()}
    if not free:
        return None
    for i in free:
        actions[i][...] = -1 if discrete else np.nan
    return torch.from_numpy(np.concatenate([np.full(len(a), i not in free) for i, a in enumerate(actions)]))
