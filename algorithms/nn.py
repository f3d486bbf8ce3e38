"""Network pieces shared by the algorithm plugins."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from offrl_bench.core.api import EnvSpec


@contextlib.contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Initialise parameters from ``seed`` without touching the caller's global torch RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Leave ``module``'s parameters out of the autograd graphs built inside the block.

    An actor loss back-propagates through the critic to the actions only; with the critic frozen the
    backward pass skips the critic's weight gradients (a third of its backward matmuls), which the
    critic's next step would discard anyway.
    """
    module.requires_grad_(False)
    try:
        yield
    finally:
        module.requires_grad_(True)


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
        self.shape = space.shape

    def to_unit(self, actions: torch.Tensor) -> torch.Tensor:
        return (2 * (actions - self.low) / (self.high - self.low) - 1).clamp(-1, 1)

    def from_unit(self, unit: torch.Tensor) -> torch.Tensor:
        return self.low + (unit + 1) * (self.high - self.low) / 2

    def to_env(self, unit: torch.Tensor) -> np.ndarray:
        """A batch of unit actions as the environment takes them: (B, *space.shape), on the CPU."""
        return self.from_unit(unit).reshape(len(unit), *self.shape).cpu().numpy()


def as_observation_tensor(observations: np.ndarray, device: torch.device) -> torch.Tensor:
    """Batched vector observations of any shape to a float32 (batch, features) tensor; batched uint8
    images (batch, H, W, C) stay uint8 images, as the encoders take them."""
    if isinstance(observations, np.ndarray) and observations.dtype == np.uint8 and observations.ndim == 4:
        return torch.from_numpy(observations).to(device)
    observations = np.asarray(observations, dtype=np.float32)
    return torch.from_numpy(observations.reshape(len(observations), -1)).to(device)


class FusedMLPEnsemble(nn.Module):
    """``n`` independent MLPs whose layers are stacked to (n, in, out) weights.

    Members run as one batched matmul per layer rather than one kernel per member, except for a
    shared input on a CPU: there the batched kernel must read the input through a stride-0 batch
    view and is the slower one, and one ``addmm`` per member is faster, by 8% for two 256x256
    critics on 256 rows and by 30% on CQL's 7,680 sampled-action rows (forward and backward, one
    thread). Per-member inputs (a dynamics ensemble's bootstrap batches) stay batched on a CPU too,
    where that is 12% faster than the loop (7 members, 4x200, one thread).

    Input (B, in) is shared by all members; (n, B, in) gives each member its own. Output (n, B, out).
    Members are initialised like ``nn.Linear`` (uniform in +-1/sqrt(fan_in)), independently.
    ``dropout`` drops hidden units in training mode (its masks come from torch's global generator).
    """

    def __init__(self, n: int, in_dim: int, out_dim: int, width: int = 256, depth: int = 2,
                 activation: Callable[[torch.Tensor], torch.Tensor] = torch.relu, dropout: float = 0.0) -> None:
        super().__init__()
        self.n = n
        self.activation = activation
        self.dropout = dropout
        dims = [in_dim] + [width] * depth + [out_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(dims[:-1], dims[1:]):
            bound = 1 / np.sqrt(fan_in)
            self.weights.append(nn.Parameter(torch.empty(n, fan_in, fan_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(n, 1, fan_out).uniform_(-bound, bound)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2 and x.device.type == "cpu":
            # unbind, not per-member indexing: its backward stacks the members' gradients in one
            # copy instead of zero-filling a full-size gradient for every member
            weights = [weight.unbind(0) for weight in self.weights]
            biases = [bias.unbind(0) for bias in self.biases]
            return torch.stack([self._mlp(x, [w[m] for w in weights], [b[m] for b in biases])
                                for m in range(self.n)])
        return self.forward_batched(x)

    def forward_batched(self, x: torch.Tensor) -> torch.Tensor:
        """All members in one batched matmul per layer."""
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.n, -1, -1)
        last = len(self.weights) - 1
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(bias, x, weight)
            if i < last:
                x = self._hidden(x)
        return x

    def forward_member(self, x: torch.Tensor, index: int) -> torch.Tensor:
        """Output (B, out) of member ``index`` alone (e.g. TD3's actor loss uses only the first critic)."""
        return self._mlp(x, [weight[index] for weight in self.weights], [bias[index] for bias in self.biases])

    def _mlp(self, x: torch.Tensor, weights: list[torch.Tensor], biases: list[torch.Tensor]) -> torch.Tensor:
        last = len(weights) - 1
        for i, (weight, bias) in enumerate(zip(weights, biases)):
            x = torch.addmm(bias, x, weight)
            if i < last:
                x = self._hidden(x)
        return x

    def _hidden(self, x: torch.Tensor) -> torch.Tensor:
        x = self.activation(x)
        return F.dropout(x, self.dropout, training=True) if self.dropout and self.training else x


def state_action_values(critic: FusedMLPEnsemble, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Q(s, a) of every member of a continuous-action critic ensemble: (n, B)."""
    return critic(torch.cat([observations, actions], dim=-1)).squeeze(-1)


def adam(parameters, lr: float) -> torch.optim.Adam:
    """Adam with the fused multi-tensor kernel: one pass over all parameters per step."""
    return torch.optim.Adam(parameters, lr=lr, fused=True)


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging target <- (1 - tau) target + tau source, as one fused foreach kernel."""
    with torch.no_grad():
        torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)


class ObservationNormalizer(nn.Module):
    """Per-feature standardisation with the dataset's statistics (TD3+BC's state normalisation);
    the identity when ``enabled`` is False."""

    def __init__(self, dim: int, enabled: bool = True) -> None:
        super().__init__()
        self.enabled = enabled
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def fit(self, observations: torch.Tensor, eps: float = 1e-3) -> None:
        if self.enabled:
            observations = observations.to(self.mean.device)
            self.mean.copy_(observations.mean(0))
            # A dataset of one transition has no spread: its std is 0, not the NaN of a sample std.
            self.std.copy_(observations.std(0, correction=int(len(observations) > 1)) + eps)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        if not self.enabled:  # images, which reach the encoder as uint8
            return observations
        return (observations - self.mean) / self.std


class TanhGaussianActor(nn.Module):
    """State-dependent Gaussian squashed by tanh (SAC, CQL); actions in [-1, 1]."""

    def __init__(self, obs_dim: int, action_dim: int, width: int = 256, depth: int = 2,
                 log_std_range: tuple[float, float] = (-20.0, 2.0)) -> None:
        super().__init__()
        self.net = mlp(obs_dim, 2 * action_dim, width, depth)
        self.log_std_range = log_std_range

    def forward(self, observations: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Sampled (reparameterised) unit action and its log-probability (with the tanh correction)."""
        mean, log_std = self.net(observations).chunk(2, dim=-1)
        log_std = log_std.clamp(*self.log_std_range)
        pre_tanh = mean if deterministic else mean + log_std.exp() * torch.randn_like(mean)
        log_prob = torch.distributions.Normal(mean, log_std.exp()).log_prob(pre_tanh).sum(-1)
        log_prob = log_prob - (2 * (np.log(2) - pre_tanh - F.softplus(-2 * pre_tanh))).sum(-1)
        return torch.tanh(pre_tanh), log_prob


class CheckpointedAttributes:
    """Mixin implementing ``state_dict``/``load_state_dict`` over the attributes named in
    ``checkpointed``: modules and optimisers through their own state dicts, random generators through
    their states, plain values as they are.
    List it before :class:`~offrl_bench.core.api.OfflineAlgorithm` in the bases."""

    checkpointed: tuple[str, ...] = ()

    def state_dict(self) -> dict:
        state = {}
        for name in self.checkpointed:
            value = getattr(self, name)
            if hasattr(value, "state_dict"):
                value = value.state_dict()
            elif isinstance(value, torch.Tensor):
                value = value.detach().clone()
            elif isinstance(value, torch.Generator):
                value = value.get_state()
            state[name] = value
        return state

    def load_state_dict(self, state: dict) -> None:
        for name in self.checkpointed:
            current = getattr(self, name)
            if hasattr(current, "load_state_dict"):
                current.load_state_dict(state[name])
            elif isinstance(current, torch.Tensor):  # e.g. a bare nn.Parameter an optimiser holds: in place
                with torch.no_grad():
                    current.copy_(state[name])
            elif isinstance(current, torch.Generator):
                current.set_state(state[name].cpu())
            else:
                setattr(self, name, state[name])


def _image_batch(images: torch.Tensor, scale: float) -> torch.Tensor:
    """(B, H, W, C) images, channels last as Gymnasium gives them, to float (B, C, H, W) in [0, 1]."""
    return images.permute(0, 3, 1, 2).float() * scale


class NatureDQNEncoder(nn.Module):
    """The convolutional torso of Nature DQN (Mnih et al., 2015): 32 8x8/4, 64 4x4/2, 64 3x3/1 and a
    512-unit linear layer, for Atari's 84x84 frames (the stacked frames are the channels)."""

    def __init__(self, shape: tuple[int, int, int], scale: float, features: int = 512) -> None:
        super().__init__()
        height, width, channels = shape
        self.scale, self.features = scale, features
        self.convs = nn.Sequential(
            nn.Conv2d(channels, 32, 8, stride=4), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(), nn.Flatten(),
        )
        self.linear = nn.Sequential(nn.Linear(_flat_size(self.convs, channels, height, width), features), nn.ReLU())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.linear(self.convs(_image_batch(images, self.scale)))


class MinAtarEncoder(nn.Module):
    """The network of MinAtar's DQN baseline (Young & Tian, 2019): one 3x3 convolution with 16
    filters (stride 1) and a 128-unit linear layer, for 10x10 grids with one channel per object kind;
    also the default for other small grids."""

    def __init__(self, shape: tuple[int, int, int], scale: float, features: int = 128) -> None:
        super().__init__()
        height, width, channels = shape
        self.scale, self.features = scale, features
        self.convs = nn.Sequential(nn.Conv2d(channels, 16, 3, stride=1), nn.ReLU(), nn.Flatten())
        self.linear = nn.Sequential(nn.Linear(_flat_size(self.convs, channels, height, width), features), nn.ReLU())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.linear(self.convs(_image_batch(images, self.scale)))


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv1(F.relu(self.conv0(F.relu(x))))


class ImpalaEncoder(nn.Module):
    """The IMPALA ResNet (Espeholt et al., 2018) as the Procgen papers use it: three stacks of a 3x3
    convolution, a 3x3 max-pool of stride 2 and two residual blocks, with 16, 32 and 32 channels, then a
    256-unit linear layer (64x64 frames: an 8x8x32 map)."""

    def __init__(self, shape: tuple[int, int, int], scale: float, features: int = 256,
                 channels: tuple[int, ...] = (16, 32, 32)) -> None:
        super().__init__()
        height, width, in_channels = shape
        self.scale, self.features = scale, features
        layers: list[nn.Module] = []
        for out_channels in channels:
            layers += [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.MaxPool2d(3, stride=2, padding=1),
                       _ResidualBlock(out_channels), _ResidualBlock(out_channels)]
            in_channels = out_channels
        self.convs = nn.Sequential(*layers, nn.ReLU(), nn.Flatten())
        self.linear = nn.Sequential(nn.Linear(_flat_size(self.convs, shape[2], height, width), features), nn.ReLU())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.linear(self.convs(_image_batch(images, self.scale)))


def _flat_size(convs: nn.Module, channels: int, height: int, width: int) -> int:
    with torch.no_grad():
        return int(convs(torch.zeros(1, channels, height, width)).shape[1])


#: The image encoders ``--set encoder=NAME`` selects; ``auto`` picks one from the frame size.
ENCODERS: dict[str, type[nn.Module]] = {"nature": NatureDQNEncoder, "minatar": MinAtarEncoder,
                                        "impala": ImpalaEncoder}
ENCODER_CHOICES = ("auto", *ENCODERS)


def check_encoder(name: str) -> None:
    """Refuse an unknown ``encoder`` setting with the accepted names (config validation)."""
    if name not in ENCODER_CHOICES:
        raise ValueError(f"unknown encoder '{name}'; one of: {', '.join(ENCODER_CHOICES)}")


def encoder_for_shape(shape: tuple[int, ...]) -> str:
    """``auto``'s choice: MinAtar's net for small grids (under 36 pixels a side, where Nature DQN's
    8x8/4 and 4x4/2 strides leave no map), the IMPALA ResNet for Procgen's 64x64 frames, Nature DQN
    otherwise (Atari's 84x84)."""
    height, width = shape[:2]
    if min(height, width) < 36:
        return "minatar"
    return "impala" if (height, width) == (64, 64) else "nature"


def make_encoder(space: gym.spaces.Box, name: str = "auto", channels: int | None = None) -> nn.Module:
    """The encoder of image observations from ``space`` (channels last); ``channels`` overrides the
    space's (frames stacked as channels). uint8 pixels are scaled by 1 / the space's high (255 for
    Atari and Procgen, 1 for MinAtar's 0/1 grids)."""
    check_encoder(name)
    height, width, space_channels = space.shape
    shape = (height, width, channels or space_channels)
    scale = 1.0 / float(np.max(space.high)) if np.max(space.high) > 0 else 1.0
    return ENCODERS[encoder_for_shape(shape) if name == "auto" else name](shape, scale)


class EncodedNetwork(nn.Module):
    """``head(encoder(images))`` for images with any leading dimensions: (..., H, W, C) -> head's output.
    One encoder feeds all of an ensemble head's members (the twin critics of DrQ and of the authors'
    discrete BCQ share their convolutions the same way)."""

    def __init__(self, encoder: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        leading = images.shape[:-3]
        features = self.encoder(images.reshape(-1, *images.shape[-3:]))
        return self.head(features.reshape(*leading, -1))


def network_for(spec: EnvSpec, encoder: str, head: Callable[[int], nn.Module]) -> nn.Module:
    """``head(observation_dim)`` for vector observations; for images, ``head(features)`` behind a new
    encoder chosen by :func:`make_encoder` (``encoder`` is the algorithm's ``encoder`` setting)."""
    if not spec.image_observations:
        return head(spec.observation_dim)
    torso = make_encoder(spec.observation_space, encoder)
    return EncodedNetwork(torso, head(torso.features))
