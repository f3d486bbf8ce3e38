"""Execute many runs: in this process, in local worker processes (:mod:`.local_workers`), or as Ray
tasks (:mod:`.ray_backend`). Wherever a run executes, it goes through
:func:`~offrl_bench.execution.attempts.attempt_run` (claim, execute or resume, record a failure).

The CLI's default for a command with several runs is :func:`default_workers` with one torch
thread per run: single-threaded runs keep their share of a machine on which another process takes
a core, where a run's several threads stall (see :mod:`offrl_bench.execution.contention`), and a run's
numbers then do not depend on how many cores or runs are left.
"""

from __future__ import annotations

import contextlib
import os
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

import torch
from rich.console import Console

from offrl_bench.core.errors import UsageError, one_of
from offrl_bench.execution.attempts import Outcome, ProgressView, Sink, attempt_run, executor, watched
from offrl_bench.execution.contention import torch_threads, usable_cpus
from offrl_bench.execution.local_workers import LocalWorkers
from offrl_bench.execution.runner import RunSpec
from offrl_bench.records.run_store import RunStore

BACKENDS = ("local", "ray")
DEFAULT_MAX_RETRIES = 2
#: Memory set aside per default worker: a worker training on the default suite's datasets peaked
#: at 410 MB resident (IQL on MiniGrid), and larger datasets need more.
WORKER_MEMORY_BYTES = 1 << 30


def default_workers(runs: int) -> int:
    """Worker processes for ``runs`` runs when ``--workers`` is not given: one per usable core, no
    more than the runs, and no more than the available memory holds (WORKER_MEMORY_BYTES each)."""
    return max(1, min(runs, usable_cpus(), _available_memory() // WORKER_MEMORY_BYTES))


def _available_memory() -> int:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62  # not Linux: no cap


def output_dir(location: str) -> Path:
    """``--out`` as a local or shared-filesystem path; ``file://`` URIs are accepted."""
    parsed = urlparse(location)
    if parsed.scheme == "file":
        return Path(parsed.path)
    if parsed.scheme and len(parsed.scheme) > 1:  # "C:" style drive letters are not URIs
        raise UsageError(f"unsupported output location '{location}'; give a path or a file:// URI on storage every "
                         "worker can read and write (mount object stores, e.g. with s3fs, and pass the mount path)")
    return Path(location)


def check_options(backend: str, workers: int, address: str | None, cpus_per_run: float | None,
                  gpus_per_run: float, max_retries: int) -> None:
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend '{backend}'; {one_of(BACKENDS)}")
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    if cpus_per_run is not None and not cpus_per_run > 0:
        raise UsageError(f"--cpus-per-run must be > 0, got {cpus_per_run}")
    if not gpus_per_run >= 0 or max_retries < 0:
        raise UsageError("--gpus-per-run and --max-retries must be >= 0")
    if address and backend != "ray":
        raise UsageError("--address is a Ray cluster address; use it with --backend ray")


DEVICE_TYPES = ("cpu", "cuda")


def check_devices(specs: list[RunSpec], backend: str, gpus_per_run: float) -> None:
    """Every run's ``--device`` is one its workers can use: a CUDA device of this machine locally; on
    Ray, a GPU that ``--gpus-per-run`` reserves (Ray then exposes it to the run as ``cuda:0``)."""
    for device in sorted({spec.device for spec in specs}):
        try:
            parsed = torch.device(device)
        except RuntimeError:
            parsed = None
        if parsed is None or parsed.type not in DEVICE_TYPES:
            raise UsageError(f"unknown device '{device}'; {one_of((*DEVICE_TYPES, 'cuda:N'))}")
        if parsed.type == "cpu":
            continue
        if backend == "ray":
            if not gpus_per_run > 0:
                raise UsageError(f"--device {device} on Ray needs --gpus-per-run > 0, so that runs go to GPU workers")
        elif not torch.cuda.is_available():
            raise UsageError(f"--device {device}: torch {torch.__version__} finds no CUDA device on this machine; "
                             "use --device cpu")
        elif (parsed.index or 0) >= torch.cuda.device_count():
            raise UsageError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                             f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")


def check_writable(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"output directory '{out_dir}' is not writable ({exc.strerror or exc}); "
                         "choose another with --out") from exc


def execute(specs: list[RunSpec], out_dir: Path, workers: int = 1, console: Console | None = None,
            quiet: bool = False, backend: str = "local", address: str | None = None,
            cpus_per_run: float | None = None, gpus_per_run: float = 0.0, retry_failed: bool = False,
            max_retries: int = DEFAULT_MAX_RETRIES, command: str | None = None,
            loggers: tuple[str, ...] = (), verbose: bool = False) -> Outcome:
    """Run ``specs`` not finished yet into ``out_dir``; ``command``, when given, is appended to its
    ``commands.jsonl`` once the directory is known to be writable. ``loggers`` name the experiment
    trackers every run mirrors its evaluations to (:mod:`offrl_bench.loggers`). On Ray, Ray's own
    output goes to ``out_dir/ray.log``, or with ``verbose`` to the terminal."""
    console = console or Console(stderr=True, emoji=False)
    check_options(backend, workers, address, cpus_per_run, gpus_per_run, max_retries)
    check_devices(specs, backend, gpus_per_run)
    check_writable(out_dir)
    store = RunStore(out_dir)
    if command:
        store.append_command(command, datetime.now(timezone.utc).isoformat())
    finished, failures = store.records(), store.failures()
    todo = [spec for spec in specs if spec.run_id not in finished]
    outcome = Outcome(skipped=len(specs) - len(todo))
    if not retry_failed:
        outcome.failed_earlier = [failures[spec.run_id] for spec in todo if spec.run_id in failures]
        todo = [spec for spec in todo if spec.run_id not in failures]
    if not quiet:
        earlier = f", {len(outcome.failed_earlier)} failed earlier (--retry-failed reruns them)" \
            if outcome.failed_earlier else ""
        console.print(f"{len(specs)} runs: {outcome.skipped} already finished{earlier}, {len(todo)} to do -> {out_dir}",
                      soft_wrap=True)
    ray_output = contextlib.nullcontext()
    if backend == "ray":
        from offrl_bench.execution import ray_backend

        if todo and not verbose:
            ray_output = ray_backend.output_to_log(store.out_dir / ray_backend.LOG_NAME, console)
    with ray_output, ProgressView(len(todo), console, quiet, redirect=backend != "ray") as view:
        sink = Sink(outcome, view, store)
        if backend == "ray":
            ray_backend.execute(todo, store, sink, address=address, workers=workers, cpus_per_run=cpus_per_run or 1,
                                gpus_per_run=gpus_per_run, max_retries=max_retries, loggers=loggers,
                                verbose=verbose)
        else:
            # Threads per run follow from the options, not from how many runs are left: the thread
            # count changes the order of floating-point sums, so a run resumed alone must use as many
            # threads as it would have had beside the others.
            threads = max(1, int(cpus_per_run)) if cpus_per_run else max(1, usable_cpus() // workers)
            if workers == 1 or len(todo) <= 1:
                _execute_here(todo, store, sink, loggers, threads if cpus_per_run or workers > 1 else None)
            else:
                LocalWorkers(min(workers, len(todo)), threads, store, sink, max_retries, loggers).execute(todo)
    return outcome


def _execute_here(todo: list[RunSpec], store: RunStore, sink: Sink, loggers: tuple[str, ...],
                  threads: int | None) -> None:
    """Execute ``todo`` in this process, with ``threads`` torch threads (None: as they are)."""
    with torch_threads(threads):
        progress = watched(sink.progress, sink.warn)
        claimed_elsewhere = []
        here = executor("local", "coordinator")
        for spec in todo:
            attempt = attempt_run(spec, store.out_dir, progress, wait=False, where=here, loggers=loggers)
            if attempt.status == "busy":
                claimed_elsewhere.append(spec)
            else:
                sink.finish(spec, attempt)
        for spec in claimed_elsewhere:
            sink.finish(spec, attempt_run(spec, store.out_dir, progress, wait=True, where=here, loggers=loggers))
