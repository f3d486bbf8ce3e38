"""One attempt at one run, the same wherever it executes (this process, a local worker, a Ray task).

:func:`attempt_run` first *claims* the run (:meth:`RunStore.claim`), so two ``offrl-bench run``
processes pointed at one directory never execute the same run at once; a run claimed elsewhere is
put back at the end of the queue, waited for, and then found recorded. A run that raises
(non-finite loss, a plugin that raises, an unreadable checkpoint) is written to ``failures.jsonl``
with its reason and does not stop the other runs; a later invocation skips it unless asked to
``retry_failed``. A finished run is skipped, an interrupted one resumes from its checkpoint.

Every backend reports to a :class:`Sink`: progress to the :class:`ProgressView`, final attempts to
the :class:`Outcome`.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from offrl_bench.core.errors import OffrlBenchError
from offrl_bench.core.machine import cpu_model
from offrl_bench.execution.contention import ContentionWatch
from offrl_bench.execution.runner import ProgressCallback, RunSpec, execute_run
from offrl_bench.records.run_store import RunStore

#: Seconds between two progress messages of a run sent to the coordinator, which shares the CPU
#: with the runs (at one message per 50 updates a fast run sent dozens a second).
PROGRESS_INTERVAL = 1.0

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


def record_failure(store: RunStore, spec: RunSpec, reason: str, details: str = "") -> dict:
    """Append a failed attempt at ``spec`` to ``failures.jsonl`` and return it."""
    failure = {"run_id": spec.run_id, "suite": spec.suite, "algorithm": spec.algo, "dataset": spec.dataset,
               "wrapper": spec.wrapper, "seed": spec.seed, "reason": reason, "details": details,
               "failed_at": datetime.now(timezone.utc).isoformat()}
    store.append_failure(failure)
    return failure


def executor(backend: str, process: str, **details) -> dict:
    """Where a run executes, as its record keeps it: backend, process, host, pid, the CPU model and
    torch threads (a seed's floats are bit-identical only on one CPU model and thread count: the
    order of floating-point sums differs); Ray adds its ids."""
    return {"backend": backend, "process": process, "host": socket.gethostname(), "pid": os.getpid(),
            "cpu": cpu_model(), "torch_threads": torch.get_num_threads(), **details}


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
