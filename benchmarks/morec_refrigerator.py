"""MOREC's motivating example on the refrigerator task: does the dynamics reward recover transitions
far from the data, where the dynamics model fails?

The task, every constant with its source, is in ``envs/refrigerator.py`` (REVIVE's refrigerator
example; MOREC's own repository does not hold it). Per seed:

1. **Data**: one 2,000-step episode of the data controller (a proportional controller for -2
   degrees, REVIVE's ``SamplingPolicy(p=0.2)``), from 10 degrees, door events included.
   Observation the reported temperature; the models' input besides it is (cooling power in [0, 5],
   door open), the door being known when the step starts, as in REVIVE's data (a door state the
   model had to predict would hand the discriminator a give-away: real ones are exactly 0 or 1);
   reward -|next temperature + 2|.
2. **Models**, as ``--algo mopo --set filter=morec`` trains them: MOPO's dynamics ensemble
   (``DynamicsSettings()``: 7 members, 5 elites) and MOREC's dynamics reward against it
   (``MORECSettings()``), with the reward's own held-out check (``learned``).
3. **Test transitions** at the true (noise-free) states of two new episodes: the data controller's
   (``seen``: the data's temperatures) and a controller for -8 degrees (``unseen``: kept are its
   transitions whose temperature is more than 1 degree, 10 x the reporting noise, from every
   temperature in the data). For each, the ensemble draws MOREC's 10 candidates (5 elites x 2),
   and the true error of the next temperature is measured for the candidate with the highest dynamics
   reward (the filter's pick), for a uniformly random candidate, and for the candidates' mean (the
   MLE model's prediction).

With ``--csv`` it writes the claims engine's measurement rows (``algorithm``: ``morec-chosen``,
``random-candidate``, ``mle-mean``; ``dataset``: ``refrigerator/seen`` or ``refrigerator/unseen``;
one row per seed, with ``dynamics_reward_learned``) for the claims ``refrigerator-model-fails-off-data``
(the premise: the MLE model's error is larger on the unseen transitions) and
``morec-recovers-unseen-transitions`` (the filter's pick is truer than a random candidate there).
With ``--figure`` it draws the example's figure: the temperatures each controller visits, the true
error along the temperature axis of the filter's pick, a random candidate and the MLE prediction,
and the dynamics reward over (temperature, next temperature) with the true dynamics drawn in.

    python benchmarks/morec_refrigerator.py --seeds 0,1,2,3,4 --csv DIR/morec_refrigerator.csv \
        --figure DIR/plots/morec_refrigerator.png
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from offrl_bench.algorithms.dynamics_model import DynamicsModel, DynamicsSettings
from offrl_bench.algorithms.morec import DynamicsReward, MORECSettings
from offrl_bench.core.api import EnvSpec
from offrl_bench.data.datasets import TransitionDataset
from offrl_bench.envs.refrigerator import DATA_TARGET, Controller, Episode, next_temperature, run_episode
from offrl_bench.trust.claim_sources import write_measurements

MAX_POWER = 5.0
TEST_TARGET = -8.0
UNSEEN_DISTANCE = 1.0  # degrees from the nearest data temperature
SUBSETS = ("seen", "unseen")
PICKS = ("morec-chosen", "random-candidate", "mle-mean")


def to_unit(power: np.ndarray, door_open: np.ndarray) -> torch.Tensor:
    """(power in [0, 5], door open) as the [-1, 1] inputs the models read (MOPO's unit actions)."""
    return torch.tensor(np.stack([power / (MAX_POWER / 2) - 1, 2 * door_open.astype(float) - 1], 1),
                        dtype=torch.float32)


def dataset_of(episode: Episode) -> TransitionDataset:
    n = len(episode.observed)
    spec = EnvSpec(gym.spaces.Box(-np.inf, np.inf, (1,), np.float32),
                   gym.spaces.Box(np.array([0.0, 0.0], np.float32), np.array([MAX_POWER, 1.0], np.float32)))
    return TransitionDataset(
        dataset_id="refrigerator/data", spec=spec,
        observations=torch.tensor(episode.observed, dtype=torch.float32)[:, None],
        actions=torch.tensor(np.stack([episode.power, episode.door_open], 1), dtype=torch.float32),
        rewards=torch.tensor(-np.abs(episode.next_observed - DATA_TARGET), dtype=torch.float32),
        next_observations=torch.tensor(episode.next_observed, dtype=torch.float32)[:, None],
        terminals=torch.zeros(n), timeouts=torch.zeros(n), episode_starts=torch.tensor([0]),
        episode_returns=np.array([float(-np.abs(episode.next_observed - DATA_TARGET).sum())]))


def train(dataset: TransitionDataset, seed: int) -> tuple[DynamicsModel, DynamicsReward]:
    torch.manual_seed(seed)  # initialisation, and the ensemble's sampling noise
    generator = torch.Generator().manual_seed(seed)
    unit = to_unit(dataset.actions[:, 0].numpy(), dataset.actions[:, 1].numpy())
    model = DynamicsModel(1, 2, DynamicsSettings(), torch.device("cpu"))
    model.fit(dataset, unit, generator)
    reward = DynamicsReward(1, 2, MORECSettings(), torch.device("cpu"))
    reward.fit(dataset, unit, model, generator)
    return model, reward


def picks(model: DynamicsModel, reward: DynamicsReward, temperature: np.ndarray, door: np.ndarray,
          power: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The next temperature of the filter's pick, a random candidate and the candidates' mean, from
    one draw of 10 candidates per state."""
    observations = torch.tensor(temperature, dtype=torch.float32)[:, None]
    unit = to_unit(power, door)
    with torch.no_grad():
        candidates, _, _ = model.sample(observations, unit, reward.settings.candidates_per_elite)
        scores = reward.score(observations, unit, candidates)
    rows = np.arange(len(temperature))
    next_temperatures = candidates[..., 0].numpy()
    return {"morec-chosen": next_temperatures[scores.argmax(0).numpy(), rows],
            "random-candidate": next_temperatures[rng.integers(len(next_temperatures), size=len(rows)), rows],
            "mle-mean": next_temperatures.mean(0)}


def measure(seed: int) -> dict:
    data = run_episode(Controller(DATA_TARGET), seed=10_000 + seed)
    dataset = dataset_of(data)
    started = time.perf_counter()
    model, reward = train(dataset, seed)
    seconds = time.perf_counter() - started
    known = np.sort(data.observed)
    rng = np.random.default_rng(seed)
    errors = {}
    for subset, target, episode_seed in (("seen", DATA_TARGET, 20_000 + seed), ("unseen", TEST_TARGET, 30_000 + seed)):
        test = run_episode(Controller(target), seed=episode_seed)
        at = np.clip(np.searchsorted(known, test.true), 1, len(known) - 1)
        distance = np.minimum(np.abs(test.true - known[at - 1]), np.abs(test.true - known[at]))
        keep = distance > UNSEEN_DISTANCE if subset == "unseen" else distance <= UNSEEN_DISTANCE
        chosen = picks(model, reward, test.true[keep], test.door_open[keep], test.power[keep], rng)
        errors[subset] = {name: float(np.abs(value - test.next_true[keep]).mean()) for name, value in chosen.items()}
        errors[subset]["transitions"] = int(keep.sum())
    report = reward.report()
    print(f"seed {seed}: models trained in {seconds:.0f} s; data temperatures {known[0]:.2f} to {known[-1]:.2f}; "
          f"dynamics reward held-out balanced accuracy {report['dynamics_reward_accuracy']:.3f} "
          f"(low {report['dynamics_reward_accuracy_low']:.3f}), AUC {report['dynamics_reward_held_out_auc']:.3f}, "
          f"learned: {reward.learned}")
    for subset, values in errors.items():
        print(f"  {subset:>6} ({values['transitions']} transitions): true error of the next temperature "
              + ", ".join(f"{name} {values[name]:.4f}" for name in PICKS))
    return {"errors": errors, "learned": int(reward.learned), "model": model, "reward": reward, "data": data}


def draw_figure(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model, reward, data = result["model"], result["reward"], result["data"]
    test = run_episode(Controller(TEST_TARGET), seed=40_000)
    grid = np.linspace(-12, 12, 97)
    power = np.array([max(0.0, Controller(TEST_TARGET).gain * (t - (TEST_TARGET - 1.75))) for t in grid])
    closed = np.zeros_like(grid, dtype=bool)
    truth = next_temperature(grid, power, closed)
    rng = np.random.default_rng(0)
    draws = [picks(model, reward, grid, closed, power, rng) for _ in range(20)]
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    axes[0].hist(data.observed, bins=60, range=(-12, 12), alpha=0.7, label="data controller (-2 degrees)")
    axes[0].hist(test.observed, bins=60, range=(-12, 12), alpha=0.7, label="test controller (-8 degrees)")
    axes[0].set(xlabel="temperature", ylabel="steps", title="(a) where each controller keeps the fridge")
    axes[0].legend(fontsize=8)
    low, high = data.observed.min(), data.observed.max()
    for name in PICKS:
        error = np.mean([np.abs(d[name] - truth) for d in draws], axis=0)
        axes[1].plot(grid, error, label=name)
    axes[1].axvspan(low, high, color="grey", alpha=0.15, label="data's temperatures")
    axes[1].set(xlabel="temperature (door closed, the test controller's power)", ylabel="|next temperature error|",
                yscale="log", title="(b) true one-step error")
    axes[1].legend(fontsize=8)
    offsets = np.linspace(-3.0, 3.0, 121)
    observations = torch.tensor(grid, dtype=torch.float32)[:, None]
    candidates = torch.tensor(truth[None, :] + offsets[:, None], dtype=torch.float32)[..., None]
    with torch.no_grad():
        scores = reward.score(observations, to_unit(power, closed), candidates).numpy()
    image = axes[2].imshow(scores, origin="lower", aspect="auto", cmap="viridis",
                           extent=(grid[0], grid[-1], offsets[0], offsets[-1]))
    axes[2].axhline(0, color="white", lw=1, label="true next temperature")
    axes[2].plot(grid, np.mean([d["mle-mean"] for d in draws], axis=0) - truth, color="red", lw=1,
                 label="MLE model's prediction")
    axes[2].axvspan(low, high, color="white", alpha=0.12)
    axes[2].set(xlabel="temperature", ylabel="next temperature - true next temperature",
                title="(c) dynamics reward")
    axes[2].legend(fontsize=8, loc="upper left")
    figure.colorbar(image, ax=axes[2], label="dynamics reward")
    figure.suptitle("MOREC's refrigerator example (one seed): model error and dynamics reward off the data")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0", help="comma-separated; one dataset and one model per seed")
    parser.add_argument("--csv", type=Path, default=None, help="write the claims engine's rows here")
    parser.add_argument("--figure", type=Path, default=None, help="draw the figure (first seed) here")
    args = parser.parse_args()
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers, got '{args.seeds}'")
    torch.set_num_threads(1)
    rows, results = [], []
    for seed in seeds:
        result = measure(seed)
        results.append(result)
        rows += [{"algorithm": name, "dataset": f"refrigerator/{subset}", "wrapper": "none", "seed": seed,
                  "value": result["errors"][subset][name], "dynamics_reward_learned": result["learned"]}
                 for subset in SUBSETS for name in PICKS]
    if args.csv:
        write_measurements(args.csv, rows)
        print(f"wrote {args.csv}")
    if args.figure:
        draw_figure(results[0], args.figure)


if __name__ == "__main__":
    main()
