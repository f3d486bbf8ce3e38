"""Behavioural provenance on a copy of this checkout: which changes stale which published rows.

The copy is installed (editable, on this environment's packages) so that its own code resolves the
configs, as ``offrl-bench reference status`` does in a user's checkout after an edit."""

import re
import shutil
import subprocess

import pytest

from conftest import PUBLISHED_REFERENCES, REPO
from offrl_bench.records.run_store import RunStore
from offrl_bench.trust import provenance, revisions


def _clone_working_tree(root) -> None:
    """A clone of this repository at ``root`` with the working tree's tracked and new files as they are
    here (uncommitted edits included), installed in ``root/.venv``."""
    subprocess.run(["git", "clone", "--quiet", "--shared", str(REPO), str(root)], check=True)
    changed = subprocess.run(["git", "ls-files", "--modified", "--others", "--exclude-standard"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.split()
    for path in changed:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        if (REPO / path).exists():
            shutil.copy2(REPO / path, root / path)
    revisions.install_tree(root, root / ".venv")


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkout") / "repo"
    _clone_working_tree(root)
    return root


def _stale(root) -> set[str]:
    result = subprocess.run([str(root / ".venv" / "bin" / "offrl-bench"), "reference", "status"], cwd=root,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert re.search(r"\d+/\d+ rows fresh", result.stdout.splitlines()[-1])
    return {line.split(": stale since")[0] for line in result.stdout.splitlines() if ": stale since" in line}


def _edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


@pytest.mark.slow
def test_an_unused_class_and_a_comment_stale_nothing_and_iql_s_expectile_stales_exactly_the_rows_running_iql(copy):
    before = _stale(copy)
    (copy / "algorithms" / "nn.py").write_text((copy / "algorithms" / "nn.py").read_text()
                                               + "\n\nclass UnusedEncoder(nn.Module):\n    def forward(self, x):\n"
                                               "        return x\n")
    _edit(copy / "offrl_bench" / "execution" / "runner.py", "def execute_run(", "# a comment\ndef execute_run(")
    assert _stale(copy) == before
    _edit(copy / "algorithms" / "iql.py", "expectile: UnitFloat = 0.7", "expectile: UnitFloat = 0.75")
    after = _stale(copy)
    running_iql = set()
    for directory in PUBLISHED_REFERENCES:
        for row, runs in provenance.rows(RunStore(directory).records().values()).items():
            if any(run["algorithm"] == "iql" or (run["config"] or {}).get("base") == "iql" for run in runs):
                running_iql.add(" · ".join(row))
    assert running_iql and after - before == running_iql - before


def _git(root, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.org", *args], cwd=root,
                          capture_output=True, text=True, check=True).stdout.strip()


def _cli(root, env, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(root / ".venv" / "bin" / "offrl-bench"), *args], cwd=root, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 or not check, result.stderr
    return result


MAKE_REFERENCE = """
from pathlib import Path
from offrl_bench.core import registry
from offrl_bench.data.make import make_missing_datasets
from offrl_bench.records.run_store import RunStore
from offrl_bench.execution.runner import RunSpec, execute_run

datasets = ("offrl/cartpole/expert-v0", "offrl/cartpole/medium-v0", "offrl/pendulum/expert-v0")
make_missing_datasets([r for r in registry.suite("quick").datasets if r.dataset_id in datasets], log=print)
for dataset in datasets:
    for seed in (0, 1):
        execute_run(RunSpec("bc", dataset, seed, updates=20, eval_every=20, checkpoint_every=20, eval_episodes=2,
                            suite="quick"), RunStore(Path("results/reference/quick")))
"""


@pytest.fixture(scope="module")
def published_small(tmp_path_factory):
    """A copy of the checkout whose quick reference is three BC rows of 2 seeds and 20 updates, run and
    recorded at one committed revision, with its own cache of installed revisions and datasets."""
    base = tmp_path_factory.mktemp("published")
    root = base / "repo"
    _clone_working_tree(root)
    shutil.rmtree(root / "results" / "reference" / "quick")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "start")
    env = _environment(base)
    subprocess.run([str(root / ".venv" / "bin" / "python"), "-c", MAKE_REFERENCE], cwd=root, env=env, check=True,
                   capture_output=True)
    shutil.rmtree(root / "results" / "reference" / "quick" / "runs")  # as published: records, not run folders
    _cli(root, env, "reference", "record", "quick", "--workers", "1")
    _cli(root, env, "leaderboard", "results/reference/quick")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "publish")
    return base


def _environment(base) -> dict:
    import os

    return {**os.environ, "OFFRL_BENCH_CACHE": str(base / "cache"), "MINARI_DATASETS_PATH": str(base / "m")}


@pytest.fixture
def small_reference(published_small, tmp_path):
    """A test's own clone of ``published_small`` (its commits, installed revisions and datasets), which
    it may commit to."""
    root = tmp_path / "repo"
    subprocess.run(["git", "clone", "--quiet", str(published_small / "repo"), str(root)], check=True)
    revisions.install_tree(root, root / ".venv")
    for folder in ("cache", "m"):
        shutil.copytree(published_small / folder, tmp_path / folder, symlinks=True)
    return root, _environment(tmp_path)


def _bc_edit(root, old: str, new: str, message: str) -> None:
    _edit(root / "algorithms" / "bc.py", old, new)
    _git(root, "commit", "-q", "-am", message)


def _fresh(root, env) -> str:
    return _cli(root, env, "reference", "status", "quick", check=False).stdout.splitlines()[-1]


@pytest.mark.slow
def test_attest_clears_a_behaviour_neutral_refactor_and_refuses_a_real_change(small_reference):
    root, env = small_reference
    assert _fresh(root, env).startswith("3/3 rows fresh")
    bc = root / "algorithms" / "bc.py"  # rename a local variable of BC.update: the same computation
    renamed = bc.read_text().replace("loss = F.", "imitation = F.").replace("loss.backward()", "imitation.backward()")
    bc.write_text(renamed.replace('{"bc_loss": loss.item()}', '{"bc_loss": imitation.item()}'))
    _git(root, "commit", "-q", "-am", "rename a local variable")
    assert _fresh(root, env).startswith("0/3 rows fresh")
    result = _cli(root, env, "reference", "attest", "quick", "--workers", "1")
    assert "3 training groups attested, 0 changed behaviour" in result.stdout
    assert _fresh(root, env).startswith("3/3 rows fresh")
    lines = provenance.read_lines(root / "results" / "reference" / "quick")
    assert all(line["attestations"][-1]["to"] == _git(root, "rev-parse", "HEAD") for line in lines)
    _git(root, "commit", "-q", "-am", "attest")

    _bc_edit(root, "imitation = F.cross_entropy(", "imitation = 1.5 * F.cross_entropy(",
             "a real change: the discrete loss is scaled")
    result = _cli(root, env, "reference", "attest", "quick", "--workers", "1")
    # the two CartPole (discrete) rows changed; the Pendulum row runs the continuous branch, but its
    # code record holds BC.update, which changed, and its numbers did not: attested
    assert "1 training groups attested, 2 changed behaviour" in result.stdout
    assert "parameters differ" in result.stdout and "losses differ" in result.stdout
    assert _fresh(root, env).startswith("1/3 rows fresh")
    csv = (root / "results" / "reference" / "quick" / "leaderboard.csv").read_text()
    _cli(root, env, "leaderboard", "results/reference/quick")
    assert (root / "results" / "reference" / "quick" / "leaderboard.csv").read_text() != csv  # now labelled
    assert "stale since" in (root / "results" / "reference" / "quick" / "leaderboard.csv").read_text()


@pytest.mark.slow
def test_regenerate_reruns_stale_rows_only_and_survives_a_kill_midway(small_reference):
    import signal

    root, env = small_reference
    directory = root / "results" / "reference" / "quick"
    published_at = _git(root, "rev-parse", "HEAD~1")
    _bc_edit(root, "loss = F.cross_entropy(", "loss = 1.5 * F.cross_entropy(", "a real change: the loss is scaled")
    head = _git(root, "rev-parse", "HEAD")
    process = subprocess.Popen([str(root / ".venv" / "bin" / "offrl-bench"), "reference", "regenerate", "quick",
                                "--workers", "1"], cwd=root, env=env, stdout=subprocess.PIPE, text=True)
    for line in process.stdout:
        if line.startswith("regenerated 1/3"):
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=60)
    records = RunStore(directory).records().values()
    assert sorted(r["versions"]["git_revision"] for r in records) == sorted([published_at] * 4 + [head] * 2)
    assert _fresh(root, env).startswith("1/3 rows fresh")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "regenerate: first row")  # a partial regeneration is committable
    # the rest in one go: the second row's runs start after the first was published into results/,
    # which must not count as uncommitted code (git_dirty)
    result = _cli(root, env, "reference", "regenerate", "quick", "--workers", "1")
    assert "2 rows regenerated, 0 still stale" in result.stdout
    assert _fresh(root, env).startswith("3/3 rows fresh")
    records = RunStore(directory).records().values()  # the rows of two revisions, each row of one
    assert sorted(r["versions"]["git_revision"] for r in records) == sorted([head] * 2 + [_git(root, "rev-parse",
                                                                                                "HEAD")] * 4)
    assert provenance.reference_problems(list(records), root) == []
    assert not (directory / "runs").exists()  # the runs ran in results/regenerate/, not in the reference
    # in results/regenerate/quick/REV/: the first revision's row, then the second revision's two rows
    assert sorted(len(list(folder.glob("runs/*"))) for folder in (root / "results" / "regenerate" / "quick").iterdir()
                  ) == [2, 4]
