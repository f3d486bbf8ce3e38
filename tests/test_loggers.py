"""Experiment-tracker loggers: TensorBoard event files and W&B offline runs, read back from disk."""

from __future__ import annotations

import json

import pytest

from offrl_bench.core.errors import UsageError
from offrl_bench.execution import loggers, runner
from offrl_bench.execution.runner import RunSpec, execute_run
from offrl_bench.records.run_store import RunStore
from tests.conftest import assert_usage_error


class Killed(Exception):
    """Stands for kill -9: raised where nothing gets the chance to save."""


def _scalars(directory) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in a TensorBoard log directory, as TensorBoard shows it (purges applied)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(directory), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def _metrics(store: RunStore, spec: RunSpec) -> list[dict]:
    return [json.loads(line) for line in (store.run_dir(spec.run_id) / "metrics.jsonl").open()]


def test_tensorboard_mirrors_every_evaluation_and_a_killed_run_resumes_without_repeated_steps(
        cartpole_expert, tmp_path, monkeypatch):
    """Killed after logging the evaluation at 300 but before checkpointing it: the resumed run logs
    300 again, and TensorBoard shows each step once, with the values of metrics.jsonl."""
    spec = RunSpec("bc", cartpole_expert, seed=1, updates=400, eval_every=100, checkpoint_every=100,
                   eval_episodes=2, wrapper="stori:action:p=0.3")
    store = RunStore(tmp_path)
    save = runner.save_checkpoint

    def killed_at_300(path, algorithm, sampler, done, *rest):
        if done == 300:
            raise Killed
        save(path, algorithm, sampler, done, *rest)

    monkeypatch.setattr(runner, "save_checkpoint", killed_at_300)
    with pytest.raises(Killed):
        execute_run(spec, store, loggers=("tensorboard",))
    assert [step for step, _ in _scalars(store.run_dir(spec.run_id) / "tb")["eval/normalized_score"]] == [
        100, 200, 300]
    monkeypatch.undo()
    execute_run(spec, store, loggers=("tensorboard",))

    scalars = _scalars(store.run_dir(spec.run_id) / "tb")
    lines = _metrics(store, spec)
    assert [line["updates"] for line in lines] == [100, 200, 300, 400]
    for tag, key in (("eval/normalized_score", "normalized_score"), ("eval/return_mean", "return_mean"),
                     ("losses/bc_loss", "bc_loss")):
        assert scalars[tag] == [(line["updates"], pytest.approx(line[key], rel=1e-6)) for line in lines], tag
    rates = [line["perturbation_rates"]["action_replaced"] for line in lines]
    assert 0.1 < min(rates) and [value for _, value in scalars["perturbation/action_replaced"]] == pytest.approx(rates)


def test_sb3_runs_log_through_sb3s_own_tensorboard_output_to_the_same_place(cartpole_expert, tmp_path):
    spec = RunSpec("ppo", cartpole_expert, seed=0, updates=256, eval_every=128, checkpoint_every=128,
                   eval_episodes=1, overrides=(("batch_size", "64"), ("n_envs", "2"), ("n_steps", "64")))
    execute_run(spec, store := RunStore(tmp_path), loggers=("tensorboard",))
    scalars = _scalars(store.run_dir(spec.run_id) / "tb")
    assert [step for step, _ in scalars["eval/normalized_score"]] == [128, 256]
    sb3 = {tag for tag in scalars if tag.split("/")[0] in ("train", "rollout", "time") and tag != "time/train_seconds"}
    assert {"train/entropy_loss", "train/value_loss", "time/fps"} <= sb3, sorted(scalars)
    steps = [step for step, _ in scalars["train/value_loss"]]
    assert steps == sorted(set(steps)) and steps[-1] == 256


def _wandb_records(path) -> list[bytes]:
    """The records of a W&B transaction log (``run-*.wandb``): LevelDB's log format, 32 KiB blocks
    of [crc32, length (2 bytes LE), type] chunks, after a 7-byte ``:W&B`` header. (W&B no longer
    ships a Python reader for it.)"""
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    records, partial, position, block = [], b"", 7, 32768
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a header is padding
            position += block - position % block
            continue
        length, kind = int.from_bytes(data[position + 4:position + 6], "little"), data[position + 6]
        chunk, position = data[position + 7:position + 7 + length], position + 7 + length
        partial = chunk if kind in (1, 2) else partial + chunk  # 1 full, 2 first, 3 middle, 4 last
        if kind in (1, 4):
            records.append(partial)
    return records


def _wandb_history(run_dir) -> list[dict]:
    """The history rows of every W&B offline run under ``run_dir``, in the order they were logged."""
    from wandb.proto import wandb_internal_pb2

    rows = []
    for path in sorted(run_dir.glob("wandb/wandb/offline-run-*/run-*.wandb")):
        for data in _wandb_records(path):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(data)
            if record.WhichOneof("record_type") == "history":
                rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                             for item in record.history.item})
    return rows


def test_wandb_offline_run_holds_every_evaluation(cartpole_expert, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    spec = RunSpec("bc", cartpole_expert, seed=2, updates=200, eval_every=100, checkpoint_every=100, eval_episodes=2)
    execute_run(spec, store := RunStore(tmp_path), loggers=("wandb",))
    rows = _wandb_history(store.run_dir(spec.run_id))
    lines = _metrics(store, spec)
    assert [row["_step"] for row in rows] == [100, 200]
    assert [row["eval/normalized_score"] for row in rows] == pytest.approx([line["normalized_score"] for line in lines])


def test_unknown_or_uninstalled_logger_is_a_usage_error(cli, monkeypatch):
    assert_usage_error(cli("run", "--algo", "bc", "--dataset", "x", "--logger", "tensorboard,mlflow"),
                       "unknown logger 'mlflow'", "tensorboard", "wandb")
    real = loggers.importlib.util.find_spec
    monkeypatch.setattr(loggers.importlib.util, "find_spec", lambda name: None if name == "wandb" else real(name))
    with pytest.raises(UsageError, match=r"logger 'wandb' needs wandb.*offrl-bench\[wandb\]"):
        loggers.check_names(["wandb"])
