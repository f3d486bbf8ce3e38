"""Procgen games as Gymnasium environments whose ``reset(seed=level)`` plays exactly that level.

Procgen's PyPI build (``procgen-mirror``) declares gym, gym3 and numpy<2, which conflict with this
project's numpy-2 stack, so it is installed without its dependencies (see the README). Its gym3
interface works with numpy 2; its gym adapter's seeding does not, so this module drives gym3
directly: ``ProcgenGym3Env(num=1, env_name, num_levels=1, start_level=level, distribution_mode,
rand_seed=level)`` is one fixed level. Importing this module registers ``procgen/<game>-v0`` for the
16 games, in the ``easy`` distribution mode of the generalization-gap paper.

gym3 starts the next episode by itself when one ends; the step that ends an episode is reported
as terminated (Procgen's own time limits included, as the paper treats them).
"""

from __future__ import annotations

import hashlib

import gymnasium as gym
import numpy as np
from procgen import ProcgenGym3Env  # an ImportError here becomes make_env's 'needs the procgen extra'

GAMES = ("bigfish", "bossfight", "caveflyer", "chaser", "climber", "coinrun", "dodgeball", "fruitbot", "heist",
         "jumper", "leaper", "maze", "miner", "ninja", "plunder", "starpilot")

#: Min-max normalisation ranges of the ``easy`` mode (Cobbe et al., 2020), used by the paper.
EASY_SCORE_RANGES: dict[str, tuple[float, float]] = {
    "bigfish": (1.0, 40.0), "bossfight": (0.5, 13.0), "caveflyer": (3.5, 12.0), "chaser": (0.5, 13.0),
    "climber": (2.0, 12.6), "coinrun": (5.0, 10.0), "dodgeball": (1.5, 19.0), "fruitbot": (-1.5, 32.4),
    "heist": (3.5, 10.0), "jumper": (3.0, 10.0), "leaper": (3.0, 10.0), "maze": (5.0, 10.0),
    "miner": (1.5, 13.0), "ninja": (3.5, 10.0), "plunder": (4.5, 30.0), "starpilot": (2.5, 64.0),
}


class ProcgenLevelEnv(gym.Env):
    """One Procgen game; the seed given to ``reset`` is the level played (64x64 RGB, 15 actions)."""

    metadata = {"render_modes": []}

    def __init__(self, game: str, distribution_mode: str = "easy") -> None:
        if game not in GAMES:
            raise ValueError(f"unknown Procgen game {game!r}; one of: {', '.join(GAMES)}")
        self.game, self.distribution_mode = game, distribution_mode
        self.observation_space = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(15)
        self._env = None
        self._first_frame: bytes | None = None

    def level_fingerprint(self) -> str | None:
        """What the agent is shown of the level it was reset into: a hash of the first frame
        (the level-split wrapper keeps test levels whose first frame a train level shows out)."""
        return hashlib.sha1(self._first_frame).hexdigest()[:16] if self._first_frame is not None else None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        level = int(seed if seed is not None else self.np_random.integers(0, 2**31 - 1))
        self._env = ProcgenGym3Env(num=1, env_name=self.game, num_levels=1, start_level=level,
                                   distribution_mode=self.distribution_mode, rand_seed=level)
        _, observation, _ = self._env.observe()
        self._first_frame = observation["rgb"][0].tobytes()
        return observation["rgb"][0], {"level": level}

    def step(self, action):
        self._env.act(np.array([int(action)], dtype=np.int32))
        reward, observation, first = self._env.observe()
        info = self._env.get_info()[0]
        return observation["rgb"][0], float(reward[0]), bool(first[0]), False, {
            "level_complete": bool(info.get("prev_level_complete", 0))}


for _game in GAMES:
    gym.register(f"procgen/{_game}-v0", entry_point=ProcgenLevelEnv, kwargs={"game": _game})
