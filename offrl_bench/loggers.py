"""Deprecated path: the experiment loggers (``RunLogger``) moved to
:mod:`offrl_bench.execution.loggers`; plugins import them from :mod:`offrl_bench.api`.

This module re-exports the new module's public names so that plugins written against the old path
keep working; it will be removed in offrl-bench 0.3.
"""

import warnings

from offrl_bench.execution.loggers import *  # noqa: F403 (the re-export is the point)

warnings.warn("offrl_bench.loggers is deprecated: import from offrl_bench.api (or offrl_bench.execution.loggers)",
              DeprecationWarning, stacklevel=2)
