"""Layer 5, suites: named benchmark suites, which datasets to build and which runs to execute on them.

A suite is a :class:`Suite` object registered under the ``offrl_bench.suites`` entry-point group.
Suite files (TOML, YAML) load into the same objects (``files``).

May import: ``core``, ``data`` and ``execution`` (a suite expands into runner specs).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from offrl_bench.core import registry
from offrl_bench.core.config import build_config
from offrl_bench.data.make import DatasetRequest, action_kind_of
from offrl_bench.execution.runner import RunSpec


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
    #: The budget of online and offline-to-online algorithms in environment steps (``updates`` is
    #: that of offline ones); they are evaluated and checkpointed every ``env_steps_eval_every``.
    env_steps: int = 50_000
    env_steps_eval_every: int = 10_000

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
                    online = cls.paradigm != "offline"
                    budget = dict(updates=self.env_steps, eval_every=self.env_steps_eval_every,
                                  checkpoint_every=self.env_steps_eval_every) if online else dict(
                                  updates=self.updates, eval_every=self.eval_every,
                                  checkpoint_every=self.checkpoint_every)
                    specs += [RunSpec(algo=algo, dataset=request.dataset_id, seed=seed, wrapper=wrapper,
                                      eval_episodes=self.eval_episodes, overrides=overrides, suite=self.name,
                                      device=device, precision="fp32" if online else precision, **budget)
                              for seed in self.seeds]
        return specs


@dataclass(frozen=True)
class CombinedSuite:
    """Several suites' runs under one name. Each part keeps its own datasets, algorithms, wrappers and
    budgets, for axes that do not form one cross product (STORI types apply to one dataset, level
    splits to another). A run two parts share is run once."""

    name: str
    description: str
    parts: tuple[Suite, ...]

    @property
    def datasets(self) -> tuple[DatasetRequest, ...]:
        unique = {request.dataset_id: request for part in self.parts for request in part.datasets}
        return tuple(unique.values())

    def runs(self, device: str = "cpu", precision: str = "fp32") -> list[RunSpec]:
        specs: dict[str, RunSpec] = {}
        for part in self.parts:
            for spec in part.runs(device=device, precision=precision):
                spec = dataclasses.replace(spec, suite=self.name)
                specs.setdefault(spec.run_id, spec)
        return list(specs.values())
