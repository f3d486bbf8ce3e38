"""TD3+BC (Fujimoto & Gu, 2021, "A Minimalist Approach to Offline Reinforcement Learning").

TD3 with one change to the actor loss: maximise lambda * Q(s, pi(s)) - (pi(s) - a)^2, where
lambda = alpha / mean|Q| keeps the two terms on the same scale; states are standardised with the
dataset's statistics. Continuous actions only.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from offrl_bench.algorithms.nn import (
    BoxScaler,
    CheckpointedAttributes,
    FusedMLPEnsemble,
    ObservationNormalizer,
    adam,
    as_observation_tensor,
    frozen,
    mlp,
    seeded_init,
    soft_update,
    state_action_values,
)
from offrl_bench.core.api import Batch, EnvSpec, OfflineAlgorithm
from offrl_bench.core.config import NonNegativeFloat, PositiveFloat, PositiveInt, UnitFloat


@dataclass
class TD3BCConfig:
    # Defaults of the paper and of CORL's td3_bc.py.
    actor_lr: PositiveFloat = 3e-4
    critic_lr: PositiveFloat = 3e-4
    discount: UnitFloat = 0.99
    tau: UnitFloat = 0.005
    policy_noise: NonNegativeFloat = 0.2  # target policy smoothing, in units of the [-1, 1] action range
    noise_clip: NonNegativeFloat = 0.5
    policy_freq: PositiveInt = 2  # delayed actor and target updates
    alpha: NonNegativeFloat = 2.5
    normalize_observations: bool = True
    width: PositiveInt = 256
    depth: PositiveInt = 2
    batch_size: PositiveInt = 256


class TD3BC(CheckpointedAttributes, OfflineAlgorithm):
    name = "td3_bc"
    action_spaces = ("continuous",)
    config_class = TD3BCConfig
    checkpointed = ("actor", "critic", "actor_target", "critic_target", "actor_optimizer", "critic_optimizer",
                    "normalizer", "updates", "last_actor_loss")

    @classmethod
    def replay_budget(cls, config: TD3BCConfig, action_kind: str, budget: int) -> int:
        return min(budget, 2 * config.policy_freq)  # past a delayed actor and target update

    def __init__(self, spec: EnvSpec, config: TD3BCConfig, seed: int, device: str = "cpu") -> None:
        super().__init__(spec, config, seed, device)
        obs_dim, action_dim = spec.observation_dim, spec.action_dim
        with seeded_init(seed):
            self.actor = mlp(obs_dim, action_dim, config.width, config.depth).to(self.device)
            self.critic = FusedMLPEnsemble(2, obs_dim + action_dim, 1, config.width, config.depth).to(self.device)
        self.actor_target = copy.deepcopy(self.actor)
        self.critic_target = copy.deepcopy(self.critic)
        self.actor_optimizer = adam(self.actor.parameters(), lr=config.actor_lr)
        self.critic_optimizer = adam(self.critic.parameters(), lr=config.critic_lr)
        self.normalizer = ObservationNormalizer(obs_dim, config.normalize_observations).to(self.device)
        self.scaler = BoxScaler(spec.action_space, self.device)
        self.updates, self.last_actor_loss = 0, 0.0

    def setup(self, dataset) -> None:
        self.normalizer.fit(dataset.observations)

    def update(self, batch: Batch) -> dict[str, float]:
        cfg = self.config
        observations = self.normalizer(batch.observations)
        next_observations = self.normalizer(batch.next_observations)
        actions = self.scaler.to_unit(batch.actions)

        with torch.no_grad():
            noise = (torch.randn_like(actions) * cfg.policy_noise).clamp(-cfg.noise_clip, cfg.noise_clip)
            next_actions = (torch.tanh(self.actor_target(next_observations)) + noise).clamp(-1, 1)
            target_q = state_action_values(self.critic_target, next_observations, next_actions).min(0).values
            target = batch.rewards + cfg.discount * (1 - batch.terminals) * target_q
        q = state_action_values(self.critic, observations, actions)
        critic_loss = F.mse_loss(q, target.expand_as(q)) * 2  # sum over the two critics, as in the paper
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()

        losses = {"critic_loss": critic_loss.item()}
        self.updates += 1
        if self.updates % cfg.policy_freq == 0:
            policy_actions = torch.tanh(self.actor(observations))
            with frozen(self.critic):
                q_pi = self.critic.forward_member(torch.cat([observations, policy_actions], -1), 0).squeeze(-1)
            lam = cfg.alpha / q_pi.abs().mean().detach()
            actor_loss = -lam * q_pi.mean() + F.mse_loss(policy_actions, actions)
            self.actor_optimizer.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_optimizer.step()
            soft_update(self.actor_target, self.actor, cfg.tau)
            soft_update(self.critic_target, self.critic, cfg.tau)
            self.last_actor_loss = actor_loss.item()
        losses["actor_loss"] = self.last_actor_loss
        return losses

    @torch.no_grad()
    def act(self, observations: np.ndarray) -> np.ndarray:
        observations = self.normalizer(as_observation_tensor(observations, self.device))
        return self.scaler.to_env(torch.tanh(self.actor(observations)))
