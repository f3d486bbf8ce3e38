"""Local worker processes: a fixed number of long-lived ``spawn`` processes (forking a process that
already runs torch threads can deadlock), each with an equal share of the CPU threads and one run at
a time, so that the parent always knows which run a dead worker was executing. A worker that dies
(SIGKILL, the OOM killer) is replaced and its run retried from its last checkpoint, up to
``max_retries`` times; the other workers carry on undisturbed.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import queue
import signal
import time
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path

from offrl_bench.execution.attempts import Sink, attempt_run, executor, throttled, watched
from offrl_bench.execution.runner import RunSpec
from offrl_bench.records.run_store import RunStore


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


class LocalWorkers:
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
