"""BCQ: Q-learning restricted to actions the behaviour policy plausibly takes.

- Discrete actions (Fujimoto, Conti, Ghavamzadeh & Pineau, 2019, "Benchmarking Batch Deep
  Reinforcement Learning Algorithms"): a behaviour-cloning head G(a|s) is trained next to Q, and both
  the target and the greedy policy only consider actions with G(a|s) / max_a' G(a'|s) > threshold.
  Threshold 0.5, not the paper's 0.3, as in the Procgen generalization-gap study this benchmark follows.
- Continuous actions (Fujimoto, Meger & Precup, 2019, "Off-Policy Deep Reinforcement Learning without
  Exploration"): a conditional VAE models the behaviour policy; a perturbation actor shifts its
  samples by at most ``perturbation`` (Phi) to raise Q. The target takes the best of
  ``n_action_samples`` perturbed VAE actions per next state under a soft clipped double Q
  (lambda * min + (1 - lambda) * max of the two critics); acting takes the best of ``n_eval_samples``.
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
    frozen,
    mlp,
    network_for,
    seeded_init,
    soft_update,
    state_action_values,
)
from offrl_bench.core.api import Batch, EnvSpec, OfflineAlgorithm
from offrl_bench.core.config import NonNegativeFloat, PositiveFloat, PositiveInt, UnitFloat


@dataclass
class BCQConfig:
    # Discrete: non-Atari ("regular") parameters of the authors' discrete_BCQ code, threshold from the
    # Procgen study.
    lr: PositiveFloat = 3e-4
    discount: UnitFloat = 0.99
    tau: UnitFloat = 0.005  # Polyak target updates every step
    threshold: UnitFloat = 0.5
    logit_penalty: NonNegativeFloat = 1e-2  # L2 on the imitation logits, as in the authors' code
    # Continuous: defaults of the authors' BCQ.py, except that the actor and critics use the
    # benchmark-wide width x depth (theirs are 400-300) and the batch is 256 (theirs is 100).
    continuous_lr: PositiveFloat = 1e-3  # VAE, actor and critics (Adam's default, as in BCQ.py)
    perturbation: NonNegativeFloat = 0.05  # Phi, in units of the [-1, 1] action range
    soft_clipped_double_q: UnitFloat = 0.75  # lambda
    n_action_samples: PositiveInt = 10  # VAE samples per next state in the target
    n_eval_samples: PositiveInt = 100  # VAE samples per state when acting
    vae_width: PositiveInt = 750
    kl_weight: NonNegativeFloat = 0.5
    normalize_observations: bool = True
    width: PositiveInt = 256
    depth: PositiveInt = 2
    batch_size: PositiveInt = 256
    encoder: str = "auto"  # image observations: auto, nature, minatar or impala (algorithms/nn.py)

    def __post_init__(self) -> None:
        check_encoder(self.encoder)


class BehaviourVAE(nn.Module):
    """Conditional VAE of the behaviour policy: encoder q(z|s, a), decoder a = D(s, z) in [-1, 1].
    Two hidden layers each, as in BCQ.py; the latent has twice the action's dimensions."""

    def __init__(self, obs_dim: int, action_dim: int, width: int) -> None:
        super().__init__()
        self.latent_dim = 2 * action_dim
        self.encoder = mlp(obs_dim + action_dim, 2 * self.latent_dim, width, 2)
        self.decoder = mlp(obs_dim + self.latent_dim, action_dim, width, 2)

    def forward(self, observations: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruction and KL(q(z|s, a) || N(0, I)) per latent dimension, (B, latent)."""
        mean, log_std = self.encoder(torch.cat([observations, actions], -1)).chunk(2, dim=-1)
        log_std = log_std.clamp(-4, 15)
        z = mean + log_std.exp() * torch.randn_like(mean)
        kl = 0.5 * (mean.pow(2) + (2 * log_std).exp() - 2 * log_std - 1)
        return self.decode(observations, z), kl

    def decode(self, observations: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.decoder(torch.cat([observations, z], -1)))

    def sample(self, observations: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Actions from the prior, clipped to [-0.5, 0.5] as in BCQ.py to stay where the data is."""
        z = torch.randn(len(observations), self.latent_dim, device=observations.device, generator=generator)
        return self.decode(observations, z.clamp(-0.5, 0.5))


class PerturbationActor(nn.Module):
    """xi(s, a): a + Phi * tanh(f(s, a)), clipped to [-1, 1]."""

    def __init__(self, obs_dim: int, action_dim: int, width: int, depth: int, perturbation: float) -> None:
        super().__init__()
        self.net = mlp(obs_dim + action_dim, action_dim, width, depth)
        self.perturbation = perturbation

    def forward(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        shift = self.perturbation * torch.tanh(self.net(torch.cat([observations, actions], -1)))
        return (actions + shift).clamp(-1, 1)


class BCQ(CheckpointedAttributes, OfflineAlgorithm):
    name = "bcq"
    action_spaces = ("discrete", "continuous")
    image_action_spaces = ("discrete",)
    config_class = BCQConfig
    checkpointed = ("networks", "target", "optimizer", "vae", "actor", "actor_target", "critic", "critic_target",
                    "vae_optimizer", "actor_optimizer", "critic_optimizer", "acting_generator", "normalizer")

    @classmethod
    def replay_budget(cls, config, action_kind: str, budget: int) -> int:
        return min(budget, 2)  # no periodic events: Polyak targets every update

    def __init__(self, spec: EnvSpec, config: BCQConfig, seed: int, device: str = "cpu") -> None:
        super().__init__(spec, config, seed, device)
        self.discrete = spec.action_kind == "discrete"
        obs_dim, action_dim = spec.observation_dim, spec.action_dim
        self.networks = self.target = self.optimizer = None
        self.vae = self.actor = self.actor_target = self.critic = self.critic_target = None
        self.vae_optimizer = self.actor_optimizer = self.critic_optimizer = self.acting_generator = None
        with seeded_init(seed):
            if self.discrete:
                # member 0: Q(s, .); member 1: imitation logits G(s, .) — separate MLPs, one fused forward
                # pass; on images behind one shared encoder, as in the authors' Atari network (Conv_Q)
                self.networks = network_for(spec, config.encoder, lambda features: FusedMLPEnsemble(
                    2, features, action_dim, config.width, config.depth)).to(self.device)
                self.target = copy.deepcopy(self.networks)
                self.optimizer = adam(self.networks.parameters(), lr=config.lr)
            else:
                self.vae = BehaviourVAE(obs_dim, action_dim, config.vae_width).to(self.device)
                self.actor = PerturbationActor(obs_dim, action_dim, config.width, config.depth,
                                               config.perturbation).to(self.device)
                self.critic = FusedMLPEnsemble(2, obs_dim + action_dim, 1, config.width, config.depth).to(self.device)
                self.actor_target = copy.deepcopy(self.actor)
                self.critic_target = copy.deepcopy(self.critic)
                self.vae_optimizer = adam(self.vae.parameters(), lr=config.continuous_lr)
                self.actor_optimizer = adam(self.actor.parameters(), lr=config.continuous_lr)
                self.critic_optimizer = adam(self.critic.parameters(), lr=config.continuous_lr)
                # Acting samples VAE actions from its own stream, so evaluating never shifts the
                # training randomness (which would make scores depend on --eval-episodes).
                self.acting_generator = torch.Generator(device=self.device).manual_seed(seed)
        self.normalizer = ObservationNormalizer(obs_dim, config.normalize_observations and not spec.image_observations)
        self.normalizer.to(self.device)
        self.scaler = None if self.discrete else BoxScaler(spec.action_space, self.device)

    def setup(self, dataset) -> None:
        self.normalizer.fit(dataset.observations)

    def update(self, batch: Batch) -> dict[str, float]:
        observations = self.normalizer(batch.observations)
        next_observations = self.normalizer(batch.next_observations)
        if self.discrete:
            return self._update_discrete(batch, observations, next_observations)
        return self._update_continuous(batch, observations, next_observations)

    # Discrete: Q-learning over actions the imitation head allows ---------------------------------
    def _constrained_greedy(self, q: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        probabilities = F.softmax(logits, dim=-1)
        allowed = probabilities / probabilities.max(-1, keepdim=True).values > self.config.threshold
        return q.masked_fill(~allowed, -torch.inf).argmax(-1)

    def _update_discrete(self, batch: Batch, observations, next_observations) -> dict[str, float]:
        cfg = self.config
        with torch.no_grad():
            next_q, next_logits = self.networks(next_observations)
            next_actions = self._constrained_greedy(next_q, next_logits)
            target_q = self.target(next_observations)[0].gather(-1, next_actions.unsqueeze(-1)).squeeze(-1)
            target = batch.rewards + cfg.discount * (1 - batch.terminals) * target_q
        q, logits = self.networks(observations)
        q_data = q.gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)
        q_loss = F.smooth_l1_loss(q_data, target)
        imitation_loss = F.cross_entropy(logits, batch.actions)
        loss = q_loss + imitation_loss + cfg.logit_penalty * logits.pow(2).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        soft_update(self.target, self.networks, cfg.tau)
        return {"q_loss": q_loss.item(), "imitation_loss": imitation_loss.item()}

    # Continuous: VAE, perturbation actor, soft clipped double Q -----------------------------------
    def _update_continuous(self, batch: Batch, observations, next_observations) -> dict[str, float]:
        cfg = self.config
        actions = self.scaler.to_unit(batch.actions)
        batch_size = len(actions)

        reconstruction, kl = self.vae(observations, actions)
        vae_loss = F.mse_loss(reconstruction, actions) + cfg.kl_weight * kl.mean()
        self.vae_optimizer.zero_grad(set_to_none=True)
        vae_loss.backward()
        self.vae_optimizer.step()

        with torch.no_grad():
            n = cfg.n_action_samples
            next_rep = next_observations.repeat_interleave(n, dim=0)
            next_actions = self.actor_target(next_rep, self.vae.sample(next_rep))
            next_q = state_action_values(self.critic_target, next_rep, next_actions)  # (2, B * n)
            lam = cfg.soft_clipped_double_q
            soft_min = lam * next_q.min(0).values + (1 - lam) * next_q.max(0).values
            target_q = soft_min.view(batch_size, n).max(-1).values
            target = batch.rewards + cfg.discount * (1 - batch.terminals) * target_q
        q = state_action_values(self.critic, observations, actions)
        critic_loss = F.mse_loss(q, target.expand_as(q)) * 2  # sum over the two critics, as in BCQ.py
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()

        with torch.no_grad():
            sampled = self.vae.sample(observations)
        perturbed = self.actor(observations, sampled)
        with frozen(self.critic):
            actor_loss = -self.critic.forward_member(torch.cat([observations, perturbed], -1), 0).mean()
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_optimizer.step()
        soft_update(self.critic_target, self.critic, cfg.tau)
        soft_update(self.actor_target, self.actor, cfg.tau)
        return {"vae_loss": vae_loss.item(), "critic_loss": critic_loss.item(), "actor_loss": actor_loss.item()}

    @torch.no_grad()
    def act(self, observations: np.ndarray) -> np.ndarray:
        observations = self.normalizer(as_observation_tensor(observations, self.device))
        if self.discrete:
            q, logits = self.networks(observations)
            return self._constrained_greedy(q, logits).cpu().numpy()
        n = self.config.n_eval_samples
        repeated = observations.repeat_interleave(n, dim=0)
        candidates = self.actor(repeated, self.vae.sample(repeated, self.acting_generator))
        q = self.critic.forward_member(torch.cat([repeated, candidates], -1), 0).view(len(observations), n)
        best = candidates.view(len(observations), n, -1)[torch.arange(len(observations)), q.argmax(-1)]
        return self.scaler.to_env(best)
