"""One run: (algorithm, dataset, wrapper, seed, config) -> train, evaluate, checkpoint, record.

Layout of a run inside an output directory::

    runs/<run_id>/spec.json        what was asked
    runs/<run_id>/metrics.jsonl    one line per evaluation (and the losses at that point)
    runs/<run_id>/policies/N.pt    the algorithm's state at the evaluation after N updates (for
                                   offline policy selection: ``offrl-bench ope``)
    runs/<run_id>/checkpoint.pt    latest state: algorithm, sampler RNG, progress (atomic replace)
    runs.jsonl                     the final record, appended once when the run finishes

A run that finds a checkpoint continues from it; since the checkpoint holds every random state,
the resumed run ends with the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import platform
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import torch

from offrl_bench.core import registry
from offrl_bench.core.api import Algorithm, OfflineAlgorithm, OnlineAlgorithm, action_kind, is_image_space
from offrl_bench.core.config import build_config
from offrl_bench.core.errors import OffrlBenchError, PluginError, UsageError
from offrl_bench.core.rollout import perturbation_rates
from offrl_bench.data.datasets import (
    TransitionDataset,
    dataset_path,
    evaluation_env_id,
    has_action_free_episodes,
    load_dataset,
    open_dataset,
)
from offrl_bench.envs import make_env
from offrl_bench.envs.level_splits import training_wrapper
from offrl_bench.execution.allocator import keep_freed_memory
from offrl_bench.execution.evaluation import evaluate, evaluation_seed, normalized_score
from offrl_bench.execution.loggers import open_loggers
from offrl_bench.records.run_store import RunStore, write_atomic

ProgressCallback = Callable[[str, int, int], None]  # (run_id, updates done, updates total)
#: The repository's code for ``git status``: every tracked file but the published results.
CODE_PATHSPEC = (":(top)", ":(top,exclude)results")
DEFAULT_BATCH_SIZE = 256


@dataclass(frozen=True)
class RunSpec:
    algo: str
    dataset: str
    seed: int
    wrapper: str = ""
    updates: int = 5_000
    eval_every: int = 1_000
    eval_episodes: int = 10
    checkpoint_every: int = 1_000
    overrides: tuple[tuple[str, str], ...] = ()
    suite: str = "custom"
    device: str = "cpu"
    #: "bf16" runs update() under CPU/GPU bfloat16 autocast (fp32 weights and optimiser state).
    precision: str = "fp32"
    #: The Gymnasium id that evaluates the run, for a dataset that stores no ``env_spec`` ("": the
    #: dataset's own).
    env: str = ""

    @property
    def run_id(self) -> str:
        """Readable and unique: any change to what the run computes gives a new id."""
        fields = dataclasses.asdict(self)
        fields.pop("device")  # where it runs does not change what it is
        for name, default in (("precision", "fp32"), ("env", "")):
            if fields[name] == default:  # the defaults, and what every id made before these fields meant
                fields.pop(name)
        digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:10]
        slug = lambda text: re.sub(r"[^A-Za-z0-9_.]+", "-", text).strip("-") or "none"  # noqa: E731
        return f"{slug(self.algo)}__{slug(self.dataset)}__{slug(self.wrapper)}__s{self.seed}__{digest}"


def _cached_dataset(dataset_id: str, device: str, env_id: str = "") -> TransitionDataset:
    """Each process reads a dataset once, however many runs use it (keyed by location and write
    time, so a re-made or relocated dataset is read again)."""
    metadata = dataset_path(dataset_id) / "data" / "metadata.json"
    stamp = metadata.stat().st_mtime_ns if metadata.exists() else 0
    return _load_once(dataset_id, str(metadata), stamp, device, env_id)


@cache
def _load_once(dataset_id: str, location: str, stamp: int, device: str, env_id: str) -> TransitionDataset:
    return load_dataset(dataset_id, env_id).to(device)


@cache
def _environment_versions() -> dict:
    versions = {"python": platform.python_version()}
    for package in ("offrl-bench", "torch", "numpy", "gymnasium", "minari", "stable-baselines3", "rliable"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    here = Path(__file__).resolve().parent
    try:
        versions["git_revision"] = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                                  timeout=5, cwd=here).stdout.strip() or None
        # True: the code that ran differs from that revision (uncommitted changes to tracked files
        # outside results/, whose published records are data a regeneration writes while it runs)
        versions["git_dirty"] = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                                     *CODE_PATHSPEC], capture_output=True, text=True, timeout=5,
                                                    cwd=here).stdout.strip()) if versions["git_revision"] else None
    except (OSError, subprocess.SubprocessError):
        versions["git_revision"] = versions["git_dirty"] = None
    return versions


def _check_compatible(cls: type[Algorithm], config, spec: RunSpec, action_kind: str, action_free: bool,
                      episodes: int, images: bool) -> None:
    if action_free and cls.needs_actions:
        raise UsageError(f"dataset '{spec.dataset}' has action-free episodes and algorithm '{spec.algo}' needs "
                         f"actions; train with --algo ssorl --set base={spec.algo} (inverse-dynamics proxy labels)")
    supported = cls.supported_action_spaces(config)
    if action_kind not in supported:
        name = cls.leaderboard_name(config)
        raise UsageError(f"algorithm '{name}' does not support {action_kind} actions (dataset '{spec.dataset}'); "
                         f"it supports: {', '.join(supported)}")
    if images and action_kind not in cls.supported_image_action_spaces(config):
        raise UsageError(f"algorithm '{cls.leaderboard_name(config)}' does not take image observations with "
                         f"{action_kind} actions (dataset '{spec.dataset}'); algorithms that do: "
                         f"{', '.join(registry.image_algorithms(action_kind))}")
    if not issubclass(cls, (OfflineAlgorithm, OnlineAlgorithm)):
        raise PluginError(f"algorithm '{spec.algo}' must subclass OfflineAlgorithm or OnlineAlgorithm "
                          "(offrl_bench.api)")
    if spec.precision != "fp32" and issubclass(cls, OnlineAlgorithm):
        raise UsageError(f"--precision {spec.precision} applies to offline updates; '{spec.algo}' is {cls.paradigm}")
    try:
        cls.check_dataset(config, episodes)
    except ValueError as exc:
        raise UsageError(f"algorithm '{spec.algo}' on dataset '{spec.dataset}': {exc}") from exc


PRECISIONS = ("fp32", "bf16")


def update_autocast(device: str, precision: str) -> torch.autocast:
    """The context one ``update()`` runs in: bfloat16 autocast for ``bf16``, a no-op for ``fp32``.

    Enter it once per update, never around many. Autocast's weight cache is off: an update steps
    networks it uses again afterwards (IQL's V for the next state, SAC's actor for the target), and
    with the cache those later passes would reuse the low-precision copies made before the step.
    """
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16",
                          cache_enabled=False)


def preflight(specs: list[RunSpec]) -> None:
    """Check every run can start before spending time on any: algorithm installed and compatible with
    its dataset, config overrides valid, dataset present, evaluation environment buildable."""
    # id -> (env id, action kind, action-free, episodes, images)
    datasets: dict[str, tuple[str, str, bool, int, bool]] = {}
    environments: set[tuple[str, str]] = set()
    for spec in specs:
        if spec.precision not in PRECISIONS:
            raise UsageError(f"unknown precision '{spec.precision}'; one of: {', '.join(PRECISIONS)}")
        cls = registry.algorithm_class(spec.algo)
        config = build_config(cls, spec.overrides)
        if (spec.dataset, spec.env) not in datasets:
            dataset = open_dataset(spec.dataset)
            datasets[spec.dataset, spec.env] = (evaluation_env_id(dataset, spec.dataset, spec.env),
                                                action_kind(dataset.action_space), has_action_free_episodes(dataset),
                                                dataset.total_episodes, is_image_space(dataset.observation_space))
        _check_compatible(cls, config, spec, *datasets[spec.dataset, spec.env][1:])
        env_id = datasets[spec.dataset, spec.env][0]
        if (env_id, spec.wrapper) not in environments:  # unknown wrappers and bad parameters fail here
            make_env(env_id, spec.wrapper).close()
            environments.add((env_id, spec.wrapper))


def variant_fields(cls: type[Algorithm], config) -> dict:
    """The record fields that name a configured algorithm on the leaderboard (see
    :func:`offrl_bench.records.leaderboard.variant_name`)."""
    return {"algorithm_label": cls.leaderboard_name(config), "columns": cls.leaderboard_columns(config)}


def build_algorithm(spec: RunSpec, dataset: TransitionDataset) -> Algorithm:
    """The run's algorithm, configured and checked against the dataset, in a process whose allocator
    is tuned for training (so benchmarks that build algorithms measure what runs do)."""
    keep_freed_memory()
    cls = registry.algorithm_class(spec.algo)
    config = build_config(cls, spec.overrides)
    _check_compatible(cls, config, spec, dataset.spec.action_kind, dataset.action_free, dataset.n_episodes,
                      dataset.spec.image_observations)
    env_spec = dataclasses.replace(dataset.spec, wrapper=spec.wrapper)
    try:
        return cls(env_spec, config, spec.seed, spec.device)
    except (TypeError, AttributeError) as exc:
        raise PluginError(f"algorithm '{spec.algo}' failed to construct: {exc}") from exc


def save_checkpoint(path: Path, algorithm: Algorithm, sampler: torch.Generator, done: int, seconds: float,
                    losses: dict[str, float], eval_seconds: float) -> None:
    """Write the state a run continues from, atomically (see :func:`load_checkpoint`)."""
    save_atomic(path, {"algorithm": algorithm.state_dict(), "sampler": sampler.get_state(),
                       "torch_rng": torch.get_rng_state(), "updates_done": done, "train_seconds": seconds,
                       "losses": losses, "eval_seconds": eval_seconds})


def save_atomic(path: Path, state: dict) -> None:
    """``torch.save`` that leaves either the old file or the complete new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path, algorithm: Algorithm, sampler: torch.Generator, device: str) -> dict:
    """Restore ``algorithm``, the batch ``sampler`` and torch's global RNG from a checkpoint written
    by :func:`save_checkpoint`; returns the checkpoint (progress, times, last losses)."""
    try:
        state = torch.load(path, map_location=device, weights_only=False)
        algorithm.load_state_dict(state["algorithm"])
        sampler.set_state(state["sampler"])
        torch.set_rng_state(state["torch_rng"])
    except Exception as exc:
        raise UsageError(f"checkpoint {path} is unreadable ({exc}); delete it to restart the run") from exc
    return state


def _checked_losses(algo: str, losses: dict, step: int) -> dict[str, float]:
    """``losses`` as floats by name. One-element tensors are accepted (as if ``.item()`` were called);
    anything else that is not one number is a plugin error that names the contract."""
    if not isinstance(losses, dict):
        raise PluginError(f"algorithm '{algo}' update() must return a dict of floats by name, e.g. "
                          f"{{'loss': loss.item()}}; it returned a {type(losses).__name__}")
    values = {}
    for key, value in losses.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.detach().item()
        try:
            values[str(key)] = float(value)
        except (TypeError, ValueError):
            what = f"a tensor of shape {tuple(value.shape)}" if hasattr(value, "shape") else f"a {type(value).__name__}"
            raise PluginError(f"algorithm '{algo}' update() returned {key!r} as {what}; each value must be one "
                              "float, e.g. loss.item()") from None
    bad = [k for k, v in values.items() if not math.isfinite(v)]
    if bad:
        raise PluginError(f"algorithm '{algo}' produced non-finite {', '.join(bad)} at update {step}")
    return values


def execute_run(spec: RunSpec, store: RunStore, progress: ProgressCallback | None = None,
                executor: dict | None = None, loggers: tuple[str, ...] = ()) -> dict:
    """Train and evaluate one run (resuming from its checkpoint if any) and append its record.
    ``executor`` says where the run executed (backend, host, process, Ray task); it is recorded as
    is, so that a record shows which backend really ran it. ``loggers`` name the experiment
    trackers (:mod:`offrl_bench.loggers`) that mirror its evaluations."""
    run_dir = store.run_dir(spec.run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(run_dir / "spec.json", json.dumps(dataclasses.asdict(spec), indent=2) + "\n")
    dataset = _cached_dataset(spec.dataset, spec.device, spec.env)
    algorithm = build_algorithm(spec, dataset)
    setup_started = time.perf_counter()
    algorithm.setup(dataset)
    setup_seconds = time.perf_counter() - setup_started  # e.g. SS-ORL's inverse dynamics model
    online = isinstance(algorithm, OnlineAlgorithm)
    batch_size = int(getattr(algorithm.config, "batch_size", DEFAULT_BATCH_SIZE))
    total = spec.updates if online or algorithm.trains else 0  # online: environment steps
    env_id = dataset.spec.env_id
    train_wrapper = training_wrapper(spec.wrapper)  # online agents train on train levels only

    sampler = torch.Generator(device=spec.device).manual_seed(spec.seed)
    torch.manual_seed(spec.seed)  # for plugins that draw from the global torch RNG
    done, seconds, eval_seconds, resumed_losses = 0, 0.0, 0.0, {}
    checkpoint, metrics_path = run_dir / "checkpoint.pt", run_dir / "metrics.jsonl"
    if checkpoint.exists():
        state = load_checkpoint(checkpoint, algorithm, sampler, spec.device)
        done, seconds = state["updates_done"], state["train_seconds"]
        eval_seconds = state.get("eval_seconds", 0.0)
        resumed_losses = state.get("losses", {})  # the record's final losses when nothing is left to do
    # Evaluations logged after the checkpoint will be repeated identically: drop them.
    kept = [line for line in (metrics_path.read_text().splitlines() if metrics_path.exists() else [])
            if line.strip() and json.loads(line)["updates"] <= done]
    write_atomic(metrics_path, "".join(line + "\n" for line in kept))
    trackers = open_loggers(loggers, run_dir, spec.run_id, dataclasses.asdict(spec), resumed_at=done)
    if online and trackers.tensorboard:
        algorithm.log_to_tensorboard(*trackers.tensorboard)

    def evaluate_now() -> tuple[np.ndarray, dict[str, float]]:
        nonlocal eval_seconds
        started = time.perf_counter()
        episodes = evaluate(algorithm, env_id, spec.wrapper, spec.eval_episodes, evaluation_seed(spec.seed))
        eval_seconds += time.perf_counter() - started
        return np.array([e.episode_return for e in episodes]), perturbation_rates(episodes)

    losses: dict[str, float] = resumed_losses
    returns, rates = None, {}
    autocast = update_autocast(spec.device, spec.precision)
    # The checkpoint written on an interruption must be a state an uninterrupted run passes
    # through: never half an update (the sampler already advanced) or a skipped evaluation.
    at_boundary = True
    stop = _StopRequest()

    def update_until(chunk_end: int) -> None:
        """Offline: gradient updates up to ``chunk_end``, stopping between two of them on a signal."""
        nonlocal done, at_boundary, losses
        while done < chunk_end:
            if stop.requested:
                raise KeyboardInterrupt
            at_boundary = False
            try:
                batch = algorithm.sample(dataset, batch_size, sampler)
                with autocast:
                    raw_losses = algorithm.update(batch)
            except (KeyboardInterrupt, OffrlBenchError):
                raise
            except Exception as exc:
                raise PluginError(f"algorithm '{spec.algo}' raised {type(exc).__name__} in update {done}: "
                                  f"{exc}") from exc
            losses = _checked_losses(spec.algo, raw_losses, done)
            done += 1
            at_boundary = done < chunk_end  # at a chunk's end its evaluation is still due
            if progress and done % 50 == 0:
                progress(spec.run_id, done, total)

    def learn_until(chunk_end: int) -> None:
        """Online: one ``learn`` call for the environment steps up to ``chunk_end`` (a signal stops
        the run after it); its seed depends only on the run's seed and the steps done so far."""
        nonlocal done, at_boundary, losses
        if stop.requested:
            raise KeyboardInterrupt
        at_boundary = False
        seed = int(np.random.SeedSequence([spec.seed, done]).generate_state(1)[0])
        try:
            taken, raw_losses = algorithm.learn(lambda: make_env(env_id, train_wrapper), chunk_end - done, seed, total)
        except (KeyboardInterrupt, OffrlBenchError):
            raise
        except Exception as exc:
            raise PluginError(f"algorithm '{spec.algo}' raised {type(exc).__name__} in learn at step {done}: "
                              f"{exc}") from exc
        if taken < 1:
            raise PluginError(f"algorithm '{spec.algo}' learn() took {taken} environment steps, expected at least 1")
        losses = _checked_losses(spec.algo, raw_losses, done)
        done += taken
        if progress:
            progress(spec.run_id, min(done, total), total)

    advance = learn_until if online else update_until
    try:
        with stop.deferring_signals():
            while done < total:
                started = time.perf_counter()
                chunk_end = min(total, (done // spec.checkpoint_every + 1) * spec.checkpoint_every,
                                (done // spec.eval_every + 1) * spec.eval_every)
                previous = done
                advance(chunk_end)
                seconds += time.perf_counter() - started
                if done // spec.eval_every > previous // spec.eval_every or done >= total:
                    returns, rates = evaluate_now()
                    line = {"updates": done, "return_mean": float(returns.mean()), "train_seconds": seconds,
                            "normalized_score": float(normalized_score(returns.mean(), dataset.ref_min_score,
                                                                       dataset.ref_max_score)),
                            **losses, "perturbation_rates": rates}
                    with open(metrics_path, "a") as f:
                        f.write(json.dumps(line) + "\n")
                    save_atomic(run_dir / "policies" / f"{done}.pt", {"algorithm": algorithm.policy_state_dict()})
                    trackers.log(line)
                save_checkpoint(checkpoint, algorithm, sampler, done, seconds, losses, eval_seconds)
                at_boundary = True
    except KeyboardInterrupt:
        if at_boundary:  # keep what was learned since the last checkpoint; the re-run resumes here
            save_checkpoint(checkpoint, algorithm, sampler, done, seconds, losses, eval_seconds)
        raise
    finally:
        trackers.close()
    if returns is None:
        returns, rates = evaluate_now()
    if progress:
        progress(spec.run_id, total, total)
    curve = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]

    record = {
        "run_id": spec.run_id, "suite": spec.suite, "algorithm": spec.algo, "dataset": spec.dataset,
        "wrapper": spec.wrapper, "seed": spec.seed, "env_id": env_id, "paradigm": algorithm.paradigm,
        "updates": done, **({"env_steps": done} if online else {}),
        "train_seconds": seconds, "updates_per_second": done / seconds if seconds > 0 else None,
        "setup_seconds": setup_seconds, "eval_seconds": eval_seconds,
        "eval_episodes": spec.eval_episodes, "eval_returns": returns.tolist(),
        "return_mean": float(returns.mean()), "return_std": float(returns.std()),
        "normalized_score": float(normalized_score(returns.mean(), dataset.ref_min_score, dataset.ref_max_score)),
        "perturbation_rates": rates, "ref_min_score": dataset.ref_min_score, "ref_max_score": dataset.ref_max_score,
        # (updates or environment steps, normalised score) at every evaluation, for claims about
        # sample efficiency: per-run metrics.jsonl files are not published with the records.
        "learning_curve": [[line["updates"], line["normalized_score"]] for line in curve],
        "final_losses": losses, "config": dataclasses.asdict(algorithm.config), "spec": dataclasses.asdict(spec),
        **variant_fields(type(algorithm), algorithm.config),
        "versions": _environment_versions(), "finished_at": datetime.now(timezone.utc).isoformat(),
        "executor": executor or {"backend": "direct", "pid": os.getpid()},
    }
    store.append(record)
    if stop.requested:  # the signal came after the last update: the run is recorded, now stop
        raise KeyboardInterrupt
    return record


class _StopRequest:
    """SIGINT or SIGTERM during training only sets :attr:`requested`; the training loop stops at the
    next update boundary. A second signal interrupts at once. Signals this process ignores stay
    ignored, and outside the main thread (where Python delivers no signals) nothing changes."""

    def __init__(self) -> None:
        self.requested = False

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    @contextlib.contextmanager
    def deferring_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig, handler in previous.items():
            if handler is not signal.SIG_IGN:
                signal.signal(sig, self._handle)
        try:
            yield
        finally:
            for sig, handler in previous.items():
                if handler is not None:  # None: installed outside Python, left as it is
                    signal.signal(sig, handler)
