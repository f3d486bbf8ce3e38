"""``--set key=value`` overrides applied to an algorithm's config dataclass, with type and range checks.

A config field's type hint says what it accepts. Plain ``int``, ``float``, ``bool`` and ``str`` are
checked for type (and floats for being finite, unless the default itself is NaN, which configs use
for "derive from the data"). The aliases below add a range, so that ``--set lr=-1`` or
``--set batch_size=0`` is refused before any run starts::

    @dataclass
    class MyConfig:
        lr: PositiveFloat = 3e-4
        discount: UnitFloat = 0.99
        batch_size: PositiveInt = 256
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Iterable
from typing import Annotated, Any

from offrl_bench.core.errors import PluginError, UsageError, one_of


@dataclasses.dataclass(frozen=True)
class Interval:
    """Accepted values of a numeric config field: ``low <= x <= high`` (``<`` where open)."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False

    def __contains__(self, value: float) -> bool:
        return (value > self.low if self.low_open else value >= self.low) and value <= self.high

    def describe(self) -> str:
        if self.high == math.inf:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"


PositiveFloat = Annotated[float, Interval(0.0, low_open=True)]
NonNegativeFloat = Annotated[float, Interval(0.0)]
UnitFloat = Annotated[float, Interval(0.0, 1.0)]  # probabilities, discounts, Polyak rates
Fraction = Annotated[float, Interval(0.0, 1.0, low_open=True)]  # a share of something: (0, 1]
PositiveInt = Annotated[int, Interval(1)]
NonNegativeInt = Annotated[int, Interval(0)]

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


def _convert(algo: str, key: str, text: str, hint: Any, default: Any) -> Any:
    kind, interval = hint, None
    if typing.get_origin(hint) is Annotated:
        kind, *extras = typing.get_args(hint)
        interval = next((extra for extra in extras if isinstance(extra, Interval)), None)
    if kind is bool:
        if text.lower() not in _BOOLEANS:
            raise UsageError(f"invalid value '{text}' for {algo}.{key}: expected a boolean (true/false)")
        return _BOOLEANS[text.lower()]
    if kind not in (int, float, str):
        raise PluginError(f"algorithm '{algo}' config field '{key}' has type {kind!r}; only int, float, bool and str "
                          "fields can be set from the command line")
    try:
        value = kind(text)
    except ValueError:
        raise UsageError(f"invalid value '{text}' for {algo}.{key}: expected {kind.__name__}") from None
    if kind is float and not math.isfinite(value) and not (isinstance(default, float) and math.isnan(default)):
        raise UsageError(f"invalid value '{text}' for {algo}.{key}: expected a finite number")
    if interval is not None and value not in interval:
        raise UsageError(f"invalid value '{text}' for {algo}.{key}: expected a {kind.__name__} {interval.describe()}")
    return value


def build_config(algorithm_class: type, overrides: Iterable[tuple[str, str]]) -> Any:
    """An instance of ``algorithm_class.config_class`` with ``overrides`` applied."""
    name = algorithm_class.name
    config_class = algorithm_class.config_class
    if not dataclasses.is_dataclass(config_class):
        raise PluginError(f"algorithm '{name}' config_class must be a dataclass (decorate {config_class!r} with "
                          "@dataclasses.dataclass; its fields are what --set can change)")
    hints = typing.get_type_hints(config_class, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    values = {}
    for key, text in overrides:
        if key not in fields:
            raise UsageError(f"unknown config key '{key}' for algorithm '{name}'; {one_of(fields)}")
        values[key] = _convert(name, key, text, hints[key], fields[key].default)
    try:
        return config_class(**values)
    except ValueError as exc:  # a config's own __post_init__ check across fields
        raise UsageError(f"invalid config for algorithm '{name}': {exc}") from None
