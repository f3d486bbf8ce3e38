"""Inverse dynamics model (IDM): which action led from s_t to s_{t+1}?

Trained on the labelled transitions of a dataset and used to label the rest (SS-ORL; VPT labels
video the same way). The input is a window of observations s_{t-k}, ..., s_t, s_{t+1}; before an
episode's first step the window repeats the episode's first observation (it never reaches into the
previous episode). Continuous actions: a tanh-squashed Gaussian head trained by negative
log-likelihood, predicting tanh(mean). Discrete actions: logits and cross-entropy. Image
observations go through a CNN encoder with the window's frames stacked as channels.

The model kept is the one with the lowest validation error over training, measured on labelled
episodes held out from training. (SS-ORL's reference code selects the best checkpoint and then labels
with the last one; here the best one labels.)
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
    FusedMLPEnsemble,
    ObservationNormalizer,
    adam,
    make_encoder,
    seeded_init,
)
from offrl_bench.core.api import EnvSpec
from offrl_bench.data.datasets import TransitionDataset

#: Actions are clipped this far inside (-1, 1) before atanh, so the NLL stays finite at the bounds.
_EDGE = 1e-4
_LOG_STD_RANGE = (-5.0, 2.0)


@dataclass(frozen=True)
class IDMSettings:
    window: int = 1  # k past observations besides s_t and s_{t+1} (SS-ORL uses k=1 on D4RL)
    width: int = 256
    depth: int = 2
    ensemble: int = 1
    lr: float = 1e-3
    batch_size: int = 256
    updates: int = 10_000
    eval_every: int = 250
    validation_fraction: float = 0.1
    frame_differences: bool = True  # vector observations: the frames' differences as inputs too
    dropout: float = 0.0  # on the MLP's hidden units while training (the SS-ORL authors use 0.1)


def observation_windows(dataset: TransitionDataset, index: torch.Tensor, window: int,
                        episode_start: torch.Tensor) -> torch.Tensor:
    """(B, window + 2, obs_dim): s_{t-window}, ..., s_t, s_{t+1} for the transitions ``index``;
    ``episode_start`` holds the first transition of every transition's episode (edge padding)."""
    frames = [dataset.observations[torch.maximum(index - back, episode_start[index])]
              for back in range(window, -1, -1)]
    frames.append(dataset.next_observations[index])
    return torch.stack(frames, dim=1)


class InverseDynamicsModel(nn.Module):
    def __init__(self, spec: EnvSpec, settings: IDMSettings) -> None:
        super().__init__()
        self.discrete = spec.action_kind == "discrete"
        self.action_dim = spec.action_dim
        frames = settings.window + 2
        self.image_shape = tuple(spec.observation_space.shape) if spec.image_observations else None
        if self.image_shape is not None:  # the encoder chosen for the frame size, frames as channels
            self.encoder = make_encoder(spec.observation_space, channels=frames * self.image_shape[2])
            features = self.encoder.features
            self.normalizer = ObservationNormalizer(spec.observation_dim, enabled=False)
        else:
            self.encoder = nn.Flatten()
            self.frame_differences = settings.frame_differences
            features = (2 * frames - 1 if self.frame_differences else frames) * spec.observation_dim
            self.normalizer = ObservationNormalizer(spec.observation_dim)
        self.difference_normalizer = ObservationNormalizer(spec.observation_dim, enabled=self.image_shape is None)
        out_dim = self.action_dim if self.discrete else 2 * self.action_dim
        self.heads = FusedMLPEnsemble(settings.ensemble, features, out_dim, settings.width, settings.depth,
                                      dropout=settings.dropout)

    def fit_normalizers(self, dataset: TransitionDataset) -> None:
        """Feature statistics from every transition: observations are known for all of them."""
        if self.image_shape is None:
            self.normalizer.fit(dataset.observations)
            self.difference_normalizer.fit(dataset.next_observations - dataset.observations)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """(B, frames, obs_dim) -> (ensemble, B, out).

        Vector observations: the frames and (``frame_differences``, this project's addition to the
        paper's IDM) the differences of consecutive frames. An action shows in how the observation
        changes; given the change explicitly the MLP extrapolates to states outside the labelled
        episodes (on s' = s + Ba, frames alone leave 2.5x the held-out error)."""
        if self.image_shape is not None:  # frames stacked as channels: (B, H, W, frames * C)
            height, width, channels = self.image_shape
            batch, frames = windows.shape[:2]
            windows = windows.reshape(batch, frames, height, width, channels).permute(0, 2, 3, 1, 4)
            return self.heads(self.encoder(windows.reshape(batch, height, width, frames * channels)))
        frames = self.normalizer(windows).flatten(1)
        if not self.frame_differences:
            return self.heads(frames)
        differences = self.difference_normalizer(windows[:, 1:] - windows[:, :-1])
        return self.heads(torch.cat([frames, differences.flatten(1)], dim=1))

    def loss(self, windows: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean over members of the NLL of ``targets`` (class ids, or unit actions in [-1, 1])."""
        output = self(windows)
        if self.discrete:
            return F.cross_entropy(output.flatten(0, 1), targets.repeat(output.shape[0]))
        mean, log_std = output.chunk(2, dim=-1)
        log_std = log_std.clamp(*_LOG_STD_RANGE)
        unit = targets.clamp(-1 + _EDGE, 1 - _EDGE)
        pre_tanh = torch.atanh(unit)
        nll = 0.5 * ((pre_tanh - mean) / log_std.exp()) ** 2 + log_std + 0.5 * np.log(2 * np.pi)
        nll = nll + torch.log1p(-unit**2)  # change of variables through tanh
        return nll.sum(-1).mean()

    @torch.no_grad()
    def predict(self, windows: torch.Tensor) -> torch.Tensor:
        """Class ids (ensemble-averaged probabilities), or unit actions (ensemble mean of tanh(mean))."""
        output = self(windows)
        if self.discrete:
            return output.softmax(-1).mean(0).argmax(-1)
        return torch.tanh(output[..., : self.action_dim]).mean(0)


def _split_validation(dataset: TransitionDataset, labelled_index: torch.Tensor, fraction: float,
                      generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Hold out whole labelled episodes for validation; with a single labelled episode, a random
    ``fraction`` of its transitions (windows still only read that episode)."""
    episode = dataset.episode_of_transitions()[labelled_index]
    episodes = torch.unique(episode)
    if len(episodes) >= 2:
        count = max(1, round(fraction * len(episodes)))
        held_out = episodes[torch.randperm(len(episodes), generator=generator, device=episodes.device)[:count]]
        validation = torch.isin(episode, held_out)
    else:
        order = torch.randperm(len(labelled_index), generator=generator, device=labelled_index.device)
        validation = torch.zeros(len(labelled_index), dtype=torch.bool, device=labelled_index.device)
        validation[order[: max(1, round(fraction * len(labelled_index)))]] = True
    return labelled_index[~validation], labelled_index[validation]


class InverseDynamics:
    """Trains an :class:`InverseDynamicsModel` on a dataset's labelled transitions and labels others."""

    def __init__(self, spec: EnvSpec, settings: IDMSettings, seed: int, device: torch.device) -> None:
        self.spec, self.settings, self.device = spec, settings, device
        self.seed = seed
        with seeded_init(seed):
            self.model = InverseDynamicsModel(spec, settings).to(device)
        self.scaler = None if self.model.discrete else BoxScaler(spec.action_space, device)
        #: the last fit: (update, validation error) at every evaluation; the error of the model kept
        #: (the lowest) and its update.
        self.history: list[tuple[int, float]] = []
        self.validation_error = float("nan")
        self.best_update = 0

    def _targets(self, actions: torch.Tensor) -> torch.Tensor:
        return actions if self.model.discrete else self.scaler.to_unit(actions)

    @torch.no_grad()
    def error(self, dataset: TransitionDataset, index: torch.Tensor, actions: torch.Tensor) -> float:
        """Error rate (discrete) or RMSE in [-1, 1] action units (continuous) of the predictions for
        the transitions ``index`` against ``actions``."""
        predicted = self._predict_unit(dataset, index)
        if self.model.discrete:
            return float((predicted != actions).float().mean())
        return float(((predicted - self._targets(actions)) ** 2).mean().sqrt())

    def _predict_unit(self, dataset: TransitionDataset, index: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
        starts = dataset.episode_starts[dataset.episode_of_transitions()]
        self.model.eval()
        parts = [self.model.predict(observation_windows(dataset, index[i:i + chunk], self.settings.window, starts))
                 for i in range(0, len(index), chunk)]
        self.model.train()
        if parts:
            return torch.cat(parts)
        if self.model.discrete:  # no transitions: no labels, in the shape and type of labels
            return torch.empty(0, dtype=torch.long, device=self.device)
        return torch.empty(0, self.model.action_dim, device=self.device)

    def label(self, dataset: TransitionDataset, index: torch.Tensor) -> torch.Tensor:
        """Proxy actions, in the environment's units, for the transitions ``index``."""
        predicted = self._predict_unit(dataset, index)
        return predicted if self.model.discrete else self.scaler.from_unit(predicted)

    def fit(self, dataset: TransitionDataset, labelled_index: torch.Tensor) -> None:
        """Train on ``labelled_index`` (minus a held-out validation part) and keep the best model."""
        settings = self.settings
        generator = torch.Generator(device=self.device).manual_seed(self.seed)
        train_index, validation_index = _split_validation(dataset, labelled_index, settings.validation_fraction,
                                                          generator)
        self.model.fit_normalizers(dataset)
        starts = dataset.episode_starts[dataset.episode_of_transitions()]
        optimizer = adam(self.model.parameters(), lr=settings.lr)
        validation_actions = dataset.actions[validation_index]
        best_state, best_error = None, float("inf")
        self.history = []
        # Dropout draws its masks from torch's global generator: from the IDM's own seed, in a fork
        # that leaves the caller's (the base algorithm's) random state as it was.
        with torch.random.fork_rng(devices=[], enabled=settings.dropout > 0):
            if settings.dropout > 0:
                torch.manual_seed(self.seed)
            for update in range(1, settings.updates + 1):
                pick = train_index[torch.randint(len(train_index), (settings.batch_size,), generator=generator,
                                                 device=self.device)]
                windows = observation_windows(dataset, pick, settings.window, starts)
                loss = self.model.loss(windows, self._targets(dataset.actions[pick]))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if update % settings.eval_every == 0 or update == settings.updates:
                    error = self.error(dataset, validation_index, validation_actions)
                    self.history.append((update, error))
                    if error < best_error:
                        best_error, best_state, self.best_update = error, copy.deepcopy(self.model.state_dict()), update
        self.model.load_state_dict(best_state)
        self.validation_error = best_error
