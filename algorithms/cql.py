"""CQL (Kumar, Zhou, Tucker & Levine, 2020, "Conservative Q-Learning for Offline Reinforcement Learning").

Adds to the TD loss a term that pushes Q down on actions the policy might choose and up on dataset
actions: alpha * (logsumexp_a Q(s, a) - Q(s, a_data)).

- Continuous actions: CQL(H) on top of SAC with automatic entropy tuning; the logsumexp over actions
  is estimated by importance sampling from uniform and current-policy actions (the paper's code). With
  ``lagrange=true`` alpha is tuned so the gap stays at ``target_action_gap``.
- Discrete actions: DQN with the exact logsumexp over actions (the paper's discrete variant,
  without the QR-DQN head).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from offrl_bench.algorithms.nn import (
    BoxScaler,
    CheckpointedAttributes,
    FusedMLPEnsemble,
    ObservationNormalizer,
    adam,
    as_observation_tensor,
    check_encoder,
    network_for,
    seeded_init,
    state_action_values,
)
from offrl_bench.algorithms.soft_actor_critic import SoftActorCritic
from offrl_bench.core.api import Batch, EnvSpec, OfflineAlgorithm
from offrl_bench.core.config import NonNegativeFloat, PositiveFloat, PositiveInt, UnitFloat


@dataclass
class CQLConfig:
    # Continuous defaults of CORL's cql.py (D4RL locomotion); discrete ones of d3rlpy's DiscreteCQL
    # except the learning rate and target period, scaled for CPU-sized runs (6.25e-5 / 8000 there).
    critic_lr: PositiveFloat = 3e-4
    actor_lr: PositiveFloat = 3e-5
    alpha_lr: PositiveFloat = 3e-4
    discount: UnitFloat = 0.99
    tau: UnitFloat = 0.005
    cql_alpha: NonNegativeFloat = 10.0  # weight of the conservative term (discrete: 1.0 is d3rlpy's default)
    n_actions: PositiveInt = 10  # sampled actions per state for the logsumexp estimate
    lagrange: bool = False
    target_action_gap: float = 5.0  # with lagrange=true
    normalize_observations: bool = True
    discrete_cql_alpha: NonNegativeFloat = 1.0
    discrete_lr: PositiveFloat = 3e-4
    target_update_interval: PositiveInt = 1000  # discrete: hard target copy period
    width: PositiveInt = 256
    depth: PositiveInt = 2
    batch_size: PositiveInt = 256
    encoder: str = "auto"  # image observations: auto, nature, minatar or impala (algorithms/nn.py)

    def __post_init__(self) -> None:
        check_encoder(self.encoder)


class CQL(CheckpointedAttributes, OfflineAlgorithm):
    name = "cql"
    action_spaces = ("discrete", "continuous")
    image_action_spaces = ("discrete",)
    config_class = CQLConfig
    checkpointed = ("sac", "critic", "critic_target", "critic_optimizer", "log_alpha_prime", "alpha_prime_optimizer",
                    "normalizer", "updates")

    @classmethod
    def replay_budget(cls, config: CQLConfig, action_kind: str, budget: int) -> int:
        # discrete: past the first hard target copy; continuous: Polyak targets every update
        return min(budget, config.target_update_interval + 1 if action_kind == "discrete" else 2)

    def __init__(self, spec: EnvSpec, config: CQLConfig, seed: int, device: str = "cpu") -> None:
        super().__init__(spec, config, seed, device)
        self.discrete = spec.action_kind == "discrete"
        obs_dim, action_dim = spec.observation_dim, spec.action_dim
        with seeded_init(seed):
            if self.discrete:  # the greedy policy of Q
                self.sac = None
                self.critic = network_for(spec, config.encoder, lambda features: FusedMLPEnsemble(
                    1, features, action_dim, config.width, config.depth)).to(self.device)
                self.critic_target = copy.deepcopy(self.critic)
                self.critic_optimizer = adam(self.critic.parameters(), lr=config.discrete_lr)
            else:
                self.sac = SoftActorCritic(obs_dim, action_dim, config.width, config.depth, config.actor_lr,
                                           config.critic_lr, config.alpha_lr, self.device)
                self.critic, self.critic_target = self.sac.critic, self.sac.critic_target
                self.critic_optimizer = self.sac.critic_optimizer
        self.log_alpha_prime = nn.Parameter(torch.zeros((), device=self.device))
        self.alpha_prime_optimizer = adam([self.log_alpha_prime], lr=config.critic_lr)
        self.normalizer = ObservationNormalizer(obs_dim, config.normalize_observations and not spec.image_observations)
        self.normalizer.to(self.device)
        self.scaler = None if self.discrete else BoxScaler(spec.action_space, self.device)
        self.updates = 0

    def setup(self, dataset) -> None:
        self.normalizer.fit(dataset.observations)

    def update(self, batch: Batch) -> dict[str, float]:
        self.updates += 1
        observations = self.normalizer(batch.observations)
        next_observations = self.normalizer(batch.next_observations)
        if self.discrete:
            return self._update_discrete(batch, observations, next_observations)
        return self._update_continuous(batch, observations, next_observations)

    # Discrete: DQN + exact conservative term ------------------------------------------------------
    def _update_discrete(self, batch: Batch, observations, next_observations) -> dict[str, float]:
        cfg = self.config
        with torch.no_grad():
            next_q = self.critic_target(next_observations)[0].max(-1).values
            target = batch.rewards + cfg.discount * (1 - batch.terminals) * next_q
        q_all = self.critic(observations)[0]
        q_data = q_all.gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)
        td_loss = F.mse_loss(q_data, target)
        conservative = (torch.logsumexp(q_all, dim=-1) - q_data).mean()
        loss = td_loss + cfg.discrete_cql_alpha * conservative
        self.critic_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_optimizer.step()
        if self.updates % cfg.target_update_interval == 0:
            self.critic_target.load_state_dict(self.critic.state_dict())
        return {"td_loss": td_loss.item(), "cql_loss": conservative.item()}

    # Continuous: SAC + importance-sampled conservative term --------------------------------------
    def _update_continuous(self, batch: Batch, observations, next_observations) -> dict[str, float]:
        cfg = self.config
        actions = self.scaler.to_unit(batch.actions)
        batch_size, action_dim = actions.shape

        actor_loss, alpha = self.sac.update_temperature_and_actor(observations)
        target = self.sac.td_target(next_observations, batch.rewards, batch.terminals, cfg.discount)
        td_loss, q_data = self.sac.td_loss(observations, actions, target)

        # conservative term: logsumexp over uniform, current-policy and next-policy actions, all
        # critics and samples in one batched forward pass
        n = cfg.n_actions
        repeated = lambda x: x.unsqueeze(1).expand(-1, n, -1).reshape(batch_size * n, -1)  # noqa: E731
        obs_rep, next_obs_rep = repeated(observations), repeated(next_observations)
        with torch.no_grad():
            current, current_log_prob = self.sac.actor(obs_rep)
            following, following_log_prob = self.sac.actor(next_obs_rep)
        uniform = torch.rand(batch_size * n, action_dim, device=self.device) * 2 - 1
        sampled = torch.cat([uniform, current, following])
        q_sampled = state_action_values(self.critic, obs_rep.repeat(3, 1), sampled).view(2, 3, batch_size, n)
        log_density = torch.stack([
            torch.full_like(current_log_prob, action_dim * math.log(0.5)),
            current_log_prob, following_log_prob,
        ]).view(1, 3, batch_size, n)
        importance = (q_sampled - log_density).permute(0, 2, 1, 3).reshape(2, batch_size, 3 * n)
        gap = (torch.logsumexp(importance, dim=-1) - q_data).mean(-1)  # per critic
        if cfg.lagrange:  # dual ascent on alpha' keeps the gap at target_action_gap
            alpha_prime = self.log_alpha_prime.exp().clamp(0.0, 1e6)
            alpha_prime_loss = -(alpha_prime * cfg.cql_alpha * (gap.detach() - cfg.target_action_gap)).sum() * 0.5
            self.alpha_prime_optimizer.zero_grad(set_to_none=True)
            alpha_prime_loss.backward()
            self.alpha_prime_optimizer.step()
            conservative = (alpha_prime.detach() * cfg.cql_alpha * (gap - cfg.target_action_gap)).sum()
        else:
            conservative = (cfg.cql_alpha * gap).sum()
        self.sac.step_critic(td_loss + conservative, cfg.tau)
        return {"td_loss": td_loss.item(), "cql_loss": conservative.item(), "actor_loss": actor_loss,
                "alpha": alpha.item()}

    @torch.no_grad()
    def act(self, observations: np.ndarray) -> np.ndarray:
        observations = self.normalizer(as_observation_tensor(observations, self.device))
        if self.discrete:
            return self.critic(observations)[0].argmax(-1).cpu().numpy()
        unit, _ = self.sac.actor(observations, deterministic=True)
        return self.scaler.to_env(unit)
