"""The STORI stochasticity taxonomy as composable, seeded Gymnasium wrappers.

STORI (STOchastic-ataRI, 2025) classifies the stochasticity an agent can face:

- **type 1, action-dependent** (:class:`ActionPerturbation`): with probability ``p`` the executed
  action is not the chosen one.
- **type 2.1, action-independent random events** (:class:`RandomEvents`; Atari RAM events in
  :mod:`offrl_bench.envs.stori_atari`): the world changes by itself.
- **type 2.2, concept drift** (:class:`ConceptDrift`): the stochasticity regime switches at step
  ``at`` or every ``period`` steps.
- **type 3.1, default**: the unperturbed environment (no wrapper).
- **type 3.2, partial observability** (:class:`PartialObservability`): the agent sees less than the state.

Unlike STORI's reference code, which draws from NumPy's global RNG, every wrapper owns a generator
seeded from ``reset(seed=...)`` (salted per wrapper type), so the same seed gives the same
trajectory. Each step's ``info["stori"]`` says what was applied, so datasets and evaluations can
report perturbation rates.

Wrapper specs (``--wrapper``)::

    stori:action:p=0.3[,mode=random|gaussian,sigma=0.1]
    stori:events:p=0.05,mode=state|obs-noise|pixels[,sigma=...]      (Atari: mode=<game mode>, see stori_atari)
    stori:drift:at=T|period=P[,per=episode|lifetime],to=<stori spec>
    stori:partial:mode=drop|mask|blackout|crop,p=...[,fill=zeros|previous][,features=0/2][,box=y0/y1/x0/x1]
"""

from __future__ import annotations

import inspect
import zlib
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np


def _record(info: dict, **applied: Any) -> dict:
    info = dict(info)
    info["stori"] = {**info.get("stori", {}), **applied}
    return info


def _probability(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


def _choice(name: str, value: str, accepted: tuple[str, ...]) -> str:
    if value not in accepted:
        raise ValueError(f"unknown {name} '{value}'; one of: {', '.join(accepted)}")
    return value


class StochasticityWrapper(gym.Wrapper):
    """Base of every STORI wrapper: its own seeded RNG and an ``active`` switch used by drift."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.active = True
        self._rng: np.random.Generator | None = None
        self._salt = zlib.crc32(type(self).__name__.encode())

    @property
    def rng(self) -> np.random.Generator:
        if self._rng is None:  # used before any reset: unseeded, but never the global RNG
            self._rng = np.random.default_rng()
        return self._rng

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng([seed, self._salt])
        return super().reset(seed=seed, options=options)


class ActionPerturbation(StochasticityWrapper):
    """Type 1: with probability ``p`` the executed action is replaced.

    Discrete actions: a uniformly random action (STORI). Continuous: ``mode=random`` draws a uniform
    action in the bounds, ``mode=gaussian`` adds noise of ``sigma`` x half the action range.
    """

    def __init__(self, env: gym.Env, p: float = 0.3, mode: str = "random", sigma: float = 0.1) -> None:
        super().__init__(env)
        self.p = _probability("p", p)
        self.mode = _choice("action mode", mode, ("random", "gaussian"))
        self.discrete = isinstance(env.action_space, gym.spaces.Discrete)
        if self.discrete and mode == "gaussian":
            raise ValueError("mode=gaussian needs continuous actions; discrete actions are replaced uniformly")
        if sigma <= 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        self.sigma = float(sigma)

    def _replacement(self, action):
        space = self.action_space
        if self.discrete:
            return space.start + self.rng.integers(space.n)
        if self.mode == "random":
            return self.rng.uniform(space.low, space.high).astype(space.dtype)
        noise = self.rng.normal(size=space.shape) * self.sigma * (space.high - space.low) / 2
        return np.clip(np.asarray(action) + noise, space.low, space.high).astype(space.dtype)

    def step(self, action):
        replaced = self.active and self.rng.random() < self.p
        executed = self._replacement(action) if replaced else action
        observation, reward, terminated, truncated, info = self.env.step(executed)
        return observation, reward, terminated, truncated, _record(info, action_replaced=bool(replaced))


class RandomEvents(StochasticityWrapper):
    """Type 2.1 (generic form): with probability ``p`` per step something happens that the agent did
    not cause.

    - ``mode=state``: the simulator state is kicked before the step — MuJoCo velocities
      (``qvel += N(0, sigma)``) or a classic-control ``state`` vector (``+= N(0, sigma)``); the next
      observation shows the consequence.
    - ``mode=obs-noise``: the observation is hit by Gaussian noise ``N(0, sigma)`` (vector observations).
    - ``mode=pixels``: a random rectangle (up to ``size`` of each side) of an image observation is
      filled with random pixels.
    """

    MODES: ClassVar[tuple[str, ...]] = ("state", "obs-noise", "pixels")

    def __init__(self, env: gym.Env, p: float = 0.05, mode: str = "state", sigma: float = 0.5,
                 size: float = 0.25) -> None:
        super().__init__(env)
        self.p = _probability("p", p)
        self.mode = _choice("events mode", mode, self.MODES)
        self.sigma, self.size = float(sigma), _probability("size", size)
        space = env.observation_space
        is_image = isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) >= 2
        if mode == "pixels" and not is_image:
            raise ValueError("mode=pixels needs image observations (uint8, height x width[...])")
        if mode == "obs-noise" and (is_image or not isinstance(space, gym.spaces.Box)):
            raise ValueError("mode=obs-noise needs vector observations; use mode=pixels for images")
        if mode == "state" and self._state_kind() is None:
            raise ValueError(f"mode=state needs a simulator whose state can be set (MuJoCo or classic control); "
                             f"{env.spec.id if env.spec else type(env.unwrapped).__name__} has none: use "
                             "mode=obs-noise or mode=pixels")

    def _state_kind(self) -> str | None:
        unwrapped = self.env.unwrapped
        if hasattr(unwrapped, "set_state") and hasattr(unwrapped, "data"):
            return "mujoco"
        if type(unwrapped).__module__.startswith("gymnasium.envs.classic_control") or hasattr(unwrapped, "state"):
            return "classic"  # classic control keeps its physical state in .state
        return None

    def _kick_state(self) -> None:
        unwrapped = self.env.unwrapped
        if self._state_kind() == "mujoco":
            qvel = unwrapped.data.qvel + self.rng.normal(0, self.sigma, size=unwrapped.data.qvel.shape)
            unwrapped.set_state(unwrapped.data.qpos.copy(), qvel)
        else:
            state = np.asarray(unwrapped.state, dtype=np.float64)
            unwrapped.state = state + self.rng.normal(0, self.sigma, size=state.shape)

    def _pixel_event(self, observation: np.ndarray) -> np.ndarray:
        observation = observation.copy()
        height, width = observation.shape[:2]
        h = self.rng.integers(1, max(2, int(height * self.size) + 1))
        w = self.rng.integers(1, max(2, int(width * self.size) + 1))
        y, x = self.rng.integers(0, height - h + 1), self.rng.integers(0, width - w + 1)
        patch = observation[y:y + h, x:x + w]
        observation[y:y + h, x:x + w] = self.rng.integers(0, 256, size=patch.shape, dtype=np.uint8)
        return observation

    def step(self, action):
        event = self.active and self.rng.random() < self.p
        if event and self.mode == "state":
            self._kick_state()
        observation, reward, terminated, truncated, info = self.env.step(action)
        if event and self.mode == "obs-noise":
            noise = self.rng.normal(0, self.sigma, size=observation.shape)
            observation = (observation + noise).astype(self.observation_space.dtype)
        elif event and self.mode == "pixels":
            observation = self._pixel_event(observation)
        return observation, reward, terminated, truncated, _record(info, random_event=bool(event))


class PartialObservability(StochasticityWrapper):
    """Type 3.2: the agent sees less than the state (the state itself is untouched).

    - ``mode=drop``: with probability ``p`` the observation is lost: replaced by zeros
      (``fill=zeros``) or by the previous observation (``fill=previous``, a frozen frame).
    - ``mode=mask``: features ``features=i/j/...`` of a vector observation read 0 (with probability ``p``).
    - ``mode=blackout``: the box ``box=y0/y1/x0/x1`` (rows y0..y1-1, columns x0..x1-1) of an image reads 0.
    - ``mode=crop``: only the box ``box=y0/y1/x0/x1`` of an image stays visible; everything else reads 0
      (the shape is kept so agents trained on full frames can be evaluated).
    """

    MODES: ClassVar[tuple[str, ...]] = ("drop", "mask", "blackout", "crop")

    def __init__(self, env: gym.Env, mode: str = "drop", p: float = 1.0, fill: str = "zeros",
                 features: str | int | None = None, box: str | None = None) -> None:
        super().__init__(env)
        self.mode = _choice("partial mode", mode, self.MODES)
        self.p = _probability("p", p)
        self.fill = _choice("fill", fill, ("zeros", "previous"))
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box):
            raise ValueError("partial observability needs Box observations")
        self.visible = np.ones(space.shape, dtype=bool)  # False where the agent is blind when applied
        if mode == "mask":
            if features is None:
                raise ValueError("mode=mask needs features=i/j/... (indices of the observation vector)")
            indices = [int(i) for i in str(features).split("/")]
            if any(not 0 <= i < space.shape[-1] for i in indices):
                raise ValueError(f"features {features} outside the observation's {space.shape[-1]} features")
            self.visible[..., indices] = False
        elif mode in ("blackout", "crop"):
            if len(space.shape) < 2:
                raise ValueError(f"mode={mode} needs image observations; use mode=mask for vectors")
            try:
                y0, y1, x0, x1 = (int(v) for v in str(box).split("/"))
            except ValueError:
                raise ValueError(f"mode={mode} needs box=y0/y1/x0/x1 (pixel rows and columns)") from None
            height, width = space.shape[:2]
            if not (0 <= y0 < y1 <= height and 0 <= x0 < x1 <= width):
                raise ValueError(f"box {box} does not fit a {height}x{width} observation")
            region = np.zeros(space.shape, dtype=bool)
            region[y0:y1, x0:x1] = True
            self.visible = ~region if mode == "blackout" else region
        self._previous: np.ndarray | None = None

    def _observe(self, observation: np.ndarray) -> tuple[np.ndarray, bool]:
        applied = self.active and self.rng.random() < self.p
        if applied and self.mode == "drop":
            shown = self._previous if self.fill == "previous" and self._previous is not None \
                else np.zeros_like(observation)
        elif applied:
            shown = np.where(self.visible, observation, np.zeros_like(observation))
        else:
            shown = observation
        self._previous = shown
        return shown, bool(applied)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        observation, info = super().reset(seed=seed, options=options)
        self._previous = None
        observation, applied = self._observe(observation)
        return observation, _record(info, observation_hidden=applied)

    def step(self, action):
        observation, reward, terminated, truncated, info = self.env.step(action)
        observation, applied = self._observe(observation)
        return observation, reward, terminated, truncated, _record(info, observation_hidden=applied)


class ConceptDrift(gym.Wrapper):
    """Type 2.2: the stochasticity regime switches — from default to the ``to`` regime at step ``at``
    (sudden drift), or back and forth every ``period`` steps (cyclic drift). Steps are counted per
    episode (``per=episode``, the default, so evaluations are comparable) or over the environment's
    lifetime (``per=lifetime``)."""

    def __init__(self, env: gym.Env, to: str, at: int | None = None, period: int | None = None,
                 per: str = "episode") -> None:
        if (at is None) == (period is None):
            raise ValueError("drift needs exactly one of at=T (sudden) or period=P (cyclic)")
        for name, value in (("at", at), ("period", period)):
            if value is not None and (not isinstance(value, int) or value < (0 if name == "at" else 1)):
                raise ValueError(f"{name} must be a {'non-negative' if name == 'at' else 'positive'} integer, "
                                 f"got {value!r}")
        self.per = _choice("per", per, ("episode", "lifetime"))
        self.at, self.period = at, period
        target = make_regime(env, to)
        super().__init__(target)
        self.regime = [w for w in _chain(target, stop=env) if isinstance(w, StochasticityWrapper)]
        if not self.regime:
            raise ValueError(f"drift target '{to}' applies no STORI perturbation")
        self.steps = 0
        self._switch(False)

    def _switch(self, drifted: bool) -> None:
        for wrapper in self.regime:
            wrapper.active = drifted

    def _drifted(self) -> bool:
        if self.at is not None:
            return self.steps >= self.at
        return (self.steps // self.period) % 2 == 1

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if self.per == "episode":
            self.steps = 0
        self._switch(self._drifted())
        return super().reset(seed=seed, options=options)

    def step(self, action):
        drifted = self._drifted()
        self._switch(drifted)
        observation, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        return observation, reward, terminated, truncated, _record(info, drifted=drifted)


def _chain(env: gym.Env, stop: gym.Env):
    while env is not stop and isinstance(env, gym.Wrapper):
        yield env
        env = env.env


def make_regime(env: gym.Env, spec: str) -> gym.Env:
    """Apply a nested ``stori:...`` spec (the target of a drift)."""
    from offrl_bench.envs import parse_wrapper_spec

    for call in parse_wrapper_spec(spec):
        if call.name != "stori":
            raise ValueError(f"drift targets must be stori wrappers, got '{call.name}'")
        env = make_stori(env, *call.args, **call.params)
    return env


_TYPES = {"action": ActionPerturbation, "events": RandomEvents, "partial": PartialObservability,
          "drift": ConceptDrift}


def make_stori(env: gym.Env, kind: str | None = None, **params: Any) -> gym.Env:
    """Entry point of the ``stori`` wrapper: ``stori:<type>:key=value,...``."""
    if kind not in _TYPES:
        raise ValueError(f"unknown STORI type '{kind}'; one of: {', '.join(_TYPES)} "
                         "(type 3.1, the default environment, is no wrapper)")
    if kind == "events" and "mode" in params and params["mode"] not in RandomEvents.MODES:
        from offrl_bench.envs.stori_atari import AtariRandomEvents

        return AtariRandomEvents(env, **params)
    cls = _TYPES[kind]
    accepted = [n for n in inspect.signature(cls.__init__).parameters if n not in ("self", "env")]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(f"unknown parameter {', '.join(unknown)} for stori:{kind}; accepted: {', '.join(accepted)}")
    return cls(env, **params)
