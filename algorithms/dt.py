"""Decision Transformer (Chen et al., 2021, "Decision Transformer: Reinforcement Learning via
Sequence Modeling").

A causal transformer reads the last ``context`` steps as tokens (return-to-go, observation, action)
and predicts each step's action from its observation token. At evaluation it is conditioned on a
target return, decreased by every reward received. Discrete actions: cross-entropy over logits;
continuous: tanh outputs with MSE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from offrl_bench.algorithms.nn import (
    BoxScaler,
    CheckpointedAttributes,
    as_observation_tensor,
    check_encoder,
    network_for,
    seeded_init,
)
from offrl_bench.core.api import EnvSpec, OfflineAlgorithm
from offrl_bench.core.config import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, UnitFloat


@dataclass
class DTConfig:
    # Defaults of CORL's dt.py (which follows the paper's Gym settings), except warm-up steps,
    # scaled from 10,000 to CPU-sized runs.
    context: PositiveInt = 20
    embedding_dim: PositiveInt = 128
    layers: PositiveInt = 3
    heads: PositiveInt = 1
    dropout: UnitFloat = 0.1
    lr: PositiveFloat = 1e-4
    weight_decay: NonNegativeFloat = 1e-4
    warmup_steps: NonNegativeInt = 1000
    clip_grad: PositiveFloat = 0.25
    reward_scale: PositiveFloat = 0.001
    target_return: float = math.nan  # nan: the best episode return in the dataset
    max_timestep: PositiveInt = 1000
    batch_size: PositiveInt = 64
    encoder: str = "auto"  # image observations: auto, nature, minatar or impala (algorithms/nn.py)

    def __post_init__(self) -> None:
        check_encoder(self.encoder)
        if self.embedding_dim % self.heads:
            raise ValueError(f"embedding_dim ({self.embedding_dim}) must be a multiple of heads ({self.heads})")


@dataclass
class SequenceBatch:
    returns_to_go: torch.Tensor  # (B, K) scaled
    observations: torch.Tensor  # (B, K, obs), or uint8 (B, K, H, W, C) images
    actions: torch.Tensor  # (B, K) int64 or (B, K, act) in [-1, 1]
    timesteps: torch.Tensor  # (B, K)
    mask: torch.Tensor  # (B, K) True on real steps, False on padding after an episode's end


class DecisionTransformerNetwork(nn.Module):
    def __init__(self, spec: EnvSpec, discrete: bool, cfg: DTConfig) -> None:
        super().__init__()
        d, action_dim = cfg.embedding_dim, spec.action_dim
        self.embed_timestep = nn.Embedding(cfg.max_timestep + 1, d)
        self.embed_return = nn.Linear(1, d)
        # images: a frame encoder per token, then the linear embedding (as the paper's Atari DT)
        self.embed_observation = network_for(spec, cfg.encoder, lambda features: nn.Linear(features, d))
        self.embed_action = nn.Embedding(action_dim, d) if discrete else nn.Linear(action_dim, d)
        self.embed_norm = nn.LayerNorm(d)
        self.dropout = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(d, cfg.heads, 4 * d, cfg.dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, action_dim))

    def forward(self, batch: SequenceBatch) -> torch.Tensor:
        """Action outputs (logits or pre-tanh) predicted at every observation token: (B, K, action_dim)."""
        b, k = batch.timesteps.shape
        time = self.embed_timestep(batch.timesteps)
        tokens = torch.stack([self.embed_return(batch.returns_to_go.unsqueeze(-1)) + time,
                              self.embed_observation(batch.observations) + time,
                              self.embed_action(batch.actions) + time], dim=2).reshape(b, 3 * k, -1)
        tokens = self.dropout(self.embed_norm(tokens))
        causal = torch.triu(torch.ones(3 * k, 3 * k, dtype=torch.bool, device=tokens.device), diagonal=1)
        padding = ~batch.mask.repeat_interleave(3, dim=1)
        hidden = self.transformer(tokens, mask=causal, src_key_padding_mask=padding)
        return self.head(hidden.reshape(b, k, 3, -1)[:, :, 1])


class DT(CheckpointedAttributes, OfflineAlgorithm):
    name = "dt"
    action_spaces = ("discrete", "continuous")
    image_action_spaces = ("discrete", "continuous")
    config_class = DTConfig
    episodic = True
    checkpointed = ("network", "optimizer", "schedule", "target_return")

    @classmethod
    def replay_budget(cls, config: DTConfig, action_kind: str, budget: int) -> int:
        return min(budget, config.warmup_steps + 1)  # past the learning-rate warm-up

    def __init__(self, spec: EnvSpec, config: DTConfig, seed: int, device: str = "cpu") -> None:
        super().__init__(spec, config, seed, device)
        self.discrete = spec.action_kind == "discrete"
        with seeded_init(seed):
            self.network = DecisionTransformerNetwork(spec, self.discrete, config).to(self.device)
        self.optimizer = torch.optim.AdamW(self.network.parameters(), lr=config.lr,
                                           weight_decay=config.weight_decay)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: min((step + 1) / config.warmup_steps, 1.0))
        self.scaler = None if self.discrete else BoxScaler(spec.action_space, self.device)
        self.target_return = config.target_return
        self.histories: dict[int, dict[str, list]] = {}

    def setup(self, dataset) -> None:
        """Per-transition return-to-go, timestep and episode end, for sequence sampling."""
        starts = dataset.episode_starts.cpu().numpy()
        ends = np.append(starts[1:], len(dataset))
        rewards = dataset.rewards.cpu().numpy().astype(np.float64)
        returns_to_go, timesteps, episode_end = (np.empty(len(dataset)) for _ in range(3))
        for start, end in zip(starts, ends):
            returns_to_go[start:end] = np.cumsum(rewards[start:end][::-1])[::-1]
            timesteps[start:end] = np.arange(end - start)
            episode_end[start:end] = end
        to = lambda a, dtype: torch.as_tensor(a, dtype=dtype, device=self.device)  # noqa: E731
        self.returns_to_go = to(returns_to_go * self.config.reward_scale, torch.float32)
        self.timesteps = to(np.minimum(timesteps, self.config.max_timestep), torch.int64)
        self.episode_end = to(episode_end, torch.int64)
        if math.isnan(self.target_return):
            self.target_return = float(dataset.episode_returns.max())

    def sample(self, dataset, batch_size: int, generator: torch.Generator) -> SequenceBatch:
        """Segments of ``context`` steps starting at uniformly drawn transitions, padded past episode ends."""
        start = torch.randint(len(dataset), (batch_size, 1), generator=generator, device=self.device)
        index = start + torch.arange(self.config.context, device=self.device)
        mask = index < self.episode_end[start]
        index = torch.minimum(index, self.episode_end[start] - 1)
        actions = dataset.actions[index]
        return SequenceBatch(self.returns_to_go[index], dataset.observations[index],
                             actions if self.discrete else self.scaler.to_unit(actions), self.timesteps[index], mask)

    def update(self, batch: SequenceBatch) -> dict[str, float]:
        self.network.train()
        predicted = self.network(batch)
        if self.discrete:
            loss = F.cross_entropy(predicted[batch.mask], batch.actions[batch.mask])
        else:
            loss = F.mse_loss(torch.tanh(predicted[batch.mask]), batch.actions[batch.mask])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.config.clip_grad)
        self.optimizer.step()
        self.schedule.step()
        return {"action_loss": loss.item()}

    # Acting: a history of the current episode per environment slot ---------------------------------
    def start_episode(self, slot: int) -> None:
        self.histories[slot] = {"observations": [], "actions": [],
                                "returns_to_go": [self.target_return * self.config.reward_scale]}

    def observe_rewards(self, slots: list[int], rewards: np.ndarray) -> None:
        for slot, reward in zip(slots, rewards):
            history = self.histories[slot]
            history["returns_to_go"].append(history["returns_to_go"][-1] - reward * self.config.reward_scale)

    @torch.no_grad()
    def act(self, observations: np.ndarray, slots: list[int] | None = None) -> np.ndarray:
        if slots is None:  # called without episode context: every row is the first step of an episode
            slots = [-(i + 1) for i in range(len(observations))]
            for slot in slots:
                self.start_episode(slot)
        self.network.eval()
        k = self.config.context
        observations = as_observation_tensor(observations, self.device)
        rows = []
        for slot, observation in zip(slots, observations):
            history = self.histories[slot]
            history["observations"].append(observation)
            rows.append(history)
        steps = [len(h["observations"]) for h in rows]
        length = min(max(steps), k)
        b = len(rows)
        obs = torch.zeros(b, length, *observations.shape[1:], dtype=observations.dtype, device=self.device)
        returns = torch.zeros(b, length, device=self.device)
        timesteps = torch.zeros(b, length, dtype=torch.int64, device=self.device)
        actions = (torch.zeros(b, length, dtype=torch.int64, device=self.device) if self.discrete
                   else torch.zeros(b, length, self.spec.action_dim, device=self.device))
        mask = torch.zeros(b, length, dtype=torch.bool, device=self.device)
        for row, (history, n) in enumerate(zip(rows, steps)):
            m = min(n, length)  # left-aligned: the newest step sits at position m - 1
            obs[row, :m] = torch.stack(history["observations"][-m:])
            returns[row, :m] = torch.tensor(history["returns_to_go"][-m:], dtype=torch.float32)
            timesteps[row, :m] = torch.arange(n - m, n).clamp(max=self.config.max_timestep)
            if m > 1:
                actions[row, :m - 1] = torch.stack(history["actions"][-(m - 1):])
            mask[row, :m] = True
        predicted = self.network(SequenceBatch(returns, obs, actions, timesteps, mask))
        last = predicted[torch.arange(b), torch.tensor(steps).clamp(max=length) - 1]
        if self.discrete:
            chosen = last.argmax(-1)
            result = chosen.cpu().numpy()
        else:
            chosen = torch.tanh(last)
            result = self.scaler.to_env(chosen)
        for history, action in zip(rows, chosen):
            history["actions"].append(action)
        return result
