"""Behaviour policies that generate datasets: random, medium and expert, trained with Stable-Baselines3.

An expert and a medium checkpoint are trained once per environment (``offrl-bench data
train-policy ENV_ID``). Checkpoints for the embedded environments ship inside the package so
datasets regenerate in seconds and identically; for any other environment the first ``data make``
trains them and caches them in ``$OFFRL_BENCH_POLICIES`` (default ``~/.cache/offrl-bench/policies``).

The *medium* policy is the training snapshot whose score is closest to halfway between the random
and the expert policy, like D4RL's "medium" (an early-stopped policy of roughly half expert
performance).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from offrl_bench.core.rollout import Policy, run_episodes
from offrl_bench.envs import make_env

SHIPPED_DIR = Path(__file__).parent / "policies"
QUALITIES = ("random", "medium", "expert", "mixed")

#: Seeds for reference-score and snapshot-selection episodes; disjoint from dataset and evaluation seeds.
REFERENCE_SEED = 900_000


@dataclass(frozen=True)
class Recipe:
    """How to train a behaviour policy for one environment (hyper-parameters from rl-baselines3-zoo)."""

    algo: str  # "PPO" or "SAC"
    timesteps: int
    n_envs: int = 1
    hyperparams: dict[str, Any] = field(default_factory=dict)
    default_episodes: int = 50
    snapshots: int = 40  # scored while training; the medium policy is picked among them
    #: Wrapper spec the policy trains and is scored under. Procedurally generated environments train
    #: on their train levels only, as the paper's experts do, so that no test level is ever seen.
    wrapper: str = ""
    policy: str = "MlpPolicy"  # SB3's "CnnPolicy" for image observations
    #: Act by sampling the policy's action distribution (from a seeded generator) instead of its
    #: most likely action, while scoring snapshots and collecting data. Procgen's experts act so: an
    #: argmax policy can walk into the same wall until the time limit.
    sampled: bool = False


#: Environment families whose layouts come from level seeds (see ``offrl_bench.envs.level_splits``).
LEVEL_GENERATED = ("MiniGrid-", "procgen/")


#: PPO on MiniGrid's flattened 7x7x3 view: rl-baselines3-zoo's MiniGrid settings with larger batches
#: and fewer epochs, so that training takes minutes on a CPU.
MINIGRID_PPO = dict(n_steps=256, batch_size=256, gae_lambda=0.95, gamma=0.99, n_epochs=4, ent_coef=0.01,
                    learning_rate=7e-4, clip_range=0.2)

#: PPO for Procgen's easy mode: the Procgen paper's settings (gamma 0.999, lambda 0.95, lr 5e-4,
#: 3 epochs, entropy 0.01, clip 0.2, 256-step rollouts) with 16 environments instead of 64 and
#: 4 minibatches of 1,024 instead of 8 of 2,048, on SB3's Nature CNN instead of the IMPALA ResNet,
#: so that 4M steps take about an hour on one CPU core.
PROCGEN_PPO = dict(n_steps=256, batch_size=1024, n_epochs=3, learning_rate=5e-4, gamma=0.999, gae_lambda=0.95,
                   ent_coef=0.01, clip_range=0.2)

RECIPES: dict[str, Recipe] = {
    # PROCGEN_PPO on the train levels 0-199 (the paper's 200 training levels), 4M steps.
    "procgen/coinrun-v0": Recipe(
        "PPO", 4_000_000, n_envs=16, default_episodes=200, snapshots=40, wrapper="levels:train",
        hyperparams=PROCGEN_PPO, policy="CnnPolicy", sampled=True,
    ),
    "CartPole-v1": Recipe(
        "PPO", 100_000, n_envs=8, default_episodes=20,
        hyperparams=dict(n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, learning_rate=1e-3),
    ),
    # SAC swings Pendulum up within ~3k steps: snapshot every episode to catch a medium policy.
    "Pendulum-v1": Recipe(
        "SAC", 20_000, default_episodes=50, snapshots=100,
        hyperparams=dict(learning_rate=1e-3, policy_kwargs=dict(net_arch=[64, 64])),
    ),
    # rl-baselines3-zoo's SAC settings for Hopper (its defaults: 256x256, lr 3e-4, batch 256) with
    # 360k instead of 1M steps: 75 minutes on one core of this project's 2-core CPU. The shipped
    # checkpoints: expert 3,135 (330k steps), medium 1,550 (250k), random 15.5. Episodes last up to
    # 1,000 steps, so 100 episodes make up to 100k transitions.
    "Hopper-v5": Recipe(
        "SAC", 360_000, default_episodes=100, snapshots=36,
        hyperparams=dict(learning_starts=10_000),
    ),
    # rl-baselines3-zoo's SAC settings for HalfCheetah (its defaults, learning_starts 10k) with 120k
    # instead of 1M steps: 41 minutes on one core here. The shipped checkpoints: expert 5,224 (120k
    # steps, still improving), medium 2,413 (45k), random -295. HalfCheetah is here for MOPO (the
    # ``morec-halfcheetah`` suite), which needs a spread of behaviour, not a 1M-step expert. Episodes
    # never end early, so 50 episodes are 50k transitions: MOPO's dynamics ensemble took 10.7 s per
    # epoch on 100k of them on one core, and trains up to 50 epochs.
    "HalfCheetah-v5": Recipe(
        "SAC", 120_000, default_episodes=50, snapshots=40,
        hyperparams=dict(learning_starts=10_000),
    ),
    # MINIGRID_PPO on the train levels 0-199 only.
    "MiniGrid-DoorKey-6x6-v0": Recipe(
        "PPO", 400_000, n_envs=8, default_episodes=200, snapshots=100, wrapper="levels:train",
        hyperparams=MINIGRID_PPO,
    ),
    # The generalization suite's environment: two rooms joined by a door, whose sizes, positions and
    # door place change with every seed (1,000 test resets showed 999 layouts). The DoorKey-6x6
    # settings learn it within about 70k steps, so training is short and snapshots are dense
    # (every 2,048 steps, one PPO rollout) to catch a policy of about half the expert's return.
    "MiniGrid-MultiRoom-N2-S4-v0": Recipe(
        "PPO", 204_800, n_envs=8, default_episodes=200, snapshots=100, wrapper="levels:train",
        hyperparams=MINIGRID_PPO,
    ),
}


def recipe_for(env_id: str, action_space: gym.spaces.Space) -> Recipe:
    if env_id in RECIPES:
        return RECIPES[env_id]
    wrapper = "levels:train" if env_id.startswith(LEVEL_GENERATED) else ""
    if isinstance(action_space, gym.spaces.Discrete):
        return Recipe("PPO", 200_000, n_envs=8, wrapper=wrapper)
    return Recipe("SAC", 100_000, hyperparams=dict(policy_kwargs=dict(net_arch=[256, 256])), wrapper=wrapper)


def cache_dir() -> Path:
    return Path(os.environ.get("OFFRL_BENCH_POLICIES", Path.home() / ".cache" / "offrl-bench" / "policies"))


def checkpoint_path(env_id: str, level: str) -> Path | None:
    """Shipped checkpoint first, then the user cache; None if neither has one."""
    for directory in (SHIPPED_DIR, cache_dir()):
        path = directory / f"{env_id}-{level}.zip"
        if path.exists():
            return path
    return None


def _sb3_class(algo: str):
    import stable_baselines3

    return getattr(stable_baselines3, algo)


def sb3_policy(model, rng: np.random.Generator | None = None) -> Policy:
    """A batched policy of an SB3 model: its most likely action, or (given ``rng``) an action
    sampled from its discrete action distribution with ``rng``, so that no global generator is used."""
    if rng is None:
        return lambda observations: model.predict(observations, deterministic=True)[0]
    import torch

    def sample(observations: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            tensor = model.policy.obs_to_tensor(observations)[0]
            probs = model.policy.get_distribution(tensor).distribution.probs.numpy().astype(np.float64)
        cumulative = probs.cumsum(axis=1)
        draws = rng.random((len(probs), 1)) * cumulative[:, -1:]
        return (draws > cumulative).sum(axis=1).clip(max=probs.shape[1] - 1)

    return sample


def load_sb3_policy(env_id: str, level: str, rng: np.random.Generator | None = None) -> Policy:
    """Batched policy of a shipped or cached SB3 checkpoint: deterministic, or sampled with ``rng``
    where its recipe acts by sampling (see :attr:`Recipe.sampled`)."""
    path = checkpoint_path(env_id, level)
    if path is None:
        raise FileNotFoundError(f"no {level} behaviour policy for {env_id}")
    info = json.loads(path.with_suffix(".json").read_text())
    model = _sb3_class(info["algo"]).load(path, device="cpu")
    sampled = info.get("recipe", {}).get("sampled", False)
    if sampled and rng is None:
        raise ValueError(f"the {level} policy of {env_id} acts by sampling: give it a seeded generator")
    return sb3_policy(model, rng if sampled else None)


def random_policy(action_space: gym.spaces.Space, rng: np.random.Generator) -> Policy:
    if isinstance(action_space, gym.spaces.Discrete):
        return lambda obs: rng.integers(action_space.start, action_space.start + action_space.n, size=len(obs))
    low, high = action_space.low, action_space.high
    return lambda obs: rng.uniform(low, high, size=(len(obs), *action_space.shape)).astype(action_space.dtype)


def noisy(policy: Policy, action_space: gym.spaces.Space, rng: np.random.Generator, noise: float) -> Policy:
    """Exploration noise for data collection: epsilon-random actions (discrete) or Gaussian noise of
    ``noise`` x half the action range (continuous), drawn from ``rng``."""
    if noise <= 0:
        return policy
    if isinstance(action_space, gym.spaces.Discrete):
        uniform = random_policy(action_space, rng)

        def epsilon_greedy(obs: np.ndarray) -> np.ndarray:
            actions = np.asarray(policy(obs))
            replace = rng.random(len(obs)) < noise
            return np.where(replace, uniform(obs), actions)

        return epsilon_greedy
    scale = noise * (action_space.high - action_space.low) / 2

    def gaussian(obs: np.ndarray) -> np.ndarray:
        actions = np.asarray(policy(obs)) + rng.normal(size=(len(obs), *action_space.shape)) * scale
        return np.clip(actions, action_space.low, action_space.high).astype(action_space.dtype)

    return gaussian


def mean_return(env_fn: Callable[[], gym.Env], policy: Policy, episodes: int) -> float:
    return float(np.mean([e.episode_return for e in run_episodes(env_fn, policy, episodes, REFERENCE_SEED)]))


def train_behaviour_policies(env_id: str, out_dir: Path, seed: int = 0, log: Callable[[str], None] = print) -> dict:
    """Train an SB3 agent on ``env_id`` and save ``{env_id}-expert.zip`` and ``{env_id}-medium.zip``.

    ``recipe.snapshots`` snapshots are taken during training and scored on the same evaluation episodes; the
    best becomes the expert, the one closest to halfway between random and expert the medium. Training,
    scoring and the random policy's reference all run under ``recipe.wrapper``.
    """
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.logger import Logger

    probe = make_env(env_id)
    recipe = recipe_for(env_id, probe.action_space)
    env_fn = lambda: make_env(env_id, recipe.wrapper)  # noqa: E731
    random_score = mean_return(env_fn, random_policy(probe.action_space, np.random.default_rng(seed)), 100)
    probe.close()

    algo = _sb3_class(recipe.algo)
    venv = make_vec_env(env_fn, n_envs=recipe.n_envs, seed=seed)
    # SB3 edits policy_kwargs in place: hand it a copy so the recipe stays as written.
    model = algo(recipe.policy, venv, seed=seed, device="cpu", verbose=0, **copy.deepcopy(recipe.hyperparams))
    model.set_logger(Logger(folder=None, output_formats=[]))  # SB3's default logger makes a /tmp dir per learn()
    out_dir.mkdir(parents=True, exist_ok=True)
    snapshots: list[tuple[int, float, Path]] = []
    chunk = recipe.timesteps // recipe.snapshots
    for index in range(recipe.snapshots):
        model.learn(chunk, reset_num_timesteps=False)
        path = out_dir / f".{env_id.replace('/', '-')}-snapshot{index}.zip"  # procgen/<game>: no hidden folder
        model.save(path, exclude=["replay_buffer"])
        rng = np.random.default_rng([seed, index]) if recipe.sampled else None
        score = mean_return(env_fn, sb3_policy(model, rng), 10)
        snapshots.append((model.num_timesteps, score, path))
        log(f"{env_id}: {model.num_timesteps} steps, return {score:.1f}")
    venv.close()

    expert = max(snapshots, key=lambda s: s[1])
    halfway = (random_score + expert[1]) / 2
    medium = min(snapshots, key=lambda s: abs(s[1] - halfway))
    summary = {"random_return": random_score}
    for level, (steps, score, path) in (("expert", expert), ("medium", medium)):
        target = out_dir / f"{env_id}-{level}.zip"
        target.parent.mkdir(parents=True, exist_ok=True)  # procgen/<game>-<level>.zip
        target.write_bytes(path.read_bytes())
        info = {"env_id": env_id, "level": level, "algo": recipe.algo, "timesteps": steps, "wrapper": recipe.wrapper,
                "snapshot_return": score, "random_return": random_score, "seed": seed, "recipe": asdict(recipe)}
        target.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
        summary[level] = info
    for _, _, path in snapshots:
        path.unlink()
    return summary


def describe(env_id: str, level: str) -> dict:
    """What a behaviour level is, for dataset metadata."""
    if level == "random":
        return {"policy": "uniform random actions"}
    path = checkpoint_path(env_id, level)
    info = json.loads(path.with_suffix(".json").read_text()) if path else {}
    return {"policy": f"{info.get('algo', '?')} checkpoint {path.name if path else '?'}",
            "timesteps": info.get("timesteps"), "snapshot_return": info.get("snapshot_return"),
            "trained_under": info.get("wrapper", "")}
