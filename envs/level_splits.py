"""Train / val / test level splits for procedurally generated environments ("The Generalization Gap
in Offline RL", Mediratta et al., 2024).

A *level* is what fixes an episode's layout. For a seed-generated Gymnasium environment (MiniGrid,
or any env whose ``reset(seed=...)`` draws the layout) a level is that seed, so a split is a range of
seeds. The wrapper spec is ``levels:split=train`` (short: ``levels:train``), with optional ranges
``train=A-B``, ``val=A-B``, ``test=A-B`` (inclusive). Defaults follow the paper's protocol: train
levels 0-199, val 200-249, and test levels from a far range that no other split touches.

Each reset draws a level uniformly from the split with the wrapper's own generator, which
``reset(seed=s)`` re-seeds, so the same seeds give the same levels. ``info["level"]`` carries the
level of the episode, and datasets record it for every episode.
"""

from __future__ import annotations

import re
from typing import Any

import gymnasium as gym
import numpy as np

from offrl_bench.envs import parse_wrapper_spec

SPLITS = ("train", "val", "test")
DEFAULT_RANGES: dict[str, tuple[int, int]] = {"train": (0, 199), "val": (200, 249), "test": (1_000_000, 1_999_999)}
#: Seeds Gymnasium environments accept, and therefore the valid level ids.
MAX_LEVEL = 2**31 - 1


def parse_range(name: str, value: Any) -> tuple[int, int]:
    """``"0-199"`` -> (0, 199); a single id ``7`` -> (7, 7)."""
    text = str(value).strip()
    low, sep, high = text.partition("-")
    try:
        bounds = (int(low), int(high)) if sep else (int(text), int(text))
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a level range; expected FIRST-LAST, e.g. {name}=0-199") from None
    if not 0 <= bounds[0] <= bounds[1] <= MAX_LEVEL:
        raise ValueError(f"{name}={text} is outside the valid level ids 0-{MAX_LEVEL} (or FIRST > LAST)")
    return bounds


def check_disjoint(ranges: dict[str, tuple[int, int]]) -> None:
    names = sorted(ranges, key=lambda n: ranges[n])
    for first, second in zip(names, names[1:]):
        if ranges[second][0] <= ranges[first][1]:
            raise ValueError(f"level splits {first} ({ranges[first][0]}-{ranges[first][1]}) and {second} "
                             f"({ranges[second][0]}-{ranges[second][1]}) overlap; splits must be disjoint")


class LevelSplit(gym.Wrapper):
    """Resets only into levels of one split; ``info["level"]`` names the level of each episode."""

    def __init__(self, env: gym.Env, split: str, ranges: dict[str, tuple[int, int]] | None = None) -> None:
        super().__init__(env)
        ranges = {**DEFAULT_RANGES, **(ranges or {})}
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; one of: {', '.join(SPLITS)}")
        check_disjoint(ranges)
        self.split = split
        self.ranges = ranges
        self.low, self.high = ranges[split]
        self.level: int | None = None
        self._levels = np.random.default_rng()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._levels = np.random.default_rng(seed)
        self.level = int(self._levels.integers(self.low, self.high, endpoint=True))
        observation, info = self.env.reset(seed=self.level, options=options)
        return observation, {**info, "level": self.level, "level_split": self.split}


def levels(env: gym.Env, *positional: str, split: str | None = None, **ranges: Any) -> LevelSplit:
    """Wrapper factory for ``levels:train`` / ``levels:split=val,val=200-249``."""
    if len(positional) > 1 or (positional and split):
        raise ValueError("give the split once: levels:train or levels:split=train")
    split = split or (positional[0] if positional else None)
    if split is None:
        raise ValueError(f"missing split; levels:SPLIT with SPLIT one of: {', '.join(SPLITS)}")
    unknown = sorted(set(ranges) - set(SPLITS))
    if unknown:
        raise ValueError(f"unknown parameter {unknown[0]!r}; accepted: split, {', '.join(SPLITS)}")
    return LevelSplit(env, str(split), {name: parse_range(name, value) for name, value in ranges.items()})


def split_of(wrapper: str) -> str:
    """The level split a wrapper spec evaluates on (``"train"``...), or ``""`` if it has none."""
    for call in parse_wrapper_spec(wrapper):
        if call.name == "levels":
            return str(call.params.get("split") or (call.args[0] if call.args else ""))
    return ""


_POSITIONAL_SPLIT = re.compile(r"^(\s*levels:)(?:train|val|test)(?=\s*$|:)")
_KEYWORD_SPLIT = re.compile(r"(?<=[:,])split=(?:train|val|test)\b")


def training_wrapper(wrapper: str) -> str:
    """``wrapper`` with its level split replaced by ``train`` (ranges and other wrappers kept): agents
    that learn online train on the train levels and are scored on the split the spec names."""
    parts = wrapper.split("+")
    for i, part in enumerate(parts):
        if part.strip().startswith("levels"):
            parts[i] = _KEYWORD_SPLIT.sub("split=train", _POSITIONAL_SPLIT.sub(r"\1train", part))
    return "+".join(parts)
