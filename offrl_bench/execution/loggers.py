"""Experiment-tracker plugins: mirror each run's evaluations to TensorBoard, Weights & Biases, ...

A logger is a :class:`RunLogger` subclass registered under the ``offrl_bench.loggers`` entry-point
group (built-ins: ``tensorboard``, ``wandb``) and chosen with ``run --logger NAME[,NAME]``. The
runner calls :meth:`RunLogger.log` at every evaluation, with the same step and values it appends to
``runs/<run_id>/metrics.jsonl`` (losses, evaluation scores, perturbation rates). The JSONL files stay
the source of truth; a logger is a view of them.

Resuming: the runner logs an evaluation just before it checkpoints, so after a kill the trackers
may hold steps past the checkpoint the run resumes from. Those steps are computed again, with the
same values. Each logger is opened with ``resumed_at`` (the checkpoint's step) and must not show
them twice: TensorBoard writes a purge marker at ``resumed_at + 1`` (readers drop the earlier
events from that step on), and W&B drops a logged step that is not past the last one it holds.
"""

from __future__ import annotations

import abc
import importlib.util
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from offrl_bench.core import registry
from offrl_bench.core.errors import PluginError, UsageError, one_of


class RunLogger(abc.ABC):
    """One run's connection to an experiment tracker, open for the run's lifetime in one process."""

    #: The package the tracker needs (checked before any run starts), and the extra that installs it.
    requires: ClassVar[str | None] = None

    def __init__(self, run_dir: Path, run_id: str, config: dict[str, Any], resumed_at: int) -> None:
        self.run_dir, self.run_id, self.config, self.resumed_at = run_dir, run_id, config, resumed_at

    @abc.abstractmethod
    def log(self, step: int, values: dict[str, float]) -> None:
        """Record ``values`` (flat, by name such as ``eval/normalized_score``) at ``step``."""

    def close(self) -> None:
        """Flush and release the tracker; called once, also when the run is interrupted."""

    @property
    def tensorboard(self) -> tuple[Path, int | None] | None:
        """Where an online plugin with its own TensorBoard support (SB3) should write, and the step
        from which earlier events are stale (None: nothing earlier); None: not a TensorBoard logger."""
        return None


class TensorBoardLogger(RunLogger):
    """Event files under ``runs/<run_id>/tb/`` (``tensorboard --logdir OUT/runs`` shows every run)."""

    requires = "tensorboard"

    def __init__(self, run_dir: Path, run_id: str, config: dict[str, Any], resumed_at: int) -> None:
        super().__init__(run_dir, run_id, config, resumed_at)
        from torch.utils.tensorboard import SummaryWriter

        directory = run_dir / "tb"
        earlier = directory.is_dir() and any(directory.glob("events.out.tfevents.*"))
        self.purge_step = resumed_at + 1 if earlier else None
        self.writer = SummaryWriter(log_dir=str(directory), purge_step=self.purge_step)

    @property
    def tensorboard(self) -> tuple[Path, int | None]:
        return self.run_dir / "tb", self.purge_step

    def log(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, global_step=step)
        self.writer.flush()  # an evaluation is rare and precious: on disk before the checkpoint

    def close(self) -> None:
        self.writer.close()


class WandbLogger(RunLogger):
    """A W&B run per benchmark run, resumed under the same id. It writes under
    ``runs/<run_id>/wandb/``; ``WANDB_MODE=offline`` keeps everything local (``wandb sync`` uploads
    it later). Project and entity come from ``WANDB_PROJECT`` / ``WANDB_ENTITY`` (project
    ``offrl-bench`` when unset)."""

    requires = "wandb"

    def __init__(self, run_dir: Path, run_id: str, config: dict[str, Any], resumed_at: int) -> None:
        super().__init__(run_dir, run_id, config, resumed_at)
        import wandb

        directory = run_dir / "wandb"
        directory.mkdir(parents=True, exist_ok=True)
        # W&B ids allow at most 64 characters of [A-Za-z0-9_-]; the run id's digest suffix is unique.
        wandb_id = run_id.rsplit("__", 1)[-1]
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "offrl-bench"), name=run_id, id=wandb_id,
                              dir=str(directory), config=config, resume="allow", reinit="create_new",
                              settings=wandb.Settings(silent=True, console="off"))

    def log(self, step: int, values: dict[str, float]) -> None:
        self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()


def flatten(line: dict[str, Any]) -> dict[str, float]:
    """A ``metrics.jsonl`` line as tracker scalars: ``eval/...``, ``perturbation/...``,
    ``time/train_seconds`` and the losses under ``losses/`` (not ``train/``, which SB3's own
    TensorBoard output uses in the same directory)."""
    evaluation = {"return_mean", "normalized_score"}
    values = {}
    for name, value in line.items():
        if name == "updates":
            continue
        if name == "perturbation_rates":
            values.update({f"perturbation/{rate}": float(v) for rate, v in value.items()})
        elif name in evaluation:
            values[f"eval/{name}"] = float(value)
        elif name == "train_seconds":
            values["time/train_seconds"] = float(value)
        else:
            values[f"losses/{name}"] = float(value)
    return {name: value for name, value in values.items() if math.isfinite(value)}


def logger_class(name: str) -> type[RunLogger]:
    """The :class:`RunLogger` subclass registered as ``name``."""
    cls = registry.load(registry.LOGGERS, name)
    if not (isinstance(cls, type) and issubclass(cls, RunLogger)):
        raise PluginError(f"logger plugin '{name}' is not a subclass of offrl_bench.api.RunLogger")
    return cls


def missing_package(name: str) -> str | None:
    """The package the installed logger ``name`` needs and this environment lacks, if any."""
    package = logger_class(name).requires
    return package if package and importlib.util.find_spec(package) is None else None


def check_names(names: Iterable[str]) -> tuple[str, ...]:
    """``--logger`` values, checked against the installed loggers (a usage error names them)."""
    names = tuple(dict.fromkeys(name.strip() for name in names if name.strip()))
    installed = registry.available(registry.LOGGERS)
    for name in names:
        if name not in installed:
            raise UsageError(f"unknown logger '{name}'; {one_of(installed)}")
        package = missing_package(name)
        if package:
            raise UsageError(f"logger '{name}' needs {package}, which is not installed: "
                             f"pip install -c constraints.txt 'offrl-bench[{name}]'")
    return names


class RunLoggers:
    """The loggers a run was asked for, used as one (see :func:`open_loggers`)."""

    def __init__(self, loggers: list[RunLogger]) -> None:
        self.loggers = loggers

    def log(self, line: dict[str, Any]) -> None:
        values = flatten(line)
        for logger in self.loggers:
            logger.log(int(line["updates"]), values)

    @property
    def tensorboard(self) -> tuple[Path, int | None] | None:
        return next((logger.tensorboard for logger in self.loggers if logger.tensorboard), None)

    def close(self) -> None:
        for logger in self.loggers:
            logger.close()


def open_loggers(names: Iterable[str], run_dir: Path, run_id: str, config: dict[str, Any],
                 resumed_at: int) -> RunLoggers:
    opened = []
    for name in names:
        cls = logger_class(name)
        try:
            opened.append(cls(run_dir, run_id, config, resumed_at))
        except Exception as exc:
            RunLoggers(opened).close()
            raise PluginError(f"logger '{name}' failed to open for run {run_id}: {exc}") from exc
    return RunLoggers(opened)
