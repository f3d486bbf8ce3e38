"""Slow end-to-end checks: the quick suite from scratch, and a normal (non-editable) install."""

import csv
import subprocess
import sys
import time

import pytest

from conftest import REPO, run_cli_process


@pytest.mark.slow
def test_quick_suite_from_scratch(tmp_path):
    """The README's main job: datasets made locally, 24 runs, leaderboard printed and written."""
    env = {"MINARI_DATASETS_PATH": str(tmp_path / "minari"), "COLUMNS": "160"}
    started = time.time()
    result = run_cli_process("run", "--suite", "quick", env=env, cwd=tmp_path, timeout=900)
    elapsed = time.time() - started
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.DictReader((tmp_path / "results" / "quick" / "leaderboard.csv").open()))
    assert len(rows) == 4 * 2 + 2
    score = {(r["dataset"], r["algorithm"]): r for r in rows}
    for env_name in ("cartpole", "pendulum"):
        bc, rnd = score[(f"offrl/{env_name}/expert-v0", "bc")], score[(f"offrl/{env_name}/expert-v0", "random")]
        assert int(bc["n_seeds"]) == 3
        assert float(bc["normalized_mean"]) > 80 > 20 > float(rnd["normalized_mean"])
        assert float(bc["ci_low"]) > float(rnd["ci_high"])  # clearly, not by luck
    assert "suite quick" in result.stdout and "IQM" in result.stdout
    # it ends by comparing itself with the published quick leaderboard: same machine, same numbers
    assert "10/10 rows agree with the published quick leaderboard" in result.stdout
    assert elapsed < 300, f"quick suite took {elapsed:.0f}s"
    # re-running the same command resumes: everything is already finished
    again = run_cli_process("run", "--suite", "quick", env=env, cwd=tmp_path, timeout=300)
    assert again.returncode == 0 and "24 already finished, 0 to do" in again.stderr
    # (that the numbers do not depend on the worker count, and so on the threads per run, is
    # tests/test_fault_tolerance.py::test_unchanged_numbers_across_worker_counts, in seconds)


@pytest.mark.slow
def test_normal_install_works_outside_the_source_tree(tmp_path, cartpole_expert):
    """`pip install .` (not editable) must ship offrl_bench.algorithms/envs from their top-level dirs."""
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(REPO)], check=True, capture_output=True, timeout=600)
    assert (target / "offrl_bench" / "algorithms" / "bc.py").exists()
    assert (target / "offrl_bench" / "envs" / "__init__.py").exists()
    assert (target / "offrl_bench" / "data" / "policies" / "CartPole-v1-expert.zip").exists()
    assert (target / "offrl_bench" / "data" / "policies" / "MinAtar" / "Breakout-v1-expert.zip").exists()
    assert (target / "offrl_bench" / "reference" / "default" / "runs.jsonl").exists()  # pip users compare too
    env = {"PYTHONPATH": str(target)}
    probe = subprocess.run([sys.executable, "-c", "import offrl_bench.algorithms.bc as m, offrl_bench.envs as e;"
                            "print(m.__file__); print(e.__file__)"], capture_output=True, text=True,
                           cwd=tmp_path, env={**__import__("os").environ, **env})
    assert probe.returncode == 0 and all(line.startswith(str(target)) for line in probe.stdout.split())
    result = run_cli_process("run", "--algo", "bc", "--dataset", cartpole_expert, "--updates", "100",
                             "--eval-every", "100", "--eval-episodes", "2", "--out", str(tmp_path / "out"),
                             "--quiet", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
