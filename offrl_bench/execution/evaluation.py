"""Evaluation episodes and D4RL-style normalised scores."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from offrl_bench.core.api import Algorithm
from offrl_bench.core.errors import PluginError
from offrl_bench.core.rollout import Episode, EpisodicPolicy, Policy, run_episodes
from offrl_bench.envs import make_env

#: Evaluation episodes are seeded from here on, far away from the seeds used to collect datasets,
#: so an agent is never scored on the exact starts it was trained on.
EVAL_SEED_OFFSET = 1_000_000


def evaluation_seed(run_seed: int) -> int:
    return EVAL_SEED_OFFSET + 1_000 * run_seed


def normalized_score(value, ref_min: float | None, ref_max: float | None):
    """100 * (value - ref_min) / (ref_max - ref_min); NaN when the references are unknown."""
    if ref_min is None or ref_max is None or ref_max == ref_min:
        return np.full_like(np.asarray(value, dtype=float), np.nan)
    return 100.0 * (np.asarray(value, dtype=float) - ref_min) / (ref_max - ref_min)


class _CheckedEpisodicPolicy:
    """An episodic algorithm seen through :class:`offrl_bench.core.rollout.EpisodicPolicy`, checked."""

    def __init__(self, algorithm: Algorithm, check) -> None:
        self.algorithm, self.check = algorithm, check
        self.start_episode, self.observe_rewards = algorithm.start_episode, algorithm.observe_rewards

    def act(self, observations: np.ndarray, slots: list[int]) -> np.ndarray:
        return self.check(observations, self.algorithm.act(observations, slots))


def checked_policy(algorithm: Algorithm) -> Policy | EpisodicPolicy:
    """``algorithm.act`` with the plugin contract enforced on every call."""
    space = algorithm.spec.action_space
    name = type(algorithm).name

    def check(observations: np.ndarray, actions) -> np.ndarray:
        expected = (len(observations), *space.shape)
        if isinstance(actions, torch.Tensor):  # accepted as if .cpu().numpy() were called
            actions = actions.detach().cpu().numpy()
        try:
            actions = np.asarray(actions)
        except (TypeError, ValueError) as exc:
            raise PluginError(f"algorithm '{name}' act() must return an array of shape {expected}; it returned a "
                              f"{type(actions).__name__} that is not one ({exc})") from None
        if actions.shape != expected:
            raise PluginError(f"algorithm '{name}' act() returned shape {actions.shape}, expected {expected}")
        if isinstance(space, gym.spaces.Discrete):
            if not np.issubdtype(actions.dtype, np.integer) or (actions < 0).any() or (actions >= space.n).any():
                raise PluginError(f"algorithm '{name}' act() must return integer actions in [0, {space.n})")
        elif not np.isfinite(actions).all():
            raise PluginError(f"algorithm '{name}' act() returned non-finite actions")
        else:
            actions = np.clip(actions, space.low, space.high).astype(space.dtype)
        return actions

    if algorithm.episodic:
        return _CheckedEpisodicPolicy(algorithm, check)
    return lambda observations: check(observations, algorithm.act(observations))


def evaluate(
    algorithm: Algorithm,
    env_id: str,
    wrapper: str,
    n_episodes: int,
    seed: int,
    n_envs: int = 8,
) -> list[Episode]:
    """``n_episodes`` evaluation episodes of the algorithm's deterministic policy."""
    return run_episodes(lambda: make_env(env_id, wrapper), checked_policy(algorithm), n_episodes, seed, n_envs)
