"""Uniformly random actions: the floor of every normalised score (0 by D4RL's definition)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from offrl_bench.core.api import Batch, EnvSpec, OfflineAlgorithm
from offrl_bench.data.behaviour import random_policy


@dataclass
class RandomConfig:
    pass


class RandomPolicy(OfflineAlgorithm):
    name = "random"
    action_spaces = ("discrete", "continuous")
    image_action_spaces = ("discrete", "continuous")
    needs_actions = False
    trains = False
    config_class = RandomConfig

    def __init__(self, spec: EnvSpec, config: RandomConfig, seed: int, device: str = "cpu") -> None:
        super().__init__(spec, config, seed, device)
        self.rng = np.random.default_rng(seed)
        self._policy = random_policy(spec.action_space, self.rng)

    def update(self, batch: Batch) -> dict[str, float]:
        return {}

    def act(self, observations: np.ndarray) -> np.ndarray:
        return self._policy(observations)

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
