"""Runs as Ray tasks: on an existing cluster (``--address``) or on a Ray instance started for this
command on this machine.

Each run is one task that asks Ray for ``cpus_per_run`` CPUs and ``gpus_per_run`` GPUs and uses as
many torch threads as it got CPUs. Ray re-executes a task whose worker process or node dies, up to
``max_retries`` times; the new attempt resumes from the run's last checkpoint. That works because
runs checkpoint and record into the output directory, which every node must reach at the same path
(NFS, CephFS, a mounted bucket). Datasets are opened from ``MINARI_DATASETS_PATH``, which is passed
to every task, so on a cluster it has to point at shared storage as well.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from offrl_bench.data.datasets import datasets_root
from offrl_bench.errors import UsageError
from offrl_bench.results import RunStore
from offrl_bench.runner import RunSpec
from offrl_bench.scheduler import Attempt, Sink, attempt_run, executor, throttled

#: environment variables every task needs to find what this process finds
_SHARED_ENVIRONMENT = ("MINARI_DATASETS_PATH", "OFFRL_BENCH_POLICIES")


def _task(spec: RunSpec, out_dir: str, progress, wait: bool, threads: int) -> tuple[str, Attempt]:
    import ray
    import torch

    torch.set_num_threads(threads)

    @throttled
    def report(run_id: str, done: int, total: int) -> None:
        # Fire and forget: Queue.put_nowait would block in ray.get, and a task blocked in ray.get
        # lends its CPUs to another task, which would then oversubscribe the node.
        progress.actor.put_nowait.remote((run_id, done, total))

    context = ray.get_runtime_context()
    where = executor("ray", "task", node_id=context.get_node_id(), task_id=context.get_task_id())
    return spec.run_id, attempt_run(spec, Path(out_dir), report, wait, where)


def execute(todo: list[RunSpec], store: RunStore, sink: Sink, address: str | None, workers: int,
            cpus_per_run: float, gpus_per_run: float, max_retries: int) -> None:
    if not todo:
        return
    try:
        import ray
        from ray.util.queue import Empty, Queue
    except ImportError:
        raise UsageError("--backend ray needs Ray: pip install -c constraints.txt 'offrl-bench[ray]'") from None

    # Absolute paths: Ray's worker processes do not share this process's working directory.
    env_vars = {"MINARI_DATASETS_PATH": str(datasets_root())}
    env_vars.update({key: os.environ[key] for key in _SHARED_ENVIRONMENT if key in os.environ})
    env_vars = {key: str(Path(value).resolve()) for key, value in env_vars.items()}
    out_dir = str(store.out_dir.resolve())
    init = {"address": address, "runtime_env": {"env_vars": env_vars}, "log_to_driver": False,
            "logging_level": "error", "include_dashboard": False}
    if not address:  # a private instance sized for `workers` concurrent runs
        init["num_cpus"] = math.ceil(workers * cpus_per_run)
    try:
        ray.init(**init)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise UsageError(f"cannot start or reach Ray{f' at {address!r}' if address else ''}: {exc}") from None
    try:
        progress = Queue(maxsize=10_000)
        task = ray.remote(_task).options(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=max_retries,
                                         retry_exceptions=False)
        threads = max(1, int(cpus_per_run))
        submit = lambda spec, wait: task.remote(spec, out_dir, progress, wait, threads)  # noqa: E731
        pending = {submit(spec, False): spec for spec in todo}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.2)
                for message in _drain(progress, Empty):
                    sink.progress(*message)
                for ref in ready:
                    spec = pending.pop(ref)
                    try:
                        _, attempt = ray.get(ref)
                    except ray.exceptions.RayError as exc:  # the task's worker or node died too often
                        sink.give_up(spec, f"Ray task failed after {max_retries} retries: {type(exc).__name__}")
                        continue
                    if attempt.status == "busy":  # claimed by another process: wait for it
                        pending[submit(spec, True)] = spec
                    else:
                        sink.finish(spec, attempt)
        except BaseException:
            for ref in pending:  # a running task gets KeyboardInterrupt: it checkpoints and stops
                ray.cancel(ref)
            ray.wait(list(pending), num_returns=len(pending), timeout=30)
            raise
    finally:
        ray.shutdown()


def _drain(progress, empty: type[Exception]) -> list[tuple]:
    try:
        return progress.get_nowait_batch(progress.qsize())
    except empty:
        return []
