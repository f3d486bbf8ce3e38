"""Layer 8, the ``offrl-bench`` command line: thin commands that parse, call the layers below and
print. ``app`` defines the click group, and one module per command group adds its commands:
``datasets`` (list, data), ``running`` (run, suite), ``records`` (leaderboard, ope, compare, claims,
plot, report) and ``reference``; ``main`` is the console script.

May import: every layer.
"""

from offrl_bench.cli.main import app, main

__all__ = ["app", "main"]
