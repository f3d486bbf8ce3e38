"""Named benchmark suites: which datasets to build and which runs to execute on them.

A suite is a :class:`Suite` object registered under the ``offrl_bench.suites`` entry-point group.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from offrl_bench import registry
from offrl_bench.config import build_config
from offrl_bench.data.make import DatasetRequest, action_kind_of
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
    #: ``--set`` overrides per algorithm, e.g. {"cql": (("n_actions", "4"),)}
    overrides: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    #: More (algorithm, overrides) pairs run besides ``algorithms``: one algorithm several times with
    #: different configs, e.g. ("ssorl", (("base", "bc"), ("label_fraction", "0.1"))).
    variants: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()

    def runs(self, device: str = "cpu", precision: str = "fp32") -> list[RunSpec]:
        """Every (dataset, wrapper, algorithm or variant, seed), skipping algorithms that cannot handle
        a dataset's action space (e.g. BCQ on continuous data)."""
        configured = [(algo, self.overrides.get(algo, ())) for algo in self.algorithms] + list(self.variants)
        specs = []
        for request in self.datasets:
            kind = action_kind_of(request.env_id)
            for wrapper in self.wrappers:
                for algo, overrides in configured:
                    cls = registry.algorithm_class(algo)
                    if kind not in cls.supported_action_spaces(build_config(cls, overrides)):
                        continue
                    specs += [RunSpec(algo=algo, dataset=request.dataset_id, seed=seed, wrapper=wrapper,
                                      updates=self.updates, eval_every=self.eval_every,
                                      eval_episodes=self.eval_episodes, checkpoint_every=self.checkpoint_every,
                                      overrides=overrides, suite=self.name, device=device, precision=precision)
                              for seed in self.seeds]
        return specs
