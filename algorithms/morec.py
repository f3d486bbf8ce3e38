"""MOREC's dynamics reward and rollout filter (Luo et al., "Reward-Consistent Dynamics Models are
Strongly Generalizable for Offline Reinforcement Learning", ICLR 2024).

The dynamics reward D(s, a, s') scores how real a transition looks. It is learnt adversarially, as
in GAIL with the dynamics model in the role of the policy: a discriminator learns to tell dataset
transitions from model transitions, and the model is pushed (through reparameterised samples) to
make transitions the discriminator takes for real, alongside its likelihood loss. The last
discriminator is the dynamics reward.

In rollouts (:meth:`DynamicsReward.filter`), every step draws candidates from all elites (default
5 x 2), keeps the one with the highest dynamics reward (or samples one with a softmax at a
temperature), and ends the rollout where even the best candidate scores below the threshold
(the paper's default 0.6).

The dynamics reward is calibrated against the data: the discriminator's probability divided by
its mean on dataset transitions, capped at 1. Against a good model an adversarial discriminator
ends near 0.5 for real and model transitions alike, so a threshold on its raw output would end
nearly every rollout at once (measured: 0.25% of steps kept at 0.6 on Pendulum); relative to the
data, 0.6 means "less than 60% as real-looking as the dataset's own transitions".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from offrl_bench.algorithms.dynamics_model import DynamicsModel, model_inputs
from offrl_bench.algorithms.nn import adam, mlp
from offrl_bench.data.datasets import TransitionDataset


@dataclass(frozen=True)
class MORECSettings:
    width: int = 256
    depth: int = 2
    lr: float = 3e-4
    rounds: int = 10
    discriminator_steps: int = 100  # per round
    model_steps: int = 50  # per round
    adversarial_weight: float = 0.1  # of the model's "look real" loss next to its NLL
    batch_size: int = 256
    candidates_per_elite: int = 2
    threshold: float = 0.6
    temperature: float = 0.0  # 0: keep the best candidate


class DynamicsReward:
    def __init__(self, obs_dim: int, action_dim: int, settings: MORECSettings, device: torch.device) -> None:
        self.settings = settings
        self.discriminator = mlp(2 * obs_dim + action_dim, 1, settings.width, settings.depth).to(device)
        self.mean = torch.zeros(2 * obs_dim + action_dim, device=device)
        self.std = torch.ones(2 * obs_dim + action_dim, device=device)
        self.real_level = torch.ones((), device=device)  # mean discriminator output on dataset transitions
        #: (round, accuracy on dataset transitions, accuracy on model transitions) after each round
        self.history: list[tuple[int, float, float]] = []

    def logits(self, observations: torch.Tensor, unit_actions: torch.Tensor, next_observations: torch.Tensor
               ) -> torch.Tensor:
        """Broadcasts over leading candidate dimensions of ``next_observations``."""
        shape = next_observations.shape[:-1]
        features = torch.cat([observations.expand(*shape, -1), unit_actions.expand(*shape, -1), next_observations],
                             dim=-1)
        return self.discriminator((features - self.mean) / self.std).squeeze(-1)

    def score(self, observations: torch.Tensor, unit_actions: torch.Tensor, next_observations: torch.Tensor
              ) -> torch.Tensor:
        """The dynamics reward in [0, 1]: the discriminator's probability that the transition is real,
        relative to its mean on the dataset's transitions."""
        probability = torch.sigmoid(self.logits(observations, unit_actions, next_observations))
        return (probability / self.real_level).clamp(max=1.0)

    def fit(self, dataset: TransitionDataset, unit_actions: torch.Tensor, model: DynamicsModel,
            generator: torch.Generator) -> None:
        """Adversarial rounds of discriminator and model updates; then the model's elites are re-ranked."""
        s = self.settings
        features = torch.cat([dataset.observations, unit_actions, dataset.next_observations], dim=1)
        self.mean, self.std = features.mean(0), features.std(0) + 1e-6
        targets = model.training_targets(dataset)
        d_optimizer = adam(self.discriminator.parameters(), lr=s.lr)
        m_optimizer = adam(model.ensemble.parameters(), lr=model.settings.lr)
        draw = lambda: torch.randint(len(dataset), (s.batch_size,), generator=generator,  # noqa: E731
                                     device=features.device)
        self.history = []
        for round_ in range(1, s.rounds + 1):
            for _ in range(s.discriminator_steps):
                pick = draw()
                obs, act, nxt = dataset.observations[pick], unit_actions[pick], dataset.next_observations[pick]
                with torch.no_grad():
                    fake, _ = model.sample_all_members(obs, act)
                real_logits, fake_logits = self.logits(obs, act, nxt), self.logits(obs, act, fake)
                loss = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                        + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
                d_optimizer.zero_grad(set_to_none=True)
                loss.backward()
                d_optimizer.step()
            for _ in range(s.model_steps):
                pick = draw()
                obs, act = dataset.observations[pick], unit_actions[pick]
                fake, _ = model.sample_all_members(obs, act)
                fake_logits = self.logits(obs, act, fake)
                look_real = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
                loss = model.ensemble.nll(model_inputs(obs, act), targets[pick]) + s.adversarial_weight * look_real
                m_optimizer.zero_grad(set_to_none=True)
                loss.backward()
                m_optimizer.step()
            with torch.no_grad():
                pick = draw()
                obs, act, nxt = dataset.observations[pick], unit_actions[pick], dataset.next_observations[pick]
                fake, _ = model.sample_all_members(obs, act)
                real_accuracy = float((self.logits(obs, act, nxt) > 0).float().mean())
                fake_accuracy = float((self.logits(obs, act, fake) < 0).float().mean())
            self.history.append((round_, real_accuracy, fake_accuracy))
        model.select_elites()
        with torch.no_grad():
            probabilities = [torch.sigmoid(self.logits(dataset.observations[i:i + 65_536], unit_actions[i:i + 65_536],
                                                       dataset.next_observations[i:i + 65_536]))
                             for i in range(0, len(dataset), 65_536)]
            self.real_level = torch.cat(probabilities).mean()

    @torch.no_grad()
    def filter(self, model: DynamicsModel, observations: torch.Tensor, unit_actions: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One filtered model step for a batch: (next observations, rewards, MOPO uncertainty, the
        chosen candidates' dynamics rewards, whether the rollout goes on: reward >= threshold)."""
        s = self.settings
        candidates, rewards, uncertainty = model.sample(observations, unit_actions, s.candidates_per_elite)
        scores = self.score(observations, unit_actions, candidates)  # (C, B)
        if s.temperature > 0:
            choice = torch.multinomial((scores / s.temperature).softmax(0).T, 1).squeeze(1)
        else:
            choice = scores.argmax(0)
        rows = torch.arange(len(observations), device=observations.device)
        best = scores[choice, rows]
        return candidates[choice, rows], rewards[choice, rows], uncertainty, best, best >= s.threshold
