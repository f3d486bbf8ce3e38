"""The ``offrl-bench`` console script: the click group with every command module's commands, and
the translation of errors into one line and an exit code (2 for a usage error, 130 for Ctrl-C).
"""

from __future__ import annotations

import sys

import click

from offrl_bench.cli import datasets, records, running  # noqa: F401 (they add their commands to the group)
from offrl_bench.cli.app import app, arguments
from offrl_bench.cli.reference import reference_app
from offrl_bench.core.errors import OffrlBenchError

app.add_command(reference_app)


def main(argv: list[str] | None = None) -> None:
    arguments[:] = sys.argv[1:] if argv is None else argv
    try:
        app.main(args=argv, prog_name="offrl-bench", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:  # a bare command: show its help
        print(exc.format_message(), file=sys.stderr)
        sys.exit(2)
    except click.exceptions.UsageError as exc:
        command = f" {exc.ctx.command_path.split(' ', 1)[1]}" if exc.ctx and " " in exc.ctx.command_path else ""
        _fail(f"{exc.format_message()} (see 'offrl-bench{command} --help')", 2)
    except OffrlBenchError as exc:
        _fail(str(exc), exc.exit_code)
    except (KeyboardInterrupt, click.exceptions.Abort):
        _fail("interrupted; finished runs and checkpoints are saved, re-run the same command to resume", 130)


def _fail(message: str, code: int) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)
