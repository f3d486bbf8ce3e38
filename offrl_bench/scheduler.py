"""Execute many runs: in this process, or in parallel worker processes, with progress and resume.

Finished runs (already in ``runs.jsonl``) are skipped; interrupted ones resume from their
checkpoint. Workers are separate processes started with ``spawn`` (forking a process that already
runs torch threads can deadlock) and each gets an equal share of the CPU threads.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from offrl_bench.errors import UsageError
from offrl_bench.results import RunStore
from offrl_bench.runner import RunSpec, execute_run


@dataclass
class Outcome:
    skipped: int = 0
    completed: list[dict] = field(default_factory=list)


def check_writable(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"output directory '{out_dir}' is not writable ({exc.strerror or exc}); "
                         "choose another with --out") from exc


class _ProgressView:
    """Rich progress: one bar for runs done/total, one per active run with updates/s and ETA."""

    def __init__(self, total_runs: int, console: Console, quiet: bool) -> None:
        self.progress = None if quiet else Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=console, transient=False,
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

    def finish(self, run_id: str) -> None:
        if self.progress:
            if run_id in self.tasks:
                self.progress.remove_task(self.tasks.pop(run_id)[0])
            self.progress.advance(self.overall)


def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _run_in_worker(spec: RunSpec, out_dir: str, messages) -> dict:
    return execute_run(spec, RunStore(Path(out_dir)), lambda *m: messages.put(m))


def execute(specs: list[RunSpec], out_dir: Path, workers: int = 1, console: Console | None = None,
            quiet: bool = False) -> Outcome:
    console = console or Console(stderr=True)
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    check_writable(out_dir)
    store = RunStore(out_dir)
    finished = store.records()
    todo = [spec for spec in specs if spec.run_id not in finished]
    outcome = Outcome(skipped=len(specs) - len(todo))
    if not quiet:
        console.print(f"{len(specs)} runs: {outcome.skipped} already finished, {len(todo)} to do -> {out_dir}")
    with _ProgressView(len(todo), console, quiet) as view:
        if workers == 1 or len(todo) <= 1:
            for spec in todo:
                outcome.completed.append(execute_run(spec, store, view.update))
                view.finish(spec.run_id)
        else:
            _execute_parallel(todo, store, min(workers, len(todo)), view, outcome.completed.append)
    return outcome


def _execute_parallel(todo: list[RunSpec], store: RunStore, workers: int, view: _ProgressView,
                      collect: Callable[[dict], None]) -> None:
    context = multiprocessing.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // workers)
    with context.Manager() as manager:
        messages = manager.Queue()
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init, initargs=(threads,))
        try:
            pending: dict[Future, RunSpec] = {
                pool.submit(_run_in_worker, spec, str(store.out_dir), messages): spec for spec in todo
            }
            while pending:
                done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                _drain(messages, view)
                for future in done:
                    spec = pending.pop(future)
                    collect(future.result())  # re-raises the run's error here
                    view.finish(spec.run_id)
        except BaseException:
            # Queued runs are dropped; runs already executing finish (or, on Ctrl-C, checkpoint and
            # stop) while the progress queue they report to still exists.
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown()


def _drain(messages, view: _ProgressView) -> None:
    while True:
        try:
            view.update(*messages.get_nowait())
        except queue.Empty:
            return
