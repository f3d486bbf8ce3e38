"""Run whole episodes of a batched policy on several environments in lockstep.

Used both to collect datasets and to evaluate agents. Episode ``i`` is always reset with seed
``seed + i``, so for a deterministic policy the result does not depend on how many environments
run side by side, and the policy is queried once per step for all running episodes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

Policy = Callable[[np.ndarray], np.ndarray]


@runtime_checkable
class EpisodicPolicy(Protocol):
    """A policy that conditions on the episode so far; ``slots`` says which environment each row is."""

    def start_episode(self, slot: int) -> None: ...

    def act(self, observations: np.ndarray, slots: list[int]) -> np.ndarray: ...

    def observe_rewards(self, slots: list[int], rewards: np.ndarray) -> None: ...


@dataclass
class Episode:
    seed: int
    episode_return: float
    length: int
    #: Steps on which each perturbation flag in ``info["stori"]`` was set (STORI wrappers).
    perturbations: dict[str, int] = field(default_factory=dict)
    #: ``info["level"]`` at reset: the procedural level played (level-split wrappers), else None.
    level: int | None = None
    #: ``info["level_fingerprint"]`` at reset: what the level shows (``level_splits.level_fingerprint``).
    level_fingerprint: str | None = None
    # Only filled when recording (data collection); observations has length + 1 rows.
    observations: np.ndarray | None = None
    actions: np.ndarray | None = None
    rewards: np.ndarray | None = None
    terminations: np.ndarray | None = None
    truncations: np.ndarray | None = None


class _Recorder:
    def __init__(self, first_observation: np.ndarray, record: bool, info: dict) -> None:
        self.record, self.level, self.level_fingerprint = record, info.get("level"), info.get("level_fingerprint")
        self.observations = [first_observation] if record else []
        self.actions: list = []
        self.rewards: list[float] = []
        self.terminations: list[bool] = []
        self.truncations: list[bool] = []
        self.episode_return = 0.0
        self.length = 0
        self.perturbations: dict[str, int] = {}

    def add(self, action, observation, reward: float, terminated: bool, truncated: bool, info: dict) -> None:
        self.episode_return += float(reward)
        self.length += 1
        for key, applied in info.get("stori", {}).items():
            self.perturbations[key] = self.perturbations.get(key, 0) + int(bool(applied))
        if self.record:
            self.actions.append(action)
            self.observations.append(observation)
            self.rewards.append(float(reward))
            self.terminations.append(bool(terminated))
            self.truncations.append(bool(truncated))

    def finish(self, seed: int) -> Episode:
        episode = Episode(seed=seed, episode_return=self.episode_return, length=self.length,
                          perturbations=self.perturbations, level=self.level,
                          level_fingerprint=self.level_fingerprint)
        if self.record:
            episode.observations = np.asarray(self.observations)
            episode.actions = np.asarray(self.actions)
            episode.rewards = np.asarray(self.rewards, dtype=np.float64)
            episode.terminations = np.asarray(self.terminations)
            episode.truncations = np.asarray(self.truncations)
        return episode


def run_episodes(
    make_env: Callable[[], gym.Env],
    policy: Policy | EpisodicPolicy,
    n_episodes: int,
    seed: int,
    n_envs: int = 8,
    record: bool = False,
) -> list[Episode]:
    """Play ``n_episodes`` episodes (episode ``i`` seeded ``seed + i``); results in episode order."""
    n_envs = max(1, min(n_envs, n_episodes))
    envs = [make_env() for _ in range(n_envs)]
    episodic = isinstance(policy, EpisodicPolicy)

    def start(slot: int, episode_index: int):
        if episode_index >= n_episodes:
            return None
        if episodic:
            policy.start_episode(slot)
        return _start(envs[slot], episode_index, seed, record)

    try:
        results: dict[int, Episode] = {}
        slots: list[tuple[int, _Recorder, np.ndarray] | None] = [start(i, i) for i in range(n_envs)]
        next_episode = n_envs
        while any(slots):
            active = [i for i, slot in enumerate(slots) if slot is not None]
            observations = np.stack([slots[i][2] for i in active])
            actions = policy.act(observations, active) if episodic else policy(observations)
            rewards = []
            for i, action in zip(active, actions):
                episode_index, recorder, _ = slots[i]
                observation, reward, terminated, truncated, info = envs[i].step(action)
                recorder.add(action, observation, reward, terminated, truncated, info)
                rewards.append(reward)
                if terminated or truncated:
                    results[episode_index] = recorder.finish(seed + episode_index)
                    slots[i] = None
                else:
                    slots[i] = (episode_index, recorder, observation)
            if episodic:
                policy.observe_rewards(active, np.asarray(rewards, dtype=np.float64))
            for i in active:
                if slots[i] is None:
                    slots[i] = start(i, next_episode)
                    next_episode += 1
        return [results[i] for i in range(n_episodes)]
    finally:
        for env in envs:
            env.close()


def perturbation_rates(episodes: list[Episode]) -> dict[str, float]:
    """Fraction of steps on which each STORI perturbation was applied, over ``episodes``."""
    steps = sum(e.length for e in episodes)
    keys = sorted({k for e in episodes for k in e.perturbations})
    return {k: sum(e.perturbations.get(k, 0) for e in episodes) / steps for k in keys} if steps else {}


def _start(env: gym.Env, episode_index: int, seed: int, record: bool):
    observation, info = env.reset(seed=seed + episode_index)
    env.action_space.seed(seed + episode_index)
    return episode_index, _Recorder(observation, record, info), observation
