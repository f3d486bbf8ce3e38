"""Why MOPO does not learn Pendulum here: which part of the learned model the policy exploits.

Runs MOPO (seed, 8,000 updates, evaluated every 2,000) on ``offrl/pendulum/medium-v0`` with one part
of the model changed, and prints the normalised score at each evaluation:

- ``learned``: MOPO as it is;
- ``clipped``: every predicted next observation and reward clipped to the range seen in the dataset;
- ``true-reward``: the learned dynamics, but Pendulum's own reward for each (observation, action)
  instead of the model's prediction;
- ``value-penalty``: MOPO's penalty replaced by one in the spirit of MOBILE (Sun et al., 2023):
  ``--beta`` times the standard deviation, across the elites' next states, of
  min Q_target(s', pi(s')), computed when the rollout is made.

If ``true-reward`` still degrades, the policy exploits errors of the dynamics, not of the reward.

    python benchmarks/mopo_diagnostics.py true-reward [--seed 0] [--out /tmp/mopo-diagnostics]
    python benchmarks/mopo_diagnostics.py value-penalty --beta 1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from offrl_bench.algorithms.dynamics_model import DynamicsModel
from offrl_bench.algorithms.mopo import MOPO
from offrl_bench.algorithms.nn import state_action_values

MODES = ("learned", "clipped", "true-reward", "value-penalty")


def pendulum_reward(observations: torch.Tensor, unit_actions: torch.Tensor) -> torch.Tensor:
    """Pendulum-v1's reward, -(theta^2 + 0.1 theta_dot^2 + 0.001 u^2), from the pre-step observation."""
    theta = torch.atan2(observations[:, 1], observations[:, 0])
    torque = (2.0 * unit_actions[:, 0]).clamp(-2.0, 2.0)
    return -(theta**2 + 0.1 * observations[:, 2] ** 2 + 0.001 * torque**2)


def value_penalty_rollout(beta: float):
    """MOPO's rollout with the value-disagreement penalty instead of max ||sigma|| (one random elite's
    sample is stored, as in MOPO)."""

    @torch.no_grad()
    def rollout(self: MOPO, dataset, generator: torch.Generator) -> None:
        cfg = self.config
        starts = torch.randint(len(dataset), (cfg.rollout_batch,), generator=generator, device=self.device)
        observations, penalties = dataset.observations[starts], []
        for _ in range(cfg.rollout_length):
            actions, _ = self.sac.actor(self.normalizer(observations))
            candidates, rewards, _ = self.model.sample(observations, actions, 1)
            elites, batch = rewards.shape
            flat = self.normalizer(candidates.reshape(elites * batch, -1))
            next_actions, _ = self.sac.actor(flat)
            values = state_action_values(self.sac.critic_target, flat, next_actions).min(0).values
            penalty = values.reshape(elites, batch).std(0)
            choice = torch.randint(elites, (batch,), device=self.device)
            rows = torch.arange(batch, device=self.device)
            next_observations = candidates[choice, rows]
            self._store(torch.cat([observations, actions, (rewards[choice, rows] - beta * penalty)[:, None],
                                   next_observations], dim=1))
            penalties.append(penalty.mean())
            observations = next_observations
        self.rollout_stats = {"rollout_length": float(cfg.rollout_length),
                              "value_penalty": float(torch.stack(penalties).mean())}

    return rollout


def patch(mode: str, beta: float) -> None:
    """Change :meth:`DynamicsModel.sample` (and, for ``clipped``, record the dataset's ranges in setup)."""
    sample, setup = DynamicsModel.sample, MOPO.setup

    def setup_with_ranges(self, dataset) -> None:
        setup(self, dataset)
        both = torch.cat([dataset.observations, dataset.next_observations])
        self.model.ranges = (both.min(0).values, both.max(0).values, dataset.rewards.min(), dataset.rewards.max())

    def changed_sample(self, observations, unit_actions, samples_per_elite):
        next_observations, rewards, uncertainty = sample(self, observations, unit_actions, samples_per_elite)
        if mode == "clipped":
            low, high, reward_low, reward_high = self.ranges
            next_observations = torch.maximum(torch.minimum(next_observations, high), low)
            rewards = rewards.clamp(reward_low, reward_high)
        else:
            rewards = pendulum_reward(observations, unit_actions).expand_as(rewards)
        return next_observations, rewards, uncertainty

    if mode in ("clipped", "true-reward"):
        DynamicsModel.sample = changed_sample
        MOPO.setup = setup_with_ranges
    elif mode == "value-penalty":
        MOPO._rollout = value_penalty_rollout(beta)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--beta", type=float, default=1.0, help="value-penalty weight")
    parser.add_argument("--out", type=Path, default=Path("/tmp/mopo-diagnostics"))
    args = parser.parse_args()
    from offrl_bench.execution.runner import RunSpec, execute_run
    from offrl_bench.records.run_store import RunStore

    patch(args.mode, args.beta)
    spec = RunSpec("mopo", "offrl/pendulum/medium-v0", args.seed, updates=8_000, eval_every=2_000,
                   checkpoint_every=2_000, eval_episodes=10, suite=f"diagnostic-{args.mode}-{args.beta}")
    store = RunStore(args.out / f"{args.mode}-{args.beta}")
    execute_run(spec, store)
    scores = [json.loads(line)["normalized_score"] for line in
              (store.run_dir(spec.run_id) / "metrics.jsonl").read_text().splitlines()]
    print(f"{args.mode} (beta {args.beta}), seed {args.seed}: normalised score every 2,000 updates: "
          + ", ".join(f"{s:.1f}" for s in scores))


if __name__ == "__main__":
    main()
