"""Public plugin API: the base classes and dataclasses every algorithm plugin relies on.

A third-party algorithm subclasses :class:`OfflineAlgorithm`, declares a config dataclass and
registers the class under the ``offrl_bench.algorithms`` entry-point group. The runner only ever
talks to algorithms through this interface.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import gymnasium as gym
import numpy as np
import torch

if TYPE_CHECKING:
    from offrl_bench.data.datasets import TransitionDataset

ActionKind = Literal["discrete", "continuous"]
Paradigm = Literal["offline", "online", "offline-to-online"]


def action_kind(space: gym.spaces.Space) -> ActionKind:
    """``"discrete"`` for a Discrete action space, ``"continuous"`` otherwise."""
    return "discrete" if isinstance(space, gym.spaces.Discrete) else "continuous"


def is_image_space(space: gym.spaces.Space) -> bool:
    """Image observations: a uint8 Box of shape (H, W, C), channels last (stacked frames are
    channels). Algorithms pass them through a convolutional encoder; every other Box is a vector."""
    return isinstance(space, gym.spaces.Box) and len(space.shape) == 3 and space.dtype == np.uint8


@dataclass(frozen=True)
class EnvSpec:
    """What an algorithm needs to know about the environment it is built for."""

    observation_space: gym.spaces.Box
    action_space: gym.spaces.Space
    env_id: str = ""
    wrapper: str = ""

    @property
    def action_kind(self) -> ActionKind:
        return action_kind(self.action_space)

    @property
    def image_observations(self) -> bool:
        return is_image_space(self.observation_space)

    @property
    def observation_dim(self) -> int:
        return int(np.prod(self.observation_space.shape))

    @property
    def action_dim(self) -> int:
        """Number of discrete actions, or the size of a continuous action vector."""
        if isinstance(self.action_space, gym.spaces.Discrete):
            return int(self.action_space.n)
        return int(np.prod(self.action_space.shape))


@dataclass
class Batch:
    """A minibatch of transitions; every field is a tensor whose first dimension is the batch.

    ``actions`` is int64 of shape (B,) for discrete action spaces and float32 (B, action_dim)
    for continuous ones. ``terminals`` is 1.0 where the episode truly ended (not a time-limit cut).
    """

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_observations: torch.Tensor
    terminals: torch.Tensor

    def __len__(self) -> int:
        return int(self.observations.shape[0])


class Algorithm(abc.ABC):
    """Common base of every algorithm plugin.

    Subclasses set the class attributes below and implement :meth:`act`, :meth:`state_dict`
    and :meth:`load_state_dict`. ``config_class`` must be a dataclass; each of its fields can be
    set from the command line with ``--set field=value``.
    """

    name: ClassVar[str]
    action_spaces: ClassVar[tuple[ActionKind, ...]] = ("discrete", "continuous")
    paradigm: ClassVar[Paradigm] = "offline"
    needs_actions: ClassVar[bool] = True  # False: can learn from action-free trajectories
    #: The action spaces with which the algorithm also takes image observations (uint8 (H, W, C), see
    #: :func:`is_image_space`), through an encoder; empty: vector observations only.
    image_action_spaces: ClassVar[tuple[ActionKind, ...]] = ()
    config_class: ClassVar[type]
    #: True for policies that condition on the episode so far (e.g. Decision Transformer). Evaluation
    #: then calls start_episode(slot) when an environment slot begins an episode, act(observations,
    #: slots) with the slot of every row, and observe_rewards(slots, rewards) after every step.
    episodic: ClassVar[bool] = False

    def __new__(cls, spec: EnvSpec | None = None, config: Any = None, seed: int = 0, device: str = "cpu",
                *args: Any, **kwargs: Any):
        # The attributes the core reads are set here, before any __init__ runs, so that a subclass
        # whose __init__ forgets super().__init__(spec, config, seed, device) still works. (No
        # arguments: copy or unpickle, which restore the attributes themselves.)
        algorithm = super().__new__(cls)
        if spec is not None:
            for name, value in (("spec", spec), ("config", config), ("seed", seed), ("device", torch.device(device))):
                object.__setattr__(algorithm, name, value)
        return algorithm

    def __init__(self, spec: EnvSpec, config: Any, seed: int, device: str = "cpu") -> None:
        self.spec = spec
        self.config = config
        self.seed = seed
        self.device = torch.device(device)

    @classmethod
    def supported_action_spaces(cls, config: Any) -> tuple[ActionKind, ...]:
        """The action spaces this algorithm supports with ``config``; meta-algorithms inherit their
        base algorithm's. Default: :attr:`action_spaces`."""
        return cls.action_spaces

    @classmethod
    def supported_image_action_spaces(cls, config: Any) -> tuple[ActionKind, ...]:
        """The action spaces with which this algorithm takes images with ``config``; meta-algorithms
        inherit their base algorithm's. Default: :attr:`image_action_spaces`."""
        return cls.image_action_spaces

    @classmethod
    def check_dataset(cls, config: Any, episodes: int) -> None:
        """Refuse a config the dataset cannot serve (e.g. more demonstrations than it has episodes) by
        raising ``ValueError`` with a one-line reason. ``preflight`` calls it before any run starts,
        so the mistake is a usage error rather than a failed run. Default: accept."""

    @classmethod
    def leaderboard_name(cls, config: Any) -> str:
        """The ``algorithm`` column of this algorithm's leaderboard rows for ``config``. Meta-algorithms
        name their variants here (e.g. ``ssorl(iql)``) so that differently configured runs get rows
        of their own."""
        return cls.name

    @classmethod
    def replay_budget(cls, config: Any, action_kind: ActionKind, budget: int) -> int:
        """Updates (online: environment steps) after which every periodic event of training has
        happened at least once: target copies, delayed actor updates, model rollouts, warm-ups. The
        traced replay that records a published row's executed code (:mod:`offrl_bench.trust.replay`) runs
        this many, then one evaluation. Default: all of ``budget``, so that a plugin that does not
        say is replayed in full."""
        return budget

    @classmethod
    def leaderboard_columns(cls, config: Any) -> dict[str, Any]:
        """Extra leaderboard columns (e.g. ``label_fraction``) for runs with ``config``; rows are
        also kept apart by their values. Default: none."""
        return {}

    @abc.abstractmethod
    def act(self, observations: np.ndarray) -> np.ndarray:
        """Deterministic actions for a batch of observations (first dimension = batch). Episodic
        algorithms also receive ``slots``, the environment slot of each row."""

    def start_episode(self, slot: int) -> None:
        """Episodic algorithms: environment ``slot`` starts a new episode (forget its history)."""

    def observe_rewards(self, slots: list[int], rewards: np.ndarray) -> None:
        """Episodic algorithms: the rewards the last actions of ``slots`` received."""

    @abc.abstractmethod
    def state_dict(self) -> dict:
        """Everything needed to continue training bit-for-bit: weights, optimisers, RNG states."""

    @abc.abstractmethod
    def load_state_dict(self, state: dict) -> None: ...

    def policy_state_dict(self) -> dict:
        """What :meth:`act` needs, loadable by :meth:`load_state_dict` into a fresh instance: the
        runner keeps one per evaluation for offline policy selection. Default: :meth:`state_dict`;
        override it when that carries large training-only state (a replay buffer)."""
        return self.state_dict()


class OfflineAlgorithm(Algorithm):
    """An algorithm trained by gradient updates on batches sampled from a fixed dataset.

    The runner seeds torch's global RNG from the run's seed and saves/restores it with every
    checkpoint, so algorithms may draw their noise from it (``torch.randn`` etc.).
    """

    paradigm: ClassVar[Paradigm] = "offline"
    #: False for baselines that have nothing to learn (e.g. ``random``): the runner then skips
    #: the update loop and only evaluates.
    trains: ClassVar[bool] = True

    def sample(self, dataset: TransitionDataset, batch_size: int, generator: torch.Generator) -> Any:
        """The batch :meth:`update` trains on; by default ``batch_size`` uniformly drawn transitions.
        Sequence models override it (and then receive their own batch type in ``update``)."""
        return dataset.sample(batch_size, generator)

    def setup(self, dataset: TransitionDataset) -> None:
        """Called with the whole dataset once before training (and again before a resumed run
        continues), e.g. to compute observation statistics. Must be deterministic. Default: nothing."""

    @abc.abstractmethod
    def update(self, batch: Batch) -> dict[str, float]:
        """One gradient step on ``batch``; returns scalar losses/diagnostics by name."""


class OnlineAlgorithm(Algorithm):
    """An algorithm that learns by acting in environments, optionally warm-started from the run's
    dataset (offline-to-online). Its budget is counted in environment steps.

    The runner calls :meth:`learn` once per stretch between evaluations / checkpoints. Each call
    builds fresh environments and seeds every random source from ``seed``, so a run resumed from a
    checkpoint between two calls continues exactly as an uninterrupted one; the cost is that an
    episode still running at the end of a call is cut there (the next call resets).
    """

    paradigm: ClassVar[Paradigm] = "online"
    needs_actions: ClassVar[bool] = False  # a pure online algorithm ignores the dataset's transitions

    def setup(self, dataset: TransitionDataset) -> None:
        """Called with the run's dataset before learning (and again before a resumed run continues).
        The dataset names the task (environment, reference scores); offline-to-online algorithms
        also learn from its transitions. Must be cheap and deterministic. Default: nothing."""

    @abc.abstractmethod
    def learn(self, env_fn: Callable[[], gym.Env], steps: int, seed: int,
              total_steps: int) -> tuple[int, dict[str, float]]:
        """Train for about ``steps`` more environment steps in environments made by ``env_fn``,
        drawing all randomness from ``seed``. ``total_steps`` is the run's whole budget (for
        schedules). Returns the environment steps actually taken (algorithms that collect fixed-size
        rollouts may overshoot) and diagnostics by name."""

    def log_to_tensorboard(self, log_dir: Path, purge_step: int | None) -> None:
        """Called before training when the run logs to TensorBoard (``run --logger tensorboard``):
        a plugin with its own TensorBoard output writes it to ``log_dir``, marking events from
        ``purge_step`` on (those past the checkpoint a resumed run continues from) as stale.
        Default: nothing; the runner logs every evaluation there itself."""
