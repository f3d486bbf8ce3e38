"""STORI type 2.1 RAM events on real ALE games (the ``atari`` extra; skipped without ale-py)."""

import numpy as np
import pytest

from offrl_bench.core.errors import UsageError
from offrl_bench.envs import make_env

pytest.importorskip("ale_py", reason="Atari STORI modes need the 'atari' extra (ale-py)")
STORI_SETTINGS = dict(frameskip=1, repeat_action_probability=0.0)  # as in the STORI paper


def atari(game, mode, p):
    return make_env(f"ALE/{game}-v5", f"stori:events:mode={mode},p={p}", **STORI_SETTINGS)


def play(env, frames, seed=0):
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    total, events = 0.0, 0
    for _ in range(frames):
        _, reward, terminated, truncated, info = env.step(int(rng.integers(env.action_space.n)))
        total, events = total + reward, events + info["stori"]["random_event"]
        if terminated or truncated:
            env.reset()
    return total, events


def test_boxing_displace_swaps_the_start_corners():
    env = atari("Boxing", "boxing-displace", 1.0)
    env.reset(seed=0)
    start = env.unwrapped.ale.getRAM()[[32, 33, 34, 35]].astype(int)
    for _ in range(30):  # the round's first frames place the boxers themselves
        env.step(0)
    after = env.unwrapped.ale.getRAM()[[32, 33, 34, 35]].astype(int)
    # player takes the enemy's corner and vice versa (a frame of movement at most)
    assert np.abs(after - start[[1, 0, 3, 2]]).max() <= 2


def test_boxing_colorflip_recolours_the_boxers():
    plain, flipping = atari("Boxing", "boxing-colorflip", 0.0), atari("Boxing", "boxing-colorflip", 1.0)
    plain.reset(seed=0)
    flipping.reset(seed=0)
    differences = [int((plain.step(0)[0] != flipping.step(0)[0]).any(axis=2).sum()) for _ in range(4)]
    # p=1 toggles every frame: flipped, back, flipped, back
    assert differences[0] > 100 and differences[1] == 0 and differences[2] > 100 and differences[3] == 0


def test_boxing_hit_cancel_takes_every_point_back():
    assert play(atari("Boxing", "boxing-hit-cancel", 0.0), 3000)[0] != 0
    total, events = play(atari("Boxing", "boxing-hit-cancel", 1.0), 3000)
    assert total == 0 and events > 0


def test_bankheist_city_switch_teleports():
    env = atari("BankHeist", "bankheist-city-switch", 1.0)
    env.reset(seed=0)
    cities = []
    for _ in range(6):
        env.step(0)
        cities.append(int(env.unwrapped.ale.getRAM()[0]) % 4)
    assert all(a != b for a, b in zip(cities, cities[1:]))


def test_event_rate_and_seeding():
    env = atari("BankHeist", "bankheist-city-switch", 0.2)
    _, events = play(env, 2000)
    assert 300 < events < 500  # binomial(2000, 0.2): mean 400, sd 18
    assert play(atari("Boxing", "boxing-displace", 0.01), 1500, seed=5) == play(
        atari("Boxing", "boxing-displace", 0.01), 1500, seed=5)


@pytest.mark.parametrize("env_id, mode, message", [
    ("CartPole-v1", "breakout-block-cancel", "needs the Atari game Breakout"),
    ("ALE/Pong-v5", "boxing-colorflip", "needs the Atari game Boxing"),
    ("ALE/Boxing-v5", "boxing-uppercut", "unknown events mode 'boxing-uppercut'"),
])
def test_atari_modes_are_checked(env_id, mode, message):
    with pytest.raises(UsageError, match=message):
        make_env(env_id, f"stori:events:mode={mode}", **({} if env_id.startswith("Cart") else STORI_SETTINGS))
