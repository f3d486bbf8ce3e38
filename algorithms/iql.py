"""IQL (Kostrikov, Nair & Levine, 2022, "Offline Reinforcement Learning with Implicit Q-Learning").

Never queries Q on actions outside the dataset: V(s) is fitted as an upper expectile of Q(s, a)
over dataset actions, Q(s, a) regresses onto r + gamma V(s'), and the policy is extracted by
advantage-weighted regression, weights exp(beta (Q - V)). Continuous actions use a Gaussian policy
with a tanh mean (as in the paper's code); discrete actions use a softmax policy and one Q head per action.

Reward scale follows the paper's code, which chooses it per domain: locomotion rewards are
multiplied by 1000 / (max - min episode return), sparse goal-reaching rewards (AntMaze) are not
rescaled. ``reward_normalization=auto`` (the default) applies the first to dense rewards and leaves
sparse ones (at most one non-zero reward per episode on average, as in MiniGrid) unscaled. Applied
to MiniGrid DoorKey expert data, whose returns span only 0.60-0.97, the locomotion rule multiplies
the goal reward by 2,700, the advantage weights saturate, and IQL stayed near random: 11.0
normalised over 5 seeds at 2,000 updates, and 27.5 with a x1,000 scale, against 100.0 unscaled.
"""

from __future__ import annotations

import copy
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
    mlp,
    network_for,
    seeded_init,
    soft_update,
    state_action_values,
)
from offrl_bench.core.api import Batch, EnvSpec, OfflineAlgorithm
from offrl_bench.core.config import NonNegativeFloat, PositiveFloat, PositiveInt, UnitFloat
from offrl_bench.core.errors import one_of

REWARD_NORMALIZATIONS = ("auto", "returns", "none")


@dataclass
class IQLConfig:
    # Defaults of the paper (locomotion) and CORL's iql.py.
    actor_lr: PositiveFloat = 3e-4
    value_lr: PositiveFloat = 3e-4
    critic_lr: PositiveFloat = 3e-4
    discount: UnitFloat = 0.99
    tau: UnitFloat = 0.005  # target critic Polyak rate
    expectile: UnitFloat = 0.7
    beta: NonNegativeFloat = 3.0  # inverse temperature of the advantage weights
    max_weight: PositiveFloat = 100.0
    normalize_observations: bool = True
    # "returns": rewards x 1000 / (max - min episode return), the paper's locomotion rule; "none":
    # unscaled, its rule for sparse goal rewards; "auto": "none" where rewards are sparse, else "returns"
    reward_normalization: str = "auto"
    width: PositiveInt = 256
    depth: PositiveInt = 2
    batch_size: PositiveInt = 256
    encoder: str = "auto"  # image observations: auto, nature, minatar or impala (algorithms/nn.py)

    def __post_init__(self) -> None:
        check_encoder(self.encoder)
        if self.reward_normalization not in REWARD_NORMALIZATIONS:
            raise ValueError(f"unknown reward_normalization '{self.reward_normalization}'; "
                             f"{one_of(REWARD_NORMALIZATIONS)}")


def reward_scale(dataset, normalization: str) -> float:
    """The factor ``normalization`` (see IQLConfig) puts on the dataset's rewards.

    "returns" is the paper's 1000 / (max - min episode return) where the returns span at least a
    tenth of their largest magnitude. Returns closer together than that define no range to
    normalise by (an expert at CartPole's time limit, two episodes of one quality): rewards stay
    unscaled, as for identical returns. So the factor never exceeds 10,000 / max |return|, and no
    scaled return exceeds 10,000 in magnitude; before this bound a spread just above 1e-6 gave a
    factor of about 1e9. All returns zero: 1.
    """
    sparse = int((dataset.rewards != 0).sum()) <= dataset.n_episodes
    if normalization == "none" or (normalization == "auto" and sparse):
        return 1.0
    returns = np.asarray(dataset.episode_returns, dtype=float)
    largest = float(np.abs(returns).max()) if len(returns) else 0.0
    spread = float(np.ptp(returns)) if len(returns) else 0.0
    return 1000.0 / spread if largest > 0 and spread >= largest / 10 else 1.0


class IQL(CheckpointedAttributes, OfflineAlgorithm):
    name = "iql"
    action_spaces = ("discrete", "continuous")
    image_action_spaces = ("discrete",)
    config_class = IQLConfig
    checkpointed = ("actor", "log_std", "critic", "critic_target", "value", "actor_optimizer", "critic_optimizer",
                    "value_optimizer", "normalizer", "reward_scale")

    @classmethod
    def replay_budget(cls, config, action_kind: str, budget: int) -> int:
        return min(budget, 2)  # no periodic events: every update runs the same code

    def __init__(self, spec: EnvSpec, config: IQLConfig, seed: int, device: str = "cpu") -> None:
        super().__init__(spec, config, seed, device)
        self.discrete = spec.action_kind == "discrete"
        obs_dim, action_dim = spec.observation_dim, spec.action_dim
        critic_out = action_dim if self.discrete else 1
        with seeded_init(seed):
            # images (discrete actions only): each network has its own encoder, the critics share one
            self.actor = network_for(spec, config.encoder, lambda features: mlp(
                features, action_dim, config.width, config.depth)).to(self.device)
            self.critic = network_for(spec, config.encoder, lambda features: FusedMLPEnsemble(
                2, features + (0 if self.discrete else action_dim), critic_out, config.width,
                config.depth)).to(self.device)
            self.value = network_for(spec, config.encoder, lambda features: mlp(
                features, 1, config.width, config.depth)).to(self.device)
        self.log_std = nn.Parameter(torch.zeros(action_dim, device=self.device))  # unused when discrete
        self.critic_target = copy.deepcopy(self.critic)
        actor_parameters = list(self.actor.parameters()) + ([] if self.discrete else [self.log_std])
        self.actor_optimizer = adam(actor_parameters, lr=config.actor_lr)
        self.critic_optimizer = adam(self.critic.parameters(), lr=config.critic_lr)
        self.value_optimizer = adam(self.value.parameters(), lr=config.value_lr)
        self.normalizer = ObservationNormalizer(obs_dim, config.normalize_observations and not spec.image_observations)
        self.normalizer.to(self.device)
        self.scaler = None if self.discrete else BoxScaler(spec.action_space, self.device)
        self.reward_scale = 1.0

    def setup(self, dataset) -> None:
        self.normalizer.fit(dataset.observations)
        self.reward_scale = reward_scale(dataset, self.config.reward_normalization)

    def _q(self, network, observations, actions) -> torch.Tensor:
        """Q of the dataset actions for each of the two critics: (2, B)."""
        if self.discrete:
            return network(observations).gather(-1, actions.view(1, -1, 1).expand(2, -1, 1)).squeeze(-1)
        return state_action_values(network, observations, actions)

    def _log_prob(self, observations, actions) -> torch.Tensor:
        output = self.actor(observations)
        if self.discrete:
            return F.log_softmax(output, dim=-1).gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        mean = torch.tanh(output)
        return torch.distributions.Normal(mean, self.log_std.clamp(-20, 2).exp()).log_prob(actions).sum(-1)

    def update(self, batch: Batch) -> dict[str, float]:
        cfg = self.config
        observations = self.normalizer(batch.observations)
        next_observations = self.normalizer(batch.next_observations)
        actions = batch.actions if self.discrete else self.scaler.to_unit(batch.actions)
        rewards = batch.rewards * self.reward_scale

        # V: expectile regression onto the target critics' Q of dataset actions
        with torch.no_grad():
            target_q = self._q(self.critic_target, observations, actions).min(0).values
        value = self.value(observations).squeeze(-1)
        difference = target_q - value
        weight = torch.abs(cfg.expectile - (difference < 0).float())
        value_loss = (weight * difference.pow(2)).mean()
        self.value_optimizer.zero_grad(set_to_none=True)
        value_loss.backward()
        self.value_optimizer.step()

        # Q: one-step backup through V (no max over actions)
        with torch.no_grad():
            next_value = self.value(next_observations).squeeze(-1)
            target = rewards + cfg.discount * (1 - batch.terminals) * next_value
        q = self._q(self.critic, observations, actions)
        critic_loss = F.mse_loss(q, target.expand_as(q)) * 2
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()
        soft_update(self.critic_target, self.critic, cfg.tau)

        # policy: advantage-weighted regression
        advantage = (target_q - value.detach())
        weights = torch.exp(cfg.beta * advantage).clamp(max=cfg.max_weight)
        actor_loss = -(weights * self._log_prob(observations, actions)).mean()
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_optimizer.step()
        return {"value_loss": value_loss.item(), "critic_loss": critic_loss.item(), "actor_loss": actor_loss.item()}

    @torch.no_grad()
    def act(self, observations: np.ndarray) -> np.ndarray:
        output = self.actor(self.normalizer(as_observation_tensor(observations, self.device)))
        if self.discrete:
            return output.argmax(-1).cpu().numpy()
        return self.scaler.to_env(torch.tanh(output))
