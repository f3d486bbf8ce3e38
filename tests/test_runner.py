"""Training runs: learning, evaluation, checkpoints, resume and records."""

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import torch

from offrl_bench.core.errors import PluginError, UsageError
from offrl_bench.execution.runner import RunSpec, execute_run, preflight, save_atomic
from offrl_bench.records.run_store import RunStore
from tests.conftest import assert_resumes_exactly


def test_bc_learns_cartpole_from_expert_data(cartpole_expert, tmp_path):
    store = RunStore(tmp_path)
    bc = execute_run(RunSpec("bc", cartpole_expert, seed=0, updates=600, eval_every=300, checkpoint_every=300), store)
    rnd = execute_run(RunSpec("random", cartpole_expert, seed=0, updates=600), store)
    assert rnd["return_mean"] < 50 and rnd["updates"] == 0
    assert bc["return_mean"] > 400  # expert data reaches the 500-step limit
    assert bc["normalized_score"] > 80 > rnd["normalized_score"]
    losses = [json.loads(line)["bc_loss"] for line in (store.run_dir(bc["run_id"]) / "metrics.jsonl").open()]
    assert len(losses) == 2 and losses[1] < losses[0]


def test_bc_learns_pendulum_from_expert_data(pendulum_expert, tmp_path):
    record = execute_run(RunSpec("bc", pendulum_expert, seed=1, updates=1500, eval_every=1500,
                                 checkpoint_every=1500, eval_episodes=5), RunStore(tmp_path))
    assert record["normalized_score"] > 60, record["return_mean"]


def test_record_contents(cartpole_expert, tmp_path):
    record = execute_run(RunSpec("bc", cartpole_expert, seed=2, updates=100, eval_every=100, eval_episodes=3,
                                 overrides=(("lr", "0.001"),)), RunStore(tmp_path))
    assert record["config"]["lr"] == 0.001 and record["seed"] == 2 and len(record["eval_returns"]) == 3
    assert record["versions"]["torch"] and record["versions"]["minari"] and record["env_id"] == "CartPole-v1"
    assert record["versions"]["git_revision"] and record["versions"]["python"]  # this checkout is a git repo
    assert record["spec"]["seed"] == 2 and record["spec"]["overrides"] == (("lr", "0.001"),)
    low, high = record["ref_min_score"], record["ref_max_score"]
    assert record["return_mean"] == pytest.approx(np.mean(record["eval_returns"]))
    assert record["normalized_score"] == pytest.approx(100 * (record["return_mean"] - low) / (high - low))
    assert record["updates_per_second"] > 0 and record["ref_max_score"] > record["ref_min_score"]


class Interrupt(Exception):
    pass


def test_resumed_run_matches_uninterrupted_run(cartpole_expert, tmp_path, monkeypatch):
    spec = RunSpec("bc", cartpole_expert, seed=3, updates=400, eval_every=200, checkpoint_every=100,
                   eval_episodes=3)
    reference = execute_run(spec, RunStore(tmp_path / "a"))

    store = RunStore(tmp_path / "b")

    def stop_after_250(run_id, done, total):
        if done >= 250:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        execute_run(spec, store, stop_after_250)
    assert not store.records()  # nothing recorded for an unfinished run
    from offrl_bench.execution import runner

    saved, save = [], runner.save_checkpoint
    monkeypatch.setattr(runner, "save_checkpoint", lambda path, algorithm, sampler, done, *rest: (
        saved.append(done), save(path, algorithm, sampler, done, *rest)))
    resumed = execute_run(spec, store)
    assert saved == [300, 400]  # back on the checkpoint_every grid after resuming at 250
    for key in ("return_mean", "eval_returns", "final_losses", "normalized_score", "updates"):
        assert resumed[key] == reference[key], key
    evaluations = [json.loads(line)["updates"] for line in (store.run_dir(spec.run_id) / "metrics.jsonl").open()]
    assert evaluations == [200, 400]


def test_an_evaluation_logged_after_the_last_checkpoint_is_not_duplicated(cartpole_expert, tmp_path, monkeypatch):
    """Killed after writing the evaluation at update 200 but before that checkpoint: the re-run
    resumes from update 100 and evaluates at 200 again; the curve must hold that point once."""
    from offrl_bench.execution import runner

    spec = RunSpec("bc", cartpole_expert, seed=3, updates=400, eval_every=200, checkpoint_every=100,
                   eval_episodes=3)
    store = RunStore(tmp_path)
    save = runner.save_checkpoint

    def killed_at_200(path, algorithm, sampler, done, *rest):
        if done == 200:
            raise Interrupt  # not KeyboardInterrupt: nothing gets the chance to save
        save(path, algorithm, sampler, done, *rest)

    monkeypatch.setattr(runner, "save_checkpoint", killed_at_200)
    with pytest.raises(Interrupt):
        execute_run(spec, store)
    metrics = store.run_dir(spec.run_id) / "metrics.jsonl"
    assert [json.loads(line)["updates"] for line in metrics.open()] == [200]
    monkeypatch.undo()
    record = execute_run(spec, store)
    assert [json.loads(line)["updates"] for line in metrics.open()] == [200, 400]
    assert [step for step, _ in record["learning_curve"]] == [200, 400]


def test_plugins_drawing_from_the_global_torch_rng_are_reproducible_and_resume_exactly(
        cartpole_expert, tmp_path, monkeypatch):
    """A plugin that draws from torch's global RNG in every update, as third-party algorithms do (here
    BC, reporting the draw as a loss), gets the same numbers on every run of a seed and after a resume."""
    from offrl_bench.algorithms.bc import BC

    update = BC.update
    monkeypatch.setattr(BC, "update", lambda self, batch: {**update(self, batch), "draw": float(torch.rand(()))})
    spec = RunSpec("bc", cartpole_expert, seed=5, updates=300, eval_every=300, checkpoint_every=100,
                   eval_episodes=2)
    first = assert_resumes_exactly(spec, tmp_path, interrupt_at=150)  # the checkpoint holds the RNG
    torch.rand(1000)  # whatever ran in between: the run seeds the global RNG from its own seed
    assert execute_run(spec, RunStore(tmp_path / "again"))["final_losses"] == first["final_losses"]


def test_setup_runs_once_with_the_dataset_and_recorded_times_add_up(cartpole_expert, tmp_path, monkeypatch):
    from offrl_bench.algorithms.bc import BC

    seen = []
    setup = BC.setup

    def slow_setup(self, dataset):
        seen.append(dataset.dataset_id)
        time.sleep(0.2)
        setup(self, dataset)

    monkeypatch.setattr(BC, "setup", slow_setup)
    started = time.perf_counter()
    record = execute_run(RunSpec("bc", cartpole_expert, seed=0, updates=200, eval_every=100, eval_episodes=3),
                         RunStore(tmp_path / "bc"))
    wall = time.perf_counter() - started
    assert seen == [cartpole_expert]
    assert record["setup_seconds"] >= 0.19 and record["eval_seconds"] > 0 and record["train_seconds"] > 0
    assert record["setup_seconds"] + record["train_seconds"] + record["eval_seconds"] <= wall
    assert record["updates_per_second"] == pytest.approx(200 / record["train_seconds"])
    # nothing to train: no training time and no rate
    random = execute_run(RunSpec("random", cartpole_expert, seed=0), RunStore(tmp_path / "random"))
    assert random["train_seconds"] == 0.0 and random["updates_per_second"] is None and random["updates"] == 0


def test_a_run_puts_the_signal_handlers_back(cartpole_expert, tmp_path):
    """Runs defer SIGINT/SIGTERM to the next update boundary while they train; afterwards the
    caller's handlers are in place again."""
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    execute_run(RunSpec("bc", cartpole_expert, 0, updates=10, eval_every=10, eval_episodes=1), RunStore(tmp_path))
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_ctrl_c_during_an_update_finishes_that_update_and_checkpoints_it(cartpole_expert, tmp_path, monkeypatch):
    """SIGINT arriving inside update 101 is deferred: the update completes, the run stops at the
    boundary after it, and its checkpoint holds 101 updates (not the 100 of the last periodic one)."""
    from offrl_bench.algorithms.bc import BC

    update, calls = BC.update, []

    def interrupted_update(self, batch):
        calls.append(1)
        if len(calls) == 101:
            os.kill(os.getpid(), signal.SIGINT)
        return update(self, batch)

    monkeypatch.setattr(BC, "update", interrupted_update)
    spec = RunSpec("bc", cartpole_expert, 0, updates=300, eval_every=300, checkpoint_every=50, eval_episodes=1)
    store = RunStore(tmp_path)
    # Python's own Ctrl-C handler, whatever this process inherited (a background job ignores SIGINT)
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            execute_run(spec, store)
    finally:
        signal.signal(signal.SIGINT, inherited)
    assert len(calls) == 101
    assert torch.load(store.run_dir(spec.run_id) / "checkpoint.pt", weights_only=False)["updates_done"] == 101


def test_the_final_evaluation_is_after_the_last_update_when_budgets_do_not_divide(cartpole_expert, tmp_path):
    store = RunStore(tmp_path)
    spec = RunSpec("bc", cartpole_expert, 0, updates=250, eval_every=100, checkpoint_every=100, eval_episodes=2)
    record = execute_run(spec, store)
    assert [json.loads(line)["updates"] for line in (store.run_dir(spec.run_id) / "metrics.jsonl").open()] == [
        100, 200, 250]
    assert record["learning_curve"][-1] == [250, record["normalized_score"]]


def test_one_element_tensor_losses_are_read_without_autograd_warnings(cartpole_expert, tmp_path, monkeypatch):
    from offrl_bench.algorithms.bc import BC

    update = BC.update
    monkeypatch.setattr(BC, "update", lambda self, batch: {
        "loss": torch.tensor(update(self, batch)["bc_loss"], requires_grad=True) * 1.0})
    with warnings.catch_warnings():  # torch's warning for float() of a tensor that requires grad
        warnings.filterwarnings("error", message="Converting a tensor with requires_grad=True to a scalar")
        record = execute_run(RunSpec("bc", cartpole_expert, 0, updates=20, eval_every=20, eval_episodes=1),
                             RunStore(tmp_path))
    assert isinstance(record["final_losses"]["loss"], float)


def test_progress_is_reported_every_50_updates_and_at_the_end(cartpole_expert, tmp_path):
    seen = []
    execute_run(RunSpec("bc", cartpole_expert, 0, updates=120, eval_every=120, eval_episodes=1), RunStore(tmp_path),
                lambda run_id, done, total: seen.append((done, total)))
    assert seen == [(50, 120), (100, 120), (120, 120)]


def test_same_seed_same_numbers(cartpole_expert, tmp_path):
    spec = RunSpec("bc", cartpole_expert, seed=4, updates=200, eval_every=200, eval_episodes=3)
    first = execute_run(spec, RunStore(tmp_path / "a"))
    second = execute_run(spec, RunStore(tmp_path / "b"))
    assert first["final_losses"] == second["final_losses"] and first["eval_returns"] == second["eval_returns"]


def test_records_are_appended_once(cartpole_expert, tmp_path):
    store = RunStore(tmp_path)
    spec = RunSpec("random", cartpole_expert, seed=0, eval_episodes=2)
    record = execute_run(spec, store)
    assert store.append(record) is False
    assert len(store.records_path.read_text().splitlines()) == 1


def test_save_atomic_makes_the_folders_it_needs_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "runs" / "some-run" / "policies" / "100.pt"
    save_atomic(path, {"updates_done": 100})
    assert torch.load(path)["updates_done"] == 100
    assert [p.name for p in path.parent.iterdir()] == ["100.pt"]


def test_torn_last_line_is_ignored_and_repaired(cartpole_expert, tmp_path):
    store = RunStore(tmp_path)
    tmp_path.mkdir(exist_ok=True)
    store.records_path.write_text('{"run_id": "half-writ')  # a process killed mid-write
    record = execute_run(RunSpec("random", cartpole_expert, seed=0, eval_episodes=2), store)
    assert list(store.records()) == [record["run_id"]]


def test_preflight_rejects_bad_runs_before_any_work(cartpole_expert):
    with pytest.raises(UsageError, match="unknown algorithm 'nope'; one of: .*bc.*random"):
        preflight([RunSpec("nope", cartpole_expert, 0)])
    with pytest.raises(UsageError, match="unknown config key 'lrr' for algorithm 'bc'; one of: .*lr"):
        preflight([RunSpec("bc", cartpole_expert, 0, overrides=(("lrr", "1"),))])
    with pytest.raises(UsageError, match=r"invalid value 'fast' for bc.lr: expected float"):
        preflight([RunSpec("bc", cartpole_expert, 0, overrides=(("lr", "fast"),))])
    with pytest.raises(UsageError, match="unknown wrapper 'warp'"):
        preflight([RunSpec("bc", cartpole_expert, 0, wrapper="warp:x=1")])
    with pytest.raises(UsageError, match="not found"):
        preflight([RunSpec("bc", "test/missing-v0", 0)])
    with pytest.raises(UsageError, match="unknown precision 'fp8'; one of: fp32, bf16"):
        preflight([RunSpec("bc", cartpole_expert, 0, precision="fp8")])
    with pytest.raises(UsageError, match="--precision bf16 applies to offline updates; 'ppo' is online"):
        preflight([RunSpec("ppo", cartpole_expert, 0, precision="bf16")])
    preflight([RunSpec("bc", cartpole_expert, 0, precision="bf16"), RunSpec("ppo", cartpole_expert, 0)])


def test_plugin_contract_violations_are_named(cartpole_expert, tmp_path, monkeypatch):
    from offrl_bench.algorithms.bc import BC

    monkeypatch.setattr(BC, "act", lambda self, obs: np.zeros((len(obs), 2), dtype=np.int64))
    with pytest.raises(PluginError, match=r"algorithm 'bc' act\(\) returned shape \(\d+, 2\), expected \(\d+,\)"):
        execute_run(RunSpec("bc", cartpole_expert, 0, updates=10, eval_every=10), RunStore(tmp_path / "a"))
    monkeypatch.setattr(BC, "update", lambda self, batch: {"loss": float("nan")})
    with pytest.raises(PluginError, match="algorithm 'bc' produced non-finite loss at update 0"):
        execute_run(RunSpec("bc", cartpole_expert, 0, updates=10, eval_every=10), RunStore(tmp_path / "b"))


def test_sigkill_mid_run_then_rerun_records_every_run_once(cartpole_expert, tmp_path):
    """Kill the real CLI process with SIGKILL while it trains; the re-run resumes and finishes."""
    out = tmp_path / "out"
    command = [sys.executable, "-m", "offrl_bench.cli", "run", "--algo", "bc", "--dataset", cartpole_expert,
               "--seeds", "0,1", "--updates", "3000", "--eval-every", "1000", "--checkpoint-every", "200",
               "--eval-episodes", "2", "--out", str(out), "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = out / "runs"
    deadline = time.time() + 120
    while time.time() < deadline and not list(checkpoints.glob("*s0*/checkpoint.pt")):
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGKILL)
    process.wait()
    store = RunStore(out)
    assert len(store.records()) < 2, "the kill came too late to test anything"
    interrupted = next(checkpoints.glob("*s0*/checkpoint.pt"))
    assert interrupted.exists()

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    lines = store.records_path.read_text().splitlines()
    assert len(lines) == 2 and len({json.loads(line)["run_id"] for line in lines}) == 2
    for run_dir in checkpoints.iterdir():
        updates = [json.loads(line)["updates"] for line in (run_dir / "metrics.jsonl").open()]
        assert updates == [1000, 2000, 3000]  # no duplicated and no missing evaluations
    # (that a further invocation has nothing left to do: test_scheduler's rerun test, in-process)
