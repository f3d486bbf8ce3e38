"""Probabilistic dynamics ensemble for model-based offline RL (MBPO / MOPO style).

Each member predicts a diagonal Gaussian over (s' - s, r) from (s, a). All members run in one
batched forward pass (:class:`FusedMLPEnsemble`), each trained on its own bootstrap minibatches by
Gaussian negative log-likelihood with learnt soft bounds on the log-variance (Chua et al., 2018).
Members are ranked by MSE on held-out transitions; the best ``elites`` generate rollouts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from offrl_bench.algorithms.nn import FusedMLPEnsemble, adam
from offrl_bench.data.datasets import TransitionDataset


@dataclass(frozen=True)
class DynamicsSettings:
    # MOPO/MBPO: 7 members, 5 elites, 4 hidden layers of 200 swish units, Adam 1e-3, batch 256,
    # holdout 1,000 transitions at most, stop when no member improves by 1% for 5 epochs.
    members: int = 7
    elites: int = 5
    width: int = 200
    depth: int = 4
    lr: float = 1e-3
    batch_size: int = 256
    holdout: float = 0.1
    max_holdout: int = 1_000
    max_epochs: int = 50
    patience: int = 5


class GaussianEnsemble(nn.Module):
    """(s, a) -> mean and log-variance of the standardised (s' - s, r), for every member."""

    def __init__(self, obs_dim: int, action_dim: int, settings: DynamicsSettings) -> None:
        super().__init__()
        self.obs_dim = obs_dim
        out_dim = obs_dim + 1
        self.net = FusedMLPEnsemble(settings.members, obs_dim + action_dim, 2 * out_dim, settings.width,
                                    settings.depth, activation=F.silu)
        self.max_logvar = nn.Parameter(torch.full((out_dim,), 0.5))
        self.min_logvar = nn.Parameter(torch.full((out_dim,), -10.0))
        for name, dim in (("input", obs_dim + action_dim), ("target", out_dim)):
            self.register_buffer(f"{name}_mean", torch.zeros(dim))
            self.register_buffer(f"{name}_std", torch.ones(dim))

    def fit_statistics(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.input_mean.copy_(inputs.mean(0))
        self.input_std.copy_(inputs.std(0) + 1e-6)
        self.target_mean.copy_(targets.mean(0))
        self.target_std.copy_(targets.std(0) + 1e-6)

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs (B, in) shared by all members or (n, B, in) per member -> standardised mean and
        log-variance, each (n, B, out)."""
        mean, logvar = self.net((inputs - self.input_mean) / self.input_std).chunk(2, dim=-1)
        logvar = self.max_logvar - F.softplus(self.max_logvar - logvar)
        logvar = self.min_logvar + F.softplus(logvar - self.min_logvar)
        return mean, logvar

    def nll(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Gaussian NLL of standardised targets, summed over members, plus the log-variance bounds' penalty."""
        mean, logvar = self(inputs)
        standardised = (targets - self.target_mean) / self.target_std
        per_member = (((mean - standardised) ** 2) * torch.exp(-logvar) + logvar).mean(dim=(1, 2))
        return per_member.sum() + 0.01 * (self.max_logvar.sum() - self.min_logvar.sum())

    @torch.no_grad()
    def member_mse(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        mean, _ = self(inputs)
        return ((mean - (targets - self.target_mean) / self.target_std) ** 2).mean(dim=(1, 2))


def model_inputs(observations: torch.Tensor, unit_actions: torch.Tensor) -> torch.Tensor:
    return torch.cat([observations, unit_actions], dim=-1)


class DynamicsModel:
    """A trained :class:`GaussianEnsemble` with its elite members, and sampling from it."""

    def __init__(self, obs_dim: int, action_dim: int, settings: DynamicsSettings, device: torch.device) -> None:
        self.settings = settings
        self.ensemble = GaussianEnsemble(obs_dim, action_dim, settings).to(device)
        self.elites = torch.arange(settings.elites, device=device)
        self.holdout_mse = torch.full((settings.members,), float("nan"))
        self.holdout: tuple[torch.Tensor, torch.Tensor] | None = None
        self.epochs = 0

    def fit(self, dataset: TransitionDataset, unit_actions: torch.Tensor, generator: torch.Generator) -> None:
        """Train on the dataset until the held-out MSE stops improving; elites = lowest held-out MSE."""
        s = self.settings
        inputs = model_inputs(dataset.observations, unit_actions)
        targets = self.training_targets(dataset)
        order = torch.randperm(len(inputs), generator=generator, device=inputs.device)
        n_holdout = min(s.max_holdout, int(s.holdout * len(inputs)))
        holdout, train = order[:n_holdout], order[n_holdout:]
        self.ensemble.fit_statistics(inputs[train], targets[train])
        optimizer = adam(self.ensemble.parameters(), lr=s.lr)
        best = self.ensemble.member_mse(inputs[holdout], targets[holdout])
        stale = 0
        for epoch in range(1, s.max_epochs + 1):
            # every member trains on its own bootstrap resample of the training set (MBPO)
            resampled = train[torch.randint(len(train), (s.members, len(train)), generator=generator,
                                            device=inputs.device)]
            for start in range(0, len(train), s.batch_size):
                pick = resampled[:, start:start + s.batch_size]
                loss = self.ensemble.nll(inputs[pick], targets[pick])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            mse = self.ensemble.member_mse(inputs[holdout], targets[holdout])
            improved = (best - mse) / best > 0.01
            best = torch.where(improved, mse, best)
            stale = 0 if improved.any() else stale + 1
            self.epochs = epoch
            if stale >= s.patience:
                break
        self.holdout = (inputs[holdout], targets[holdout])
        self.select_elites()

    def select_elites(self) -> None:
        """Rank the members on the held-out transitions of the last :meth:`fit`."""
        self.holdout_mse = self.ensemble.member_mse(*self.holdout).cpu()
        self.elites = torch.argsort(self.holdout_mse)[: self.settings.elites].to(self.elites.device)

    def training_targets(self, dataset: TransitionDataset) -> torch.Tensor:
        return torch.cat([dataset.next_observations - dataset.observations, dataset.rewards[:, None]], dim=1)

    def sample_all_members(self, observations: torch.Tensor, unit_actions: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """One reparameterised (differentiable) sample per member: next observations (n, B, obs_dim)
        and rewards (n, B)."""
        mean, logvar = self.ensemble(model_inputs(observations, unit_actions))
        samples = mean + (0.5 * logvar).exp() * torch.randn_like(mean)
        samples = samples * self.ensemble.target_std + self.ensemble.target_mean
        return observations + samples[..., :-1], samples[..., -1]

    @torch.no_grad()
    def sample(self, observations: torch.Tensor, unit_actions: torch.Tensor, samples_per_elite: int
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Candidate transitions from every elite: next observations (C, B, obs_dim) and rewards (C, B)
        with C = samples_per_elite x elites, and MOPO's uncertainty max_elite ||std|| (B,) in the
        units of (s' - s, r). Noise comes from torch's global RNG (seeded and checkpointed by the runner)."""
        mean, logvar = self.ensemble(model_inputs(observations, unit_actions))
        mean, std = mean[self.elites], (0.5 * logvar[self.elites]).exp()
        noise = torch.randn((samples_per_elite, *mean.shape), device=mean.device)
        samples = (mean + std * noise).flatten(0, 1) * self.ensemble.target_std + self.ensemble.target_mean
        next_observations = observations + samples[..., :-1]
        uncertainty = (std * self.ensemble.target_std).norm(dim=-1).max(0).values
        return next_observations, samples[..., -1], uncertainty
