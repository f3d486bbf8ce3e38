"""Soft actor-critic (Haarnoja et al., 2018) pieces shared by the SAC-based algorithms (CQL, MOPO).

Each algorithm adds its own term to the critic loss (CQL's conservative gap; MOPO trains on
penalised model rewards), so this class supplies the parts they share: the networks, the
temperature and actor updates, the TD target, and the critic step.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from offrl_bench.algorithms.nn import (
    FusedMLPEnsemble,
    TanhGaussianActor,
    adam,
    frozen,
    soft_update,
    state_action_values,
)


class SoftActorCritic:
    """Tanh-Gaussian actor, two fused critics with Polyak targets, automatic entropy temperature.
    Actions are in [-1, 1] units."""

    def __init__(self, obs_dim: int, action_dim: int, width: int, depth: int, actor_lr: float, critic_lr: float,
                 alpha_lr: float, device: torch.device) -> None:
        self.actor = TanhGaussianActor(obs_dim, action_dim, width, depth).to(device)
        self.critic = FusedMLPEnsemble(2, obs_dim + action_dim, 1, width, depth).to(device)
        self.critic_target = copy.deepcopy(self.critic)
        self.log_alpha = nn.Parameter(torch.zeros((), device=device))
        self.actor_optimizer = adam(self.actor.parameters(), lr=actor_lr)
        self.critic_optimizer = adam(self.critic.parameters(), lr=critic_lr)
        self.alpha_optimizer = adam([self.log_alpha], lr=alpha_lr)
        self.target_entropy = -float(action_dim)

    def update_temperature_and_actor(self, observations: torch.Tensor) -> tuple[float, torch.Tensor]:
        """One temperature step towards the target entropy, then one actor step on
        alpha * log pi - min Q. Returns the actor loss and the temperature used."""
        new_actions, log_prob = self.actor(observations)
        alpha_loss = -(self.log_alpha * (log_prob.detach() + self.target_entropy)).mean()
        self.alpha_optimizer.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_optimizer.step()
        alpha = self.log_alpha.exp().detach()

        with frozen(self.critic):
            q_new = state_action_values(self.critic, observations, new_actions).min(0).values
        actor_loss = (alpha * log_prob - q_new).mean()
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_optimizer.step()
        return actor_loss.item(), alpha

    @torch.no_grad()
    def td_target(self, next_observations: torch.Tensor, rewards: torch.Tensor, terminals: torch.Tensor,
                  discount: float) -> torch.Tensor:
        """r + discount * (1 - done) * min Q_target(s', a'), a' ~ pi(s') (the entropy bonus is left out
        of the target, as in CQL's and CORL's implementations)."""
        next_actions, _ = self.actor(next_observations)
        next_q = state_action_values(self.critic_target, next_observations, next_actions).min(0).values
        return rewards + discount * (1 - terminals) * next_q

    def td_loss(self, observations: torch.Tensor, actions: torch.Tensor, target: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(summed MSE of both critics, their Q(s, a) of shape (2, B))."""
        q_data = state_action_values(self.critic, observations, actions)
        return F.mse_loss(q_data, target.expand_as(q_data)) * 2, q_data

    def step_critic(self, loss: torch.Tensor, tau: float) -> None:
        self.critic_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_optimizer.step()
        soft_update(self.critic_target, self.critic, tau)

    _PARTS = ("actor", "critic", "critic_target", "actor_optimizer", "critic_optimizer", "alpha_optimizer")

    def state_dict(self) -> dict:
        state = {name: getattr(self, name).state_dict() for name in self._PARTS}
        return {**state, "log_alpha": self.log_alpha.detach().clone()}

    def load_state_dict(self, state: dict) -> None:
        for name in self._PARTS:
            getattr(self, name).load_state_dict(state[name])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
