"""The Ray backend: a local Ray instance with 2 CPUs runs runs as tasks, retries a killed task from
its checkpoint, and produces exactly the numbers the local backend produces."""

import os
import signal
import threading

import pytest

from conftest import assert_usage_error
from offrl_bench.results import RunStore
from offrl_bench.runner import RunSpec
from offrl_bench.scheduler import execute

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


@pytest.mark.slow
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
def test_ray_backend_from_the_cli_with_relative_paths(cartpole_expert, tmp_path):
    """Ray's workers do not share the CLI's working directory: relative --out must still work."""
    from conftest import run_cli_process

    result = run_cli_process("run", "--algo", "bc", "--dataset", cartpole_expert, "--seeds", "0,1", "--updates", "200",
                             "--eval-every", "200", "--eval-episodes", "2", "--backend", "ray", "--workers", "2",
                             "--out", "relative-out", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(RunStore(tmp_path / "relative-out").records()) == 2
