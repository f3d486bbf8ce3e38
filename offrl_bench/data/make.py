"""``offrl-bench data make``: collect episodes with a behaviour policy and store them as a Minari dataset."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from offrl_bench.core.api import action_kind
from offrl_bench.core.errors import UsageError, one_of
from offrl_bench.core.rollout import Episode, perturbation_rates, run_episodes
from offrl_bench.data import behaviour
from offrl_bench.data.datasets import dataset_exists, validate_dataset_id, write_dataset
from offrl_bench.envs import make_env

#: Exploration noise of the trained behaviour policies while collecting (see behaviour.noisy).
COLLECTION_NOISE = 0.1


@dataclass(frozen=True)
class DatasetRequest:
    env_id: str
    quality: str
    episodes: int | None = None  # None: the environment's recipe default
    name: str | None = None  # None: default_dataset_id(...)
    wrapper: str = ""
    seed: int = 0
    #: Collect whole episodes until at least this many transitions instead of ``episodes``: datasets
    #: that must hold the same amount of data (e.g. from 25 or 200 levels) differ by under one episode.
    steps: int | None = None

    @property
    def dataset_id(self) -> str:
        return self.name or default_dataset_id(self.env_id, self.quality, self.wrapper)


def default_dataset_id(env_id: str, quality: str, wrapper: str = "") -> str:
    """``CartPole-v1``, ``expert`` -> ``offrl/cartpole/expert-v0``; a wrapper spec is appended in
    Minari's id alphabet (``stori:action:p=0.3`` -> ``-stori-action-p-0_3``)."""
    slug = lambda text: re.sub(r"[^a-z0-9_]+", "-", text.lower().replace(".", "_")).strip("-")  # noqa: E731
    env = slug(re.sub(r"-v\d+$", "", env_id.split(":")[-1]))
    suffix = slug(wrapper)
    return f"offrl/{env}/{quality}{'-' + suffix if suffix else ''}-v0"


def action_kind_of(env_id: str) -> str:
    """``"discrete"`` or ``"continuous"``: the action space of ``env_id``."""
    env = make_env(env_id)
    try:
        return action_kind(env.action_space)
    finally:
        env.close()


def _behaviour_levels(quality: str) -> list[str]:
    """Which behaviour policies produce a quality: ``mixed`` is equal shares of random, medium, expert."""
    return ["random", "medium", "expert"] if quality == "mixed" else [quality]


def _trained_policy(env_id: str, level: str, log: Callable[[str], None], rng: np.random.Generator):
    """The ``level`` behaviour policy; one that acts by sampling draws from ``rng``."""
    if behaviour.checkpoint_path(env_id, level) is None:
        log(f"no {level} behaviour policy for {env_id} yet: training one with Stable-Baselines3 "
            f"into {behaviour.cache_dir()} (done once)")
        behaviour.train_behaviour_policies(env_id, behaviour.cache_dir(), log=log)
    return behaviour.load_sb3_policy(env_id, level, rng)


def make_missing_datasets(requests: Iterable[DatasetRequest], log: Callable[[str], None] = print) -> None:
    """Make each of ``requests`` that does not exist yet (a suite's datasets before its runs)."""
    for request in requests:
        if not dataset_exists(request.dataset_id):
            make_dataset(request, log=log)


def _episodes_for_steps(env_fn: Callable, policy, steps: int, seed: int) -> list[Episode]:
    """The shortest run of episodes (episode ``i`` seeded ``seed + i``) holding at least ``steps``
    transitions, collected in batches sized by the mean episode length so far."""
    episodes: list[Episode] = []
    collected = 0
    while collected < steps:
        mean_length = collected / len(episodes) if episodes else 1.0
        batch = max(8, int(np.ceil((steps - collected) / max(mean_length, 1.0))))
        episodes += run_episodes(env_fn, policy, batch, seed=seed + len(episodes), record=True)
        collected = sum(e.length for e in episodes)
    lengths = np.cumsum([e.length for e in episodes])
    return episodes[: int(np.searchsorted(lengths, steps)) + 1]


def make_dataset(request: DatasetRequest, overwrite: bool = False, log: Callable[[str], None] = print) -> Path:
    if request.quality not in behaviour.QUALITIES:
        raise UsageError(f"unknown quality '{request.quality}'; {one_of(behaviour.QUALITIES)}")
    if request.episodes is not None and request.episodes < 1:
        raise UsageError(f"--episodes must be at least 1, got {request.episodes}")
    if request.steps is not None and request.steps < 1:
        raise UsageError(f"--steps must be at least 1, got {request.steps}")
    if request.steps is not None and request.episodes is not None:
        raise UsageError("give --episodes or --steps, not both")
    validate_dataset_id(request.dataset_id)
    if dataset_exists(request.dataset_id) and not overwrite:  # fail before collecting anything
        raise UsageError(f"dataset '{request.dataset_id}' already exists; pass --overwrite to replace it")
    env_fn = lambda: make_env(request.env_id, request.wrapper)  # noqa: E731
    probe = env_fn()
    observation_space, action_space = probe.observation_space, probe.action_space
    probe.close()
    recipe = behaviour.recipe_for(request.env_id, action_space)
    n_episodes = request.episodes or recipe.default_episodes
    rng = np.random.default_rng(request.seed)

    # Reference scores (D4RL-style): random and (noise-free) expert policy returns on the plain env.
    plain_env = lambda: make_env(request.env_id)  # noqa: E731
    expert = _trained_policy(request.env_id, "expert", log, np.random.default_rng(0))
    ref_min = behaviour.mean_return(plain_env, behaviour.random_policy(action_space, np.random.default_rng(0)), 100)
    ref_max = behaviour.mean_return(plain_env, expert, 20)

    levels = _behaviour_levels(request.quality)
    episodes: list[Episode] = []
    for k, level in enumerate(levels):
        if level == "random":
            policy = behaviour.random_policy(action_space, rng)
        else:
            trained = _trained_policy(request.env_id, level, log, rng)
            policy = behaviour.noisy(trained, action_space, rng, COLLECTION_NOISE)
        seed = request.seed * 100_000 + len(episodes)
        if request.steps is None:
            count = n_episodes // len(levels) + (1 if k < n_episodes % len(levels) else 0)
            episodes += run_episodes(env_fn, policy, count, seed=seed, record=True)
        else:
            share = request.steps // len(levels) + (1 if k < request.steps % len(levels) else 0)
            episodes += _episodes_for_steps(env_fn, policy, share, seed)

    returns = np.array([e.episode_return for e in episodes])
    metadata = {
        "env_id": request.env_id, "quality": request.quality, "wrapper": request.wrapper, "seed": request.seed,
        "behaviour": {level: behaviour.describe(request.env_id, level) for level in levels},
        "collection_noise": COLLECTION_NOISE, "episode_seeds": [e.seed for e in episodes],
        "perturbation_rates": perturbation_rates(episodes),
        "episode_levels": [e.level for e in episodes] if any(e.level is not None for e in episodes) else None,
        # What the levels showed, so that an evaluation can be checked for layouts the data contains.
        "level_fingerprints": sorted({e.level_fingerprint for e in episodes if e.level_fingerprint}) or None,
        "ref_min_source": "uniform random policy, 100 episodes",
        "ref_max_source": "noise-free expert policy, 20 episodes",
    }
    path = write_dataset(request.dataset_id, episodes, request.env_id, observation_space, action_space,
                         ref_min, ref_max, algorithm_name=f"offrl-bench/{request.quality}", metadata=metadata,
                         overwrite=overwrite)
    log(f"wrote {request.dataset_id}: {len(episodes)} episodes, {sum(e.length for e in episodes)} steps, "
        f"return {returns.mean():.1f} ± {returns.std():.1f} (ref min {ref_min:.1f}, ref max {ref_max:.1f})")
    return path
