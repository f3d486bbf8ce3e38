"""Commands on a results directory: ``leaderboard``, ``ope``, ``compare``, ``claims``, ``plot`` and
``report``; and the leaderboard tables ``run`` prints when it finishes."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import click

from offrl_bench.cli.app import algorithm_names, app, err, out, positive
from offrl_bench.core import registry
from offrl_bench.core.errors import UsageError, one_of
from offrl_bench.records.tables import Listing, show


@app.command("leaderboard")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="CSV path (default DIRECTORY/leaderboard.csv)")
def leaderboard_(directory: Path, output: Path | None) -> None:
    """Rebuild the leaderboard CSV from the run records in DIRECTORY."""
    if not (directory / "runs.jsonl").exists():
        raise UsageError(f"no run records in '{directory}' (expected {directory / 'runs.jsonl'})")
    write_and_show_leaderboard(directory, output or directory / "leaderboard.csv", quiet=False, compare=True)


@app.command("ope")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--updates", type=int, default=4_000, show_default=True, help="FQE gradient updates per checkpoint")
@click.option("--algos", default="", help="only these algorithms (comma-separated; default: every offline run)")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the FQE networks and batches")
def ope_(directory: Path, updates: int, algos: str, seed: int) -> None:
    """Offline policy selection: Fitted Q Evaluation of every kept checkpoint of DIRECTORY's runs.
    Writes ope.jsonl (resumable) and ope_rank_correlation.csv, and adds the FQE-selected and oracle
    scores to the leaderboard."""
    from offrl_bench.execution import ope
    from offrl_bench.records.run_store import RunStore

    if not (directory / "runs.jsonl").exists():
        raise UsageError(f"no run records in '{directory}' (expected {directory / 'runs.jsonl'})")
    positive("--updates", updates)
    only = [name.strip() for name in algos.split(",") if name.strip()]
    for name in only:
        registry.algorithm_class(name)  # unknown names fail here, with the installed ones
    lines = ope.evaluate_directory(directory, ope.FQEConfig(updates=updates), seed, only,
                                   progress=lambda run_id, i, n: err.print(f"FQE {i + 1}/{n}: {run_id}",
                                                                            markup=False, highlight=False))
    skipped = [line for line in lines if "skipped" in line]
    path = ope.write_summary(directory, lines)
    records = RunStore(directory).records()
    listing = Listing("FQE rank correlation with the true scores, per task", ("dataset", "wrapper", "checkpoints",
                                                                              "spearman rho"),
                      numeric=frozenset({"checkpoints", "spearman rho"}))
    for (dataset, wrapper), (rho, n) in ope.rank_correlations(lines, records).items():
        listing.add_row(dataset, wrapper or "none", str(n), f"{rho:.2f}")
    show(listing, out)
    if skipped:
        err.print(f"{len(skipped)} runs have no checkpoints to evaluate, e.g. {skipped[0]['run_id']}: "
                  f"{skipped[0]['skipped']}", markup=False, highlight=False)
    out.print(ope.selection_summary(ope.selections(lines)), markup=False, highlight=False)
    err.print(f"wrote {directory / ope.FILE_NAME} and {path}", markup=False, highlight=False)
    write_and_show_leaderboard(directory, directory / "leaderboard.csv", quiet=False)


@app.command("compare")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--algos", required=True, help="two or more leaderboard algorithm names: --algos A B, or "
              "--algos A,B (e.g. 'iql (labelled only)[label_fraction=0.1]' 'ssorl(iql)[label_fraction=0.1]')")
@click.argument("more_algos", nargs=-1)
@click.option("--n", "n", type=int, default=5, show_default=True, help="runs per algorithm per AdaStop interim")
@click.option("--interims", type=int, default=5, show_default=True, help="at most this many interims (AdaStop's K)")
@click.option("--alpha", type=float, default=0.05, show_default=True, help="family-wise error of the test")
def compare_(directory: Path, algos: str, more_algos: tuple[str, ...], n: int, interims: int, alpha: float) -> None:
    """Decide with AdaStop which algorithm scores higher, from the run records in DIRECTORY; say how
    many more seeds it needs when the records are not enough."""
    from offrl_bench.analysis.comparison import compare
    from offrl_bench.records.run_store import RunStore

    if not (directory / "runs.jsonl").exists():
        raise UsageError(f"no run records in '{directory}' (expected {directory / 'runs.jsonl'})")
    names = algorithm_names(algos, *more_algos)
    result = compare(list(RunStore(directory).records().values()), names, n, interims, alpha)
    # names hold brackets (e.g. [label_fraction=0.1]) and spaces: no markup, no wrapping inside them
    say = functools.partial(out.print, markup=False, highlight=False, soft_wrap=True)
    say(f"AdaStop (alpha {alpha}, {n} runs per interim, at most {interims} interims) on the mean normalised "
        f"score over {len(result.tasks)} task(s): {', '.join(result.tasks)}")
    for (a, b), decision in result.decisions.items():
        verdict = {"larger": f"{a} > {b}", "smaller": f"{a} < {b}", "equal": f"{a} = {b} (no difference found)",
                   "undecided": f"{a} ? {b}: undecided"}[decision]
        say(f"  {verdict}")
    say(f"runs used per algorithm: {result.runs_used}")
    for name, seeds in result.next_seeds.items():
        say(f"AdaStop asks for {len(seeds)} more run(s) of {name}: seeds {','.join(map(str, seeds))}")


@app.command("claims")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--claim", "patterns", multiple=True, metavar="PATTERN",
              help="only claims whose name matches (shell pattern; repeatable)")
@click.option("--markdown", is_flag=True, help="print the table as Markdown (as in the documentation)")
def claims_(directory: Path, patterns: tuple[str, ...], markdown: bool) -> None:
    """Decide every installed paper claim on the run records in DIRECTORY: reproduced, contradicted,
    inconclusive or at ceiling, with the numbers behind each verdict; then one line naming the
    claims with no data here and what produces theirs."""
    from offrl_bench.trust import claim_tables, claims

    chosen = claims.named(patterns)
    if not chosen:
        raise UsageError(f"no claim matches {', '.join(patterns)}; {one_of(c.name for c in claims.installed())}")
    verdicts = claims.evaluate_directory(directory, chosen)
    say = functools.partial(out.print, markup=False, highlight=False, soft_wrap=True)
    if markdown:
        say(claim_tables.markdown(verdicts), end="")
        return
    with_data = [v for v in verdicts if v.verdict != claims.NO_DATA]
    say(f"claims on {directory} ({claim_tables.RULE}; {claims.MIN_SEEDS}+ seeds per side for a non-indicative "
        "verdict)")
    for verdict in with_data:
        claim = verdict.claim
        say(f"\n[{verdict.text()}] {claim.name} ({claim.paper})")
        say(f"  {claim.statement}: {claim.assertion}, A = {claim.a.describe()}, B = {claim.b.describe()}")
        for comparison in verdict.comparisons:
            say(f"  - {comparison.label}: {comparison.numbers(claim.metric)} -> {comparison.verdict}")
    without = [v.claim for v in verdicts if v.verdict == claims.NO_DATA]
    if without:
        say(f"\n{claim_tables.no_data_line(without)}")


@app.command("plot")
@click.argument("directory", type=click.Path(path_type=Path))
def plot_(directory: Path) -> None:
    """Write figures (learning curves, aggregate IQM/mean/median/optimality gap with CIs, performance
    profiles, probability of improvement, generalization gap, STORI drops) to DIRECTORY/plots/."""
    from offrl_bench.analysis.plots import plot_directory

    for path in plot_directory(directory):
        out.print(f"wrote {path}", markup=False, highlight=False)


@app.command("report")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="HTML path (default DIRECTORY/report.html)")
def report_(directory: Path, output: Path | None) -> None:
    """Write a self-contained HTML report: sortable, filterable leaderboard, aggregate IQM bars, the
    figures, and the configs, seeds, versions and commands behind every row."""
    from offrl_bench.analysis.report import build_report

    out.print(f"wrote {build_report(directory, output)}", markup=False, highlight=False)


def write_and_show_leaderboard(directory: Path, csv_path: Path, quiet: bool, compare: bool = False) -> None:
    """Write the CSV; print a compact view of it (whole names, every number, at 80 columns), the
    provenance warning, and, with ``compare``, how it compares with the published reference."""
    from offrl_bench.execution import ope
    from offrl_bench.records.leaderboard import leaderboard, write_leaderboard
    from offrl_bench.records.run_store import RunStore
    from offrl_bench.trust import budget, provenance
    from offrl_bench.trust.reference import compare_with_reference

    records = list(RunStore(directory).records().values())
    frame = leaderboard(records, with_run_ids=True,  # run ids: for the reference comparison
                        budget=budget.for_directory(directory, records), selection=ope.load_selections(directory),
                        stale=provenance.stale_labels(directory, records))
    try:
        write_leaderboard(frame.drop(columns="run_ids"), csv_path)
    except OSError as exc:
        raise UsageError(f"cannot write leaderboard to '{csv_path}' ({exc.strerror or exc})") from exc
    if quiet:
        return
    for table in _leaderboard_tables(frame.drop(columns="run_ids"), csv_path):
        show(table, out)
    warning = provenance.warning(records)
    if warning:
        err.print(f"warning: {directory}: {warning}", markup=False, highlight=False)
    comparison = compare_with_reference(records, directory, frame) if compare else None
    if comparison is not None:
        say = functools.partial(out.print, markup=False, highlight=False, soft_wrap=True)
        say(comparison.summary())
        for line in comparison.disagreements():
            say(f"  disagrees: {line}")
        for line in comparison.stale_rows():
            say(f"  stale: {line}")


def _leaderboard_tables(frame, csv_path: Path) -> list[Listing]:
    """The leaderboard as small tables: per suite the ``ALL`` aggregates first, then one table per
    dataset, each with whole names and every number (see :mod:`offrl_bench.records.tables`)."""
    from offrl_bench.records.leaderboard import ALL, DERIVED_COLUMNS, LEADERBOARD_COLUMNS, MIN_SEEDS

    fmt = lambda x, spec=".1f": "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)  # noqa: E731
    variant_columns = [c for c in frame.columns if c not in LEADERBOARD_COLUMNS + list(DERIVED_COLUMNS)]

    def name(row) -> str:
        extra = [f"{c}={fmt(row[c], 'g')}" for c in variant_columns if fmt(row[c], "g") not in ("-", "")]
        return row["algorithm"] + (f"[{','.join(extra)}]" if extra else "") + (" (stale)" if row.get("stale") else "")

    def seeds(row) -> str:
        return f"{row['n_seeds']}{'*' if row['n_seeds'] < MIN_SEEDS else ''}"

    def interval(row) -> str:
        return f"{fmt(row['normalized_iqm'])} [{fmt(row['ci_low'])}, {fmt(row['ci_high'])}]"

    numeric = frozenset({"n", "return", "IQM [95% CI]", "drop", "gap"})
    tables = []
    for suite, rows in frame.groupby("suite", sort=False):
        rows = rows.to_dict("records")
        caption = f"0 = random, 100 = expert; n* = fewer than {MIN_SEEDS} seeds, indicative only."
        if "budget" in frame:
            caption += " Sanity-floor verdicts (benchmarks/budget_check.py) per row: the CSV's budget column."
        if "stale" in frame and frame["stale"].astype(bool).any():
            caption += (" (stale): the published code changed since the row ran; why: the CSV's stale column "
                        "and 'offrl-bench reference status'.")
        aggregate = Listing(f"suite {suite}: each algorithm over its tasks (normalised, IQM [95% CI])",
                            ["algorithm", "split", "n", "IQM [95% CI]"], numeric=numeric,
                            caption=f"{caption} Full table: {csv_path}")
        under = Listing(f"suite {suite}, under-budget: these algorithms did not learn at this suite's budget on "
                        "expert data (benchmarks/budget_check.py), so their rows measure the budget, not the "
                        "method", ["algorithm", "split", "n", "IQM [95% CI]"], numeric=numeric)
        for row in rows:
            if row["dataset"] == ALL:
                split = row["wrapper"].split(":", 1)[-1] if row["wrapper"] != ALL else "-"
                listing = under if row.get("budget") == "under-budget" else aggregate
                listing.add_row(name(row), split, seeds(row), interval(row))
        tables.append(aggregate)
        if under.rows:
            tables.append(under)
        by_dataset: dict[str, list[dict]] = {}
        for row in rows:
            if row["dataset"] != ALL:
                by_dataset.setdefault(row["dataset"], []).append(row)
        for dataset, members in by_dataset.items():
            levels = [row["wrapper"].startswith("levels") for row in members]
            shown = {"drop_from_default": not all(levels), "generalization_gap": any(levels)}
            wrappers = list(dict.fromkeys(row["wrapper"] for row in members))
            extra = [c for c in ("drop_from_default", "generalization_gap")
                     if c in frame and shown[c] and wrappers != ["none"]]
            for wrapper in wrappers:  # one table per evaluation wrapper: long specs stay in the title, whole
                title = dataset if wrappers == ["none"] else f"{dataset} under {wrapper}"
                per_task = Listing(title, ["algorithm", "n", "return", "IQM [95% CI]",
                                           *("drop" if c == "drop_from_default" else "gap" for c in extra)],
                                   numeric=numeric)
                for row in members:
                    if row["wrapper"] == wrapper:
                        per_task.add_row(name(row), seeds(row), fmt(row["return_mean"]), interval(row),
                                         *(fmt(row[c]) for c in extra))
                tables.append(per_task)
    return tables
