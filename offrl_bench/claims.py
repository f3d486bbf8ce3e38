"""Deprecated path: the claims engine (``Claim``, ``Rows``) moved to
:mod:`offrl_bench.trust.claims`; plugins import them from :mod:`offrl_bench.api`.

This module re-exports the new module's public names so that plugins written against the old path
keep working; it will be removed in offrl-bench 0.3.
"""

import warnings

from offrl_bench.trust.claims import *  # noqa: F403 (the re-export is the point)

warnings.warn("offrl_bench.claims is deprecated: import from offrl_bench.api (or offrl_bench.trust.claims)",
              DeprecationWarning, stacklevel=2)
