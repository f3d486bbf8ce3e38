"""The machine a run executes on, as far as its floats go: the CPU model. The same seed gives the
same numbers bit for bit only on one CPU model (and thread count); on another, results drift
(docs/statistics.md says how far verdicts move)."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()
