"""Network pieces shared by the algorithm plugins."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import gymnasium as gym
import numpy as np
import torch
from torch import nn


@contextlib.contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Initialise parameters from ``seed`` without touching the caller's global torch RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def mlp(in_dim: int, out_dim: int, width: int = 256, depth: int = 2) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(in_dim, width), nn.ReLU()]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class BoxScaler:
    """Maps between a bounded Box action space and [-1, 1] (the range of a tanh policy head)."""

    def __init__(self, space: gym.spaces.Box, device: torch.device) -> None:
        if not (np.isfinite(space.low).all() and np.isfinite(space.high).all()):
            raise ValueError("continuous actions need finite bounds")
        self.low = torch.as_tensor(space.low, dtype=torch.float32, device=device)
        self.high = torch.as_tensor(space.high, dtype=torch.float32, device=device)

    def to_unit(self, actions: torch.Tensor) -> torch.Tensor:
        return (2 * (actions - self.low) / (self.high - self.low) - 1).clamp(-1, 1)

    def from_unit(self, unit: torch.Tensor) -> torch.Tensor:
        return self.low + (unit + 1) * (self.high - self.low) / 2


def as_observation_tensor(observations: np.ndarray, device: torch.device) -> torch.Tensor:
    """Batched observations of any shape to a float32 (batch, features) tensor."""
    observations = np.asarray(observations, dtype=np.float32)
    return torch.from_numpy(observations.reshape(len(observations), -1)).to(device)
