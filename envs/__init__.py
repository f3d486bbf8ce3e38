"""Environment factory and wrapper-spec parsing (installed as ``offrl_bench.envs``).

A wrapper spec is a string such as ``stori:action:p=0.3+levels:train``: wrappers separated by
``+`` are applied left to right; each is ``NAME[:positional...][:key=value,...]``, where a last key
``to=`` may hold a nested spec (which cannot contain ``+``). ``NAME`` is
looked up in the ``offrl_bench.wrappers`` entry-point group and called as
``factory(env, *positional, **params)``.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from offrl_bench.core import registry
from offrl_bench.core.errors import UsageError


@dataclass(frozen=True)
class WrapperCall:
    name: str
    args: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)


def parse_value(text: str) -> Any:
    """``"3"`` -> 3, ``"0.5"`` -> 0.5, ``"true"`` -> True, anything else stays a string."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


#: ``to=`` takes the rest of its wrapper as a nested spec (``stori:drift:at=100,to=stori:action:p=0.3``).
_NESTED = re.compile(r"(?:^|[:,])to=")


def parse_wrapper_spec(spec: str) -> list[WrapperCall]:
    calls = []
    for part in filter(None, (p.strip() for p in spec.split("+"))):
        nested = _NESTED.search(part)
        if nested:
            part, target = part[:nested.start()], part[nested.end():]
            if not target:
                raise UsageError(f"invalid wrapper spec '{spec}': 'to=' needs a wrapper spec after it")
        name, *segments = part.split(":")
        args: list[str] = []
        params: dict[str, Any] = {}
        for segment in segments:
            if "=" not in segment:
                if params:
                    raise UsageError(f"invalid wrapper spec '{part}': positional '{segment}' after key=value")
                args.append(segment)
                continue
            for pair in segment.split(","):
                key, sep, value = pair.partition("=")
                if not sep or not key:
                    raise UsageError(f"invalid wrapper spec '{part}': expected key=value, got '{pair}'")
                params[key.strip()] = parse_value(value.strip())
        if not name:
            raise UsageError(f"invalid wrapper spec '{spec}': empty wrapper name")
        if nested:
            params["to"] = target
        calls.append(WrapperCall(name, tuple(args), params))
    return calls


#: Environment families that register with Gymnasium only once their package is imported, and how
#: to install that package.
_EXTRA = "pip install -c constraints.txt 'offrl-bench[{}]'"
PROCGEN_INSTALL = "pip install --no-deps procgen-mirror==0.10.7 gym3==0.3.3 gym==0.26.2 gym-notices && pip install cffi"
_ENV_PACKAGES = {"ALE/": ("ale_py", _EXTRA.format("atari")), "MiniGrid-": ("minigrid", "pip install minigrid"),
                 "MinAtar/": ("offrl_bench.envs.minatar", "pip install minatar"),
                 "procgen/": ("offrl_bench.envs.procgen", PROCGEN_INSTALL)}


def _register_optional_envs(env_id: str) -> None:
    for prefix, (module, install) in _ENV_PACKAGES.items():
        if env_id.startswith(prefix):
            try:
                gym.register_envs(importlib.import_module(module))
            except ImportError as exc:
                raise UsageError(f"environment '{env_id}' needs a package that is not installed ({exc}); "
                                 f"install it with: {install}") from None


def _minigrid_observations(env: gym.Env) -> gym.Env:
    """MiniGrid's dict observation -> the agent's 7x7x3 partial view, flattened to 147 integers.
    The mission string is dropped: it is constant within each task used here."""
    from minigrid.wrappers import ImgObsWrapper

    return gym.wrappers.FlattenObservation(ImgObsWrapper(env))


def _minatar_observations(env: gym.Env) -> gym.Env:
    from offrl_bench.envs.minatar import adapt

    return adapt(env)


#: Environment families whose observations are adapted: MiniGrid's to a flat Box, MinAtar's to
#: uint8 images (with a time limit).
_OBSERVATION_ADAPTERS = {"MiniGrid-": _minigrid_observations, "MinAtar/": _minatar_observations}


def make_env(env_id: str, wrapper: str = "", **kwargs: Any) -> gym.Env:
    """Build the environment the CLI uses: ``gymnasium.make(env_id, **kwargs)`` plus ``wrapper``."""
    _register_optional_envs(env_id)
    try:
        env = gym.make(env_id, **kwargs)
    except gym.error.Error as exc:
        raise UsageError(f"cannot make environment '{env_id}': {exc}") from exc
    for prefix, adapt in _OBSERVATION_ADAPTERS.items():
        if env_id.startswith(prefix):
            env = adapt(env)
    for call in parse_wrapper_spec(wrapper):
        factory = registry.wrapper_factory(call.name)
        try:
            env = factory(env, *call.args, **call.params)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"invalid wrapper '{call.name}' in '{wrapper}': {exc}") from exc
    return env
