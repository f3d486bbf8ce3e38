"""MOREC's refrigerator example: the simulator and controllers rebuilt from REVIVE's example."""

import numpy as np
import pytest

from offrl_bench.envs.refrigerator import (
    DATA_TARGET,
    DOOR_INTERVAL,
    Controller,
    door_schedule,
    next_temperature,
    run_episode,
)


def test_one_step_cools_by_the_power_then_leaks_toward_the_outdoor_temperature():
    # REVIVE's Simulator.update with dt = 1: 5 - 1 = 4, then 4 - (4 - 15) * 0.02 (door closed) or 0.08 (open)
    assert next_temperature(np.array(5.0), np.array(1.0), np.array(False)) == pytest.approx(4.22)
    assert next_temperature(np.array(5.0), np.array(1.0), np.array(True)) == pytest.approx(4.88)
    assert next_temperature(np.array(5.0), np.array(-3.0), np.array(False)) == pytest.approx(5.2)  # no heating


def test_each_controller_holds_its_own_temperatures_so_the_test_one_leaves_the_data():
    data = run_episode(Controller(DATA_TARGET), seed=0)
    test = run_episode(Controller(-8.0), seed=1)
    assert len(data.observed) == 2_000 and data.observed[0] == pytest.approx(10.0, abs=0.5)
    closed_data, closed_test = data.true[500:][~data.door_open[500:]], test.true[500:][~test.door_open[500:]]
    assert np.median(closed_data) == pytest.approx(-2.0, abs=0.3)  # the -1.75 offset removes the P-controller's error
    assert np.median(closed_test) == pytest.approx(-7.5, abs=0.3)
    assert np.quantile(closed_test, 0.95) < data.observed.min() - 1  # far from every data temperature
    # the reported temperature is the true one plus N(0, 0.1); the power is never negative
    assert np.std(data.observed - data.true) == pytest.approx(0.1, rel=0.1)
    assert np.std(data.next_observed - data.next_true) == pytest.approx(0.1, rel=0.1)
    assert np.array_equal(data.observed[1:], data.next_observed[:-1])  # one episode: each step starts where
    assert np.array_equal(data.true[1:], data.next_true[:-1])  # the last one ended
    assert (data.power >= 0).all()


def test_the_door_opens_for_20_steps_in_about_half_of_the_200_step_blocks_and_seeds_reproduce():
    opened = []
    for seed in range(20):
        episode = run_episode(Controller(DATA_TARGET), seed=seed)
        blocks = episode.door_open.reshape(-1, DOOR_INTERVAL).sum(1)
        assert set(blocks.tolist()) <= {0, 20}  # REVIVE's DoorOpen(door_open_time=20)
        opened += (blocks > 0).tolist()
    assert 0.35 < np.mean(opened) < 0.65  # probability 0.5 per block, 200 blocks
    # the opening's first step is uniform on [0, 180] of its block: 20,000 openings reach both ends
    rng = np.random.default_rng(0)
    starts = []
    for _ in range(4_000):
        door = door_schedule(2_000, rng).reshape(-1, DOOR_INTERVAL)
        starts += [int(np.argmax(block)) for block in door if block.any()]
    assert min(starts) == 0 and max(starts) == 180
    assert np.mean(starts) == pytest.approx(90, abs=1.5)
    first, again = run_episode(Controller(DATA_TARGET), seed=3), run_episode(Controller(DATA_TARGET), seed=3)
    assert np.array_equal(first.observed, again.observed) and np.array_equal(first.door_open, again.door_open)
