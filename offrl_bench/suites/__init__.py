"""Named benchmark suites: which datasets to build and which runs to execute on them.

A suite is a :class:`Suite` object registered under the ``offrl_bench.suites`` entry-point group.
"""

from __future__ import annotations

from dataclasses import dataclass

from offrl_bench.data.make import DatasetRequest
from offrl_bench.runner import RunSpec


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    datasets: tuple[DatasetRequest, ...]
    algorithms: tuple[str, ...]
    seeds: tuple[int, ...] = (0, 1, 2)
    wrappers: tuple[str, ...] = ("",)
    updates: int = 5_000
    eval_every: int = 1_000
    eval_episodes: int = 10
    checkpoint_every: int = 1_000

    def runs(self, device: str = "cpu") -> list[RunSpec]:
        return [
            RunSpec(algo=algo, dataset=request.dataset_id, seed=seed, wrapper=wrapper, updates=self.updates,
                    eval_every=self.eval_every, eval_episodes=self.eval_episodes,
                    checkpoint_every=self.checkpoint_every, suite=self.name, device=device)
            for request in self.datasets for wrapper in self.wrappers for algo in self.algorithms
            for seed in self.seeds
        ]
