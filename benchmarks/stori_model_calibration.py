"""STORI's own claim: does a learned dynamics model underestimate the variance of a stochastic
environment? (STORI: "world models dramatically underestimate environmental variance".)

On Pendulum and HalfCheetah, for each STORI type, data are collected *in* the perturbed environment (the project's mixed
behaviour: random, medium and expert policies in equal shares, ``data make`` with the wrapper), and
MOPO's dynamics ensemble is trained on them exactly as ``--algo mopo`` trains it in setup (one
model per seed). At held-out states and actions, the model's predicted next-observation
distribution (the elites' Gaussians as a mixture: mean of the member means; variance = mean member
variance + the members' disagreement) is compared with the truth: the simulator set to that state
and stepped ``--samples`` times under the same perturbation.

- **clean** (the control): no wrapper. Both simulators are deterministic, so the true variance is
  0 and the measure is the coverage of the predicted 90% intervals (Gaussian, per dimension).
- **type 1** ``stori:action:p=0.3``: the executed action is replaced by a uniform one with
  probability 0.3 (the default suite's setting); the dataset records the intended action.
- **type 2.1**, a *state kick*: with probability 0.05 per step the simulator state is kicked before
  the step: Pendulum's angle and velocity by N(0, 0.1) (the default suite's setting),
  HalfCheetah's joint velocities (``qvel``) by N(0, 0.5).
- **type 2.2** drift into type 1 halfway through each episode (step 100 of Pendulum's 200, step
  500 of HalfCheetah's 1,000). The dataset mixes both regimes; held-out queries are states after
  the drift, and the truth is the drifted regime.
- Type 3.2 is left out: its truth (the next observation given the current *observation*) needs the
  posterior over hidden states, which this script does not define.

Per type and seed it reports, per observation dimension, the ratio of predicted to true variance
(summed over queries), the coverage of the predicted 90% intervals by the true next observations,
and their Gaussian NLL. With ``--csv`` it writes the claims engine's measurement rows: per seed,
``predicted-variance`` and ``true-variance`` (mean over queries of the variance summed over
dimensions, each dimension in units of the dataset's standard deviation of observation changes, so
no dimension dominates by its scale), and ``interval-coverage`` with the ``nominal-coverage`` 0.9.
The claims ``stori-models-underestimate-variance-*`` and ``models-calibrated-on-clean-data`` read
them.

    python benchmarks/stori_model_calibration.py --seeds 0,1,2,3,4 --csv DIR/stori_model_calibration.csv
    python benchmarks/stori_model_calibration.py --env HalfCheetah-v5 --seeds 0,1,2,3,4 --csv DIR/...

``--csv`` replaces that environment's rows of an existing file and keeps the others'.
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import os
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from offrl_bench.core import registry
from offrl_bench.core.config import build_config
from offrl_bench.data.datasets import dataset_exists, load_dataset
from offrl_bench.data.make import DatasetRequest, default_dataset_id, make_dataset
from offrl_bench.envs.simulator_state import set_state_from_observation
from offrl_bench.envs.stori import make_regime
from offrl_bench.trust.claim_sources import write_measurements

#: Per environment: its episode length, the state kick of type 2.1, and the episodes per dataset.
ENVIRONMENTS = {"Pendulum-v1": (200, "p=0.05,sigma=0.1", 60), "HalfCheetah-v5": (1_000, "p=0.05,sigma=0.5", 20)}
NOMINAL = 0.90
Z90 = 1.6448536269514722  # the standard normal's 95% quantile: a central 90% interval


def types(env_id: str) -> tuple[tuple[str, str, str, int], ...]:
    """(name, wrapper the data are collected under, regime the truth is stepped in, first step of a
    query in its episode) per type."""
    length, kick, _ = ENVIRONMENTS[env_id]
    drift = length // 2
    return (("clean", "", "", 0),
            ("type 1", "stori:action:p=0.3", "stori:action:p=0.3", 0),
            ("type 2.1", f"stori:events:mode=state,{kick}", f"stori:events:mode=state,{kick}", 0),
            ("type 2.2", f"stori:drift:at={drift},to=stori:action:p=0.3", "stori:action:p=0.3", drift))


def queries(env_id: str, wrapper: str, first_step: int, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Held-out (observation, action) pairs: states visited by a uniformly random policy in the
    data's environment (seeds the dataset never used), from ``first_step`` of an episode on."""
    from offrl_bench.envs import make_env

    env = make_env(env_id, wrapper)
    rng = np.random.default_rng(10_000 + seed)
    observations, actions = [], []
    episode = 0
    while len(observations) < count:
        observation, _ = env.reset(seed=10_000 + 100 * seed + episode)
        episode += 1
        for step in range(ENVIRONMENTS[env_id][0]):
            action = rng.uniform(env.action_space.low, env.action_space.high).astype(np.float32)
            if step >= first_step and rng.random() < 0.1:  # spread the queries over episodes
                observations.append(observation)
                actions.append(action)
            observation, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                break
    return np.array(observations[:count], dtype=np.float32), np.array(actions[:count], dtype=np.float32)


def true_next(env_id: str, regime: str, observations: np.ndarray, actions: np.ndarray, samples: int,
              seed: int) -> np.ndarray:
    """(samples, queries, obs_dim): the simulator set to each query's state and stepped ``samples``
    times under ``regime`` (its own seeded RNG)."""
    base = gym.make(env_id).unwrapped
    env = make_regime(base, regime) if regime else base
    env.reset(seed=20_000 + seed)
    out = np.empty((samples, *observations.shape), dtype=np.float64)
    for q, (observation, action) in enumerate(zip(observations, actions)):
        for k in range(samples):
            set_state_from_observation(base, observation)
            out[k, q] = env.step(action)[0]
    return out


def predicted(mopo, observations: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The elites' mixture: mean and variance (queries, obs_dim) of the next observation."""
    model = mopo.model
    obs = torch.as_tensor(observations)
    with torch.no_grad():
        mean, logvar = model.ensemble(torch.cat([obs, mopo.scaler.to_unit(torch.as_tensor(actions))], dim=-1))
    scale, shift = model.ensemble.target_std, model.ensemble.target_mean
    means = (mean[model.elites] * scale + shift)[..., :-1] + obs  # (elites, B, obs_dim)
    variances = (logvar[model.elites].exp() * scale ** 2)[..., :-1]
    return means.mean(0).numpy(), (variances.mean(0) + means.var(0, unbiased=False)).numpy()


def measure(mean: np.ndarray, variance: np.ndarray, truth: np.ndarray, scale: np.ndarray) -> dict:
    """Variance ratio and interval coverage per dimension, NLL, and the standardised variances."""
    true_variance = truth.var(axis=0, ddof=1)  # (queries, obs_dim)
    sd = np.sqrt(variance)
    inside = np.abs(truth - mean) <= Z90 * sd  # (samples, queries, obs_dim)
    nll = 0.5 * (np.log(2 * np.pi * variance) + (truth - mean) ** 2 / variance)
    return {"ratio": variance.sum(0) / np.maximum(true_variance.sum(0), 1e-30),
            "coverage": inside.mean(axis=(0, 1)), "nll": float(nll.sum(-1).mean()),
            "predicted": float((variance / scale ** 2).sum(-1).mean()),
            "true": float((true_variance / scale ** 2).sum(-1).mean())}


def _dims(values: np.ndarray, spec: str) -> str:
    """Every dimension's value (3 or fewer), else the minimum, median and maximum."""
    if len(values) <= 3:
        return "/".join(f"{v:{spec}}" for v in values)
    return f"min {values.min():{spec}} med {np.median(values):{spec}} max {values.max():{spec}}"


def dataset_for(env_id: str, wrapper: str, episodes: int) -> str:
    """The mixed dataset collected under ``wrapper``, under its own name (``calibration-mixed...``):
    a suite's ``mixed`` dataset of the same environment must never be replaced by this one."""
    name = default_dataset_id(env_id, "calibration-mixed", wrapper).removesuffix("-v0") + f"-{episodes}ep-v0"
    request = DatasetRequest(env_id, "mixed", episodes=episodes, name=name, wrapper=wrapper)
    if not dataset_exists(request.dataset_id):
        make_dataset(request, log=lambda message: print(f"  {message}"))
    return request.dataset_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Pendulum-v1", choices=tuple(ENVIRONMENTS))
    parser.add_argument("--seeds", default="0", help="comma-separated; one dynamics model per seed")
    parser.add_argument("--episodes", type=int, default=None, help="episodes per dataset (default: per environment)")
    parser.add_argument("--queries", type=int, default=200, help="held-out states and actions")
    parser.add_argument("--samples", type=int, default=200, help="simulator steps per query for the truth")
    parser.add_argument("--types", default=None, help="comma-separated, e.g. 'clean,type 1' (default: all)")
    parser.add_argument("--csv", type=Path, default=None, help="write the claims engine's rows here")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    known = types(args.env)
    wanted = args.types.split(",") if args.types else [name for name, *_ in known]
    unknown = sorted(set(wanted) - {name for name, *_ in known})
    if unknown:
        parser.error(f"unknown type {', '.join(unknown)}; accepted: {', '.join(name for name, *_ in known)}")
    chosen = [t for t in known if t[0] in wanted]
    episodes = args.episodes or ENVIRONMENTS[args.env][2]
    torch.set_num_threads(1)
    cls = registry.algorithm_class("mopo")
    rows = []
    print(f"{args.env}: {episodes} mixed episodes per type, {args.queries} held-out queries, "
          f"{args.samples} simulator steps per query")
    for name, wrapper, regime, first_step in chosen:
        dataset_id = dataset_for(args.env, wrapper, episodes)
        dataset = load_dataset(dataset_id)
        deltas = (dataset.next_observations - dataset.observations).numpy()
        scale = deltas.std(axis=0)
        print(f"\n{name} ({wrapper or 'no wrapper'}), dataset {dataset_id}: {len(dataset)} transitions")
        print(f"{'seed':>4} {'epochs':>6} {'variance ratio per dim':>28} {'90% coverage per dim':>28} "
              f"{'NLL':>8} {'pred var':>9} {'true var':>9} {'s':>5}")
        for seed in seeds:
            started = time.perf_counter()
            mopo = cls(dataset.spec, build_config(cls, ()), seed)
            mopo.setup(dataset)
            observations, actions = queries(args.env, wrapper, first_step, args.queries, seed)
            truth = true_next(args.env, regime, observations, actions, args.samples, seed)
            result = measure(*predicted(mopo, observations, actions), truth, scale)
            print(f"{seed:>4} {mopo.model.epochs:>6} {_dims(result['ratio'], '.3g'):>28} "
                  f"{_dims(result['coverage'], '.3f'):>28} {result['nll']:>8.2f} "
                  f"{result['predicted']:>9.4f} {result['true']:>9.4f} {time.perf_counter() - started:>5.0f}")
            values = {"predicted-variance": result["predicted"], "true-variance": result["true"],
                      "interval-coverage": float(result["coverage"].mean()), "nominal-coverage": NOMINAL}
            rows += [{"algorithm": algorithm, "dataset": dataset_id, "wrapper": wrapper or "none", "seed": seed,
                      "value": value} for algorithm, value in values.items()]
    if args.csv:
        write_rows(args.csv, rows)
        print(f"\nwrote {args.csv}")


def write_rows(path: Path, rows: list[dict]) -> None:
    """Write ``rows`` to the CSV, replacing the rows of their datasets and keeping the others (under
    a lock on its folder, so runs of several types in parallel can share one file)."""
    replaced = {row["dataset"] for row in rows}
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        kept = []
        if path.exists():
            with open(path, newline="") as f:
                kept = [row for row in csv.DictReader(f) if row["dataset"] not in replaced]
        write_measurements(path, kept + rows)
    finally:
        os.close(folder)  # releases the lock


if __name__ == "__main__":
    main()
