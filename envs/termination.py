"""Termination functions for model rollouts: does a predicted next observation end the episode?

A model-based method rolls a learnt dynamics model out and must stop where the real environment
would (MOPO's and MBPO's ``static_fns``). For MuJoCo locomotion that is the environment's own health
check, rewritten on observations, which leave out the x position: a Hopper observation is
``qpos[1:]`` (height, torso angle, joint angles) followed by ``qvel`` clipped to +-10.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def hopper_terminated(next_observations: torch.Tensor) -> torch.Tensor:
    """Hopper-v4/v5 ``is_healthy`` with its default ranges: height > 0.7, |torso angle| < 0.2, and
    every entry of ``state_vector()[2:]`` (= the observation without the height) within +-100."""
    height, angle = next_observations[:, 0], next_observations[:, 1]
    healthy = (height > 0.7) & (angle.abs() < 0.2) & (next_observations[:, 1:].abs() < 100).all(dim=1)
    return ~healthy


TERMINATION_FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "Hopper-v4": hopper_terminated,
    "Hopper-v5": hopper_terminated,
}


def termination_function(env_id: str) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The termination function of ``env_id``, or None when none is known."""
    return TERMINATION_FUNCTIONS.get(env_id)
