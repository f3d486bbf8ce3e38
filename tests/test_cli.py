"""The command line: each user mistake gives one clear line on stderr and exit code 2."""

import csv

import h5py
import numpy as np
import pytest
import torch

from conftest import assert_usage_error, install_on_path, run_cli_process


def test_list_commands(cli, cartpole_expert):
    result = cli("list", "algorithms")
    assert result.code == 0 and "bc" in result.out and "random" in result.out
    result = cli("list", "datasets")
    assert result.code == 0 and cartpole_expert in result.out
    assert cli("list", "suites").out.count("quick") >= 1
    assert cli("list", "wrappers").code == 0


LONG_PLUGIN = ("from offrl_bench.algorithms.bc import BC\n"
               "class HeldoutLinearBaseline(BC):\n    name = 'heldout-linear-baseline-with-a-long-name'\n")


def _assert_whole_at_80_columns(output: str, *values: str) -> None:
    """Nothing cut or folded: every value on one line, no ellipsis, tables within 80 columns."""
    assert "\u2026" not in output  # the ellipsis rich puts where it cuts
    for value in values:
        assert any(value in line for line in output.splitlines()), f"{value!r} not whole in:\n{output}"
    table_lines = [line for line in output.splitlines() if line[:1] in "\u2503\u2502\u250f\u2517\u2514\u2521"]
    assert all(len(line) <= 80 for line in table_lines), max(table_lines, key=len)


def test_every_list_prints_whole_names_at_80_columns_in_a_pipe(tmp_path, cartpole_expert, pendulum_expert):
    from offrl_bench.core import registry
    from offrl_bench.data.datasets import open_dataset

    env = {**install_on_path(tmp_path / "site", "a_rather_long_plugin_package_name", LONG_PLUGIN,
                             "[offrl_bench.algorithms]\nheldout-linear-baseline-with-a-long-name = "
                             "a_rather_long_plugin_package_name:HeldoutLinearBaseline\n"), "COLUMNS": "80"}
    algorithms = run_cli_process("list", "algorithms", env=env)
    assert algorithms.returncode == 0, algorithms.stderr
    entry_points = [ep.value for ep in registry.available(registry.ALGORITHMS).values()]
    _assert_whole_at_80_columns(algorithms.stdout, "heldout-linear-baseline-with-a-long-name",
                                "a_rather_long_plugin_package_name:HeldoutLinearBaseline", *entry_points)
    # grep finds the name on a line of its own
    assert "heldout-linear-baseline-with-a-long-name" in algorithms.stdout.splitlines()
    datasets = run_cli_process("list", "datasets", env=env).stdout
    steps = [str(open_dataset(d).total_steps) for d in (cartpole_expert, pendulum_expert)]
    _assert_whole_at_80_columns(datasets, cartpole_expert, pendulum_expert, *steps)
    for what, group in (("wrappers", registry.WRAPPERS), ("suites", registry.SUITES)):
        listed = run_cli_process("list", what, env=env).stdout
        _assert_whole_at_80_columns(listed, *registry.available(group))
        if what == "wrappers":
            _assert_whole_at_80_columns(listed, *(ep.value for ep in registry.available(group).values()))


def test_compare_and_run_summary_print_whole_names_at_80_columns(tmp_path, cartpole_expert):
    from conftest import REPO

    names = ("iql (labelled only, low_return)[label_fraction=0.1]", "ssorl(iql, low_return)[label_fraction=0.1]")
    compared = run_cli_process("compare", str(REPO / "results" / "reference" / "default"), "--algos", *names,
                               env={"COLUMNS": "80"})
    assert compared.returncode == 0, compared.stderr
    _assert_whole_at_80_columns(compared.stdout, *names, "offrl/pendulum/mixed-200ep-v0")
    out = tmp_path / "a-long-output-directory-name-so-that-the-summary-line-is-over-eighty-columns"
    ran = run_cli_process("run", "--algo", "bc", "--dataset", cartpole_expert, "--updates", "20", "--eval-every",
                          "20", "--eval-episodes", "1", "--out", str(out), env={"COLUMNS": "80"})
    assert ran.returncode == 0, ran.stderr
    _assert_whole_at_80_columns(ran.stderr, f"1 runs: 0 already finished, 1 to do -> {out}")
    _assert_whole_at_80_columns(ran.stdout, cartpole_expert, "bc", "Full table:")


def test_run_and_leaderboard(cli, cartpole_expert, tmp_path):
    out = tmp_path / "res"
    result = cli("run", "--algo", "bc", "--dataset", cartpole_expert, "--seeds", "0,1", "--updates", "200",
                 "--workers", "1", "--eval-every", "100", "--eval-episodes", "2", "--out", str(out), "--set", "lr=1e-3")
    assert result.code == 0, result.err
    rows = list(csv.DictReader((out / "leaderboard.csv").open()))
    assert [r["dataset"] for r in rows] == [cartpole_expert, "ALL"]
    assert rows[0]["n_seeds"] == "2" and rows[0]["updates"] == "200"
    (out / "leaderboard.csv").unlink()
    assert cli("leaderboard", str(out), "-o", str(tmp_path / "lb.csv")).code == 0
    assert list(csv.DictReader((tmp_path / "lb.csv").open())) == rows


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["run", "--algo", "nope", "--dataset", "{ds}"],
         ["unknown algorithm 'nope'",
          "one of: bc, bc_ppo, bcq, cql, dqn, dt, iql, mopo, ppo, random, sac, ssorl, td3_bc"]),
        (["run", "--algo", "bc", "--dataset", "xx/missing-v0"], ["dataset 'xx/missing-v0' not found", "data make"]),
        (["run", "--algo", "bc", "--dataset", "not an id"], ["invalid dataset id 'not an id'"]),
        (["run", "--algo", "bc", "--dataset", "{ds}", "--wrapper", "nowrap:p=1"], ["unknown wrapper 'nowrap'"]),
        (["run", "--algo", "bc", "--dataset", "{ds}", "--wrapper", "x:p"], ["unknown wrapper 'x'"]),
        (["run", "--algo", "bc", "--dataset", "{ds}", "--wrapper", "x:p=1:mode"],
         ["positional 'mode' after key=value"]),
        (["run", "--suite", "nosuite"],
         ["unknown suite 'nosuite'",
          "one of: atari, default, generalization, hopper, morec, morec-halfcheetah, offline, online, quick, ssorl, "
          "stori"]),
        (["run", "--algo", "bc", "--dataset", "{ds}", "--set", "lr"], ["malformed --set 'lr'", "key=value"]),
        (["run", "--algo", "bc", "--dataset", "{ds}", "--set", "lr=abc"], ["invalid value 'abc' for bc.lr"]),
        (["run", "--algo", "bc", "--dataset", "{ds}", "--set", "depth=2.5"], ["expected int"]),
        (["run", "--algo", "bc", "--dataset", "{ds}", "--set", "foo=1"], ["unknown config key 'foo'", "lr"]),
        (["run", "--algo", "bc", "--dataset", "{ds}", "--seeds", "a,b"], ["invalid --seeds 'a,b'"]),
        (["run", "--algo", "bc", "--dataset", "{ds}", "--updates", "0"], ["--updates must be at least 1"]),
        (["run", "--algo", "bc", "--dataset", "{ds}", "--workers", "0"], ["--workers must be at least 1"]),
        (["run", "--algo", "bc", "--dataset", "{ds}", "--device", "tpu"],
         ["unknown device 'tpu'; one of: cpu, cuda, cuda:N"]),
        (["run", "--algo", "bc", "--dataset", "{ds}", "--device", "mps"], ["unknown device 'mps'"]),
        (["run", "--algo", "bc"], ["nothing to run"]),
        (["run", "--suite", "quick", "--algo", "bc"], ["either --suite or --algo"]),
        (["run", "--bogus"], ["No such option", "offrl-bench run --help"]),
        (["run", "--updates", "many"], ["'many' is not a valid integer"]),
        (["list", "things"], ["cannot list 'things'", "algorithms, datasets, loggers, suites, wrappers"]),
        (["data", "make", "CartPole-v1", "--quality", "superb"], ["unknown quality 'superb'"]),
        (["data", "make", "NoSuchEnv-v9"], ["cannot make environment 'NoSuchEnv-v9'"]),
        (["data", "make", "CartPole-v1", "--name", "{ds}"], ["already exists", "--overwrite"]),
        (["data", "import-d4rl", "/nonexistent.hdf5", "--env", "Pendulum-v1", "--name", "aa/bb-v0"],
         ["does not exist"]),
        (["data", "import-d4rl", "x.hdf5", "--env", "Pendulum-v1"], ["Missing option '--name'"]),
        (["leaderboard", "/nonexistent-dir"], ["no run records in '/nonexistent-dir'"]),
    ],
)
def test_usage_errors(cli, cartpole_expert, args, fragments):
    result = cli(*[a.replace("{ds}", cartpole_expert) for a in args])
    assert_usage_error(result, *fragments)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_cuda_without_a_cuda_device_is_a_usage_error(cli, cartpole_expert, tmp_path):
    result = cli("run", "--algo", "bc", "--dataset", cartpole_expert, "--device", "cuda", "--out", str(tmp_path))
    assert_usage_error(result, "--device cuda: torch", "finds no CUDA device on this machine; use --device cpu")
    assert not (tmp_path / "runs").exists()


def test_unsupported_action_space(cli, cartpole_expert, monkeypatch):
    from offrl_bench.algorithms.bc import BC

    monkeypatch.setattr(BC, "action_spaces", ("continuous",))
    result = cli("run", "--algo", "bc", "--dataset", cartpole_expert)
    assert_usage_error(result, "algorithm 'bc' does not support discrete actions", "it supports: continuous")


def test_unwritable_output_dir(cli, cartpole_expert, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = cli("run", "--algo", "random", "--dataset", cartpole_expert, "--out", str(blocker / "sub"))
    assert_usage_error(result, "output directory", "is not writable", "--out")


@pytest.mark.parametrize("content, fragment", [
    (b"this is not hdf5", "not a readable HDF5 file"),
    (None, "is not a D4RL file: missing actions"),
])
def test_bad_hdf5_files(cli, tmp_path, content, fragment):
    path = tmp_path / "bad.hdf5"
    if content is None:
        with h5py.File(path, "w") as f:
            f["observations"] = np.zeros((4, 3))
    else:
        path.write_bytes(content)
    result = cli("data", "import-d4rl", str(path), "--env", "Pendulum-v1", "--name", "test/bad/file-v0")
    assert_usage_error(result, fragment)


def test_real_process_prints_no_traceback(cartpole_expert):
    result = run_cli_process("run", "--algo", "nope", "--dataset", cartpole_expert)
    assert_usage_error(result, "unknown algorithm 'nope'")
    result = run_cli_process("run", "--algo", "bc", "--dataset", cartpole_expert, "--set", "=3")
    assert_usage_error(result, "malformed --set '=3'")


def test_algorithm_names_split_on_commas_outside_brackets_and_parentheses():
    from offrl_bench.cli.app import algorithm_names as _algorithm_names

    assert _algorithm_names("iql (labelled only, low_return)[label_fraction=0.1],x[a=1,b=2]", "bc") == [
        "iql (labelled only, low_return)[label_fraction=0.1]", "x[a=1,b=2]", "bc"]
