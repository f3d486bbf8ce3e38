"""Cost of model-based offline RL on a CPU: MOPO and MOPO+MOREC against model-free CQL, side by side.

All three train the same SAC (256x256, batch 256) on the same dataset. The script times, in one
process with the same torch threads: setup (MOPO: the 7-member dynamics ensemble; MOREC: also the
adversarial dynamics reward), and then updates per second including everything a run does per
update (MOPO's batches come from ``sample()``, which starts a round of model rollouts every
``rollout_every`` updates). It prints the ratios to CQL.

    python benchmarks/model_based.py [--dataset offrl/pendulum/medium-v0] [--updates 1000] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from offrl_bench.suites.offline import CQL_CPU_SETTINGS

VARIANTS = {"cql": ("cql", CQL_CPU_SETTINGS), "mopo": ("mopo", ()), "mopo+morec": ("mopo", (("filter", "morec"),))}


def measure(dataset_id: str, algo: str, overrides: tuple, updates: int) -> tuple[float, float]:
    """(setup seconds, updates per second) of one algorithm, as the runner drives it."""
    from offrl_bench.execution.runner import RunSpec, _cached_dataset, build_algorithm

    spec = RunSpec(algo, dataset_id, 0, overrides=overrides)
    dataset = _cached_dataset(dataset_id, "cpu")
    torch.manual_seed(0)
    algorithm = build_algorithm(spec, dataset)
    started = time.perf_counter()
    algorithm.setup(dataset)
    setup = time.perf_counter() - started
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        algorithm.update(algorithm.sample(dataset, 256, generator))
    started = time.perf_counter()
    for _ in range(updates):
        algorithm.update(algorithm.sample(dataset, 256, generator))
    return setup, updates / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="offrl/pendulum/medium-v0")
    parser.add_argument("--updates", type=int, default=1_000)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from offrl_bench.data.datasets import dataset_exists
    from offrl_bench.data.make import DatasetRequest, make_dataset

    if not dataset_exists(args.dataset):  # made locally, in a temporary Minari root
        os.environ.setdefault("MINARI_DATASETS_PATH", tempfile.mkdtemp(prefix="offrl-bench-model-based-"))
        env_id, quality = {"offrl/pendulum/medium-v0": ("Pendulum-v1", "medium")}[args.dataset]
        make_dataset(DatasetRequest(env_id, quality), log=lambda m: None)
    results = {name: measure(args.dataset, algo, overrides, args.updates)
               for name, (algo, overrides) in VARIANTS.items()}
    base = results["cql"][1]
    print(f"{args.dataset}; SAC 256x256, batch 256, {args.threads} torch threads, {args.updates} timed updates each")
    print(f"{'algorithm':12} {'setup s':>8} {'updates/s':>10} {'vs cql':>7}")
    for name, (setup, rate) in results.items():
        print(f"{name:12} {setup:8.1f} {rate:10.1f} {rate / base:6.2f}x")


if __name__ == "__main__":
    main()
