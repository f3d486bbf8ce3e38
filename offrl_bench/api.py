"""★ The public plugin API: everything a plugin subclasses or annotates with, in one import.

    from offrl_bench.api import OfflineAlgorithm, Batch, EnvSpec, PositiveFloat

The definitions live in the layers (:mod:`offrl_bench.core.api`, :mod:`offrl_bench.core.config`,
:mod:`offrl_bench.execution.loggers`, :mod:`offrl_bench.trust.claims`, :mod:`offrl_bench.suites`);
this module is the stable path a third-party package imports, whatever moves inside. ``RunLogger``,
``Claim``, ``Rows`` and ``Suite`` load on first use, so an algorithm plugin that imports this module
does not pull in the claims engine.
"""

from __future__ import annotations

import importlib
from typing import Any

from offrl_bench.core.api import (
    ActionKind,
    Algorithm,
    Batch,
    EnvSpec,
    OfflineAlgorithm,
    OnlineAlgorithm,
    Paradigm,
    action_kind,
)
from offrl_bench.core.config import (
    Fraction,
    Interval,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    UnitFloat,
)
from offrl_bench.core.errors import PluginError, UsageError

_LAZY = {"RunLogger": "offrl_bench.execution.loggers", "Claim": "offrl_bench.trust.claims",
         "Rows": "offrl_bench.trust.claims", "Suite": "offrl_bench.suites"}

__all__ = ["ActionKind", "Algorithm", "Batch", "EnvSpec", "OfflineAlgorithm", "OnlineAlgorithm", "Paradigm",
           "action_kind", "Fraction", "Interval", "NonNegativeFloat", "NonNegativeInt", "PositiveFloat",
           "PositiveInt", "UnitFloat", "PluginError", "UsageError", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'offrl_bench.api' has no attribute '{name}'")
