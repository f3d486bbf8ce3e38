"""The Ray backend: a local Ray instance with 2 CPUs runs runs as tasks, retries a killed task from
its checkpoint, and produces exactly the numbers the local backend produces."""

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import assert_usage_error
from offrl_bench.execution.runner import RunSpec
from offrl_bench.execution.scheduler import execute
from offrl_bench.records.run_store import RunStore

pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'offrl-bench[ray]')")


def _kill_holder_once_checkpointed(run_dir, killed: list) -> None:
    checkpoint, claim = run_dir / "checkpoint.pt", run_dir / "claim"
    for _ in range(2400):
        if checkpoint.exists() and claim.exists() and claim.read_text().strip():
            pid = int(claim.read_text().split()[1])
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        threading.Event().wait(0.05)


@pytest.mark.thorough  # a lost node (below, --slow) kills the task's worker too: Ray retries it the same way
def test_ray_backend_retries_a_killed_task_and_matches_local(cartpole_expert, tmp_path):
    specs = [RunSpec("bc", cartpole_expert, seed, updates=2000, eval_every=1000, checkpoint_every=200,
                     eval_episodes=2) for seed in (0, 1, 2)]
    killed: list[int] = []
    killer = threading.Thread(target=_kill_holder_once_checkpointed,
                              args=(RunStore(tmp_path / "ray").run_dir(specs[0].run_id), killed))
    killer.start()
    on_ray = execute(specs, tmp_path / "ray", workers=2, backend="ray", quiet=True)
    killer.join()
    assert killed and killed[0] != os.getpid(), "no Ray worker was killed"
    assert len(on_ray.completed) == 3 and not on_ray.failed
    lines = (tmp_path / "ray" / "runs.jsonl").read_text().splitlines()
    assert len(lines) == 3

    local = execute(specs, tmp_path / "local", quiet=True)
    by_seed = lambda outcome: {r["seed"]: (r["eval_returns"], r["final_losses"]) for r in outcome.completed}  # noqa: E731
    assert by_seed(on_ray) == by_seed(local)  # the killed and resumed run included


@pytest.mark.parametrize("args, fragment", [
    (["--backend", "slurm"], "unknown backend 'slurm'; one of: local, ray"),
    (["--address", "10.0.0.1:6379"], "--address is a Ray cluster address; use it with --backend ray"),
    (["--backend", "ray", "--cpus-per-run", "0"], "--cpus-per-run must be > 0"),
    (["--backend", "ray", "--device", "cuda"], "--device cuda on Ray needs --gpus-per-run > 0"),
    (["--out", "s3://bucket/results"], "unsupported output location 's3://bucket/results'"),
])
def test_backend_usage_errors(cli, cartpole_expert, tmp_path, args, fragment):
    result = cli("run", "--algo", "bc", "--dataset", cartpole_expert, "--quiet", *(
        args if "--out" in args else [*args, "--out", str(tmp_path)]))
    assert_usage_error(result, fragment)


@pytest.mark.slow
def test_ray_runs_execute_as_ray_tasks_and_report_progress_through_files(cartpole_expert, tmp_path, monkeypatch):
    """Each record names the Ray task and node that ran it (a silent fallback to local workers would
    not), and progress reaches the display from the runs' progress files, with no helper actor in
    between."""
    from offrl_bench.execution import scheduler

    shown: list[tuple[str, int, int]] = []
    monkeypatch.setattr(scheduler.ProgressView, "update", lambda self, *args: shown.append(args))
    specs = [RunSpec("bc", cartpole_expert, seed, updates=3000, eval_every=3000, checkpoint_every=3000,
                     eval_episodes=1) for seed in (0, 1)]
    outcome = execute(specs, tmp_path, workers=2, backend="ray", quiet=True)
    assert len(outcome.completed) == 2 and not outcome.failed
    for record in outcome.completed:
        where = record["executor"]
        assert where["backend"] == "ray" and where["process"] == "task" and where["pid"] != os.getpid()
        assert len(where["node_id"]) == 56 and where["task_id"] and where["cpu"]
    assert {run_id for run_id, _, _ in shown} == {spec.run_id for spec in specs}
    assert all(0 < done <= total == 3000 for _, done, total in shown)
    assert not list(tmp_path.glob("runs/*/progress"))  # cleaned up once each run ended


def _descendants(pid: int) -> dict[int, str]:
    """pid -> command name of every process below ``pid`` (from /proc)."""
    parents, names = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        child, parent = int(stat.parent.name), int(text[text.rindex(")") + 2:].split()[1])
        parents[child], names[child] = parent, name
    found, frontier = {}, {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found.update({child: names[child] for child in frontier})
    return found


def _kill_raylet_once_a_run_is_recorded(cli, out, killed: list) -> None:
    for _ in range(1200):
        if (out / "runs.jsonl").exists() and (out / "runs.jsonl").read_text().strip():
            for pid, name in _descendants(cli.pid).items():
                if name == "raylet":
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            return
        threading.Event().wait(0.1)


@pytest.fixture(scope="module")
def local_numbers(cartpole_expert, tmp_path_factory) -> dict:
    """The four runs of _suite_command on the local backend, which every Ray outcome must equal."""
    local = execute([RunSpec("bc", cartpole_expert, seed, updates=3000, eval_every=1000, checkpoint_every=500,
                             eval_episodes=2) for seed in range(4)], tmp_path_factory.mktemp("local"), quiet=True)
    return _numbers(local.completed)


def _numbers(records) -> dict:
    return {r["seed"]: (r["eval_returns"], r["final_losses"]) for r in records}


def _suite_command(dataset: str, out: Path | str, *options: str) -> list[str]:
    return [sys.executable, "-m", "offrl_bench.cli", "run", "--algo", "bc", "--dataset", dataset,
            "--seeds", "0,1,2,3", "--updates", "3000", "--eval-every", "1000", "--checkpoint-every", "500",
            "--eval-episodes", "2", "--backend", "ray", "--out", str(out), "--quiet", *options]


def _assert_the_terminal_shows_one_line_at_most(cli, out_text: str, err_text: str, out: Path) -> None:
    """What the user's terminal received (the command's descriptors 1 and 2, through pipes): with
    --quiet, nothing at all when the suite finished, or the one error line. Ray's own lines (a
    raylet's dying log, missed heartbeats, state dumps) are in OUT/ray.log."""
    lines = [line for line in err_text.splitlines() if line.strip()]
    assert out_text == "", out_text[-3000:]
    assert "Traceback" not in err_text and not (out / "failures.jsonl").exists(), err_text[-3000:]
    if cli.returncode == 0:
        assert lines == [], err_text[-3000:]
        assert len(RunStore(out).records()) == 4
    else:
        assert cli.returncode == 1 and len(lines) == 1, err_text[-3000:]
        assert lines[0].startswith("error: Ray failed while running the suite (") and \
            lines[0].endswith(f"re-running the same command resumes; Ray's output is in {out / 'ray.log'}"), lines[0]
        assert 1 <= len(RunStore(out).records()) < 4
    assert (out / "ray.log").read_text().startswith("--- ")


def _rerun_completes_like_local(command: list[str], out: Path, local_numbers: dict, cwd: Path | None = None) -> None:
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=cwd)
    assert rerun.returncode == 0 and rerun.stdout == rerun.stderr == "", rerun.stderr[-3000:]
    records = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert sorted(r["seed"] for r in records) == [0, 1, 2, 3]  # each run recorded once
    assert _numbers(records) == local_numbers


@pytest.mark.slow
def test_ray_dying_mid_suite_ends_with_one_line_and_a_rerun_resumes_identically(cartpole_expert, local_numbers,
                                                                                tmp_path):
    """Also with a relative --out: Ray's workers do not share the command's working directory."""
    out = (tmp_path / "ray").resolve()
    command = _suite_command(cartpole_expert, "ray", "--workers", "2")
    cli = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    killed: list[int] = []
    killer = threading.Thread(target=_kill_raylet_once_a_run_is_recorded, args=(cli, out, killed))
    killer.start()
    out_text, err_text = cli.communicate(timeout=600)
    killer.join()
    assert killed, "the raylet was never killed"
    # A race Ray can win: the driver keeps its worker leases and pushes the remaining tasks to those
    # workers without the raylet, so the suite can finish. Then nothing may be missing.
    _assert_the_terminal_shows_one_line_at_most(cli, out_text, err_text, out)
    assert "Raylet is terminated" in (out / "ray.log").read_text() or cli.returncode == 0  # caught, not lost
    _rerun_completes_like_local(command, out, local_numbers, cwd=tmp_path)


@pytest.mark.slow
def test_a_node_lost_mid_suite_shows_no_ray_lines_and_the_suite_matches_local(cartpole_expert, local_numbers,
                                                                              tmp_path):
    """A two-node cluster (a head and a worker node, 1 CPU each), driven through --address: the
    worker node dies with a run on it. Ray retries that task on the head node, where it resumes from
    its checkpoint (or, if Ray gives up, the command ends with one line and a re-run completes)."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        worker_node = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        out = tmp_path / "ray"
        command = _suite_command(cartpole_expert, out, "--address", cluster.address, "--cpus-per-run", "1")
        cli = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(1200):  # two runs under way past a checkpoint: one of them on each 1-CPU node
            running = [run for run in out.glob("runs/*") if (run / "progress").exists()
                       and (run / "checkpoint.pt").exists()]
            if len(running) >= 2 or cli.poll() is not None:
                break
            threading.Event().wait(0.1)
        assert cli.poll() is None, "the suite ended before a node could be lost"
        cluster.remove_node(worker_node, allow_graceful=False)
        out_text, err_text = cli.communicate(timeout=600)
        _assert_the_terminal_shows_one_line_at_most(cli, out_text, err_text, out)
        if cli.returncode == 0:
            assert _numbers(RunStore(out).records().values()) == local_numbers
        else:
            _rerun_completes_like_local(command, out, local_numbers)
    finally:
        cluster.shutdown()


def test_ray_output_goes_to_its_log_and_the_console_to_the_terminal(tmp_path):
    """What Ray writes from C++ (descriptor 2), from the processes it starts (descriptors 1 and 2
    inherited) and from Python (``sys.stderr``) lands in ray.log; the console's lines (progress, the
    command's own) reach the terminal, before, during and after. In a subprocess, so that the
    descriptors are the command's own and not pytest's capture."""
    script = f"""
import os, subprocess, sys
from rich.console import Console
from offrl_bench.execution.ray_backend import output_to_log
console = Console(stderr=True)
console.print("before")
with output_to_log({str(tmp_path / "ray.log")!r}, console):
    os.write(2, b"[state-dump] from C++\\n")
    subprocess.run(["sh", "-c", "echo raylet on stdout; echo gcs on stderr >&2"])
    print("(raylet) published error", file=sys.stderr, flush=True)
    console.print("progress line")
console.print("after")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("", "before\nprogress line\nafter\n")
    log = (tmp_path / "ray.log").read_text().splitlines()
    assert log[0].startswith("--- ") and log[1:] == [
        "[state-dump] from C++", "raylet on stdout", "gcs on stderr", "(raylet) published error"]
