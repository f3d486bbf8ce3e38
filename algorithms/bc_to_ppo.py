"""Offline-to-online: behaviour cloning on the dataset, then PPO in the environment, optionally
keeping the BC loss during PPO ("concurrent imitation").

Both follow "Using Offline Data to Speed-up Reinforcement Learning in Procedurally Generated
Environments" (Andres et al., 2023): BC pre-training of the PPO policy on a few demonstrations
before online fine-tuning, and PPO trained with ``loss_PPO + imitation_coef * loss_BC`` on dataset
batches throughout. ``demonstrations`` keeps only the dataset's first N episodes, to measure how
few are needed. The BC loss is the negative log-likelihood of the dataset's actions under the PPO
policy's own action distribution, so the same network is cloned and then fine-tuned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

from offrl_bench.algorithms.sb3_online import PPOAlgorithm, PPOConfig
from offrl_bench.core.api import Batch
from offrl_bench.core.config import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from offrl_bench.data.action_free import select_episodes
from offrl_bench.data.datasets import TransitionDataset


@dataclass
class BCPPOConfig(PPOConfig):
    bc_updates: NonNegativeInt = 1_000  # pre-training steps before the first environment step
    bc_lr: PositiveFloat = 1e-3
    bc_batch_size: PositiveInt = 256
    imitation_coef: NonNegativeFloat = 0.0  # > 0: concurrent imitation during PPO
    demonstrations: NonNegativeInt = 0  # use the dataset's first N episodes; 0 = all


class _ImitationOptimizer:
    """PPO's optimiser, except that ``zero_grad()`` leaves ``coef * grad(BC loss)`` in the gradients.
    SB3's PPO then back-propagates its own loss on top, clips the sum and steps: one update of
    ``loss_PPO + coef * loss_BC``, without copying SB3's training loop."""

    def __init__(self, optimizer: torch.optim.Optimizer, bc_loss: Callable[[], torch.Tensor], coef: float) -> None:
        self.optimizer, self.bc_loss, self.coef = optimizer, bc_loss, coef
        self.last_bc_loss = float("nan")

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)
        loss = self.bc_loss()
        (self.coef * loss).backward()
        self.last_bc_loss = loss.item()

    def __getattr__(self, name: str):  # step, param_groups, state_dict, ...
        return getattr(self.optimizer, name)


class BCToPPO(PPOAlgorithm):
    name = "bc_ppo"
    paradigm = "offline-to-online"
    needs_actions = True
    image_action_spaces = ()  # its BC loss would need SB3's frame transposition on the dataset's frames
    config_class = BCPPOConfig

    @classmethod
    def leaderboard_name(cls, config: BCPPOConfig) -> str:
        return "bc_ppo+il" if config.imitation_coef > 0 else "bc_ppo"

    @classmethod
    def leaderboard_columns(cls, config: BCPPOConfig) -> dict[str, int]:
        return {"demonstrations": config.demonstrations} if config.demonstrations else {}

    @classmethod
    def check_dataset(cls, config: BCPPOConfig, episodes: int) -> None:
        if config.demonstrations > episodes:
            raise ValueError(f"demonstrations={config.demonstrations} but the dataset has {episodes} episodes")

    def setup(self, dataset: TransitionDataset) -> None:
        if self.config.demonstrations:
            dataset = select_episodes(dataset, np.arange(self.config.demonstrations))
        self.dataset = dataset
        self.pretrained = False

    def _bc_loss(self, batch: Batch) -> torch.Tensor:
        distribution = self.model.policy.get_distribution(batch.observations.to(self.device))
        return -distribution.log_prob(batch.actions.to(self.device)).mean()

    def learn(self, env_fn: Callable[[], gym.Env], steps: int, seed: int,
              total_steps: int) -> tuple[int, dict[str, float]]:
        sampler = torch.Generator().manual_seed(seed)
        sample = lambda: self.dataset.sample(self.config.bc_batch_size, sampler)  # noqa: E731
        diagnostics = {}
        if not self.pretrained:
            diagnostics["bc_pretrain_loss"] = self._pretrain(sample)
            self.pretrained = True
        if self.config.imitation_coef > 0:
            optimizer = self.model.policy.optimizer
            self.model.policy.optimizer = _ImitationOptimizer(optimizer, lambda: self._bc_loss(sample()),
                                                              self.config.imitation_coef)
            try:
                taken, values = super().learn(env_fn, steps, seed, total_steps)
                diagnostics["bc_loss"] = self.model.policy.optimizer.last_bc_loss
            finally:
                self.model.policy.optimizer = optimizer
        else:
            taken, values = super().learn(env_fn, steps, seed, total_steps)
        return taken, {**values, **diagnostics}

    def _pretrain(self, sample: Callable[[], Batch]) -> float:
        optimizer = torch.optim.Adam(self.model.policy.parameters(), lr=self.config.bc_lr)
        loss = torch.tensor(float("nan"))
        self.model.policy.set_training_mode(True)
        for _ in range(self.config.bc_updates):
            loss = self._bc_loss(sample())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        self.model.policy.set_training_mode(False)
        return loss.item()

    def policy_state_dict(self) -> dict:
        # whether pre-training ran belongs to the policy: a snapshot loaded to act or to continue
        # from must not pre-train again
        return {**super().policy_state_dict(), "pretrained": self.pretrained}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "pretrained": self.pretrained}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.pretrained = state["pretrained"]
