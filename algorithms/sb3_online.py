"""Online baselines: Stable-Baselines3's PPO, DQN and SAC as plugins with an environment-step budget.

The runner trains them in stretches between evaluations (``learn(steps)``), evaluates them with the
same seeded episodes as offline agents and records them on the same leaderboard. The run's dataset
only names the task (environment and reference scores); its transitions are not used. Under a
level-split wrapper they train on the train levels and are scored on the wrapper's split.

Image observations go through SB3's ``CnnPolicy`` with one of ``algorithms/nn.py``'s encoders as its
features extractor (:class:`EncoderFeatures`), chosen from the frame size as the offline learners
choose theirs (``--set encoder=NAME`` overrides it): SB3's own Nature CNN needs frames of 36 pixels a
side or more, and MinAtar's are 10x10.

Exact resume: every :meth:`SB3Algorithm.learn` call builds fresh environments and seeds Python,
NumPy, torch, the action space and the environments from its ``seed``; the checkpoint holds the
SB3 model (weights, optimisers, counters, schedules) and, for off-policy methods, the replay buffer.
"""

from __future__ import annotations

import abc
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import DQN, PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import KVWriter, Logger, TensorBoardOutputFormat
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import DummyVecEnv

from offrl_bench.algorithms.nn import check_encoder, make_encoder
from offrl_bench.core.api import EnvSpec, OnlineAlgorithm
from offrl_bench.core.config import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, UnitFloat


@dataclass
class EncoderSetting:
    encoder: str = "auto"  # image observations: auto, nature, minatar or impala (algorithms/nn.py)

    def __post_init__(self) -> None:
        check_encoder(self.encoder)


@dataclass
class PPOConfig(EncoderSetting):
    # rl-baselines3-zoo's MiniGrid PPO with larger rollouts and fewer epochs (the recipe that trains
    # this project's MiniGrid behaviour policies in CPU minutes); SB3's 64x64 tanh MLPs.
    n_envs: PositiveInt = 8
    n_steps: PositiveInt = 256  # per environment and rollout
    batch_size: PositiveInt = 256
    n_epochs: PositiveInt = 4
    lr: PositiveFloat = 7e-4
    gamma: UnitFloat = 0.99
    gae_lambda: UnitFloat = 0.95
    clip_range: PositiveFloat = 0.2
    ent_coef: NonNegativeFloat = 0.01
    width: PositiveInt = 64
    depth: PositiveInt = 2


@dataclass
class DQNConfig(EncoderSetting):
    # rl-baselines3-zoo, CartPole-v1.
    lr: PositiveFloat = 2.3e-3
    batch_size: PositiveInt = 64
    buffer_size: PositiveInt = 100_000
    learning_starts: NonNegativeInt = 1_000
    gamma: UnitFloat = 0.99
    target_update_interval: PositiveInt = 10
    train_freq: PositiveInt = 256
    gradient_steps: PositiveInt = 128
    exploration_fraction: UnitFloat = 0.16
    exploration_final_eps: UnitFloat = 0.04
    width: PositiveInt = 256
    depth: PositiveInt = 2


@dataclass
class SACConfig(EncoderSetting):
    # rl-baselines3-zoo, Pendulum-v1 (learning rate 1e-3, otherwise SB3's defaults), with the 64x64
    # networks of this project's Pendulum behaviour policy and a replay buffer sized for CPU budgets.
    lr: PositiveFloat = 1e-3
    batch_size: PositiveInt = 256
    buffer_size: PositiveInt = 100_000
    learning_starts: NonNegativeInt = 100
    gamma: UnitFloat = 0.99
    tau: UnitFloat = 0.005
    width: PositiveInt = 64
    depth: PositiveInt = 2


class _LastValues(KVWriter):
    """Keeps the last value SB3 logged under each ``train/`` and ``rollout/`` key."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, Any], step: int = 0) -> None:
        for key, value in key_values.items():
            if key.startswith(("train/", "rollout/")) and isinstance(value, (int, float, np.number)):
                self.values[key.split("/", 1)[1]] = float(value)


class _ResumableTensorBoard(TensorBoardOutputFormat):
    """SB3's TensorBoard output, with a purge step: a resumed run's readers drop the events past the
    checkpoint it continues from (they are logged again, identically)."""

    def __init__(self, folder: Path, purge_step: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(folder), purge_step=purge_step)
        self._is_closed = False


class _WholeRunSchedule(BaseCallback):
    """``learn`` runs once per stretch of the budget; SB3 would spread its schedules (learning rate,
    exploration) over that stretch alone. This stretches them over the whole run again."""

    def __init__(self, total_steps: int) -> None:
        super().__init__()
        self.total_steps = total_steps

    def _on_training_start(self) -> None:
        self.model._total_timesteps = self.total_steps

    def _on_step(self) -> bool:
        return True


class _SpacesOnly(gym.Env):
    """Gives SB3 the spaces to build a model before any real environment exists."""

    def __init__(self, spec: EnvSpec) -> None:
        self.observation_space, self.action_space = spec.observation_space, spec.action_space

    def reset(self, *, seed=None, options=None):
        raise RuntimeError("placeholder environment: learn() supplies the real ones")

    def step(self, action):
        raise RuntimeError("placeholder environment: learn() supplies the real ones")


class EncoderFeatures(BaseFeaturesExtractor):
    """An ``algorithms/nn.py`` image encoder as SB3's features extractor. SB3 moves the channels of
    0-255 images first (``VecTransposeImage``) and leaves other uint8 grids as they are (MinAtar's
    0/1 ones); the encoders take channels last, so a transposed batch is moved back. The encoder
    scales the pixels itself: the policy is built with ``normalize_images=False``."""

    def __init__(self, observation_space: gym.spaces.Box, image_space: gym.spaces.Box, encoder: str) -> None:
        torso = make_encoder(image_space, encoder)
        super().__init__(observation_space, torso.features)
        self.encoder = torso
        self.channels_first = observation_space.shape != image_space.shape

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.encoder(observations.permute(0, 2, 3, 1) if self.channels_first else observations)


class SB3Algorithm(OnlineAlgorithm):
    """One Stable-Baselines3 algorithm behind the plugin API; subclasses name it and map their config."""

    sb3_class: ClassVar[type[BaseAlgorithm]]

    def __init__(self, spec: EnvSpec, config: Any, seed: int, device: str = "cpu") -> None:
        super().__init__(spec, config, seed, device)
        policy_kwargs: dict[str, Any] = {"net_arch": [config.width] * config.depth}
        if spec.image_observations:
            policy_kwargs.update(features_extractor_class=EncoderFeatures, normalize_images=False,
                                 features_extractor_kwargs={"image_space": spec.observation_space,
                                                            "encoder": config.encoder})
        self.model = self.sb3_class("CnnPolicy" if spec.image_observations else "MlpPolicy", self._placeholder_envs(),
                                    seed=seed, device=self.device, verbose=0, policy_kwargs=policy_kwargs,
                                    **self.sb3_kwargs())
        self.tensorboard: TensorBoardOutputFormat | None = None

    def log_to_tensorboard(self, log_dir: Path, purge_step: int | None) -> None:
        self.tensorboard = _ResumableTensorBoard(log_dir, purge_step)

    @abc.abstractmethod
    def sb3_kwargs(self) -> dict[str, Any]:
        """The SB3 constructor's keyword arguments for :attr:`config` (besides the network)."""

    @property
    def n_envs(self) -> int:
        return getattr(self.config, "n_envs", 1)

    def _placeholder_envs(self) -> DummyVecEnv:
        return DummyVecEnv([lambda: _SpacesOnly(self.spec)] * self.n_envs)

    def learn(self, env_fn: Callable[[], gym.Env], steps: int, seed: int,
              total_steps: int) -> tuple[int, dict[str, float]]:
        envs = make_vec_env(env_fn, n_envs=self.n_envs, seed=seed)
        self.model.set_env(envs)  # also forgets the last observation: the new environments reset
        self.model.set_random_seed(seed)  # Python, NumPy and torch RNGs, action space, environments
        writer = _LastValues()
        self.model.set_logger(Logger(folder=None, output_formats=[writer, *filter(None, [self.tensorboard])]))
        before = self.model.num_timesteps
        try:
            self.model.learn(steps, reset_num_timesteps=False, callback=_WholeRunSchedule(total_steps))
            self.model.logger.dump(self.model.num_timesteps)
        finally:
            envs.close()
        return self.model.num_timesteps - before, writer.values

    def act(self, observations: np.ndarray) -> np.ndarray:
        actions, _ = self.model.policy.predict(observations, deterministic=True)
        return actions

    def policy_state_dict(self) -> dict:
        model = io.BytesIO()
        self.model.save(model)
        return {"model": model.getvalue()}

    def state_dict(self) -> dict:
        state = self.policy_state_dict()
        if isinstance(self.model, OffPolicyAlgorithm):
            replay = io.BytesIO()
            self.model.save_replay_buffer(replay)
            state["replay_buffer"] = replay.getvalue()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.model = self.sb3_class.load(io.BytesIO(state["model"]), env=self._placeholder_envs(), device=self.device)
        if "replay_buffer" in state:
            self.model.load_replay_buffer(io.BytesIO(state["replay_buffer"]))


class PPOAlgorithm(SB3Algorithm):
    name = "ppo"
    action_spaces = image_action_spaces = ("discrete", "continuous")
    config_class = PPOConfig
    sb3_class = PPO

    @classmethod
    def replay_budget(cls, config: PPOConfig, action_kind: str, budget: int) -> int:
        return min(budget, 2 * config.n_envs * config.n_steps)  # past two rollouts and their updates

    def sb3_kwargs(self) -> dict[str, Any]:
        c = self.config
        return dict(n_steps=c.n_steps, batch_size=c.batch_size, n_epochs=c.n_epochs, learning_rate=c.lr,
                    gamma=c.gamma, gae_lambda=c.gae_lambda, clip_range=c.clip_range, ent_coef=c.ent_coef)


class DQNAlgorithm(SB3Algorithm):
    name = "dqn"
    action_spaces = image_action_spaces = ("discrete",)
    config_class = DQNConfig
    sb3_class = DQN

    @classmethod
    def replay_budget(cls, config: DQNConfig, action_kind: str, budget: int) -> int:
        return min(budget, config.learning_starts + 2 * config.train_freq)  # past two training rounds

    def sb3_kwargs(self) -> dict[str, Any]:
        c = self.config
        return dict(learning_rate=c.lr, batch_size=c.batch_size, buffer_size=c.buffer_size,
                    learning_starts=c.learning_starts, gamma=c.gamma, target_update_interval=c.target_update_interval,
                    train_freq=c.train_freq, gradient_steps=c.gradient_steps,
                    exploration_fraction=c.exploration_fraction, exploration_final_eps=c.exploration_final_eps)


class SACAlgorithm(SB3Algorithm):
    name = "sac"
    action_spaces = image_action_spaces = ("continuous",)
    config_class = SACConfig
    sb3_class = SAC

    @classmethod
    def replay_budget(cls, config: SACConfig, action_kind: str, budget: int) -> int:
        return min(budget, config.learning_starts + 2)  # past the first gradient steps

    def sb3_kwargs(self) -> dict[str, Any]:
        c = self.config
        return dict(learning_rate=c.lr, batch_size=c.batch_size, buffer_size=c.buffer_size,
                    learning_starts=c.learning_starts, gamma=c.gamma, tau=c.tau)
