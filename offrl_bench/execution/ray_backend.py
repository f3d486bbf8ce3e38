"""Runs as Ray tasks: on an existing cluster (``--address``) or on a Ray instance started for this
command on this machine.

Each run is one task that asks Ray for ``cpus_per_run`` CPUs and ``gpus_per_run`` GPUs and uses as
many torch threads as it got CPUs. Ray re-executes a task whose worker process or node dies, up to
``max_retries`` times; the new attempt resumes from the run's last checkpoint. That works because
runs checkpoint and record into the output directory, which every node must reach at the same path
(NFS, CephFS, a mounted bucket). Datasets are opened from ``MINARI_DATASETS_PATH``, which is passed
to every task, so on a cluster it has to point at shared storage as well.

Progress travels the same way: a task writes ``runs/<run_id>/progress`` about once a second
(updates done and total, then any warnings of its contention watch, one per line) and the driver
reads it, so no helper actor exists whose loss could end the suite. If Ray itself fails (its raylet
or node dies, the cluster goes away), the command ends with one ``error:`` line, exit code 1: every
finished run is recorded, the others have checkpoints and are *not* recorded as failed, so
re-running the same command resumes them.

Ray's own output goes to ``ray.log`` in the output directory, not to the user's terminal
(:func:`output_to_log`); ``--verbose`` shows it live instead.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from offrl_bench.core.errors import OffrlBenchError, UsageError
from offrl_bench.data.datasets import datasets_root
from offrl_bench.execution.attempts import Attempt, Sink, attempt_run, executor, throttled, watched
from offrl_bench.execution.runner import RunSpec
from offrl_bench.records.run_store import RunStore

#: environment variables every task needs to find what this process finds
_SHARED_ENVIRONMENT = ("MINARI_DATASETS_PATH", "OFFRL_BENCH_POLICIES")
#: Seconds between two looks at the runs' progress files.
_PROGRESS_POLL = 1.0
#: Ray's output while it runs this command, in the output directory.
LOG_NAME = "ray.log"


@contextlib.contextmanager
def output_to_log(log: Path, console: Console) -> Iterator[None]:
    """Send this process's file descriptors 1 and 2 to ``log`` (appended) while Ray runs, and
    ``console``, which shows progress and this command's own lines, to the terminal they pointed at.

    Descriptors, not ``sys.stderr``: Ray writes from where no Python setting reaches. Its C++ core
    logs to descriptor 2 inside this process (a node missing heartbeats, ``[state-dump]`` lines),
    the processes ``ray.init`` starts (raylet, GCS) inherit descriptors 1 and 2, and a driver thread
    prints errors the cluster publishes (a raylet's last 20 log lines) to ``sys.stderr``.
    ``log_to_driver=False`` and ``logging_level`` silence only the workers' and the Python loggers'
    share of it. A console that does not write to descriptor 1 or 2 (a test's buffer) is left alone.
    """
    def descriptor(stream) -> int | None:
        try:
            return stream.fileno()
        except (AttributeError, OSError, ValueError):
            return None

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    console_stream = console.file
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    terminal = None
    if descriptor(console_stream) in saved:
        terminal = open(os.dup(saved[descriptor(console_stream)]), "w", buffering=1, errors="replace",  # noqa: SIM115
                        encoding=getattr(console_stream, "encoding", None) or "utf-8")
        console.file = terminal
    with open(log, "a", encoding="utf-8") as file:
        file.write(f"--- {datetime.now(timezone.utc).isoformat(timespec='seconds')}: Ray's output for "
                   f"offrl-bench (pid {os.getpid()}) ---\n")
        file.flush()
        try:
            for fd in saved:
                os.dup2(file.fileno(), fd)
            yield
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            if terminal is not None:
                console.file = console_stream
                terminal.close()


def _progress_path(out_dir: Path, run_id: str) -> Path:
    return RunStore(out_dir).run_dir(run_id) / "progress"


def _task(spec: RunSpec, out_dir: str, wait: bool, threads: int, loggers: tuple[str, ...]) -> tuple[str, Attempt]:
    import ray
    import torch

    torch.set_num_threads(threads)
    progress_file = _progress_path(Path(out_dir), spec.run_id)
    warnings: list[str] = []

    @throttled
    def report(run_id: str, done: int, total: int) -> None:
        # Progress goes to a file next to the run's checkpoint, which the driver reads: there is no
        # helper process whose loss could stop the suite, and nothing here blocks on Ray.
        try:
            temporary = progress_file.with_name(f".progress.{os.getpid()}")
            temporary.write_text("".join(f"{line}\n" for line in (f"{done} {total}", *warnings)))
            os.replace(temporary, progress_file)
        except OSError:
            pass  # best effort: the run itself records into the same directory and says what is wrong

    report = watched(report, warnings.append)

    context = ray.get_runtime_context()
    where = executor("ray", "task", node_id=context.get_node_id(), task_id=context.get_task_id())
    return spec.run_id, attempt_run(spec, Path(out_dir), report, wait, where, loggers)


class _ProgressFiles:
    """The driver's view of the runs' progress files: shows what changed since the last look, and
    stops looking (with one warning) if the files cannot be read."""

    def __init__(self, out_dir: Path, sink: Sink) -> None:
        self.out_dir, self.sink = out_dir, sink
        self.shown: dict[str, tuple[int, int]] = {}
        self.warned: dict[str, int] = {}  # warnings shown per run
        self.lost = False
        self.next_look = 0.0

    def look(self, specs) -> None:
        if self.lost or time.monotonic() < self.next_look:
            return
        self.next_look = time.monotonic() + _PROGRESS_POLL
        for spec in specs:
            try:
                counts, *warnings = _progress_path(self.out_dir, spec.run_id).read_text().splitlines()
                done, total = map(int, counts.split())
            except (FileNotFoundError, ValueError):  # not started, or caught between write and rename
                continue
            except OSError as exc:
                self.lost = True
                self.sink.note(f"[yellow]progress display lost: {escape(str(exc))}; runs continue[/yellow]")
                return
            for warning in warnings[self.warned.get(spec.run_id, 0):]:
                self.sink.warn(warning)
            self.warned[spec.run_id] = len(warnings)
            if self.shown.get(spec.run_id) != (done, total):
                self.shown[spec.run_id] = (done, total)
                self.sink.progress(spec.run_id, done, total)

    def forget(self, spec: RunSpec) -> None:
        self.shown.pop(spec.run_id, None)
        self.warned.pop(spec.run_id, None)
        with contextlib.suppress(OSError):
            _progress_path(self.out_dir, spec.run_id).unlink(missing_ok=True)


def execute(todo: list[RunSpec], store: RunStore, sink: Sink, address: str | None, workers: int,
            cpus_per_run: float, gpus_per_run: float, max_retries: int, loggers: tuple[str, ...] = (),
            verbose: bool = False) -> None:
    """Run ``todo`` as Ray tasks. ``verbose`` lets Ray's output through (the workers' too); without it
    the caller has sent it to ``ray.log`` (:func:`output_to_log`) and the errors name that file."""
    if not todo:
        return
    try:
        import ray
    except ImportError:
        raise UsageError("--backend ray needs Ray: pip install -c constraints.txt 'offrl-bench[ray]'") from None

    # Absolute paths: Ray's worker processes do not share this process's working directory.
    env_vars = {"MINARI_DATASETS_PATH": str(datasets_root())}
    env_vars.update({key: os.environ[key] for key in _SHARED_ENVIRONMENT if key in os.environ})
    env_vars = {key: str(Path(value).resolve()) for key, value in env_vars.items()}
    out_dir = store.out_dir.resolve()
    init = {"address": address, "runtime_env": {"env_vars": env_vars}, "log_to_driver": verbose,
            "logging_level": "info" if verbose else "error", "include_dashboard": False}
    where_logs = "" if verbose else f"; Ray's output is in {out_dir / LOG_NAME}"
    if not address:  # a private instance sized for `workers` concurrent runs
        init["num_cpus"] = math.ceil(workers * cpus_per_run)
    try:
        ray.init(**init)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise UsageError(f"cannot start or reach Ray{f' at {address!r}' if address else ''}: "
                         f"{_first_line(exc) or type(exc).__name__}{where_logs}") from None
    try:
        _execute_tasks(ray, todo, out_dir, sink, cpus_per_run, gpus_per_run, max_retries, loggers, where_logs)
    finally:
        ray.shutdown()


def _execute_tasks(ray, todo: list[RunSpec], out_dir: Path, sink: Sink, cpus_per_run: float, gpus_per_run: float,
                   max_retries: int, loggers: tuple[str, ...], where_logs: str) -> None:
    task = ray.remote(_task).options(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=max_retries,
                                     retry_exceptions=False)
    threads = max(1, int(cpus_per_run))
    submit = lambda spec, wait: task.remote(spec, str(out_dir), wait, threads, loggers)  # noqa: E731
    progress = _ProgressFiles(out_dir, sink)
    run_failures = _run_failure_types()
    pending: dict = {}
    try:
        pending.update({submit(spec, False): spec for spec in todo})
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.2)
            progress.look(pending.values())
            for ref in ready:
                spec = pending.pop(ref)
                progress.forget(spec)
                try:
                    _, attempt = ray.get(ref)
                except run_failures as exc:  # the run's worker process died on every try
                    sink.give_up(spec, f"Ray task failed after {max_retries} retries: {type(exc).__name__}")
                    continue
                if attempt.status == "busy":  # claimed by another process: wait for it
                    pending[submit(spec, True)] = spec
                else:
                    sink.finish(spec, attempt)
    except ray.exceptions.RayError as exc:  # Ray itself failed (raylet, node, GCS): not the runs' fault
        _cancel(ray, pending, timeout=5)
        recorded = len(RunStore(out_dir).records())
        raise OffrlBenchError(f"Ray failed while running the suite ({type(exc).__name__}: {_first_line(exc)}); "
                              f"{recorded} runs are recorded in {out_dir} and the others have checkpoints: "
                              f"re-running the same command resumes{where_logs}") from None
    except BaseException:
        _cancel(ray, pending, timeout=30)  # a running task gets KeyboardInterrupt: it checkpoints and stops
        raise


def _first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message: Ray's messages run to many lines, an error line is one."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _cancel(ray, pending: dict, timeout: float) -> None:
    with contextlib.suppress(Exception):  # Ray may be the thing that failed
        for ref in pending:
            ray.cancel(ref)
        ray.wait(list(pending), num_returns=len(pending), timeout=timeout)


def _run_failure_types() -> tuple[type[Exception], ...]:
    """Ray errors that belong to one run, after Ray's own retries: its worker process died (killed,
    out of memory) every time. Any other Ray error means Ray itself failed, and the suite stops
    without recording the run as failed, so that a re-run resumes it."""
    import ray.exceptions

    return (ray.exceptions.WorkerCrashedError, ray.exceptions.OutOfMemoryError)
