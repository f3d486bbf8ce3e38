"""Notice when another process takes the CPU that a run's torch threads were sized for.

torch's OpenMP threads meet at the end of every parallel kernel. When another process takes one of
their cores, each kernel waits for the thread that is not running. On this 2-core machine, with a
busy loop pinned to one core, the probe below ran 5.4x slower with 2 torch threads (median of 9,
``benchmarks/co_tenant.py``) and 1.3x slower with one; single probes during a 2-thread run fell
200x below start-up. Without a warning, a run simply takes many times longer.

:class:`ContentionWatch` follows a run's own update rate. When the rate falls far below the run's
best, it re-measures a small matmul probe against the probe taken when the process started, so the
progress display can give the cause in one line.

The watch reports and changes nothing. In particular it does not drop to one thread: on this
machine's Intel Xeon the thread count changes the order of floating-point sums. A run that switched
threads under load would no longer give the same numbers for the same command and seed. The
robust setting is chosen up front instead: one thread per run (the default for a command with
several runs, see :func:`offrl_bench.execution.scheduler.default_workers`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

#: The probe is sized to take about this long on an idle machine: long enough to span several
#: scheduler time slices, short enough to cost nothing at one probe per slowdown.
PROBE_SECONDS = 0.05
#: A run's update rate is measured over windows at least this long (evaluations fall inside them).
WINDOW_SECONDS = 10.0
#: A window this many times slower than the run's best window, with the probe at least
#: CONFIRMATION times slower than at start-up, is reported.
SLOWDOWN = 4.0
CONFIRMATION = 2.0

#: Several threads are reported as stalled at start-up when one thread probes this much faster.
STALL_MARGIN = 1.25

_BATCH, _HIDDEN, _INPUT = 256, 256, 32  # an offline-RL MLP layer stack: batch 256, 256 hidden units
_PROBE_FLOPS = 2 * _BATCH * (_INPUT * _HIDDEN + _HIDDEN * _HIDDEN + _HIDDEN * _INPUT)


def usable_cpus() -> int:
    """CPU cores this process may run on (its affinity mask, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _probe_once(x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor, w3: torch.Tensor) -> None:
    torch.relu(torch.relu(x @ w1) @ w2) @ w3


def matmul_rate(repeats: int) -> float:
    """FLOP/s of ``repeats`` forward passes through a 32-256-256-32 MLP on a batch of 256, at the
    current torch thread count. Small matmuls like an update's, not one big one: barriers between
    kernels are what stall when a core is taken. Constant inputs: no random number generator is used."""
    with torch.no_grad():
        x, w1 = torch.ones(_BATCH, _INPUT), torch.ones(_INPUT, _HIDDEN)
        w2, w3 = torch.ones(_HIDDEN, _HIDDEN), torch.ones(_HIDDEN, _INPUT)
        _probe_once(x, w1, w2, w3)
        started = time.perf_counter()
        for _ in range(repeats):
            _probe_once(x, w1, w2, w3)
        return repeats * _PROBE_FLOPS / max(time.perf_counter() - started, 1e-9)


def probe_repeats(seconds: float = PROBE_SECONDS) -> int:
    """How many probe passes take about ``seconds`` here and now."""
    return max(1, round(seconds * matmul_rate(20) / _PROBE_FLOPS))


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """torch's thread count set to ``count`` (None: left as it is) for the block, then restored."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count or previous)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@functools.lru_cache(maxsize=None)
def start_up_rates(threads: int) -> tuple[int, float, float]:
    """This process's probe at ``threads`` threads, measured once: (repeats, FLOP/s at ``threads``
    threads, FLOP/s at one thread)."""
    with torch_threads(threads):
        repeats = probe_repeats()
        rate = matmul_rate(repeats)
    with torch_threads(1):
        return repeats, rate, rate if threads == 1 else matmul_rate(repeats)


_STALL_REPORTED: set[int] = set()  # thread counts whose stall at start-up this process has reported


@dataclass
class _RunWindow:
    started: float
    done: int
    best: float = 0.0  # the run's best update rate so far (updates/s)
    slowed: bool = False


class ContentionWatch:
    """Follows the update rates of the runs this process executes (see the module docstring).

    ``observe`` is called with every progress report and returns a line for the progress display
    when something changed: the first call of a process whose threads already stall, a run that fell
    ``slowdown`` times below its best window with the matmul probe confirming it, and such a run
    getting its speed back.
    """

    def __init__(self, window: float = WINDOW_SECONDS, slowdown: float = SLOWDOWN,
                 confirmation: float = CONFIRMATION, clock: Callable[[], float] = time.monotonic,
                 probe: Callable[[int], float] = matmul_rate) -> None:
        self.window, self.slowdown, self.confirmation = window, slowdown, confirmation
        self.clock, self.probe = clock, probe
        self.threads = torch.get_num_threads()
        self.repeats, self.start_rate, single = start_up_rates(self.threads) if probe is matmul_rate \
            else (1, probe(1), probe(1))
        self.pending = None if self.threads in _STALL_REPORTED else self._stalled_at_start(single)
        if self.pending:
            _STALL_REPORTED.add(self.threads)
        self.runs: dict[str, _RunWindow] = {}

    def _stalled_at_start(self, single: float) -> str | None:
        """Several threads clearly slower than one: a core is already taken, so the later rates alone
        could not tell (idle, 2 threads here ran the probe 1.7x faster than 1)."""
        if self.threads < 2 or single <= STALL_MARGIN * self.start_rate:
            return None
        return (f"torch's {self.threads} threads per run multiply matrices {single / self.start_rate:.1f}x slower "
                f"than 1 thread: another process is using the CPU. {self._advice()}")

    def _advice(self) -> str:
        if self.threads < 2:
            return ""
        return ("Several threads per run stall when a core is taken; one thread per run keeps its share "
                f"(e.g. --workers {usable_cpus()} --cpus-per-run 1).")

    def observe(self, run_id: str, done: int, total: int) -> str | None:
        if self.pending:
            message, self.pending = self.pending, None
            return message
        now = self.clock()
        window = self.runs.get(run_id)
        if window is None or done < window.done:  # a new run, or the same run resumed
            self.runs[run_id] = _RunWindow(now, done)
            return None
        if done >= total:
            del self.runs[run_id]
            return None
        if now - window.started < self.window:
            return None
        rate = (done - window.done) / (now - window.started)
        window.started, window.done = now, done
        if window.slowed:
            if 2 * rate < window.best:
                return None
            window.slowed = False
            return f"{run_id}: back to {rate:,.0f} updates/s"
        if rate * self.slowdown > window.best:
            window.best = max(window.best, rate)
            return None
        probe = self.probe(self.repeats)
        if probe * self.confirmation > self.start_rate:
            return None  # the run itself slowed down (a costlier phase), not the CPU
        window.slowed = True
        return (f"{run_id}: {window.best / max(rate, 1e-9):.0f}x fewer updates/s than earlier in this run and the "
                f"matmul rate is {self.start_rate / probe:.0f}x below start-up: another process is using the CPU. "
                f"{self._advice()}").rstrip()
