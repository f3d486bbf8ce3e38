"""Entry-point based registry of algorithms, environment wrappers, suites, loggers and claims.

Built-in plugins are registered in this project's ``pyproject.toml`` under exactly the same
entry-point groups a third-party package uses, so the core never imports a plugin by name.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from offrl_bench.core.api import Algorithm
from offrl_bench.core.errors import OffrlBenchError, PluginError, UsageError, one_of

ALGORITHMS = "offrl_bench.algorithms"
WRAPPERS = "offrl_bench.wrappers"
SUITES = "offrl_bench.suites"
CLAIMS = "offrl_bench.claims"
LOGGERS = "offrl_bench.loggers"

_KIND = {ALGORITHMS: "algorithm", WRAPPERS: "wrapper", SUITES: "suite", CLAIMS: "claim", LOGGERS: "logger"}


@cache
def available(group: str) -> dict[str, EntryPoint]:
    """Installed entry points of ``group`` by name. The first distribution found wins a name clash."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=group):
        found.setdefault(ep.name, ep)
    return found


def load(group: str, name: str) -> Any:
    """What the entry point ``name`` of ``group`` names. The layer that uses it checks its type: the
    registry knows the groups, not the classes of the layers above it."""
    eps = available(group)
    if name not in eps:
        raise UsageError(f"unknown {_KIND[group]} '{name}'; {one_of(eps)}")
    try:
        return eps[name].load()
    except Exception as exc:  # a broken plugin must not take the CLI down with a traceback
        raise PluginError(f"{_KIND[group]} plugin '{name}' ({eps[name].value}) failed to import: {exc}") from exc


def algorithm_class(name: str) -> type[Algorithm]:
    cls = load(ALGORITHMS, name)
    if not (isinstance(cls, type) and issubclass(cls, Algorithm)):
        raise PluginError(f"algorithm plugin '{name}' is not a subclass of offrl_bench.api.Algorithm")
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    if missing:
        raise PluginError(f"algorithm plugin '{name}' does not implement: {', '.join(missing)}")
    for attribute in ("config_class",):
        if not hasattr(cls, attribute):
            raise PluginError(f"algorithm plugin '{name}' does not declare '{attribute}'")
    return cls


def image_algorithms(action_kind: str) -> list[str]:
    """The installed algorithms that take image observations with ``action_kind`` actions (their
    ``image_action_spaces``), for error messages; a plugin that fails to load is left out."""
    names = []
    for name in sorted(available(ALGORITHMS)):
        try:
            if action_kind in algorithm_class(name).image_action_spaces:
                names.append(name)
        except OffrlBenchError:
            continue
    return names


def wrapper_factory(name: str):
    return load(WRAPPERS, name)


def suite(name: str):
    """The :class:`offrl_bench.suites.Suite` registered as ``name``."""
    return load(SUITES, name)
