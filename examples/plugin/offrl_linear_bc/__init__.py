"""A complete offrl-bench algorithm plugin: behaviour cloning with a linear tanh policy."""

from dataclasses import dataclass

import numpy as np
import torch

from offrl_bench.api import Batch, EnvSpec, OfflineAlgorithm


@dataclass
class LinearBCConfig:  # every field can be set with --set field=value
    lr: float = 1e-2
    batch_size: int = 256  # the runner samples batches of this size


class LinearBC(OfflineAlgorithm):
    name = "linear-bc"  # what --algo takes
    action_spaces = ("continuous",)  # offrl-bench refuses discrete datasets with a clear error
    config_class = LinearBCConfig

    def __init__(self, spec: EnvSpec, config: LinearBCConfig, seed: int, device: str = "cpu"):
        super().__init__(spec, config, seed, device)
        generator = torch.Generator().manual_seed(seed)  # never the global RNG
        self.weight = (0.01 * torch.randn(spec.observation_dim, spec.action_dim, generator=generator)).requires_grad_()
        self.bias = torch.zeros(spec.action_dim, requires_grad=True)
        self.optimizer = torch.optim.Adam([self.weight, self.bias], lr=config.lr)
        self.low = torch.as_tensor(spec.action_space.low)
        self.high = torch.as_tensor(spec.action_space.high)

    def _policy(self, observations: torch.Tensor) -> torch.Tensor:
        unit = torch.tanh(observations @ self.weight + self.bias)
        return self.low + (unit + 1) * (self.high - self.low) / 2

    def update(self, batch: Batch) -> dict[str, float]:
        loss = ((self._policy(batch.observations) - batch.actions) ** 2).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {"mse": loss.item()}

    @torch.no_grad()
    def act(self, observations: np.ndarray) -> np.ndarray:
        return self._policy(torch.as_tensor(observations, dtype=torch.float32)).numpy()

    def state_dict(self) -> dict:
        return {"weight": self.weight.detach().clone(), "bias": self.bias.detach().clone(),
                "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            self.weight.copy_(state["weight"])
            self.bias.copy_(state["bias"])
        self.optimizer.load_state_dict(state["optimizer"])
