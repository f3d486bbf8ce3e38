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

Disjoint ids are not disjoint levels: MiniGrid-DoorKey-5x5 draws only 48 layouts, so nearly every
test id repeats a train layout. Where the environment can *fingerprint* what a level shows
(:func:`level_fingerprint`: MiniGrid's grid encoding with the agent's position and direction, or an
env's own ``level_fingerprint()`` method), val levels skip every id whose fingerprint occurs among the
train levels, and test levels every id whose fingerprint occurs among the train or val levels. A
split whose range holds too few unseen layouts for that is refused with the numbers. Environments
without a fingerprint (Procgen, whose level seeds generate distinct levels) keep the id split.
``info["level_fingerprint"]`` carries the fingerprint of the episode's level.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import gymnasium as gym
import numpy as np

from offrl_bench.envs import parse_wrapper_spec

SPLITS = ("train", "val", "test")
DEFAULT_RANGES: dict[str, tuple[int, int]] = {"train": (0, 199), "val": (200, 249), "test": (1_000_000, 1_999_999)}
#: Seeds Gymnasium environments accept, and therefore the valid level ids.
MAX_LEVEL = 2**31 - 1
#: The splits whose layouts a split must not show: val none of train's, test none of train's or val's.
EXCLUDED_SPLITS = {"train": (), "val": ("train",), "test": ("train", "val")}
#: Level ids of a split probed when it is built, to measure how many of its layouts are unseen.
PROBED_LEVELS = 200
#: The fewest distinct unseen layouts among the probed ids for a split to be accepted: a score over
#: fewer layouts measures those few layouts, not generalization.
MIN_UNSEEN_LAYOUTS = 20
#: Splits up to this many ids are enumerated to collect the layouts another split must avoid.
MAX_ENUMERATED_LEVELS = 20_000


def level_fingerprint(env: gym.Env) -> str | None:
    """What the agent is shown of the level ``env`` was just reset into, as a short hash; None when
    the environment cannot tell. An environment opts in with a ``level_fingerprint()`` method on its
    unwrapped env; MiniGrid is fingerprinted by its full grid encoding (every cell's object, colour and
    state) plus the agent's start position and direction."""
    world = env.unwrapped
    hook = getattr(world, "level_fingerprint", None)
    if callable(hook):
        return str(hook())
    grid = getattr(world, "grid", None)
    if grid is None or not hasattr(grid, "encode") or getattr(world, "agent_pos", None) is None:
        return None
    layout = grid.encode().tobytes() + bytes([*map(int, world.agent_pos), int(world.agent_dir)])
    return hashlib.sha1(layout).hexdigest()[:16]


def map_fingerprint(env: gym.Env) -> str | None:
    """The *map* of the level ``env`` was just reset into, as a short hash: for MiniGrid its grid
    encoding alone (walls, doors, keys, goals, with colours and states), without the agent's start
    pose; an env's own ``map_fingerprint()`` method where it has one; else :func:`level_fingerprint`
    (Procgen's first frame, which its level seed draws). The split wrapper keeps out test ids whose
    map *and* start pose a train level shows; this tells whether a test level's map is new at all,
    which is what "unseen level" means in the generalization paper (``benchmarks/level_leak.py``)."""
    world = env.unwrapped
    hook = getattr(world, "map_fingerprint", None)
    if callable(hook):
        return str(hook())
    grid = getattr(world, "grid", None)
    if grid is None or not hasattr(grid, "encode"):
        return level_fingerprint(env)
    return hashlib.sha1(grid.encode().tobytes()).hexdigest()[:16]


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


def _fingerprint_at(env: gym.Env, level: int) -> str | None:
    env.reset(seed=level)
    return level_fingerprint(env)


_LAYOUTS: dict[tuple, frozenset[str]] = {}


def _layouts(env: gym.Env, low: int, high: int) -> frozenset[str]:
    """The fingerprints of levels ``low``-``high`` of ``env`` (kept per environment spec: splits are
    rebuilt for every evaluation environment)."""
    if env.spec is None:
        raise ValueError("level splits that check layouts need an environment made by id (gymnasium.make)")
    key = (env.spec.id, repr(sorted(env.spec.kwargs.items())), low, high)
    if key not in _LAYOUTS:
        if high - low + 1 > MAX_ENUMERATED_LEVELS:
            raise ValueError(f"cannot check that other splits avoid the {high - low + 1:,} levels {low}-{high} of "
                             f"{env.spec.id}: at most {MAX_ENUMERATED_LEVELS:,} levels are fingerprinted; "
                             "use a smaller range")
        _LAYOUTS[key] = frozenset(_fingerprint_at(env, level) for level in range(low, high + 1))
    return _LAYOUTS[key]


class LevelSplit(gym.Wrapper):
    """Resets only into levels of one split; ``info["level"]`` names the level of each episode.

    Val and test splits skip the ids whose layout an earlier split shows (see the module docstring):
    ``unseen`` says whether that check applies, ``excluded`` holds the fingerprints skipped.
    """

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
        self.excluded: frozenset[str] = frozenset()
        self.unseen = level_fingerprint_available(env)
        if self.unseen and EXCLUDED_SPLITS[split]:
            self.excluded = frozenset().union(*(_layouts(env, *ranges[name]) for name in EXCLUDED_SPLITS[split]))
            self._check_unseen_layouts()

    def _check_unseen_layouts(self) -> None:
        probe = np.random.default_rng(0).integers(self.low, self.high, size=PROBED_LEVELS, endpoint=True)
        drawn = [_fingerprint_at(self.env, int(level)) for level in probe]
        unseen = {layout for layout in drawn if layout not in self.excluded}
        if len(unseen) < MIN_UNSEEN_LAYOUTS:
            leaked = sum(layout in self.excluded for layout in drawn) / len(drawn)
            others = " and ".join(EXCLUDED_SPLITS[self.split])
            raise ValueError(
                f"{self.env.spec.id} cannot give {self.split} levels unseen in the {others} levels: those show "
                f"{len(self.excluded)} distinct layouts, {leaked:.0%} of {PROBED_LEVELS} probed {self.split} levels "
                f"repeat one of them, and only {len(unseen)} unseen layouts remain (at least {MIN_UNSEEN_LAYOUTS} "
                "needed); use fewer train levels (e.g. train=0-19) or an environment with more layouts")

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._levels = np.random.default_rng(seed)
        while True:  # terminates: the split was checked to hold unseen layouts
            self.level = int(self._levels.integers(self.low, self.high, endpoint=True))
            observation, info = self.env.reset(seed=self.level, options=options)
            fingerprint = level_fingerprint(self.env) if self.unseen else None
            if fingerprint not in self.excluded:
                break
        return observation, {**info, "level": self.level, "level_split": self.split, "level_fingerprint": fingerprint}


def level_fingerprint_available(env: gym.Env) -> bool:
    """Whether ``env`` fingerprints its levels (tried on one reset, level 0)."""
    return _fingerprint_at(env, 0) is not None


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
