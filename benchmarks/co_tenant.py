"""A suite's throughput on a quiet machine and beside a co-tenant, side by side in one run.

The co-tenant is one busy-loop process pinned to one CPU core, the way a browser tab, another job
or a CI neighbour takes a core from a suite. Each configuration runs the same small suite (BC,
TD3+BC and IQL on Pendulum-v1 expert data, several seeds) through the CLI from an empty output
directory, once on the quiet machine and once beside the co-tenant. Worker start-up is included,
dataset creation is not (the datasets are made once, first). Throughput is gradient updates
finished per second of wall time; the goal is that the busy run keeps at least 40% of the quiet
one (the lost core alone accounts for 50% on 2 cores).

    python benchmarks/co_tenant.py [--seeds 2] [--updates 1000] [--no-ray]

First the cause, with the contention watch's own probe (offrl_bench.execution.contention.matmul_rate: an
MLP forward on a batch of 256, 256 hidden units) at 1 and 2 torch threads, quiet and busy: the
median and the lowest of 9 probes of about 50 ms each.

Configurations: the CLI's default for several runs (one worker per core, one torch thread per
run), the former default (one worker, so one run at a time with every core's thread), that with
OMP_WAIT_POLICY=PASSIVE (OpenMP threads sleep instead of spinning at barriers), the default on a
local Ray instance where Ray is installed, and a single run with every thread (what `run --algo`
with one seed does) for scale. Time it on a machine with nothing else running.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ALGORITHMS = ("bc", "td3_bc", "iql")
BUSY_LOOP = "import os, sys\nos.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True: pass"


def suite_file(path: Path, seeds: int, updates: int) -> Path:
    path.write_text(
        'name = "co-tenant"\n'
        'description = "BC, TD3+BC and IQL on Pendulum expert data"\n'
        f"algorithms = {list(ALGORITHMS)!r}\n"
        f"seeds = {list(range(seeds))!r}\n"
        f"updates = {updates}\neval_every = {updates}\neval_episodes = 5\ncheckpoint_every = {updates}\n"
        'datasets = [{ env_id = "Pendulum-v1", quality = "expert", episodes = 20 }]\n')
    return path


def probe_rates(threads: int, repeats: int, probes: int = 9) -> list[float]:
    from offrl_bench.execution.contention import matmul_rate, torch_threads

    with torch_threads(threads):
        return [matmul_rate(repeats) / 1e9 for _ in range(probes)]


def print_probes(cpu: int) -> None:
    from offrl_bench.execution.contention import probe_repeats

    repeats = probe_repeats()
    rows = {threads: [probe_rates(threads, repeats)] for threads in (1, 2)}
    with co_tenant_on(cpu):
        for threads in (1, 2):
            rows[threads].append(probe_rates(threads, repeats))
    print("matmul probe, GFLOP/s (median, lowest of 9):")
    for threads, (quiet, busy) in rows.items():
        print(f"  {threads} torch thread{'s' if threads > 1 else ' '}: quiet {statistics.median(quiet):6.1f} "
              f"({min(quiet):6.1f}), busy {statistics.median(busy):6.1f} ({min(busy):6.1f}): "
              f"{statistics.median(quiet) / statistics.median(busy):.1f}x slower")


@contextlib.contextmanager
def co_tenant_on(cpu: int) -> Iterator[None]:
    """A busy-loop process pinned to ``cpu`` for the duration of the block."""
    process = subprocess.Popen([sys.executable, "-c", BUSY_LOOP, str(cpu)])
    try:
        time.sleep(0.5)
        yield
    finally:
        process.kill()
        process.wait()


def timed_run(arguments: list[str], out: Path, env: dict[str, str]) -> float:
    command = [str(Path(sys.executable).with_name("offrl-bench")), "run", *arguments, "--out", str(out), "--quiet"]
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=2, help="seeds per algorithm")
    parser.add_argument("--updates", type=int, default=1000, help="gradient updates per run")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray configuration")
    args = parser.parse_args()

    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("needs at least 2 usable CPU cores: one for the co-tenant, the rest for the suite")
    root = Path(tempfile.mkdtemp(prefix="offrl-co-tenant-"))
    env = {**os.environ, "MINARI_DATASETS_PATH": str(root / "minari")}
    os.environ["MINARI_DATASETS_PATH"] = env["MINARI_DATASETS_PATH"]
    from offrl_bench.data.make import make_missing_datasets
    from offrl_bench.suites.files import load_suite

    suite = suite_file(root / "co-tenant.toml", args.seeds, args.updates)
    make_missing_datasets(load_suite(suite).datasets, log=lambda message: None)
    runs = len(ALGORITHMS) * args.seeds
    configurations = [
        ("default: a worker per core, 1 thread per run", ["--suite", str(suite)], {}),
        ("--workers 1 (former default: 1 run at a time)", ["--suite", str(suite), "--workers", "1"], {}),
        ("--workers 1, OMP_WAIT_POLICY=PASSIVE", ["--suite", str(suite), "--workers", "1"],
         {"OMP_WAIT_POLICY": "PASSIVE"}),
    ]
    try:
        import ray  # noqa: F401

        if not args.no_ray:
            configurations.append(("--backend ray (default sizes)", ["--suite", str(suite), "--backend", "ray"], {}))
    except ImportError:
        print("ray is not installed (pip install 'offrl-bench[ray]'): local backend only")
    single = ["--algo", "td3_bc", "--dataset", load_suite(suite).datasets[0].dataset_id, "--seeds", "0",
              "--updates", str(args.updates * 2), "--eval-every", str(args.updates * 2), "--eval-episodes", "5"]
    configurations.append(("one TD3+BC run, every thread (run --algo, 1 seed)", single, {}))

    print_probes(cpus[0])
    print(f"{runs} runs ({', '.join(ALGORITHMS)} x {args.seeds} seeds) x {args.updates} updates on Pendulum-v1 "
          f"expert data; {len(cpus)} usable CPUs; co-tenant: a busy loop pinned to CPU {cpus[0]}")
    print(f"{'configuration':52s} {'quiet s':>8s} {'busy s':>8s} {'quiet upd/s':>12s} {'busy upd/s':>11s} "
          f"{'busy/quiet':>10s}")
    for index, (label, arguments, extra) in enumerate(configurations):
        updates = args.updates * 2 if arguments is single else runs * args.updates
        quiet = timed_run(arguments, root / f"{index}-quiet", {**env, **extra})
        with co_tenant_on(cpus[0]):
            busy = timed_run(arguments, root / f"{index}-busy", {**env, **extra})
        print(f"{label:52s} {quiet:8.1f} {busy:8.1f} {updates / quiet:12.1f} {updates / busy:11.1f} "
              f"{quiet / busy:9.0%}", flush=True)


if __name__ == "__main__":
    main()
