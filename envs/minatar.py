"""MinAtar (Young & Tian, 2019): five Atari games on 10x10 grids with one channel per object kind,
the CPU-scale stand-in for Atari frames.

Importing this module registers MinAtar's Gymnasium ids (``MinAtar/Breakout-v1`` etc.; v1 has the
game's minimal action set, v0 all six actions). :func:`adapt` makes the observations uint8 images
(0/1, channels last, as the encoders take them; MinAtar gives bool) and adds a time limit, since
Breakout and SpaceInvaders never end for an agent that does not lose. MinAtar's own settings stay:
sticky actions with probability 0.1 and difficulty ramping. Episodes are reproducible because
``reset(seed=...)`` reseeds the game's own NumPy generator (MinAtar uses no global RNG).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from minatar import gym as minatar_gym  # an ImportError here becomes make_env's install hint

GAMES = ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")
#: Steps after which an episode is truncated: Freeway's own length (2,500 frames), the one MinAtar
#: game with a fixed length, applied to all.
MAX_EPISODE_STEPS = 2_500

if "MinAtar/Breakout-v1" not in gym.registry:
    minatar_gym.register_envs()


class _Uint8Grid(gym.ObservationWrapper):
    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.observation_space = gym.spaces.Box(0, 1, env.observation_space.shape, dtype=np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation.astype(np.uint8)


def adapt(env: gym.Env) -> gym.Env:
    """A MinAtar environment with uint8 0/1 grid observations and a time limit."""
    return gym.wrappers.TimeLimit(_Uint8Grid(env), MAX_EPISODE_STEPS)
