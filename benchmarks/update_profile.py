"""How fast an update runs and where its time goes, measured the same way for offrl-bench and d3rlpy.

Imported by ``throughput.py`` and by its d3rlpy side, which runs in d3rlpy's own venv; so it needs
nothing but torch.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

#: The matrix multiplications of an MLP update: the compute no implementation of the same networks avoids.
MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")


def updates_per_second(update: Callable[[], object], n: int, warmup: int = 20) -> float:
    for _ in range(warmup):
        update()
    started = time.perf_counter()
    for _ in range(n):
        update()
    return n / (time.perf_counter() - started)


def profile(update: Callable[[], object], n: int) -> tuple[dict[str, float], float]:
    """Seconds per update in each torch operator, and FLOPs per update (all of them matmuls in an MLP).

    Two passes over ``n`` updates each: recording shapes to count FLOPs inside the profiler would
    inflate the operator times (CQL's matmuls read 2x slower with ``with_flops=True``).
    """
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(n):
            update()
    counter = FlopCounterMode(display=False)
    with counter:
        for _ in range(n):
            update()
    return {e.key: e.self_cpu_time_total / 1e6 / n for e in prof.key_averages()}, counter.get_total_flops() / n


def matmul_seconds(op_seconds: dict[str, float]) -> float:
    return sum(op_seconds.get(op, 0.0) for op in MATMUL_OPS)
