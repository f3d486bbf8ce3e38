"""Wrapper spec strings (DESIGN.md §3): NAME[:positional...][:key=value,...] joined with '+'."""

import gymnasium as gym
import pytest

from offrl_bench.core.errors import UsageError
from offrl_bench.envs import WrapperCall, make_env, parse_wrapper_spec


def test_parse():
    assert parse_wrapper_spec("") == []
    assert parse_wrapper_spec("stori:action:p=0.3") == [WrapperCall("stori", ("action",), {"p": 0.3})]
    assert parse_wrapper_spec("levels:train+stori:partial:mode=crop,p=1") == [
        WrapperCall("levels", ("train",)), WrapperCall("stori", ("partial",), {"mode": "crop", "p": 1})]
    assert parse_wrapper_spec("x:flag=true,n=3,name=abc") == [WrapperCall("x", (), {"flag": True, "n": 3,
                                                                                     "name": "abc"})]


@pytest.mark.parametrize("spec, message", [
    (":p=1", "empty wrapper name"), ("x:p=1:mode", "positional 'mode' after key=value"), ("x:=3", "expected key=value"),
])
def test_malformed(spec, message):
    with pytest.raises(UsageError, match=message):
        parse_wrapper_spec(spec)


def test_wrappers_come_from_entry_points(monkeypatch):
    from importlib.metadata import EntryPoint

    from offrl_bench.core import registry

    ep = EntryPoint("clip", "gymnasium.wrappers:ClipReward", registry.WRAPPERS)
    monkeypatch.setattr(registry, "available", lambda group: {"clip": ep} if group == registry.WRAPPERS else {})
    env = make_env("Pendulum-v1", "clip:min_reward=-0.5,max_reward=0.0")
    assert isinstance(env, gym.wrappers.ClipReward)
    env.reset(seed=0)
    assert env.step(env.action_space.sample())[1] >= -0.5
    with pytest.raises(UsageError, match="invalid wrapper 'clip'"):
        make_env("Pendulum-v1", "clip:nonsense=1")
