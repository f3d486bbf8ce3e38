"""Third-party plugins: a real package installed with pip is found through entry points and runs."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, assert_usage_error, install_on_path, run_cli_process


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory) -> dict:
    """pip-install examples/plugin (the package the README walks through) into its own directory."""
    base = tmp_path_factory.mktemp("plugin")
    source = base / "src"
    shutil.copytree(REPO / "examples" / "plugin", source)
    target = base / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, capture_output=True, timeout=300)
    assert (target / "offrl_linear_bc").is_dir()
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")]))}


def test_installed_plugin_is_listed(installed_plugin):
    result = run_cli_process("list", "algorithms", env={**installed_plugin, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert "linear-bc" in result.stdout and "offrl_linear_bc:LinearBC" in result.stdout
    without = run_cli_process("list", "algorithms", env={"COLUMNS": "200"})
    assert "linear-bc" not in without.stdout


def test_installed_plugin_runs_end_to_end(installed_plugin, pendulum_expert, tmp_path):
    result = run_cli_process("run", "--algo", "linear-bc", "--dataset", pendulum_expert, "--seeds", "0,1",
                             "--updates", "300", "--eval-every", "300", "--eval-episodes", "2", "--set", "lr=0.05",
                             "--out", str(tmp_path), "--quiet", env=installed_plugin)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (tmp_path / "runs.jsonl").open()]
    assert len(records) == 2 and {r["algorithm"] for r in records} == {"linear-bc"}
    assert records[0]["config"] == {"lr": 0.05, "batch_size": 256}
    assert "mse" in records[0]["final_losses"]
    assert "linear-bc" in (tmp_path / "leaderboard.csv").read_text()


def test_installed_plugin_declares_its_action_spaces(installed_plugin, cartpole_expert):
    result = run_cli_process("run", "--algo", "linear-bc", "--dataset", cartpole_expert, env=installed_plugin)
    assert_usage_error(result, "algorithm 'linear-bc' does not support discrete actions")


def test_broken_plugin_is_named(tmp_path, cartpole_expert):
    """A plugin whose entry point fails to import, or misses methods, gets an error naming it."""
    env = install_on_path(
        tmp_path / "site", "broken_plugin",
        "from offrl_bench.api import OfflineAlgorithm\n"
        "class Half(OfflineAlgorithm):\n    name = 'half'\n    config_class = dict\n",
        "[offrl_bench.algorithms]\nhalf = broken_plugin:Half\nghost = no_such_module:Ghost\n")
    result = run_cli_process("run", "--algo", "half", "--dataset", cartpole_expert, env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "algorithm plugin 'half' does not implement: act, load_state_dict, state_dict, update" in result.stderr
    result = run_cli_process("run", "--algo", "ghost", "--dataset", cartpole_expert, env=env)
    assert "algorithm plugin 'ghost' (no_such_module:Ghost) failed to import" in result.stderr
    listing = run_cli_process("list", "algorithms", env={**env, "COLUMNS": "300"})
    assert listing.returncode == 0 and "broken" in listing.stdout and "bc" in listing.stdout
