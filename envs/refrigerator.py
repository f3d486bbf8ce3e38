"""The refrigerator temperature-control task of MOREC's motivating example (Luo et al., ICLR 2024:
a dynamics model learned from one controller's data fails where another controller takes the
fridge; the dynamics reward still recognises the true transitions there).

MOREC's repository (polixir/morec) does not hold this task. It is rebuilt from the refrigerator
example of the same group's REVIVE SDK (github.com/polixir/revive, ``examples/task/Refrigerator``:
``env.py``, ``policy.py`` and its data script), every constant from there:

- one step of ``dt = 1``: the cooling power lowers the temperature by ``power * dt`` (``power >
  0`` only), then the temperature leaks toward the outdoor 15 degrees by ``0.02 * dt`` of the
  difference with the door closed and ``0.08 * dt`` with it open (``Simulator.update``);
- the reported temperature carries N(0, 0.1) noise (``Simulator.get_temperature``);
- the data controller is ``SamplingPolicy(p=0.2)``: power = max(0, 0.2 (T - (-2 - 1.75)) +
  N(0, 0.1)), a proportional controller for -2 degrees (its -1.75 offsets the steady-state error);
- the door: every 200 steps, with probability 0.5, it opens for 20 consecutive steps from a uniformly
  random step in [0, 180] (``sample_trajectory(open_interval=200)``, ``DoorOpen(door_open_time=20)``);
- an episode is 2,000 steps from 10 degrees (``generate_data``).

The random sources are one ``numpy.random.Generator`` per episode (REVIVE draws from the global
``random`` and ``numpy.random`` state).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OUTDOOR = 15.0
LEAK_CLOSED, LEAK_OPEN = 0.02, 0.08
OBSERVATION_NOISE = 0.1
GAIN, SETPOINT_OFFSET, ACTION_NOISE = 0.2, -1.75, 0.1
DATA_TARGET = -2.0
DOOR_INTERVAL, DOOR_OPEN_STEPS, DOOR_PROBABILITY = 200, 20, 0.5
EPISODE_STEPS, START_TEMPERATURE = 2_000, 10.0


def next_temperature(temperature: np.ndarray, power: np.ndarray, door_open: np.ndarray) -> np.ndarray:
    """The true (noise-free) temperature after one step."""
    cooled = temperature - np.maximum(power, 0.0)
    return cooled - (cooled - OUTDOOR) * np.where(door_open, LEAK_OPEN, LEAK_CLOSED)


@dataclass(frozen=True)
class Controller:
    """REVIVE's ``SamplingPolicy``: a proportional controller for ``target`` degrees with Gaussian
    action noise, its power never negative."""

    target: float
    gain: float = GAIN

    def power(self, observed: float, rng: np.random.Generator) -> float:
        action = self.gain * (observed - (self.target + SETPOINT_OFFSET)) + rng.normal(0.0, ACTION_NOISE)
        return max(action, 0.0)


@dataclass
class Episode:
    """One episode: observed temperatures and door states before each step, the power, the observed
    temperature after it, and the true (noise-free) temperatures before and after."""

    observed: np.ndarray
    door_open: np.ndarray
    power: np.ndarray
    next_observed: np.ndarray
    true: np.ndarray
    next_true: np.ndarray


def door_schedule(steps: int, rng: np.random.Generator) -> np.ndarray:
    """Whether the door is open at each step: in each block of 200 steps, with probability 0.5, for
    20 steps from a uniformly random step in [0, 180] of the block."""
    door = np.zeros(steps, dtype=bool)
    for block in range(0, steps, DOOR_INTERVAL):
        if rng.random() < DOOR_PROBABILITY:
            first = block + int(rng.integers(0, DOOR_INTERVAL - DOOR_OPEN_STEPS + 1))
            door[first:first + DOOR_OPEN_STEPS] = True
    return door


def run_episode(controller: Controller, seed: int, steps: int = EPISODE_STEPS,
                start: float = START_TEMPERATURE) -> Episode:
    """One episode of ``controller`` on the simulator, its noise and door drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    temperature = start
    observed = temperature + rng.normal(0.0, OBSERVATION_NOISE)
    door = door_schedule(steps, rng)
    rows = []
    for step in range(steps):
        power = controller.power(observed, rng)
        after = float(next_temperature(np.array(temperature), np.array(power), np.array(door[step])))
        next_observed = after + rng.normal(0.0, OBSERVATION_NOISE)
        rows.append((observed, door[step], power, next_observed, temperature, after))
        temperature, observed = after, next_observed
    columns = [np.array(column, dtype=np.float64) for column in zip(*rows)]
    return Episode(columns[0], columns[1].astype(bool), columns[2], columns[3], columns[4], columns[5])
