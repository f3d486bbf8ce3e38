"""Discrete BCQ (Fujimoto, Conti, Ghavamzadeh & Pineau, 2019, "Benchmarking Batch Deep
Reinforcement Learning Algorithms").

Q-learning restricted to actions the behaviour policy plausibly takes: a behaviour-cloning head
G(a|s) is trained next to Q, and both the target and the greedy policy only consider actions with
G(a|s) / max_a' G(a'|s) > threshold. Threshold 0.5, not the paper's 0.3, as in the Procgen
generalization-gap study this benchmark follows.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from offrl_bench.algorithms.nn import (
    CheckpointedAttributes,
    FusedMLPEnsemble,
    ObservationNormalizer,
    adam,
    as_observation_tensor,
    seeded_init,
    soft_update,
)
from offrl_bench.api import Batch, EnvSpec, OfflineAlgorithm
from offrl_bench.config import NonNegativeFloat, PositiveFloat, PositiveInt, UnitFloat


@dataclass
class BCQConfig:
    # Non-Atari ("regular") parameters of the authors' discrete_BCQ code, threshold from the Procgen study.
    lr: PositiveFloat = 3e-4
    discount: UnitFloat = 0.99
    tau: UnitFloat = 0.005  # Polyak target updates every step
    threshold: UnitFloat = 0.5
    logit_penalty: NonNegativeFloat = 1e-2  # L2 on the imitation logits, as in the authors' code
    normalize_observations: bool = True
    width: PositiveInt = 256
    depth: PositiveInt = 2
    batch_size: PositiveInt = 256


class BCQ(CheckpointedAttributes, OfflineAlgorithm):
    name = "bcq"
    action_spaces = ("discrete",)
    config_class = BCQConfig
    checkpointed = ("networks", "target", "optimizer", "normalizer")

    def __init__(self, spec: EnvSpec, config: BCQConfig, seed: int, device: str = "cpu") -> None:
        super().__init__(spec, config, seed, device)
        n_actions = spec.action_dim
        with seeded_init(seed):
            # member 0: Q(s, .); member 1: imitation logits G(s, .) — separate MLPs, one fused forward pass
            self.networks = FusedMLPEnsemble(2, spec.observation_dim, n_actions, config.width, config.depth)
        self.networks.to(self.device)
        self.target = copy.deepcopy(self.networks)
        self.optimizer = adam(self.networks.parameters(), lr=config.lr)
        self.normalizer = ObservationNormalizer(spec.observation_dim, config.normalize_observations).to(self.device)

    def setup(self, dataset) -> None:
        self.normalizer.fit(dataset.observations)

    def _constrained_greedy(self, q: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        probabilities = F.softmax(logits, dim=-1)
        allowed = probabilities / probabilities.max(-1, keepdim=True).values > self.config.threshold
        return q.masked_fill(~allowed, -torch.inf).argmax(-1)

    def update(self, batch: Batch) -> dict[str, float]:
        cfg = self.config
        observations = self.normalizer(batch.observations)
        next_observations = self.normalizer(batch.next_observations)
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

    @torch.no_grad()
    def act(self, observations: np.ndarray) -> np.ndarray:
        q, logits = self.networks(self.normalizer(as_observation_tensor(observations, self.device)))
        return self._constrained_greedy(q, logits).cpu().numpy()
