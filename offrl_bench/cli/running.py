"""``offrl-bench run`` (a suite, or one algorithm on one dataset; with AdaStop batches) and
``offrl-bench suite show``."""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path

import click

from offrl_bench.cli.app import algorithm_names, app, arguments, err, parse_seeds, positive
from offrl_bench.cli.records import write_and_show_leaderboard
from offrl_bench.core import registry
from offrl_bench.core.errors import OffrlBenchError, UsageError


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
    from offrl_bench.core.config import parse_set_options
    from offrl_bench.data.make import make_missing_datasets
    from offrl_bench.execution import loggers, scheduler
    from offrl_bench.execution.runner import RunSpec, preflight
    from offrl_bench.trust.durations import longest_first

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
            positive(option, value)
        overrides = parse_set_options(set_)
        specs = [RunSpec(algo, dataset, seed, wrapper, updates, eval_every, eval_episodes, checkpoint_every,
                         overrides, device=device, precision=precision, env=env) for seed in parse_seeds(seeds)]
        out = out or Path("results") / "custom"
    else:
        raise UsageError("nothing to run: give --suite NAME, or --algo A --dataset ID (see 'offrl-bench run --help')")
    if adastop and not suite:
        raise UsageError("--adastop runs the seeds of a suite in batches: give it with --suite")
    if workers is None and len(specs) > 1:  # robust on a shared machine (see offrl_bench.execution.contention)
        workers, cpus_per_run = scheduler.default_workers(len(specs)), cpus_per_run or 1
    workers = workers or 1
    command: str | None = shlex.join(["offrl-bench", *arguments])  # recorded with the first batch

    def execute(batch: list) -> None:
        nonlocal command
        preflight(batch)
        batch = longest_first(batch)  # the slowest runs start first, the shortest fill the end
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
        _run_adastop_batches(specs, algorithm_names(adastop), out, execute, adastop_n,
                             adastop_interims, adastop_alpha)
    else:
        execute(specs)
    write_and_show_leaderboard(out, out / "leaderboard.csv", quiet, compare=bool(suite))


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

def _spec_variant(spec) -> str:
    from offrl_bench.core.config import build_config
    from offrl_bench.execution.runner import variant_fields
    from offrl_bench.records.leaderboard import variant_name

    cls = registry.algorithm_class(spec.algo)
    return variant_name({"algorithm": spec.algo, **variant_fields(cls, build_config(cls, spec.overrides))})


def _run_adastop_batches(specs: list, names: list[str], out: Path, execute, n: int, interims: int,
                         alpha: float) -> None:
    """The suite's runs of ``names``, seeds 0..n-1, then n..2n-1, ...: after each batch AdaStop
    replays every recorded seed and the loop stops once it has decided every pair."""
    from offrl_bench.analysis.comparison import compare
    from offrl_bench.records.run_store import RunStore

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
