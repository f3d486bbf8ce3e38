"""True one-step error of model rollouts, unfiltered against MOREC-filtered (Pendulum-v1, Hopper-v5).

Trains MOPO's dynamics ensemble and MOREC's dynamics reward on a local dataset (what
``--algo mopo --set filter=morec`` does in setup), then rolls the model out from dataset states with
uniformly random actions, twice from the same starts: taking a random elite's sample at every step
(MOPO) and taking the candidate MOREC's filter picks. Every model transition is checked against
the simulator: its state (Pendulum's angle and velocity; MuJoCo's qpos and qvel) is set to the
model's state and the real environment steps with the same action. Prints the mean error per
rollout step, the model-training times, and how many steps MOREC's threshold keeps.

The first step is also compared on one shared set of candidates: from the same starts and actions,
the model (MOPO's ensemble, which MOPO+MOREC rolls out unchanged) draws MOREC's 10 candidates once,
and the true error is measured of the one MOREC's dynamics reward picks, of a uniformly random one,
and of their mean. With ``--csv``, one model per seed (``--seeds``), these three per seed (rows
``morec-chosen``, ``random-candidate``, ``mean-candidate``) are written in the claims engine's
measurement format, for the claim ``morec-lowers-true-error`` (chosen against random), with a
``dynamics_reward_learned`` column (1 or 0, the run records' rule) that the claim requires:

    python benchmarks/morec_one_step_error.py [--dataset offrl/pendulum/medium-v0] [--starts 1000]
    python benchmarks/morec_one_step_error.py --seeds 0,1,2,3,4 --csv results/reference/default/morec_one_step_error.csv
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from offrl_bench.core import registry
from offrl_bench.core.config import build_config
from offrl_bench.data.datasets import load_dataset
from offrl_bench.envs.simulator_state import SETTABLE, set_state_from_observation
from offrl_bench.trust.claim_sources import write_measurements


def true_step(env, observation: np.ndarray, action: np.ndarray) -> tuple[np.ndarray, float]:
    """The simulator's next observation and reward from the state an observation encodes."""
    set_state_from_observation(env, observation)
    next_observation, reward, *_ = env.step(action)
    return next_observation, reward


def rollout_errors(mopo, starts: torch.Tensor, actions: torch.Tensor, filtered: bool, env) -> dict:
    observations = starts
    alive = torch.ones(len(starts), dtype=torch.bool)
    errors, reward_errors, kept = [], [], []
    for step in range(actions.shape[0]):
        unit = actions[step]
        with torch.no_grad():
            if filtered:
                next_obs, rewards, _, _, keep = mopo.dynamics_reward.filter(mopo.model, observations, unit)
            else:
                candidates, rewards, _ = mopo.model.sample(observations, unit, 1)
                choice = torch.randint(len(candidates), (len(starts),))
                rows = torch.arange(len(starts))
                next_obs, rewards, keep = candidates[choice, rows], rewards[choice, rows], torch.ones_like(alive)
        env_actions = mopo.scaler.from_unit(unit).numpy()
        truth = [true_step(env, o, a) for o, a in zip(observations.numpy(), env_actions)]
        true_next = torch.tensor(np.array([t[0] for t in truth]), dtype=torch.float32)
        true_reward = torch.tensor([t[1] for t in truth], dtype=torch.float32)
        counted = alive & keep
        errors.append(float((next_obs - true_next).norm(dim=1)[counted].mean()))
        reward_errors.append(float((rewards - true_reward).abs()[counted].mean()))
        kept.append(float(counted.float().mean()))
        alive = counted
        observations = next_obs
    return {"state_error": errors, "reward_error": reward_errors, "kept": kept}


def first_step_choices(mopo, starts: torch.Tensor, unit_actions: torch.Tensor, env) -> dict[str, float]:
    """Mean true error of MOREC's pick, a random candidate and the candidates' mean, all from one
    draw of candidates (same model, starts, actions and candidates). MOREC's pick is the filter's own
    choice; the global torch generator, which the model's sampling draws from, is rewound so that
    the comparison sees the candidates the filter chose among."""
    reward = mopo.dynamics_reward
    draw = torch.get_rng_state()
    with torch.no_grad():
        chosen = reward.filter(mopo.model, starts, unit_actions)[0]
        torch.set_rng_state(draw)
        candidates, _, _ = mopo.model.sample(starts, unit_actions, reward.settings.candidates_per_elite)
    if not (candidates == chosen).all(-1).any(0).all():
        raise RuntimeError("the filter's pick is not among the redrawn candidates: sampling no longer "
                           "draws from the global torch generator alone")
    rows = torch.arange(len(starts))
    env_actions = mopo.scaler.from_unit(unit_actions).numpy()
    truth = torch.tensor(np.array([true_step(env, o, a)[0] for o, a in zip(starts.numpy(), env_actions)]),
                         dtype=torch.float32)
    picks = {"morec-chosen": chosen,
             "random-candidate": candidates[torch.randint(len(candidates), (len(starts),)), rows],
             "mean-candidate": candidates.mean(0)}
    return {name: float((pick - truth).norm(dim=1).mean()) for name, pick in picks.items()}


def measure(dataset, seed: int, n_starts: int, horizon: int) -> dict:
    """Train MOPO's ensemble and MOREC's dynamics reward with ``seed``, then roll out both ways."""
    cls = registry.algorithm_class("mopo")
    mopo = cls(dataset.spec, build_config(cls, (("filter", "morec"),)), seed)
    started = time.perf_counter()
    mopo.setup(dataset)
    print(f"seed {seed}: ensemble + dynamics reward trained in {time.perf_counter() - started:.1f} s "
          f"({mopo.model.epochs} epochs; held-out balanced accuracy of the last discriminator "
          f"{mopo.dynamics_reward.history[-1].held_out:.3f}, learned: {mopo.dynamics_reward.learned})")
    generator = torch.Generator().manual_seed(seed)
    starts = dataset.observations[torch.randint(len(dataset), (n_starts,), generator=generator)]
    actions = torch.rand(horizon, n_starts, dataset.spec.action_dim, generator=generator) * 2 - 1
    env = gym.make(dataset.spec.env_id).unwrapped
    env.reset(seed=seed)
    torch.manual_seed(seed)
    results = {name: rollout_errors(mopo, starts, actions, name == "MOREC", env) for name in ("MOPO", "MOREC")}
    results["first_step"] = first_step_choices(mopo, starts, actions[0], env)
    results["dynamics_reward_learned"] = int(mopo.dynamics_reward.learned)
    print(f"{'step':>4} {'MOPO |s-s*|':>12} {'MOREC |s-s*|':>13} {'ratio':>6} {'MOPO |r-r*|':>12} "
          f"{'MOREC |r-r*|':>13} {'MOREC kept':>11}")
    for step in range(horizon):
        mopo_err, morec_err = results["MOPO"]["state_error"][step], results["MOREC"]["state_error"][step]
        print(f"{step + 1:>4} {mopo_err:>12.4f} {morec_err:>13.4f} {morec_err / mopo_err:>6.2f} "
              f"{results['MOPO']['reward_error'][step]:>12.4f} {results['MOREC']['reward_error'][step]:>13.4f} "
              f"{results['MOREC']['kept'][step]:>11.1%}")
    print("first step, one shared draw of candidates: " + ", ".join(
        f"{name} {error:.4f}" for name, error in results["first_step"].items()))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="offrl/pendulum/medium-v0")
    parser.add_argument("--starts", type=int, default=1000)
    parser.add_argument("--horizon", type=int, default=5)
    parser.add_argument("--seeds", default="0", help="comma-separated; one model per seed")
    parser.add_argument("--csv", type=Path, default=None, help="write first-step errors per seed here")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    torch.set_num_threads(1)
    dataset = load_dataset(args.dataset)
    if not dataset.spec.env_id.startswith(SETTABLE):
        raise SystemExit(f"error: the simulator check can set the state of {', '.join(SETTABLE)}; "
                         f"{dataset.spec.env_id} is not one of them")
    print(f"dataset {args.dataset}: {len(dataset)} transitions")
    rows = []
    for seed in seeds:
        results = measure(dataset, seed, args.starts, args.horizon)
        learned = results["dynamics_reward_learned"]
        rows += [{"algorithm": algorithm, "dataset": args.dataset, "wrapper": "none", "seed": seed, "value": error,
                  "dynamics_reward_learned": learned} for algorithm, error in results["first_step"].items()]
    if args.csv:
        write_measurements(args.csv, rows)
        print(f"wrote {args.csv}")


if __name__ == "__main__":
    main()
