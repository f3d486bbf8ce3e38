"""Nothing lost, nothing doubled: killed workers, a killed CLI, two CLIs on one directory, failing runs."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from offrl_bench.execution.runner import RunSpec, execute_run
from offrl_bench.execution.scheduler import execute
from offrl_bench.records.run_store import RunStore


def _command(dataset: str, out: Path, seeds: str, updates: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "offrl_bench.cli", "run", "--algo", "bc", "--dataset", dataset, "--seeds", seeds,
            "--updates", str(updates), "--eval-every", str(updates // 2), "--checkpoint-every", "200",
            "--eval-episodes", "2", "--out", str(out), *extra]


def _wait_for(condition, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def _holder_pid(run_dir: Path) -> int:
    """The pid written into a run's claim file by the process executing it."""
    _wait_for(lambda: (run_dir / "claim").exists() and (run_dir / "claim").read_text().strip())
    return int((run_dir / "claim").read_text().split()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "zombie" in status.read_text())


def _assert_recorded_once(out: Path, count: int) -> dict[str, dict]:
    lines = (out / "runs.jsonl").read_text().splitlines()
    run_ids = [json.loads(line)["run_id"] for line in lines]
    assert len(run_ids) == count == len(set(run_ids)), run_ids
    for run_dir in (out / "runs").iterdir():
        updates = [json.loads(line)["updates"] for line in (run_dir / "metrics.jsonl").open()]
        assert updates == sorted(set(updates)), updates  # no evaluation logged twice
    return RunStore(out).records()


def _uninterrupted(spec: RunSpec, out: Path) -> dict:
    return execute_run(spec, RunStore(out))


@pytest.mark.slow
def test_sigkilled_worker_is_replaced_and_its_run_resumes(cartpole_expert, tmp_path):
    out = tmp_path / "out"
    process = subprocess.Popen(_command(cartpole_expert, out, "0,1", 3000, "--workers", "2"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "COLUMNS": "300"})
    victim = RunSpec("bc", cartpole_expert, 0, updates=3000, eval_every=1500, eval_episodes=2, checkpoint_every=200)
    run_dir = out / "runs" / victim.run_id
    _wait_for(lambda: (run_dir / "checkpoint.pt").exists())
    worker = _holder_pid(run_dir)
    assert worker != process.pid
    os.kill(worker, signal.SIGKILL)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert "died (killed by SIGKILL); retrying from its last checkpoint (retry 1 of 2)" in stderr
    records = _assert_recorded_once(out, 2)
    reference = _uninterrupted(victim, tmp_path / "reference")
    resumed = records[victim.run_id]
    assert resumed["eval_returns"] == reference["eval_returns"]
    assert resumed["final_losses"] == reference["final_losses"]


@pytest.mark.slow
def test_sigkilled_cli_workers_checkpoint_and_exit_then_rerun_finishes(cartpole_expert, tmp_path):
    """Only the parent is killed: its workers must not run on as orphans (they get SIGINT from the
    kernel, checkpoint and exit); the re-run records every run exactly once."""
    out = tmp_path / "out"
    command = _command(cartpole_expert, out, "0,1,2", 4000, "--workers", "2", "--quiet")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(lambda: len(list(out.glob("runs/*/checkpoint.pt"))) == 2)
    workers = [_holder_pid(run_dir) for run_dir in (out / "runs").iterdir()]
    process.send_signal(signal.SIGKILL)
    process.wait()
    _wait_for(lambda: not any(_alive(pid) for pid in workers), timeout=30)
    assert len(RunStore(out).records()) < 3, "the kill came too late to test anything"
    resumed = {path.parent.name for path in out.glob("runs/*/checkpoint.pt")} - set(RunStore(out).records())
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    records = _assert_recorded_once(out, 3)
    # The workers checkpointed on the way out: at an update boundary, so the resumed runs end
    # exactly where uninterrupted ones do.
    compared = 0
    for seed in range(3):
        spec = RunSpec("bc", cartpole_expert, seed, updates=4000, eval_every=2000, eval_episodes=2,
                       checkpoint_every=200)
        if spec.run_id in resumed:
            reference = _uninterrupted(spec, tmp_path / "reference")
            assert records[spec.run_id]["final_losses"] == reference["final_losses"]
            compared += 1
    assert compared >= 1


@pytest.mark.slow
def test_two_cli_processes_on_one_directory(cartpole_expert, tmp_path):
    out = tmp_path / "out"
    # One thread each: two processes with two threads each on CI's two cores spend their time in
    # spinning thread barriers, and a busy machine stretched this test past its timeout once.
    command = _command(cartpole_expert, out, "0,1,2,3", 600, "--quiet", "--cpus-per-run", "1")
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for process in (first, second):
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
    records = _assert_recorded_once(out, 4)
    reference = _uninterrupted(RunSpec("bc", cartpole_expert, 2, updates=600, eval_every=300, eval_episodes=2,
                                       checkpoint_every=200), tmp_path / "reference")
    assert records[reference["run_id"]]["final_losses"] == reference["final_losses"]


def test_failing_run_is_recorded_and_the_others_finish(cartpole_expert, tmp_path, monkeypatch):
    from offrl_bench.algorithms.bc import BC

    specs = [RunSpec("bc", cartpole_expert, seed, updates=200, eval_every=200, eval_episodes=2) for seed in (0, 1, 2)]
    original = BC.update
    monkeypatch.setattr(BC, "update", lambda self, batch: {"loss": float("inf")} if self.seed == 1
                        else original(self, batch))
    outcome = execute(specs, tmp_path, quiet=True)
    assert [r["seed"] for r in outcome.completed] == [0, 2]
    assert len(outcome.failed) == 1 and outcome.failed[0]["seed"] == 1
    assert outcome.failed[0]["reason"] == "algorithm 'bc' produced non-finite loss at update 0"
    store = RunStore(tmp_path)
    assert list(store.failures()) == [specs[1].run_id]

    again = execute(specs, tmp_path, quiet=True)  # failed runs are not silently retried
    assert again.skipped == 2 and not again.completed and [f["seed"] for f in again.failed_earlier] == [1]

    monkeypatch.setattr(BC, "update", original)  # "fix the cause", then --retry-failed
    retried = execute(specs, tmp_path, quiet=True, retry_failed=True)
    assert [r["seed"] for r in retried.completed] == [1] and not retried.failed
    assert store.failures() == {} and len(store.records()) == 3


def test_failures_through_the_cli(cli, cartpole_expert, tmp_path, monkeypatch):
    from offrl_bench.algorithms.bc import BC

    def explode(self, batch):
        raise RuntimeError("boom")

    monkeypatch.setattr(BC, "update", explode)
    args = ["run", "--algo", "bc", "--dataset", cartpole_expert, "--seeds", "0", "--updates", "50",
            "--eval-every", "50", "--eval-episodes", "2", "--out", str(tmp_path), "--quiet"]
    result = cli(*args)
    lines = result.err.strip().splitlines()
    assert result.code == 1 and len(lines) == 1 and "Traceback" not in result.err
    assert "1 of 1 runs failed" in lines[0] and "algorithm 'bc' raised RuntimeError in update 0: boom" in lines[0]
    assert "--retry-failed" in lines[0]
    failure = json.loads((tmp_path / "failures.jsonl").read_text())
    assert "RuntimeError: boom" in failure["details"]  # the traceback is kept for the plugin's author
    result = cli(*args)
    assert result.code == 1 and "1 of 1 runs failed" in result.err  # still failed, not rerun
    monkeypatch.undo()
    assert cli(*args, "--retry-failed").code == 0
    assert len(RunStore(tmp_path).records()) == 1


@pytest.mark.parametrize("keep", [0, 100, 0.5])
def test_truncated_checkpoint_fails_its_run_and_keeps_the_rest(cartpole_expert, tmp_path, keep):
    specs = [RunSpec("bc", cartpole_expert, seed, updates=400, eval_every=200, checkpoint_every=200,
                     eval_episodes=2) for seed in (0, 1)]
    store = RunStore(tmp_path)
    execute_run(specs[0], store)
    checkpoint = store.run_dir(specs[1].run_id) / "checkpoint.pt"
    checkpoint.parent.mkdir(parents=True)
    data = (store.run_dir(specs[0].run_id) / "checkpoint.pt").read_bytes()
    checkpoint.write_bytes(data[:int(len(data) * keep) if isinstance(keep, float) else keep])
    before = store.records_path.read_bytes()
    outcome = execute(specs, tmp_path, quiet=True)
    assert outcome.skipped == 1 and len(outcome.failed) == 1
    assert f"checkpoint {checkpoint} is unreadable" in outcome.failed[0]["reason"]
    assert "delete it to restart the run" in outcome.failed[0]["reason"]
    assert store.records_path.read_bytes() == before  # existing results untouched


def test_claim_is_exclusive_and_dies_with_its_holder(tmp_path):
    store = RunStore(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from offrl_bench.records.run_store import RunStore\n"
        f"with RunStore({str(tmp_path)!r}).claim('r', wait=False) as ok:\n"
        "    print(ok, flush=True); time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "True"
    with store.claim("r", wait=False) as claimed:
        assert not claimed
    holder.kill()
    holder.wait()
    with store.claim("r", wait=False) as claimed:
        assert claimed
        assert (store.run_dir("r") / "claim").read_text().split()[1] == str(os.getpid())


def test_output_locations(tmp_path):
    from offrl_bench.core.errors import UsageError
    from offrl_bench.execution.scheduler import output_dir

    assert output_dir(f"file://{tmp_path}/x") == tmp_path / "x"
    assert output_dir("results/a") == Path("results/a")
    with pytest.raises(UsageError, match="unsupported output location 's3://bucket/x'"):
        output_dir("s3://bucket/x")


def test_unchanged_numbers_across_worker_counts(cartpole_expert, tmp_path):
    specs = [RunSpec("bc", cartpole_expert, seed, updates=300, eval_every=300, eval_episodes=2) for seed in (0, 1)]
    one = execute(specs, tmp_path / "one", quiet=True)
    two = execute(specs, tmp_path / "two", workers=2, quiet=True)
    by_seed = lambda outcome: {r["seed"]: (r["eval_returns"], r["final_losses"]) for r in outcome.completed}  # noqa: E731
    assert by_seed(one) == by_seed(two)
    assert np.isfinite([r["return_mean"] for r in two.completed]).all()


def test_killed_between_last_checkpoint_and_record(cartpole_expert, tmp_path):
    """Found by benchmarks/chaos.py: a run killed after its final checkpoint but before its record
    must still record its final losses when the re-run finds nothing left to train."""
    spec = RunSpec("bc", cartpole_expert, 0, updates=200, eval_every=100, eval_episodes=2, checkpoint_every=100)
    store = RunStore(tmp_path)
    first = execute_run(spec, store)
    store.records_path.unlink()  # as if killed just before appending the record
    again = execute_run(spec, store)
    assert again["final_losses"] == first["final_losses"] and again["eval_returns"] == first["eval_returns"]
