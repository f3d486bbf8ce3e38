"""``offrl-bench list`` and the ``offrl-bench data`` commands (make, import-d4rl, train-policy)."""

from __future__ import annotations

from pathlib import Path

import click

from offrl_bench.cli.app import app, data_app, err, out
from offrl_bench.core import registry
from offrl_bench.core.errors import OffrlBenchError, UsageError, one_of
from offrl_bench.records.tables import Listing, show

LISTABLE = ("algorithms", "datasets", "wrappers", "suites", "loggers")


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
        from offrl_bench.execution.loggers import missing_package

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
