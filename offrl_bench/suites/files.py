"""Suites as files: ``run --suite path/to/suite.toml`` (or ``.yaml``), and ``suite show NAME``,
which writes any installed suite in the same format.

The keys are the fields of :class:`~offrl_bench.suites.Suite` (and of ``DatasetRequest`` for each
dataset), so a file and the Python object it came from give the same run ids. A suite whose parts
have different axes (a :class:`~offrl_bench.suites.CombinedSuite`) is a list of ``[[parts]]``.
``overrides`` map an algorithm to its ``--set`` fields, in order (the order is part of a run's id);
each variant is ``{algorithm = "...", set = {field = "value", ...}}``.

Every mistake is one line naming the file, the key and what is accepted.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

import tomli_w

from offrl_bench.core.errors import UsageError
from offrl_bench.data.make import DatasetRequest
from offrl_bench.suites import CombinedSuite, Suite

SUFFIXES = (".toml", ".yaml", ".yml")
_HEADER = ("name", "description")


def is_suite_file(text: str) -> bool:
    """Whether a ``--suite`` value names a file rather than an installed suite."""
    return text.endswith(SUFFIXES) or "/" in text


def load_suite(path: Path) -> Suite | CombinedSuite:
    if path.suffix not in SUFFIXES:
        raise UsageError(f"suite file {path}: unknown format '{path.suffix}'; one of: {', '.join(SUFFIXES)}")
    if not path.is_file():
        raise UsageError(f"suite file {path} does not exist")
    text = path.read_text()
    if path.suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"suite file {path} is not valid TOML: {exc}") from None
    else:
        try:
            import yaml
        except ImportError:
            raise UsageError(f"suite file {path}: YAML needs PyYAML (pip install pyyaml), "
                             "or write it as TOML") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UsageError(f"suite file {path} is not valid YAML: {' '.join(str(exc).split())}") from None
    return suite_from_dict(data, str(path))


def suite_from_dict(data: Any, where: str) -> Suite | CombinedSuite:
    if not isinstance(data, dict):
        raise UsageError(f"suite file {where}: expected a table of keys at the top level")
    for key in _HEADER:
        if not isinstance(data.get(key), str) or not data[key]:
            raise UsageError(f"suite file {where}: '{key}' must be a non-empty string")
    if "parts" in data:
        _only(data, set(_HEADER) | {"parts"}, where, "")
        parts = data["parts"]
        if not isinstance(parts, list) or not parts:
            raise UsageError(f"suite file {where}: 'parts' must be a non-empty list of tables")
        return CombinedSuite(data["name"], data["description"],
                             tuple(_suite({**part, "name": data["name"], "description": data["description"]},
                                          where, f"parts[{i}].") for i, part in enumerate(parts)))
    return _suite(data, where, "")


def _only(data: dict, accepted: set[str], where: str, prefix: str) -> None:
    for key in data:
        if key not in accepted:
            raise UsageError(f"suite file {where}: unknown key '{prefix}{key}'; "
                             f"accepted: {', '.join(sorted(accepted))}")


def _suite(data: Any, where: str, prefix: str) -> Suite:
    if not isinstance(data, dict):
        raise UsageError(f"suite file {where}: '{prefix.rstrip('.')}' must be a table")
    fields = {f.name: f for f in dataclasses.fields(Suite)}
    _only(data, set(fields), where, prefix)
    for key in ("datasets", "algorithms"):
        if key not in data:
            raise UsageError(f"suite file {where}: missing key '{prefix}{key}'")
    values: dict[str, Any] = {}
    hints = typing.get_type_hints(Suite)
    for key, value in data.items():
        name = f"{prefix}{key}"
        if key == "datasets":
            values[key] = tuple(_dataset(item, where, f"{name}[{i}]")
                                for i, item in enumerate(_list(value, where, name)))
        elif key == "overrides":
            if not isinstance(value, dict):
                raise UsageError(f"suite file {where}: '{name}' must map algorithms to tables of fields")
            values[key] = {algo: _settings(fields_, where, f"{name}.{algo}") for algo, fields_ in value.items()}
        elif key == "variants":
            values[key] = tuple(_variant(item, where, f"{name}[{i}]")
                                for i, item in enumerate(_list(value, where, name)))
        else:
            values[key] = _typed(value, hints[key], where, name)
    return Suite(**values)


def _list(value: Any, where: str, name: str) -> list:
    if not isinstance(value, list):
        raise UsageError(f"suite file {where}: '{name}' must be a list")
    return value


def _settings(value: Any, where: str, name: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise UsageError(f"suite file {where}: '{name}' must be a table of field = value")
    return tuple((str(key), _text(item, where, f"{name}.{key}")) for key, item in value.items())


def _text(value: Any, where: str, name: str) -> str:
    """A ``--set`` value: written as a string; numbers and booleans are accepted as what they spell."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (str, int, float)):
        return str(value)
    raise UsageError(f"suite file {where}: '{name}' must be a string or a number")


def _variant(value: Any, where: str, name: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    if not isinstance(value, dict):
        raise UsageError(f"suite file {where}: '{name}' must be a table {{algorithm = ..., set = {{...}}}}")
    _only(value, {"algorithm", "set"}, where, f"{name}.")
    if not isinstance(value.get("algorithm"), str):
        raise UsageError(f"suite file {where}: '{name}.algorithm' must be a string")
    return value["algorithm"], _settings(value.get("set", {}), where, f"{name}.set")


def _dataset(value: Any, where: str, name: str) -> DatasetRequest:
    if not isinstance(value, dict):
        raise UsageError(f"suite file {where}: '{name}' must be a table with env_id and quality")
    fields = {f.name for f in dataclasses.fields(DatasetRequest)}
    _only(value, fields, where, f"{name}.")
    for key in ("env_id", "quality"):
        if key not in value:
            raise UsageError(f"suite file {where}: missing key '{name}.{key}'")
    hints = typing.get_type_hints(DatasetRequest)
    return DatasetRequest(**{key: _typed(item, hints[key], where, f"{name}.{key}") for key, item in value.items()})


def _typed(value: Any, hint: Any, where: str, name: str) -> Any:
    """``value`` checked against a field's type: str, int, ``X | None`` or ``tuple[X, ...]``."""
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        kinds = [kind for kind in arguments if kind is not type(None)]
        return _typed(value, kinds[0], where, name)  # None is spelled by leaving the key out
    if origin is tuple:
        return tuple(_typed(item, arguments[0], where, f"{name}[{i}]")
                     for i, item in enumerate(_list(value, where, name)))
    if hint is int and (not isinstance(value, int) or isinstance(value, bool)):
        raise UsageError(f"suite file {where}: '{name}' must be an integer, got {value!r}")
    if hint is str and not isinstance(value, str):
        raise UsageError(f"suite file {where}: '{name}' must be a string, got {value!r}")
    return value


def suite_to_dict(suite: Suite | CombinedSuite) -> dict[str, Any]:
    """The file form of an installed suite (every field written, defaults included)."""
    if isinstance(suite, CombinedSuite):
        return {"name": suite.name, "description": suite.description,
                "parts": [_part(part) for part in suite.parts]}
    return {"name": suite.name, "description": suite.description, **_part(suite)}


def _part(suite: Suite) -> dict[str, Any]:
    part: dict[str, Any] = {}
    for field in dataclasses.fields(Suite):
        value = getattr(suite, field.name)
        if field.name in _HEADER:
            continue
        if field.name == "datasets":
            part["datasets"] = [{key: item for key, item in dataclasses.asdict(request).items() if item is not None}
                                for request in value]
        elif field.name == "overrides":
            part["overrides"] = {algo: dict(settings) for algo, settings in value.items()}
        elif field.name == "variants":
            part["variants"] = [{"algorithm": algo, "set": dict(settings)} for algo, settings in value]
        else:
            part[field.name] = list(value) if isinstance(value, tuple) else value
    return part


def suite_toml(suite: Suite | CombinedSuite) -> str:
    return tomli_w.dumps(suite_to_dict(suite))
