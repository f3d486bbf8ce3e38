"""Training on images: CNN updates per second, and the peak memory of training on 1M Atari frames.

    python benchmarks/image_training.py rate [--algos bc,bcq,cql,iql,dt] [--encoders minatar,nature,impala]
                                             [--updates 30] [--threads 2]
    python benchmarks/image_training.py memory [--transitions 1000000] [--updates 200]

``rate`` times each discrete learner's update on synthetic image batches of each encoder's input:
MinAtar grids (10x10x4, batch 256), Atari frames (84x84, 4 stacked, batch 32 as DQN's) and Procgen
frames (64x64x3, batch 256 as the generalization-gap paper's), after warm-up updates; batches are
drawn from an in-memory frame dataset, so sampling and stacking are part of the time. DT's batch is
its own (sequences of 20 steps: 64 and, for Atari frames, 8).

``memory`` writes a Minari dataset of ``--transitions`` Atari-shaped transitions (84x84x1 uint8
frames with ``frame_stack=4``: moving blocks on a still background, so that gzip has something to
find, as in real frames) once, then in a fresh process loads it and runs discrete CQL with the
Nature DQN encoder for ``--updates`` updates, and prints the process's peak resident memory beside
the frames' own size. The frames alone take 7.1 GB at 1M transitions; stored as float32 stacks
they would take 113 GB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from offrl_bench.core import registry
from offrl_bench.core.api import EnvSpec
from offrl_bench.core.config import build_config
from offrl_bench.data.datasets import TransitionDataset
from offrl_bench.data.frames import FrameBuffer, stacked_space

#: (frame shape, frame stack, batch, DT batch) per encoder.
INPUTS = {"minatar": ((10, 10, 4), 1, 256, 64), "nature": ((84, 84, 1), 4, 32, 8),
          "impala": ((64, 64, 3), 1, 256, 64)}
MEMORY_DATASET = "bench/atari-shaped/frames-v0"
#: The environment the memory dataset names (never stepped: the measurement only trains).
MEMORY_ENV = "ALE/Breakout-v5"


def _frames(rng: np.random.Generator, count: int, shape: tuple[int, ...]) -> np.ndarray:
    """Frames of a still background with two blocks that move one pixel a step."""
    height, width, channels = shape
    frames = np.full((count, height, width, channels), 40, dtype=np.uint8)
    start = rng.integers(0, [height - 8, width - 8], size=(2, 2))
    for t in range(count):
        for k, (row, column) in enumerate(start):
            row, column = (row + t * (1 + k)) % (height - 8), (column + t) % (width - 8)
            frames[t, row:row + 8, column:column + 8] = 200
    return frames


def _image_dataset(frame_shape: tuple[int, ...], stack: int, transitions: int = 4_000, length: int = 200,
                   actions: int = 6) -> TransitionDataset:
    rng = np.random.default_rng(0)
    episodes = transitions // length
    buffer = FrameBuffer(episodes * (length + 1), frame_shape)
    for _ in range(episodes):
        buffer.add_episode(_frames(rng, length + 1, frame_shape))
    observations, next_observations = buffer.views(stack)
    high = 1 if frame_shape[0] < 36 else 255
    space = stacked_space(gym.spaces.Box(0, high, frame_shape, np.uint8), stack)
    return TransitionDataset(
        dataset_id="bench", spec=EnvSpec(space, gym.spaces.Discrete(actions)), observations=observations,
        actions=torch.from_numpy(rng.integers(actions, size=transitions)), rewards=torch.rand(transitions),
        next_observations=next_observations, terminals=torch.zeros(transitions), timeouts=torch.zeros(transitions),
        episode_starts=torch.arange(0, transitions, length), episode_returns=rng.random(episodes))


def rate(algos: list[str], encoders: list[str], updates: int, threads: int) -> None:
    torch.set_num_threads(threads)
    print(f"updates/s on {threads} thread(s), {updates} timed updates after 5 warm-up updates")
    print(f"{'encoder':<9} {'input':<12} " + " ".join(f"{algo:>8}" for algo in algos))
    for encoder in encoders:
        frame_shape, stack, batch, dt_batch = INPUTS[encoder]
        dataset = _image_dataset(frame_shape, stack)
        cells = []
        for algo in algos:
            cls = registry.algorithm_class(algo)
            size = dt_batch if algo == "dt" else batch
            config = build_config(cls, (("encoder", encoder), ("batch_size", str(size))))
            algorithm = cls(dataset.spec, config, seed=0)
            algorithm.setup(dataset)
            generator = torch.Generator().manual_seed(0)
            for _ in range(5):
                algorithm.update(algorithm.sample(dataset, size, generator))
            start = time.perf_counter()
            for _ in range(updates):
                algorithm.update(algorithm.sample(dataset, size, generator))
            cells.append(updates / (time.perf_counter() - start))
        shape = "x".join(map(str, dataset.spec.observation_space.shape))
        print(f"{encoder:<9} {shape:<12} " + " ".join(f"{value:>8.1f}" for value in cells), flush=True)


def _write_memory_dataset(transitions: int, length: int = 1_000) -> None:
    from offrl_bench.core.rollout import Episode
    from offrl_bench.data.datasets import dataset_exists, write_dataset

    if dataset_exists(MEMORY_DATASET):
        return
    rng = np.random.default_rng(0)
    episodes = []
    for start in range(0, transitions, length):
        n = min(length, transitions - start)
        episodes.append(Episode(seed=start, episode_return=0.0, length=n, observations=_frames(rng, n + 1, (84, 84, 1)),
                                actions=rng.integers(6, size=n), rewards=np.zeros(n), terminations=np.zeros(n, bool),
                                truncations=np.eye(1, n, n - 1, dtype=bool)[0]))
    write_dataset(MEMORY_DATASET, episodes, MEMORY_ENV, gym.spaces.Box(0, 255, (84, 84, 1), np.uint8),
                  gym.spaces.Discrete(6), 0.0, 1.0, "bench", {"frame_stack": 4})


def _train_in_this_process(updates: int) -> dict:
    from offrl_bench.data.datasets import load_dataset

    start = time.perf_counter()
    dataset = load_dataset(MEMORY_DATASET, env_id=MEMORY_ENV)
    loaded = time.perf_counter() - start
    cls = registry.algorithm_class("cql")
    config = build_config(cls, (("batch_size", "32"),))
    algorithm = cls(dataset.spec, config, seed=0)
    algorithm.setup(dataset)
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(updates):
        algorithm.update(algorithm.sample(dataset, 32, generator))
    return {"transitions": len(dataset), "frame_bytes": dataset.observations.frames.nbytes,
            "observation_shape": list(dataset.observations.shape), "load_seconds": loaded,
            "updates_per_second": updates / (time.perf_counter() - start),
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def memory(transitions: int, updates: int) -> None:
    import ale_py  # the atari extra: Minari stores the named environment's spec

    from offrl_bench.data.datasets import dataset_path

    gym.register_envs(ale_py)

    _write_memory_dataset(transitions)
    stored = sum(f.stat().st_size for f in dataset_path(MEMORY_DATASET).rglob("*") if f.is_file())
    child = subprocess.run([sys.executable, __file__, "_train", str(updates)], capture_output=True, text=True,
                           check=True)
    result = json.loads(child.stdout.strip().splitlines()[-1])
    gb = 1e9
    float_stacks = result["transitions"] * 84 * 84 * 4 * 4  # one float32 stack per transition
    print(f"{result['transitions']:,} transitions of {'x'.join(map(str, result['observation_shape'][1:]))} uint8 "
          f"observations (frames stacked at sample time)")
    print(f"  on disk (gzip): {stored / gb:.2f} GB; frames in memory: {result['frame_bytes'] / gb:.2f} GB; "
          f"as float32 stacks they would be {float_stacks / gb:.0f} GB ({2 * float_stacks / gb:.0f} GB with "
          "next observations)")
    print(f"  load {result['load_seconds']:.0f} s; discrete CQL, Nature DQN encoder, batch 32: "
          f"{result['updates_per_second']:.1f} updates/s; peak RSS {result['peak_rss_bytes'] / gb:.2f} GB")


def main() -> None:
    if sys.argv[1:2] == ["_train"]:
        print(json.dumps(_train_in_this_process(int(sys.argv[2]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    timing = commands.add_parser("rate")
    timing.add_argument("--algos", default="bc,bcq,cql,iql,dt")
    timing.add_argument("--encoders", default="minatar,nature,impala")
    timing.add_argument("--updates", type=int, default=30)
    timing.add_argument("--threads", type=int, default=2)
    peak = commands.add_parser("memory")
    peak.add_argument("--transitions", type=int, default=1_000_000)
    peak.add_argument("--updates", type=int, default=200)
    args = parser.parse_args()
    if args.command == "rate":
        rate(args.algos.split(","), args.encoders.split(","), args.updates, args.threads)
    else:
        memory(args.transitions, args.updates)


if __name__ == "__main__":
    main()
