"""The ``offrl-bench`` click group, and what its command modules share: the consoles, this
invocation's arguments and the parsing of common options.

User mistakes end with one ``error: ...`` line on stderr and exit code 2; Ctrl-C exits 130 after
saving checkpoints, and re-running the same command resumes (:func:`offrl_bench.cli.main.main`).
"""

from __future__ import annotations

import click
from rich.console import Console

from offrl_bench.core.errors import UsageError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def app() -> None:
    """Offline RL benchmarks: build Minari datasets, train agents, publish leaderboards."""


@app.group("data")
def data_app() -> None:
    """Create and import Minari datasets."""


out = Console(emoji=False)  # ":train:" in a wrapper spec is text, not an emoji code
err = Console(stderr=True, emoji=False)
#: The arguments of this invocation, recorded in the output directory by ``run``.
arguments: list[str] = []


def parse_seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise UsageError(f"invalid --seeds '{text}'; expected comma-separated integers, e.g. 0,1,2") from None
    if not seeds or min(seeds) < 0:
        raise UsageError(f"invalid --seeds '{text}'; expected non-negative integers, e.g. 0,1,2")
    return seeds


def positive(name: str, value: int) -> int:
    if value < 1:
        raise UsageError(f"{name} must be at least 1, got {value}")
    return value


def algorithm_names(*texts: str) -> list[str]:
    """Algorithm variant names given as separate words and/or comma-separated; a comma inside a
    variant's brackets or parentheses (``x[a=1,b=2]``, ``iql (labelled only, low_return)``) is part
    of its name."""
    names = []
    for text in texts:
        depth, start = 0, 0
        for position, char in enumerate(text):
            depth += (char in "([") - (char in ")]")
            if char == "," and depth <= 0:
                names.append(text[start:position])
                start = position + 1
        names.append(text[start:])
    return [name.strip() for name in names if name.strip()]
