"""Setting a simulator to the state an observation encodes, for checks against the true dynamics
(model error, model calibration): Pendulum, and MuJoCo locomotion whose observation is qpos without
the x position, then qvel (Hopper, Walker2d, HalfCheetah)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

#: Environments whose state can be set from an observation.
SETTABLE = ("Pendulum", "Hopper", "Walker2d", "HalfCheetah")


def set_state_from_observation(env: gym.Env, observation: np.ndarray) -> None:
    """Set ``env`` (the unwrapped simulator) to the state ``observation`` encodes.

    Pendulum: (cos, sin, velocity) give the angle and velocity. MuJoCo locomotion: x is set to 0,
    which changes nothing since neither the dynamics nor the forward reward (a difference of x)
    depends on it. (Hopper clips observed velocities to +-10, so the rare faster state is set
    clipped.)
    """
    if hasattr(env, "set_state"):
        skipped = env.model.nq - len(observation) + env.model.nv  # leading qpos entries not observed
        qpos = np.concatenate([np.zeros(skipped), observation[: env.model.nq - skipped]])
        env.set_state(qpos, observation[env.model.nq - skipped:])
    else:
        cos, sin, velocity = observation
        env.state = np.array([np.arctan2(sin, cos), np.clip(velocity, -env.max_speed, env.max_speed)])
