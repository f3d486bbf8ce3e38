"""Execute many runs: in this process, in local worker processes, or as Ray tasks (ray_backend.py).

Wherever a run executes, it goes through :func:`attempt_run`:

- it first *claims* the run (:meth:`RunStore.claim`), so two ``offrl-bench run`` processes pointed
  at one directory never execute the same run at once; a run claimed elsewhere is put back at the
  end of the queue, waited for, and then found recorded;
- a run that raises (non-finite loss, a plugin that raises, an unreadable checkpoint) is written
  to ``failures.jsonl`` with its reason and does not stop the other runs; a later invocation skips
  it unless asked to ``retry_failed``;
- a finished run is skipped, an interrupted one resumes from its checkpoint.

Local workers are long-lived ``spawn`` processes (forking a process that already runs torch threads
can deadlock), each with an equal share of the CPU threads. A worker that dies (SIGKILL, the OOM
killer) is replaced and its run retried from its last checkpoint, up to ``max_retries`` times; the
other workers carry on undisturbed.

The CLI's default for a command with several runs is :func:`default_workers` with one torch
thread per run: single-threaded runs keep their share of a machine on which another process takes
a core, where a run's several threads stall (see :mod:`offrl_bench.contention`), and a run's
numbers then do not depend on how many cores or runs are left.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import queue
import signal
import socket
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

import torch
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from offrl_bench.contention import ContentionWatch, torch_threads, usable_cpus
from offrl_bench.errors import OffrlBenchError, UsageError, one_of
from offrl_bench.results import RunStore
from offrl_bench.runner import ProgressCallback, RunSpec, execute_run

BACKENDS = ("local", "ray")
DEFAULT_MAX_RETRIES = 2
#: Seconds between two progress messages of a run sent to the coordinator, which shares the CPU
#: with the runs (at one message per 50 updates a fast run sent dozens a second).
PROGRESS_INTERVAL = 1.0
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


def watched(report: ProgressCallback, note: Callable[[str], None]) -> ProgressCallback:
    """``report``, with this process's :class:`ContentionWatch` looking at every progress report
    first and passing what it notices to ``note``."""
    watch = ContentionWatch()

    def send(run_id: str, done: int, total: int) -> None:
        message = watch.observe(run_id, done, total)
        if message:
            note(message)
        report(run_id, done, total)

    return send


def throttled(report: ProgressCallback, interval: float = PROGRESS_INTERVAL) -> ProgressCallback:
    """``report`` called at most once per ``interval`` seconds per run, and always for a run's end."""
    due: dict[str, float] = {}

    def send(run_id: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now >= due.get(run_id, 0.0):
            due[run_id] = now + interval
            report(run_id, done, total)

    return send


@dataclass(frozen=True)
class Attempt:
    """What one attempt at a run ended with: ``completed`` (``entry`` is the run record),
    ``failed`` (``entry`` is the failure), ``recorded`` (another process finished it first) or
    ``busy`` (another live process holds the run's claim)."""

    status: str
    entry: dict | None = None


@dataclass
class Outcome:
    skipped: int = 0  # already recorded before this call
    completed: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)  # failures of this call
    failed_earlier: list[dict] = field(default_factory=list)  # failed before, not retried this time


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


def record_failure(store: RunStore, spec: RunSpec, reason: str, details: str = "") -> dict:
    """Append a failed attempt at ``spec`` to ``failures.jsonl`` and return it."""
    failure = {"run_id": spec.run_id, "suite": spec.suite, "algorithm": spec.algo, "dataset": spec.dataset,
               "wrapper": spec.wrapper, "seed": spec.seed, "reason": reason, "details": details,
               "failed_at": datetime.now(timezone.utc).isoformat()}
    store.append_failure(failure)
    return failure


def executor(backend: str, process: str, **details) -> dict:
    """Where a run executes, as its record keeps it: backend, process, host, pid and torch threads (the
    thread count can change the order of floating-point sums); Ray adds its ids."""
    return {"backend": backend, "process": process, "host": socket.gethostname(), "pid": os.getpid(),
            "torch_threads": torch.get_num_threads(), **details}


def attempt_run(spec: RunSpec, out_dir: Path, progress: ProgressCallback | None, wait: bool,
                where: dict | None = None, loggers: tuple[str, ...] = ()) -> Attempt:
    """Claim, then execute ``spec`` (resuming from its checkpoint); a failure is recorded, not raised.
    ``where`` (see :func:`executor`) goes into the run's record; ``loggers`` name its trackers."""
    store = RunStore(out_dir)
    with store.claim(spec.run_id, wait=wait) as claimed:
        if not claimed:
            return Attempt("busy")
        finished = store.records().get(spec.run_id)
        if finished is not None:
            return Attempt("recorded", finished)
        try:
            return Attempt("completed", execute_run(spec, store, progress, where, loggers))
        except Exception as exc:  # the traceback is kept for whoever debugs the plugin or the data
            reason = str(exc) if isinstance(exc, OffrlBenchError) else f"{type(exc).__name__}: {exc}"
            return Attempt("failed", record_failure(store, spec, reason, traceback.format_exc()))


class ProgressView:
    """Rich progress: one bar for runs done/total, one per active run with updates/s and ETA."""

    def __init__(self, total_runs: int, console: Console, quiet: bool, redirect: bool = True) -> None:
        """``redirect``: show what this process prints to ``sys.stdout``/``sys.stderr`` above the bars
        (rich's default); off where that output belongs elsewhere (Ray's, in ``ray.log``)."""
        self.console, self.quiet = console, quiet
        self.progress = None if quiet else Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=console, transient=False,
            refresh_per_second=2,  # the display shares the CPU with the runs it shows
            redirect_stdout=redirect, redirect_stderr=redirect,
        )
        self.tasks: dict[str, tuple[int, float, int]] = {}
        self.overall = self.progress.add_task("runs", total=total_runs, rate="") if self.progress else None

    def __enter__(self):
        if self.progress:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.progress:
            self.progress.__exit__(*exc)

    def update(self, run_id: str, done: int, total: int) -> None:
        if not self.progress:
            return
        now = time.perf_counter()
        if run_id not in self.tasks:
            task = self.progress.add_task(f"  {run_id[:60]}", total=max(total, 1), rate="")
            self.tasks[run_id] = (task, now, done)
        task, since, first = self.tasks[run_id]
        rate = (done - first) / (now - since) if now > since and done > first else 0.0
        self.progress.update(task, completed=done, rate=f"{rate:,.0f} upd/s" if rate else "")

    def note(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message, soft_wrap=True)  # run ids and reasons stay whole

    def warn(self, message: str) -> None:
        """A line from a run's process, as plain text (run ids hold brackets)."""
        self.note(f"[yellow]{escape(message)}[/yellow]")

    def finish(self, run_id: str) -> None:
        if self.progress:
            if run_id in self.tasks:
                self.progress.remove_task(self.tasks.pop(run_id)[0])
            self.progress.advance(self.overall)


class Sink:
    """Where every backend reports: progress to the view, final attempts to the outcome."""

    def __init__(self, outcome: Outcome, view: ProgressView, store: RunStore) -> None:
        self.outcome, self.view, self.store = outcome, view, store

    def progress(self, run_id: str, done: int, total: int) -> None:
        self.view.update(run_id, done, total)

    def note(self, message: str) -> None:
        self.view.note(message)

    def warn(self, message: str) -> None:
        self.view.warn(message)

    def finish(self, spec: RunSpec, attempt: Attempt) -> None:
        if attempt.status == "failed":
            self.outcome.failed.append(attempt.entry)
            self.view.note(f"[red]failed[/red] {spec.run_id}: {escape(attempt.entry['reason'])}")  # [..] is text
        elif attempt.status == "completed":
            self.outcome.completed.append(attempt.entry)
        else:  # recorded by another process while this one waited
            self.outcome.skipped += 1
        self.view.finish(spec.run_id)

    def give_up(self, spec: RunSpec, reason: str) -> None:
        """A failure no run code could record (its worker died): record it here."""
        self.finish(spec, Attempt("failed", record_failure(self.store, spec, reason)))


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
        from offrl_bench import ray_backend

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
                _LocalWorkers(min(workers, len(todo)), threads, store, sink, max_retries, loggers).execute(todo)
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


def _stop_on_sigterm(signum, frame) -> None:
    raise KeyboardInterrupt  # the run in progress checkpoints, exactly as on Ctrl-C


def _die_with_parent(parent: int) -> None:
    """Ask Linux to send this worker SIGTERM when its parent dies (even by SIGKILL): the worker then
    checkpoints and exits instead of running on as an orphan. SIGTERM, not SIGINT, because a shell
    starts background jobs with SIGINT ignored."""
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the idle loop below still notices
        pass
    if os.getppid() != parent:  # the parent died before the request was in place
        raise KeyboardInterrupt


def _worker_main(index: int, inbox, outbox, out_dir: str, threads: int, parent: int,
                 loggers: tuple[str, ...]) -> None:
    # Exiting must never wait for the outbox to drain: after the parent died nobody reads it, and a
    # full pipe would keep this process alive forever. The parent reads every result before it
    # asks a worker to stop, so nothing it needs is lost.
    outbox.cancel_join_thread()
    try:
        _die_with_parent(parent)
        import torch

        torch.set_num_threads(threads)

        @throttled
        def report(run_id: str, done: int, total: int) -> None:
            outbox.put(("progress", index, (run_id, done, total)))

        report = watched(report, lambda message: outbox.put(("warning", index, message)))

        while os.getppid() == parent:
            try:
                task = inbox.get(timeout=1.0)
            except queue.Empty:
                continue
            if task is None:
                return
            spec, wait = task
            attempt = attempt_run(spec, Path(out_dir), report, wait, executor("local", f"worker {index}"), loggers)
            outbox.put(("result", index, (spec.run_id, attempt)))
    except KeyboardInterrupt:  # the run has checkpointed; the parent reports the interruption
        pass


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    inbox: object
    task: tuple[RunSpec, bool] | None = None


class _LocalWorkers:
    """A fixed number of worker processes, each given one run at a time, so that the parent always
    knows which run a dead worker was executing."""

    def __init__(self, count: int, threads: int, store: RunStore, sink: Sink, max_retries: int,
                 loggers: tuple[str, ...] = ()) -> None:
        self.context = multiprocessing.get_context("spawn")
        self.count, self.threads, self.store, self.sink, self.max_retries = count, threads, store, sink, max_retries
        self.loggers = loggers
        self.outbox = self.context.Queue()
        self.workers: list[_Worker] = []

    def _start(self, index: int) -> _Worker:
        inbox = self.context.Queue()
        process = self.context.Process(target=_worker_main, name=f"offrl-bench-worker-{index}", daemon=True,
                                       args=(index, inbox, self.outbox, str(self.store.out_dir), self.threads,
                                             os.getpid(), self.loggers))
        process.start()
        return _Worker(process, inbox)

    def execute(self, todo: list[RunSpec]) -> None:
        waiting = deque((spec, False) for spec in todo)
        deaths: Counter[str] = Counter()
        self.workers = [self._start(i) for i in range(self.count)]
        last_check = time.monotonic()
        try:
            while waiting or any(worker.task for worker in self.workers):
                for worker in self.workers:
                    if worker.task is None and waiting:
                        worker.task = waiting.popleft()
                        worker.inbox.put(worker.task)
                try:
                    self._handle(self.outbox.get(timeout=0.2), waiting)
                except queue.Empty:
                    pass
                if time.monotonic() - last_check > 0.5:
                    last_check = time.monotonic()
                    if not all(worker.process.is_alive() for worker in self.workers):
                        self._drain(waiting)  # whatever a dead worker sent before dying counts
                        self._replace_dead_workers(waiting, deaths)
        except BaseException:
            self._interrupt()
            raise
        self._stop()

    def _handle(self, message: tuple, waiting: deque) -> None:
        kind, index, payload = message
        if kind == "progress":
            self.sink.progress(*payload)
            return
        if kind == "warning":
            self.sink.warn(payload)
            return
        run_id, attempt = payload
        worker = self.workers[index]
        if worker.task is None or worker.task[0].run_id != run_id:
            return  # from a worker that died and was replaced after sending it; its run was requeued
        (spec, _), worker.task = worker.task, None
        if attempt.status == "busy":
            waiting.append((spec, True))  # claimed by another process: wait for it, last
        else:
            self.sink.finish(spec, attempt)

    def _drain(self, waiting: deque) -> None:
        while True:
            try:
                self._handle(self.outbox.get_nowait(), waiting)
            except queue.Empty:
                return

    def _replace_dead_workers(self, waiting: deque, deaths: Counter) -> None:
        for index, worker in enumerate(self.workers):
            if worker.process.is_alive():
                continue
            self.workers[index] = self._start(index)
            if worker.task is None:
                continue
            spec = worker.task[0]
            deaths[spec.run_id] += 1
            cause = _exit_cause(worker.process.exitcode)
            if deaths[spec.run_id] > self.max_retries:
                self.sink.give_up(spec, f"worker process died {deaths[spec.run_id]} times ({cause})")
            else:
                self.sink.note(f"[yellow]worker running {spec.run_id} died ({cause}); retrying from its last "
                               f"checkpoint (retry {deaths[spec.run_id]} of {self.max_retries})[/yellow]")
                waiting.appendleft((spec, True))

    def _interrupt(self) -> None:
        """Ctrl-C reaches the workers directly from the terminal; otherwise (a signal sent to this
        process alone, an error here) they get SIGTERM after a grace period. Either way they
        checkpoint and exit."""
        deadline = time.monotonic() + 2
        for worker in self.workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
        for worker in self.workers:
            if worker.process.is_alive():
                worker.process.terminate()
        for worker in self.workers:
            worker.process.join(30)
            if worker.process.is_alive():
                worker.process.kill()

    def _stop(self) -> None:
        for worker in self.workers:
            worker.inbox.put(None)
        for worker in self.workers:
            worker.process.join(30)
            if worker.process.is_alive():
                worker.process.kill()


def _exit_cause(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"
