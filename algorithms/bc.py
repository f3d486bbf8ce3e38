"""Behaviour cloning: supervised regression (continuous) or classification (discrete) of the
dataset's actions. The baseline every offline RL method has to beat."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from offrl_bench.algorithms.nn import (
    BoxScaler,
    CheckpointedAttributes,
    adam,
    as_observation_tensor,
    check_encoder,
    mlp,
    network_for,
    seeded_init,
)
from offrl_bench.core.api import Batch, EnvSpec, OfflineAlgorithm
from offrl_bench.core.config import PositiveFloat, PositiveInt


@dataclass
class BCConfig:
    # CORL's any_percent_bc: 256x256 ReLU MLP, Adam 3e-4, batch 256.
    lr: PositiveFloat = 3e-4
    width: PositiveInt = 256
    depth: PositiveInt = 2
    batch_size: PositiveInt = 256
    encoder: str = "auto"  # image observations: auto, nature, minatar or impala (algorithms/nn.py)

    def __post_init__(self) -> None:
        check_encoder(self.encoder)


class BC(CheckpointedAttributes, OfflineAlgorithm):
    """Deterministic tanh policy + MSE for Box actions; softmax policy + cross-entropy for Discrete."""

    name = "bc"
    action_spaces = ("discrete", "continuous")
    image_action_spaces = ("discrete", "continuous")
    config_class = BCConfig
    checkpointed = ("policy", "optimizer")

    @classmethod
    def replay_budget(cls, config, action_kind: str, budget: int) -> int:
        return min(budget, 2)  # no periodic events: every update runs the same code

    def __init__(self, spec: EnvSpec, config: BCConfig, seed: int, device: str = "cpu") -> None:
        super().__init__(spec, config, seed, device)
        self.discrete = spec.action_kind == "discrete"
        with seeded_init(seed):
            self.policy = network_for(spec, config.encoder,
                                      lambda features: mlp(features, spec.action_dim, config.width, config.depth))
            self.policy.to(self.device)
        self.optimizer = adam(self.policy.parameters(), lr=config.lr)
        self.scaler = None if self.discrete else BoxScaler(spec.action_space, self.device)

    def update(self, batch: Batch) -> dict[str, float]:
        output = self.policy(batch.observations)
        if self.discrete:
            loss = F.cross_entropy(output, batch.actions)
        else:
            loss = F.mse_loss(torch.tanh(output), self.scaler.to_unit(batch.actions))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"bc_loss": loss.item()}

    @torch.no_grad()
    def act(self, observations: np.ndarray) -> np.ndarray:
        output = self.policy(as_observation_tensor(observations, self.device))
        if self.discrete:
            return output.argmax(dim=-1).cpu().numpy()
        return self.scaler.to_env(torch.tanh(output))
