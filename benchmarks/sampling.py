"""Batch sampling: offrl-bench's contiguous tensors vs sampling through Minari's own API.

Both draw 256 random transitions per batch from the same local Minari dataset. The Minari path is
what a training loop gets without a tensor view: `iterate_episodes` reads the episodes of 256
random transitions from HDF5, then the transitions are picked out of them. offrl-bench reads the
dataset once (`load_dataset`) and
every batch is a single index gather. Run:

    python benchmarks/sampling.py [--env CartPole-v1] [--episodes 50] [--batches 200]

The dataset is created in a temporary MINARI_DATASETS_PATH, so nothing outside it is touched.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    os.environ["MINARI_DATASETS_PATH"] = tempfile.mkdtemp(prefix="offrl-bench-sampling-")

    from offrl_bench.data.datasets import load_dataset, open_dataset
    from offrl_bench.data.make import DatasetRequest, make_dataset

    request = DatasetRequest(args.env, "mixed", episodes=args.episodes, name="bench/sampling-v0")
    make_dataset(request, log=lambda m: None)

    minari_dataset = open_dataset(request.dataset_id)
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for _ in range(args.batches):
        episodes = list(minari_dataset.iterate_episodes(rng.integers(minari_dataset.total_episodes,
                                                                     size=args.batch_size).tolist()))
        steps = [rng.integers(len(e.rewards)) for e in episodes]
        torch.as_tensor(np.stack([e.observations[t] for e, t in zip(episodes, steps)]))
        torch.as_tensor(np.stack([e.actions[t] for e, t in zip(episodes, steps)]))
        torch.as_tensor(np.stack([e.observations[t + 1] for e, t in zip(episodes, steps)]))
    minari_rate = args.batches / (time.perf_counter() - started)

    started = time.perf_counter()
    dataset = load_dataset(request.dataset_id)
    load_seconds = time.perf_counter() - started
    generator = torch.Generator().manual_seed(0)
    n = args.batches * 50
    started = time.perf_counter()
    for _ in range(n):
        dataset.sample(args.batch_size, generator)
    tensor_rate = n / (time.perf_counter() - started)

    print(f"dataset: {request.env_id} mixed, {dataset.n_episodes} episodes, {len(dataset)} transitions; "
          f"torch threads {torch.get_num_threads()}")
    print(f"minari iterate_episodes: {minari_rate:10.1f} batches/s")
    print(f"offrl-bench tensors:     {tensor_rate:10.1f} batches/s (one-time load {load_seconds:.2f} s)")
    print(f"ratio: {tensor_rate / minari_rate:.0f}x")


if __name__ == "__main__":
    main()
