"""``--set key=value`` overrides applied to an algorithm's config dataclass, with type checking."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable
from typing import Any

from offrl_bench.errors import PluginError, UsageError, one_of

_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def parse_set_options(options: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """``["lr=1e-3", "width=64"]`` -> ``(("lr", "1e-3"), ("width", "64"))``; later keys win."""
    pairs: dict[str, str] = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"malformed --set '{option}'; expected key=value, e.g. --set lr=0.001")
        pairs[key.strip()] = value.strip()
    return tuple(sorted(pairs.items()))


def _convert(algo: str, key: str, text: str, kind: Any) -> Any:
    if kind is bool:
        if text.lower() not in _BOOLEANS:
            raise UsageError(f"invalid value '{text}' for {algo}.{key}: expected a boolean (true/false)")
        return _BOOLEANS[text.lower()]
    if kind in (int, float, str):
        try:
            return kind(text)
        except ValueError:
            raise UsageError(f"invalid value '{text}' for {algo}.{key}: expected {kind.__name__}") from None
    raise PluginError(f"algorithm '{algo}' config field '{key}' has type {kind!r}; only int, float, bool and str "
                      "fields can be set from the command line")


def build_config(algorithm_class: type, overrides: Iterable[tuple[str, str]]) -> Any:
    """An instance of ``algorithm_class.config_class`` with ``overrides`` applied."""
    name = algorithm_class.name
    config_class = algorithm_class.config_class
    if not dataclasses.is_dataclass(config_class):
        raise PluginError(f"algorithm '{name}' config_class must be a dataclass")
    hints = typing.get_type_hints(config_class)
    fields = {f.name for f in dataclasses.fields(config_class)}
    values = {}
    for key, text in overrides:
        if key not in fields:
            raise UsageError(f"unknown config key '{key}' for algorithm '{name}'; {one_of(fields)}")
        values[key] = _convert(name, key, text, hints[key])
    return config_class(**values)
