"""Peak memory of training on a 1M-transition continuous dataset.

Writes a D4RL-format HDF5 file with 1,000,000 transitions in Hopper-v5's shapes (11-dim float64
observations, 3-dim actions; 1,000 episodes of 1,000 steps, next observations consistent within
episodes), imports it into a temporary Minari root with ``offrl-bench data import-d4rl``, then, in a
fresh process, loads it and trains TD3+BC for a few hundred updates, and prints that process's peak
resident set size. Needs the ``mujoco`` extra (for Hopper-v5's spaces).

    python benchmarks/memory.py [--transitions 1000000] [--algo td3_bc] [--updates 200]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

TRAIN = r"""
import resource, sys, time, torch
from offrl_bench.data.datasets import load_dataset
from offrl_bench.execution.runner import RunSpec, build_algorithm
started = time.perf_counter()
dataset = load_dataset(sys.argv[1])
loaded = time.perf_counter() - started
algorithm = build_algorithm(RunSpec(sys.argv[2], sys.argv[1], 0), dataset)
algorithm.setup(dataset)
generator = torch.Generator().manual_seed(0)
for _ in range(int(sys.argv[3])):
    algorithm.update(dataset.sample(256, generator))
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{len(dataset)} transitions loaded in {loaded:.1f} s; peak RSS while training {sys.argv[2]}: {peak_mb:.0f} MB")
"""


def write_file(path: Path, transitions: int, episode_length: int = 1000) -> None:
    rng = np.random.default_rng(0)
    observations = rng.normal(size=(transitions, 11))
    next_observations = np.roll(observations, -1, axis=0)
    timeouts = np.zeros(transitions, dtype=bool)
    timeouts[episode_length - 1::episode_length] = True
    next_observations[timeouts] = rng.normal(size=(int(timeouts.sum()), 11))
    with h5py.File(path, "w") as f:
        f["observations"] = observations
        f["next_observations"] = next_observations
        f["actions"] = rng.uniform(-1, 1, size=(transitions, 3)).astype(np.float32)
        f["rewards"] = rng.normal(size=transitions).astype(np.float32)
        f["terminals"] = np.zeros(transitions, dtype=bool)
        f["timeouts"] = timeouts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transitions", type=int, default=1_000_000)
    parser.add_argument("--algo", default="td3_bc")
    parser.add_argument("--updates", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MINARI_DATASETS_PATH": str(Path(tmp) / "minari")}
        path = Path(tmp) / "hopper-like.hdf5"
        write_file(path, args.transitions)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "offrl_bench.cli", "data", "import-d4rl", str(path), "--env",
                        "Hopper-v5", "--name", "bench/hopper-like-v0", "--ref-min", "0", "--ref-max", "1"],
                       check=True, env=env, capture_output=True)
        print(f"import of {args.transitions} transitions took {time.perf_counter() - started:.1f} s")
        subprocess.run([sys.executable, "-c", TRAIN, "bench/hopper-like-v0", args.algo, str(args.updates)],
                       check=True, env=env)


if __name__ == "__main__":
    main()
