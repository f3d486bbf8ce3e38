"""``offrl-bench reference ...``: the published references' provenance, row by row."""

from __future__ import annotations

import functools
import sys
import time
from pathlib import Path

import click
from rich.console import Console

from offrl_bench.core.errors import UsageError, one_of

out = Console(emoji=False, highlight=False)
say = functools.partial(out.print, markup=False, highlight=False, soft_wrap=True)


@click.group("reference")
def reference_app() -> None:
    """Published references: which rows are current at HEAD, and keeping them so."""


def _repository() -> Path:
    from offrl_bench.trust.provenance import repository_root

    root = repository_root()
    if root is None:
        raise UsageError("reference commands need a git checkout of offrl-bench (this is an installed copy)")
    return root


def published(suites: tuple[str, ...]) -> list[Path]:
    """The reference directories of ``suites`` (all published ones when empty)."""
    root = _repository() / "results" / "reference"
    available = sorted(path.name for path in root.iterdir() if (path / "runs.jsonl").is_file())
    unknown = [suite for suite in suites if suite not in available]
    if unknown:
        raise UsageError(f"no published reference '{unknown[0]}'; {one_of(available)}")
    return [root / suite for suite in (suites or available)]


@reference_app.command("status")
@click.argument("suites", nargs=-1)
@click.option("--check", is_flag=True, help="exit 1 when a row is stale")
def status_(suites: tuple[str, ...], check: bool) -> None:
    """Which published rows are fresh at HEAD: one line per stale row (suite, dataset, wrapper,
    algorithm, why), then N/M rows fresh. A row is fresh when the code its runs execute, its dataset
    recipe and its resolved config are unchanged, or an attestation proved the change neutral."""
    from offrl_bench.trust import provenance

    started = time.perf_counter()
    directories = published(suites)
    head = provenance.HeadState(_repository())
    total = fresh = 0
    for directory in directories:
        for row in provenance.status(directory, head=head):
            total += 1
            fresh += row.fresh
            if not row.fresh:
                say(f"{' · '.join(row.row)}: {row.label}")
        for warning in provenance.dataset_warnings(directory, head):
            say(f"{directory.name}: note: {warning}")
    say(f"{fresh}/{total} rows fresh ({', '.join(d.name for d in directories)}; "
        f"{time.perf_counter() - started:.0f} s)")
    if check and fresh < total:
        sys.exit(1)


@reference_app.command("record")
@click.argument("suites", nargs=-1, required=True)
@click.option("--workers", type=click.IntRange(1), default=2, show_default=True)
def record_(suites: tuple[str, ...], workers: int) -> None:
    """Record the provenance of every training group that has none, by a traced short replay at the
    revision its runs ran at (installed in a worktree under the cache directory)."""
    from offrl_bench.trust import maintenance

    for directory in published(suites):
        added = maintenance.record(directory, _repository(), workers=workers, progress=say)
        say(f"{directory.name}: {added} provenance lines recorded")


@reference_app.command("attest")
@click.argument("suite")
@click.option("--rows", "rows", multiple=True, metavar="TEXT",
              help="only stale rows whose 'dataset · wrapper · algorithm' contains TEXT (repeatable)")
@click.option("--workers", type=click.IntRange(1), default=2, show_default=True)
def attest_(suite: str, rows: tuple[str, ...], workers: int) -> None:
    """Replay the stale rows' training at their recorded revision and at HEAD, on this machine; a row
    whose parameters, losses, evaluation returns and dataset are bit-identical is attested fresh."""
    from offrl_bench.trust import maintenance

    (directory,) = published((suite,))
    attested, refused = maintenance.attest(directory, _repository(), list(rows), workers=workers, progress=say)
    for name in attested:
        say(f"attested: {name}")
    for reason in refused:
        say(f"not attested: {reason}")
    say(f"{len(attested)} training groups attested, {len(refused)} changed behaviour")


@reference_app.command("regenerate")
@click.argument("suite")
@click.option("--workers", type=click.IntRange(1), default=2, show_default=True)
def regenerate_(suite: str, workers: int) -> None:
    """Rerun the stale rows only, at a clean HEAD, in results/regenerate/SUITE/REV/, and publish each row
    into the reference as soon as its runs finish (records, provenance, leaderboard). Resumable: the
    same command continues, and what was published can be committed at any point."""
    from offrl_bench.trust import maintenance

    (directory,) = published((suite,))
    done, left = maintenance.regenerate(directory, _repository(), workers=workers, progress=say)
    if done:
        from offrl_bench.analysis.report import build_report

        say(f"wrote {build_report(directory)}")
    say(f"{done} rows regenerated, {left} still stale; the claims tables in docs/ follow 'offrl-bench claims "
        f"{directory.relative_to(_repository())} --markdown' (python docs/claims_tables.py rewrites them)")
