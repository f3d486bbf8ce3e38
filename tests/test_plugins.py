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


SLIPS = '''
import dataclasses
import torch
from offrl_bench.api import OfflineAlgorithm


@dataclasses.dataclass
class Config:
    lr: float = 0.01
    batch_size: int = 16


class Linear(OfflineAlgorithm):
    name = "linear"
    action_spaces = ("continuous",)
    config_class = Config

    def __init__(self, spec, config, seed, device="cpu"):
        super().__init__(spec, config, seed, device)
        self.build(spec, config)

    def build(self, spec, config):
        self.net = torch.nn.Linear(spec.observation_dim, spec.action_dim)
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=config.lr)

    def errors(self, batch):
        errors = (self.net(batch.observations) - batch.actions) ** 2
        self.optimizer.zero_grad()
        errors.mean().backward()
        self.optimizer.step()
        return errors

    def update(self, batch):
        return {"mse": self.errors(batch).mean().item()}

    @torch.no_grad()
    def act(self, observations):
        return self.net(torch.as_tensor(observations, dtype=torch.float32)).numpy()

    def state_dict(self):
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state):
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])


class NoSuper(Linear):
    name = "no-super"

    def __init__(self, spec, config, seed, device="cpu"):  # forgets super().__init__
        self.build(spec, config)


class ListAct(Linear):
    name = "list-act"

    @torch.no_grad()
    def act(self, observations):
        return self.net(torch.as_tensor(observations, dtype=torch.float32)).tolist()


class TensorAct(Linear):
    name = "tensor-act"

    @torch.no_grad()
    def act(self, observations):
        return self.net(torch.as_tensor(observations, dtype=torch.float32))


class TensorLoss(Linear):
    name = "tensor-loss"

    def update(self, batch):
        return {"mse": self.errors(batch).mean()}  # a tensor that still requires grad


class BareTensor(Linear):
    name = "bare-tensor"

    def update(self, batch):
        return self.errors(batch).mean()


class VectorLoss(Linear):
    name = "vector-loss"

    def update(self, batch):
        return {"mse": self.errors(batch).detach()}


class PlainConfig(Linear):
    name = "plain-config"

    class config_class:
        lr = 0.01
'''
SLIP_CLASSES = {"no-super": "NoSuper", "list-act": "ListAct", "tensor-act": "TensorAct", "tensor-loss": "TensorLoss",
                "bare-tensor": "BareTensor", "vector-loss": "VectorLoss", "plain-config": "PlainConfig"}


@pytest.fixture
def slip_plugins(tmp_path, monkeypatch):
    """Plugins with the contract slips a plugin author makes, installed on this process's path."""
    from offrl_bench.core import registry

    site = tmp_path / "site"
    install_on_path(site, "slip_plugins", SLIPS, "[offrl_bench.algorithms]\n" + "".join(
        f"{name} = slip_plugins:{cls}\n" for name, cls in SLIP_CLASSES.items()))
    monkeypatch.syspath_prepend(str(site))
    registry.available.cache_clear()
    yield
    registry.available.cache_clear()


def _run(cli, algo: str, dataset: str, out):
    return cli("run", "--algo", algo, "--dataset", dataset, "--updates", "20", "--eval-every", "20",
               "--eval-episodes", "1", "--out", str(out), "--quiet")


@pytest.mark.parametrize("algo", ["no-super", "list-act", "tensor-act", "tensor-loss"])
def test_slips_the_core_can_absorb_work(slip_plugins, cli, pendulum_expert, tmp_path, algo):
    """A forgotten super().__init__, actions as a list or a tensor, a loss left as a tensor: the core
    reads what it needs without relying on them, and the run trains and records as any other."""
    result = _run(cli, algo, pendulum_expert, tmp_path)
    assert result.code == 0, result.err
    record = json.loads((tmp_path / "runs.jsonl").read_text())
    assert record["config"] == {"lr": 0.01, "batch_size": 16} and record["seed"] == 0
    assert isinstance(record["final_losses"]["mse"], float) and len(record["eval_returns"]) == 1


@pytest.mark.parametrize("algo, fragment", [
    ("bare-tensor", "algorithm 'bare-tensor' update() must return a dict of floats by name, e.g. "
                    "{'loss': loss.item()}; it returned a Tensor"),
    ("vector-loss", "algorithm 'vector-loss' update() returned 'mse' as a tensor of shape (16, 1); each value must "
                    "be one float, e.g. loss.item()"),
])
def test_slips_that_break_the_contract_name_it(slip_plugins, cli, pendulum_expert, tmp_path, algo, fragment):
    result = _run(cli, algo, pendulum_expert, tmp_path)
    assert result.code == 1 and "Traceback" not in result.err
    assert fragment in result.err.strip().splitlines()[-1]
    assert fragment in json.loads((tmp_path / "failures.jsonl").read_text())["reason"]


def test_a_config_class_that_is_not_a_dataclass_is_refused_before_any_run(slip_plugins, cli, pendulum_expert,
                                                                          tmp_path):
    result = _run(cli, "plain-config", pendulum_expert, tmp_path)
    assert result.code == 1 and len(result.err.strip().splitlines()) == 1
    assert "algorithm 'plain-config' config_class must be a dataclass (decorate" in result.err
    assert "@dataclasses.dataclass" in result.err and not (tmp_path / "runs").exists()


OLD_PATHS = '''
import dataclasses
import torch
from offrl_bench.api import Batch, EnvSpec, OfflineAlgorithm
from offrl_bench.claims import Claim, Rows
from offrl_bench.config import PositiveFloat
from offrl_bench.loggers import RunLogger
from offrl_bench.suites import Suite
from offrl_bench.data.make import DatasetRequest


@dataclasses.dataclass
class Config:
    lr: PositiveFloat = 0.05


class MeanAction(OfflineAlgorithm):
    name = "mean-action"
    action_spaces = ("continuous",)
    config_class = Config

    def __init__(self, spec: EnvSpec, config: Config, seed: int, device: str = "cpu"):
        super().__init__(spec, config, seed, device)
        self.mean = torch.zeros(spec.action_dim)

    def update(self, batch: Batch):
        self.mean += self.config.lr * (batch.actions.mean(0) - self.mean)
        return {"distance": float((batch.actions - self.mean).abs().mean())}

    def act(self, observations):
        return self.mean.expand(len(observations), -1).numpy().copy()

    def state_dict(self):
        return {"mean": self.mean.clone()}

    def load_state_dict(self, state):
        self.mean = state["mean"].clone()


class Lines(RunLogger):
    def log(self, step, values):
        with open(self.run_dir / "lines.txt", "a") as f:
            f.write(f"{step} {values.get('eval/normalized_score')}\\n")


CLAIM = Claim(name="mean-action-below-bc", paper="Old paths", statement="a mean action scores below BC",
              a=Rows(algorithm="mean-action"), b=Rows(algorithm="bc"), relation="less")
SUITE = Suite(name="old-paths", description="the mean action on Pendulum",
              datasets=(DatasetRequest("Pendulum-v1", "expert", episodes=5),), algorithms=("mean-action",),
              seeds=(0,), updates=20, eval_every=20, eval_episodes=1, checkpoint_every=20)
'''


def test_a_plugin_written_against_the_old_import_paths_installs_and_runs(tmp_path, isolated_storage):
    """Algorithm, logger, claim and suite of a plugin that imports ``offrl_bench.config``,
    ``offrl_bench.loggers`` and ``offrl_bench.claims`` (the paths before the core's layer folders)."""
    env = install_on_path(tmp_path / "site", "old_paths_plugin", OLD_PATHS,
                          "[offrl_bench.algorithms]\nmean-action = old_paths_plugin:MeanAction\n"
                          "[offrl_bench.loggers]\nlines = old_paths_plugin:Lines\n"
                          "[offrl_bench.claims]\nold-paths = old_paths_plugin:CLAIM\n"
                          "[offrl_bench.suites]\nold-paths = old_paths_plugin:SUITE\n")
    out = tmp_path / "out"
    result = run_cli_process("run", "--suite", "old-paths", "--logger", "lines", "--out", str(out), "--quiet",
                             env=env)  # the suite, its algorithm and the logger, all from the plugin
    assert result.returncode == 0, result.stderr
    (record,) = [json.loads(line) for line in (out / "runs.jsonl").open()]
    assert record["algorithm"] == "mean-action" and "distance" in record["final_losses"]
    assert (out / "runs" / record["run_id"] / "lines.txt").read_text().startswith("20 ")
    claims = run_cli_process("claims", str(out), "--claim", "mean-action-*", env=env)
    assert claims.returncode == 0 and "mean-action-below-bc" in claims.stdout, claims.stderr


@pytest.mark.parametrize("old, new", [("config", "core.config"), ("loggers", "execution.loggers"),
                                      ("claims", "trust.claims")])
def test_the_old_import_paths_warn_and_re_export(old, new):
    import importlib

    sys.modules.pop(f"offrl_bench.{old}", None)
    with pytest.warns(DeprecationWarning, match=f"offrl_bench.{old} is deprecated"):
        module = importlib.import_module(f"offrl_bench.{old}")
    current = importlib.import_module(f"offrl_bench.{new}")
    public = [name for name in vars(current) if not name.startswith("_") and not isinstance(vars(current)[name],
                                                                                              type(sys))]
    assert public and all(getattr(module, name) is getattr(current, name) for name in public)
