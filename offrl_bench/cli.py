"""The ``offrl-bench`` command line: parses arguments, calls the core, prints results.

User mistakes end with one ``error: ...`` line on stderr and exit code 2; Ctrl-C exits 130 after
saving checkpoints, and re-running the same command resumes.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import shlex
import sys
from pathlib import Path

import click
from rich.console import Console

from offrl_bench import registry
from offrl_bench.cli_reference import reference_app
from offrl_bench.errors import OffrlBenchError, UsageError, one_of
from offrl_bench.tables import Listing, show


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def app() -> None:
    """Offline RL benchmarks: build Minari datasets, train agents, publish leaderboards."""


@app.group("data")
def data_app() -> None:
    """Create and import Minari datasets."""

out = Console(emoji=False)  # ":train:" in a wrapper spec is text, not an emoji code
err = Console(stderr=True, emoji=False)
#: The arguments of this invocation, recorded in the output directory by ``run``.
_arguments: list[str] = []

LISTABLE = ("algorithms", "datasets", "wrappers", "suites", "loggers")


def _parse_seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise UsageError(f"invalid --seeds '{text}'; expected comma-separated integers, e.g. 0,1,2") from None
    if not seeds or min(seeds) < 0:
        raise UsageError(f"invalid --seeds '{text}'; expected non-negative integers, e.g. 0,1,2")
    return seeds


def _positive(name: str, value: int) -> int:
    if value < 1:
        raise UsageError(f"{name} must be at least 1, got {value}")
    return value


@app.command("list")
@click.argument("what", metavar="{algorithms,datasets,wrappers,suites,loggers}")
def list_(what: str) -> None:
    """List installed algorithms, wrappers, suites and loggers, or local datasets."""
    if what not in LISTABLE:
        raise UsageError(f"cannot list '{what}'; {one_of(LISTABLE)}")
    if what == "algorithms":
        listing = Listing(what, ("name", "actions", "paradigm", "action-free", "entry point"))
        for name, ep in sorted(registry.available(registry.ALGORITHMS).items()):
            try:
                cls = registry.algorithm_class(name)
            except OffrlBenchError as exc:  # one broken plugin must not hide the others
                listing.add_row(name, "broken", "", "", f"{ep.value}: {exc}")
                continue
            listing.add_row(name, ",".join(cls.action_spaces), cls.paradigm, "yes" if not cls.needs_actions else "no",
                            ep.value)
    elif what == "datasets":
        from offrl_bench.data.datasets import datasets_root, local_dataset_ids, open_dataset

        listing = Listing(f"datasets in {datasets_root()}", ("id", "env", "episodes", "steps", "ref min", "ref max"),
                          numeric=frozenset({"episodes", "steps", "ref min", "ref max"}))
        for dataset_id in local_dataset_ids():
            try:
                ds = open_dataset(dataset_id)
            except UsageError as exc:
                listing.add_row(dataset_id, "unreadable", "", "", "", str(exc))
                continue
            meta = ds.storage.metadata
            listing.add_row(dataset_id, ds.spec.env_spec.id if ds.spec.env_spec else "?", str(ds.total_episodes),
                            str(ds.total_steps), f"{meta.get('ref_min_score', float('nan')):.1f}",
                            f"{meta.get('ref_max_score', float('nan')):.1f}")
    elif what == "loggers":
        from offrl_bench.loggers import missing_package

        listing = Listing(what, ("name", "installed", "entry point"))
        for name, ep in sorted(registry.available(registry.LOGGERS).items()):
            ready = f"no: pip install 'offrl-bench[{name}]'" if missing_package(name) else "yes"
            listing.add_row(name, ready, ep.value)
    else:
        group = registry.WRAPPERS if what == "wrappers" else registry.SUITES
        second = "description" if what == "suites" else "entry point"
        listing = Listing(what, ("name", second), prose=frozenset({"description"}))
        for name, ep in sorted(registry.available(group).items()):
            listing.add_row(name, registry.suite(name).description if what == "suites" else ep.value)
    show(listing, out)


@data_app.command("make")
@click.argument("env_id")
@click.option("--quality", default="expert", show_default=True, help="random | medium | expert | mixed")
@click.option("--episodes", type=int, default=None, help="episodes to collect (default: per environment)")
@click.option("--steps", type=int, default=None,
              help="collect whole episodes until this many transitions (instead of --episodes)")
@click.option("--name", default=None, help="dataset id (default offrl/<env>/<quality>-v0)")
@click.option("--wrapper", default="", help="wrapper spec applied while collecting")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the collection episodes and noise")
@click.option("--overwrite", is_flag=True, help="replace an existing dataset")
def data_make(env_id: str, quality: str, episodes: int | None, steps: int | None, name: str | None, wrapper: str,
              seed: int, overwrite: bool) -> None:
    """Collect a Minari dataset with a random / medium / expert / mixed behaviour policy."""
    from offrl_bench.data.make import DatasetRequest, make_dataset

    request = DatasetRequest(env_id, quality, episodes, name, wrapper, seed, steps)
    make_dataset(request, overwrite=overwrite, log=err.print)


@data_app.command("import-d4rl")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--env", required=True, help="Gymnasium environment id the data comes from")
@click.option("--name", required=True, help="dataset id to create, e.g. d4rl/hopper/medium-v2")
@click.option("--ref-min", type=float, default=None, help="random-policy return (default: measured)")
@click.option("--ref-max", type=float, default=None, help="expert return (default: best episode in the file)")
@click.option("--overwrite", is_flag=True, help="replace an existing dataset")
def data_import_d4rl(file: Path, env: str, name: str, ref_min: float | None, ref_max: float | None,
                     overwrite: bool) -> None:
    """Convert a D4RL HDF5 file into a Minari dataset."""
    from offrl_bench.data.d4rl import import_d4rl

    import_d4rl(file, env, name, ref_min, ref_max, overwrite=overwrite, log=err.print)


@data_app.command("train-policy")
@click.argument("env_id")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="where to save (default: the user cache)")
@click.option("--seed", type=int, default=0, show_default=True)
def data_train_policy(env_id: str, out_dir: Path | None, seed: int) -> None:
    """Train medium and expert behaviour policies with Stable-Baselines3 (done automatically by data make)."""
    from offrl_bench.data import behaviour
    from offrl_bench.envs import make_env

    make_env(env_id).close()  # fail fast on an unknown id
    summary = behaviour.train_behaviour_policies(env_id, out_dir or behaviour.cache_dir(), seed, log=err.print)
    err.print(f"random {summary['random_return']:.1f}, medium {summary['medium']['snapshot_return']:.1f}, "
              f"expert {summary['expert']['snapshot_return']:.1f}")


@app.command()
@click.option("--suite", default=None, help="named suite (see 'list suites') or a suite file (.toml, .yaml)")
@click.option("--algo", default=None, help="algorithm (see 'list algorithms')")
@click.option("--dataset", default=None, help="Minari dataset id (see 'list datasets')")
@click.option("--wrapper", default="", help="evaluation wrapper spec, e.g. 'stori:action:p=0.3'")
@click.option("--env", default="", help="Gymnasium id that evaluates the agents (default: the dataset's env_spec)")
@click.option("--seeds", default="0", show_default=True, help="comma-separated seeds")
@click.option("--updates", type=int, default=5_000, show_default=True,
              help="gradient updates per run (environment steps for online algorithms)")
@click.option("--eval-every", type=int, default=1_000, show_default=True,
              help="evaluate every N updates (or environment steps)")
@click.option("--eval-episodes", type=int, default=10, show_default=True, help="episodes per evaluation")
@click.option("--checkpoint-every", type=int, default=1_000, show_default=True, help="checkpoint every N updates")
@click.option("--set", "set_", multiple=True, metavar="KEY=VALUE", help="algorithm config field (repeatable)")
@click.option("--workers", type=int, default=None, help="runs at once (local processes, or the size of a local Ray "
              "instance; default: one per CPU core, with one torch thread per run, when there are several runs)")
@click.option("--backend", default="local", show_default=True, help="local (worker processes) or ray")
@click.option("--address", default=None, help="Ray cluster address (with --backend ray; default: a local instance)")
@click.option("--cpus-per-run", type=float, default=None, help="CPUs (torch threads) per run (default: 1 on Ray and "
              "without --workers; CPUs / workers with --workers N)")
@click.option("--gpus-per-run", type=float, default=0.0, show_default=True, help="GPUs per run (Ray)")
@click.option("--max-retries", type=int, default=2, show_default=True, help="retries of a run whose worker dies")
@click.option("--retry-failed", is_flag=True, help="run again the runs that failed before (see failures.jsonl)")
@click.option("--out", "out_dir", default=None,
              help="output dir or file:// URI (default results/<suite>, or results/custom)")
@click.option("--device", default="cpu", show_default=True, help="torch device")
@click.option("--precision", default="fp32", show_default=True,
              help="fp32, or bf16: updates under bfloat16 autocast (faster where the CPU/GPU supports it)")
@click.option("--adastop", default=None, metavar="A,B[,...]",
              help="with --suite: run only these algorithms, seeds in AdaStop batches, until AdaStop decides")
@click.option("--adastop-n", type=int, default=5, show_default=True, help="seeds per AdaStop batch")
@click.option("--adastop-interims", type=int, default=5, show_default=True, help="at most this many batches")
@click.option("--adastop-alpha", type=float, default=0.05, show_default=True, help="family-wise error of the test")
@click.option("--logger", "logger_names", default="", metavar="NAME[,NAME]",
              help="also log every evaluation to these experiment trackers (see 'list loggers'), e.g. tensorboard")
@click.option("--quiet", is_flag=True, help="no progress output")
@click.option("--verbose", is_flag=True,
              help="with --backend ray: show Ray's own output live (otherwise it goes to OUT/ray.log)")
def run(suite: str | None, algo: str | None, dataset: str | None, wrapper: str, env: str, seeds: str, updates: int,
        eval_every: int, eval_episodes: int, checkpoint_every: int, set_: tuple[str, ...], workers: int | None,
        backend: str, address: str | None, cpus_per_run: float | None, gpus_per_run: float, max_retries: int,
        retry_failed: bool, out_dir: str | None, device: str, precision: str, adastop: str | None, adastop_n: int,
        adastop_interims: int, adastop_alpha: float, logger_names: str, quiet: bool, verbose: bool) -> None:
    """Run a suite, or one algorithm on one dataset over several seeds; resumes where it stopped."""
    from offrl_bench import loggers, scheduler
    from offrl_bench.config import parse_set_options
    from offrl_bench.data.make import make_missing_datasets
    from offrl_bench.runner import RunSpec, preflight

    if suite and (algo or dataset or env):
        raise UsageError("give either --suite or --algo with --dataset (and --env), not both")
    scheduler.check_options(backend, 1 if workers is None else workers, address, cpus_per_run, gpus_per_run,
                            max_retries)
    trackers = loggers.check_names(logger_names.split(","))
    out = scheduler.output_dir(out_dir) if out_dir else None
    if suite:
        chosen = _suite(suite)
        specs = chosen.runs(device=device, precision=precision)
        out = out or Path("results") / chosen.name
        scheduler.check_writable(out)
        make_missing_datasets(chosen.datasets, log=(lambda message: None) if quiet else err.print)
    elif algo and dataset:
        for option, value in (("--updates", updates), ("--eval-every", eval_every),
                              ("--eval-episodes", eval_episodes), ("--checkpoint-every", checkpoint_every)):
            _positive(option, value)
        overrides = parse_set_options(set_)
        specs = [RunSpec(algo, dataset, seed, wrapper, updates, eval_every, eval_episodes, checkpoint_every,
                         overrides, device=device, precision=precision, env=env) for seed in _parse_seeds(seeds)]
        out = out or Path("results") / "custom"
    else:
        raise UsageError("nothing to run: give --suite NAME, or --algo A --dataset ID (see 'offrl-bench run --help')")
    if adastop and not suite:
        raise UsageError("--adastop runs the seeds of a suite in batches: give it with --suite")
    if workers is None and len(specs) > 1:  # robust on a shared machine (see offrl_bench.contention)
        workers, cpus_per_run = scheduler.default_workers(len(specs)), cpus_per_run or 1
    workers = workers or 1
    command: str | None = shlex.join(["offrl-bench", *_arguments])  # recorded with the first batch

    def execute(batch: list) -> None:
        nonlocal command
        preflight(batch)
        outcome = scheduler.execute(batch, out, workers=workers, console=err, quiet=quiet, backend=backend,
                                    address=address, cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run,
                                    retry_failed=retry_failed, max_retries=max_retries, command=command,
                                    loggers=trackers, verbose=verbose)
        command = None
        failed = outcome.failed + outcome.failed_earlier
        if failed:
            first = failed[0]
            raise OffrlBenchError(f"{len(failed)} of {len(batch)} runs failed, e.g. {first['run_id']}: "
                                  f"{first['reason']} (all reasons in {out / 'failures.jsonl'}; fix the cause, then "
                                  "re-run with --retry-failed)")

    if adastop:
        _run_adastop_batches(specs, _algorithm_names(adastop), out, execute, adastop_n,
                             adastop_interims, adastop_alpha)
    else:
        execute(specs)
    _write_and_show_leaderboard(out, out / "leaderboard.csv", quiet, compare=bool(suite))


def _suite(name_or_file: str):
    """An installed suite by name, or one defined in a suite file."""
    from offrl_bench.suites.files import is_suite_file, load_suite

    return load_suite(Path(name_or_file)) if is_suite_file(name_or_file) else registry.suite(name_or_file)


@app.group("suite")
def suite_app() -> None:
    """Suites as files."""


@suite_app.command("show")
@click.argument("name")
def suite_show(name: str) -> None:
    """Write a suite as a TOML file ('run --suite FILE' runs it with the same run ids)."""
    from offrl_bench.suites.files import suite_toml

    click.echo(suite_toml(_suite(name)), nl=False)


def _algorithm_names(*texts: str) -> list[str]:
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


def _spec_variant(spec) -> str:
    from offrl_bench.config import build_config
    from offrl_bench.results import variant_name
    from offrl_bench.runner import variant_fields

    cls = registry.algorithm_class(spec.algo)
    return variant_name({"algorithm": spec.algo, **variant_fields(cls, build_config(cls, spec.overrides))})


def _run_adastop_batches(specs: list, names: list[str], out: Path, execute, n: int, interims: int,
                         alpha: float) -> None:
    """The suite's runs of ``names``, seeds 0..n-1, then n..2n-1, ...: after each batch AdaStop
    replays every recorded seed and the loop stops once it has decided every pair."""
    from offrl_bench.comparison import compare
    from offrl_bench.results import RunStore

    by_name = {}
    for spec in specs:
        by_name.setdefault(_spec_variant(spec), {})[dataclasses.replace(spec, seed=0)] = None
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise UsageError(f"--adastop names {', '.join(repr(u) for u in unknown)} not in this suite; "
                         f"one of: {', '.join(sorted(by_name))}")
    if len(set(names)) < 2 or n < 2 or interims < 1 or not 0 < alpha < 1:
        raise UsageError("--adastop needs two or more algorithms, --adastop-n >= 2, --adastop-interims >= 1 "
                         "and 0 < --adastop-alpha < 1")
    templates = [template for name in names for template in by_name[name]]
    for interim in range(interims):
        seeds = range(interim * n, (interim + 1) * n)
        execute([dataclasses.replace(template, seed=seed) for template in templates for seed in seeds])
        result = compare(list(RunStore(out).records().values()), names, n, interims, alpha)
        decided = ", ".join(f"{a} {dict(larger='>', smaller='<', equal='=').get(d, '?')} {b}"
                            for (a, b), d in result.decisions.items())
        err.print(f"AdaStop after {result.runs_used} seeds per algorithm: {decided}", markup=False, highlight=False)
        if result.finished:
            return


@app.command("leaderboard")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="CSV path (default DIRECTORY/leaderboard.csv)")
def leaderboard_(directory: Path, output: Path | None) -> None:
    """Rebuild the leaderboard CSV from the run records in DIRECTORY."""
    if not (directory / "runs.jsonl").exists():
        raise UsageError(f"no run records in '{directory}' (expected {directory / 'runs.jsonl'})")
    _write_and_show_leaderboard(directory, output or directory / "leaderboard.csv", quiet=False, compare=True)


@app.command("ope")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--updates", type=int, default=4_000, show_default=True, help="FQE gradient updates per checkpoint")
@click.option("--algos", default="", help="only these algorithms (comma-separated; default: every offline run)")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the FQE networks and batches")
def ope_(directory: Path, updates: int, algos: str, seed: int) -> None:
    """Offline policy selection: Fitted Q Evaluation of every kept checkpoint of DIRECTORY's runs.
    Writes ope.jsonl (resumable) and ope_rank_correlation.csv, and adds the FQE-selected and oracle
    scores to the leaderboard."""
    from offrl_bench import ope
    from offrl_bench.results import RunStore

    if not (directory / "runs.jsonl").exists():
        raise UsageError(f"no run records in '{directory}' (expected {directory / 'runs.jsonl'})")
    _positive("--updates", updates)
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
    _write_and_show_leaderboard(directory, directory / "leaderboard.csv", quiet=False)


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
    from offrl_bench.comparison import compare
    from offrl_bench.results import RunStore

    if not (directory / "runs.jsonl").exists():
        raise UsageError(f"no run records in '{directory}' (expected {directory / 'runs.jsonl'})")
    names = _algorithm_names(algos, *more_algos)
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
@click.option("--markdown", is_flag=True, help="print the table as Markdown (as in the README)")
def claims_(directory: Path, patterns: tuple[str, ...], markdown: bool) -> None:
    """Decide every installed paper claim on the run records in DIRECTORY: reproduced, contradicted
    or inconclusive, with the numbers behind each verdict."""
    from offrl_bench import claims, registry

    chosen = claims.named(patterns)
    if not chosen:
        raise UsageError(f"no claim matches {', '.join(patterns)}; {one_of(c.name for c in registry.claims())}")
    verdicts = claims.evaluate_directory(directory, chosen)
    say = functools.partial(out.print, markup=False, highlight=False, soft_wrap=True)
    if markdown:
        say(claims.markdown(verdicts), end="")
        return
    say(f"claims on {directory} (rule: 95% stratified-bootstrap CI of A-B, rliable; {claims.MIN_SEEDS}+ seeds "
        "per side for a non-indicative verdict)")
    for verdict in verdicts:
        claim = verdict.claim
        say(f"\n[{verdict.text()}] {claim.name} ({claim.paper})")
        say(f"  {claim.statement}: {claim.assertion}, A = {claim.a.describe()}, B = {claim.b.describe()}")
        for comparison in verdict.comparisons:
            say(f"  - {comparison.label}: {comparison.numbers(claim.metric)} -> {comparison.verdict}")
        if not verdict.comparisons:
            say(f"  - {claims.no_data_reason(claim)}")


@app.command("plot")
@click.argument("directory", type=click.Path(path_type=Path))
def plot_(directory: Path) -> None:
    """Write figures (learning curves, aggregate IQM/mean/median/optimality gap with CIs, performance
    profiles, probability of improvement, generalization gap, STORI drops) to DIRECTORY/plots/."""
    from offrl_bench.plots import plot_directory

    for path in plot_directory(directory):
        out.print(f"wrote {path}", markup=False, highlight=False)


@app.command("report")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="HTML path (default DIRECTORY/report.html)")
def report_(directory: Path, output: Path | None) -> None:
    """Write a self-contained HTML report: sortable, filterable leaderboard, aggregate IQM bars, the
    figures, and the configs, seeds, versions and commands behind every row."""
    from offrl_bench.report import build_report

    out.print(f"wrote {build_report(directory, output)}", markup=False, highlight=False)


def _write_and_show_leaderboard(directory: Path, csv_path: Path, quiet: bool, compare: bool = False) -> None:
    """Write the CSV; print a compact view of it (whole names, every number, at 80 columns), the
    provenance warning, and, with ``compare``, how it compares with the published reference."""
    from offrl_bench import budget, ope, provenance
    from offrl_bench.reference import compare_with_reference
    from offrl_bench.results import RunStore, leaderboard, write_leaderboard

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
    dataset, each with whole names and every number (see :mod:`offrl_bench.tables`)."""
    from offrl_bench.results import ALL, DERIVED_COLUMNS, LEADERBOARD_COLUMNS, MIN_SEEDS

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


app.add_command(reference_app)


def main(argv: list[str] | None = None) -> None:
    _arguments[:] = sys.argv[1:] if argv is None else argv
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


if __name__ == "__main__":
    main()
