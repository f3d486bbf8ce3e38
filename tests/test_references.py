"""Published references: clean provenance, the comparison every suite run ends with, and the
README's claims table, which must be what ``offrl-bench claims`` prints for the committed records."""

import json
import re
import subprocess
import sys

import pytest

from conftest import PUBLISHED_REFERENCES, REPO, run_cli_process
from offrl_bench import budget, ope, provenance, reference
from offrl_bench.claims import evaluate_directory, markdown, named
from offrl_bench.results import RunStore, leaderboard, leaderboard_csv

REFERENCES = PUBLISHED_REFERENCES


def test_the_main_job_and_the_quick_suite_have_references():
    assert {path.name for path in REFERENCES} >= {"default", "quick"}
    for directory in REFERENCES:  # and every published suite its sanity-floor verdicts
        assert (directory / budget.FILE_NAME).is_file(), directory


@pytest.mark.parametrize("directory", REFERENCES, ids=lambda p: p.name)
def test_committed_references_come_from_one_clean_ancestor_revision(directory):
    records = list(RunStore(directory).records().values())
    assert provenance.reference_problems(records, REPO) == []
    assert provenance.warning(records) is None  # nothing that computed them changed since


@pytest.mark.parametrize("directory", REFERENCES, ids=lambda p: p.name)
def test_committed_leaderboards_are_rebuilt_from_their_records(directory):
    records = list(RunStore(directory).records().values())
    expected = leaderboard(records, budget=budget.for_directory(directory, records),
                           selection=ope.load_selections(directory))
    assert (directory / "leaderboard.csv").read_text() == leaderboard_csv(expected)


def test_no_other_committed_results_directory():
    """Everything under results/ besides the references is user output, ignored by git."""
    tracked = subprocess.run(["git", "ls-files", "results"], capture_output=True, text=True, cwd=REPO).stdout.split()
    assert tracked and all(path.startswith("results/reference/") for path in tracked)


def test_readme_claims_tables_are_what_the_claims_command_prints():
    """Each table sits between ``<!-- claims: offrl-bench claims DIR [--claim PATTERN]... --markdown -->``
    and ``<!-- end claims -->``: the command that prints it."""
    blocks = re.findall(r"<!-- claims: offrl-bench claims (\S+)((?: --claim \S+)*) --markdown -->\n(.*?)"
                        r"<!-- end claims -->", (REPO / "README.md").read_text(), re.S)
    assert "results/reference/default" in {directory for directory, _, _ in blocks}
    for directory, options, table in blocks:
        patterns = options.split()[1::2]
        assert table == markdown(evaluate_directory(REPO / directory, named(patterns))), directory


def _records(revision: str | None, dirty: bool | None, algorithm: str = "bc") -> list[dict]:
    return [{"run_id": f"r{seed}", "algorithm": algorithm, "versions": {"git_revision": revision, "git_dirty": dirty}}
            for seed in range(2)]


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, cwd=REPO, check=True).stdout.strip()


def test_provenance_warning_names_dirty_records_mixed_revisions_and_changed_files():
    head = _git("rev-parse", "HEAD")
    assert provenance.warning(_records(head, False)) is None
    dirty = provenance.warning(_records(head, True))
    assert "2 of 2 records ran on uncommitted changes" in dirty
    # a revision before algorithms/bc.py and the runner last changed: both are named
    before = _git("rev-list", "--max-count=1", f"{_git('log', '-1', '--format=%H', '--', 'offrl_bench/runner.py')}^")
    old = provenance.warning(_records(before, False))
    assert f"since {before[:7]} these files changed:" in old and "offrl_bench/runner.py" in old
    mixed = provenance.warning(_records(head, False)[:1] + _records(before, False)[:1])
    assert "records mix 2 revisions" in mixed
    assert "is not in this checkout's history" in provenance.warning(_records("0" * 40, False))
    problems = provenance.reference_problems(_records(head, None), REPO)
    assert problems == ["2 of 2 records are not from a clean tree (git_dirty true or missing)"]


def test_provenance_pins_the_algorithm_modules_an_algorithm_imports_and_its_base_algorithm():
    """A change to MOREC's dynamics reward changes MOPO+MOREC's numbers though mopo.py is unchanged;
    an SS-ORL record's numbers come from its base algorithm too."""
    mopo = provenance.algorithm_sources([{"algorithm": "mopo"}], REPO)
    assert {"algorithms/mopo.py", "algorithms/morec.py", "algorithms/dynamics_model.py",
            "algorithms/soft_actor_critic.py", "algorithms/nn.py"} <= set(mopo)
    assert "algorithms/iql.py" not in mopo
    ssorl = provenance.algorithm_sources([{"algorithm": "ssorl", "config": {"base": "iql"}}], REPO)
    assert {"algorithms/ssorl.py", "algorithms/inverse_dynamics.py", "algorithms/iql.py"} <= set(ssorl)
    assert provenance.algorithm_sources([{"algorithm": "bc"}], REPO) == ["algorithms/bc.py", "algorithms/nn.py"]


def test_provenance_pins_the_environment_modules_a_record_used():
    """A Pendulum run without wrappers does not depend on the level-split wrapper; a run evaluated on
    test levels, or trained on data collected on train levels, does; MOPO's termination functions
    live with the environments."""
    plain = provenance.environment_sources([{"algorithm": "bc", "dataset": "offrl/pendulum/expert-v0",
                                             "env_id": "Pendulum-v1", "wrapper": ""}], REPO)
    assert plain == ["envs/__init__.py"]
    drift = "stori:drift:at=5,to=stori:action"
    evaluated = provenance.environment_sources([{"algorithm": "bc", "dataset": "offrl/pendulum/expert-v0",
                                                 "env_id": "Pendulum-v1", "wrapper": drift}], REPO)
    assert evaluated == ["envs/__init__.py", "envs/stori.py", "envs/stori_atari.py"]  # stori.py dispatches to ALE
    collected = provenance.environment_sources([{"algorithm": "bc", "env_id": "MiniGrid-DoorKey-6x6-v0", "wrapper": "",
                                                 "dataset": "offrl/minigrid-doorkey-6x6/expert-levels-train-v0"}], REPO)
    assert collected == ["envs/__init__.py", "envs/level_splits.py"]
    assert "envs/termination.py" in provenance.environment_sources([{"algorithm": "mopo", "dataset": "d"}], REPO)
    assert "envs/procgen.py" in provenance.environment_sources([{"algorithm": "bc", "dataset": "d",
                                                                 "env_id": "procgen/coinrun-v0"}], REPO)


def _suite_records(shift: float = 0.0) -> list[dict]:
    records = []
    for algorithm, base in (("bc", 50.0), ("iql", 70.0)):
        for seed in range(5):
            spec = {"algo": algorithm, "dataset": "d", "wrapper": "", "updates": 100, "seed": seed, "suite": "s"}
            records.append({"run_id": f"{algorithm}{seed}", "suite": "s", "algorithm": algorithm, "dataset": "d",
                            "wrapper": "", "seed": seed, "normalized_score": base + seed + (shift if algorithm == "iql"
                                                                                             else 0.0),
                            "return_mean": 0.0, "updates": 100, "train_seconds": 1.0, "spec": spec,
                            "finished_at": "2026-12-01T00:00:00", "versions": {"git_revision": "a" * 40}})
    return records


@pytest.fixture
def published(tmp_path, monkeypatch):
    root = tmp_path / "reference"
    (root / "s").mkdir(parents=True)
    (root / "s" / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _suite_records()))
    monkeypatch.setattr(reference, "reference_roots", lambda: [root])
    return root / "s"


def test_reference_comparison_counts_agreeing_rows_and_lists_the_others(published, tmp_path):
    same = reference.compare_with_reference(_suite_records())
    assert same.agreeing == len(same.rows) == 4  # two tasks rows and two ALL rows
    assert same.summary().startswith("4/4 rows agree with the published s leaderboard (revision aaaaaaa, 2026-12-01")
    moved = reference.compare_with_reference(_suite_records(shift=30.0))
    assert moved.agreeing == 2
    task, aggregate = moved.disagreements()
    assert task.startswith("d · none · iql: yours 102.0 [") and ", published 72.0 [" in task  # IQM of 100..104
    assert aggregate.startswith("ALL · ALL · iql: yours 102.0 [")
    other = _suite_records()
    for record in other:
        record["spec"]["updates"] = 200
    assert reference.compare_with_reference(other).rows == []  # other settings: not compared
    assert reference.compare_with_reference(_suite_records(), published) is None  # the reference itself


def test_leaderboard_command_ends_with_the_comparison(cli, published, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _suite_records(shift=30.0)))
    result = cli("leaderboard", str(out))
    assert result.code == 0, result.err
    assert "2/4 rows agree with the published s leaderboard" in result.out
    assert "disagrees: d · none · iql: yours 102.0 [" in result.out


def test_printed_leaderboard_shows_every_aggregate_at_80_columns_in_a_pipe(tmp_path):
    """The default reference, printed to a pipe at COLUMNS=80: every ALL row's IQM and interval."""
    default = REPO / "results" / "reference" / "default"
    result = run_cli_process("leaderboard", str(default), "-o", str(tmp_path / "lb.csv"), env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    frame = leaderboard(list(RunStore(default).records().values()))
    aggregates = frame[frame.dataset == "ALL"]
    assert len(aggregates) > 10
    for row in aggregates.itertuples():
        assert f"{row.normalized_iqm:.1f} [{row.ci_low:.1f}, {row.ci_high:.1f}]" in result.stdout, row.algorithm
    lines = result.stdout.splitlines()
    assert "\u2026" not in result.stdout  # nothing cut
    for row in frame[frame.dataset != "ALL"].itertuples():  # every row: names on one line, every number
        assert any(row.wrapper in line for line in lines) and any(row.dataset in line for line in lines)
        numbers = (f"{row.return_mean:.1f}", f"{row.normalized_iqm:.1f} [{row.ci_low:.1f}, {row.ci_high:.1f}]")
        # a table row on one line, or (a table too wide for 80 columns, e.g. long variant names) the
        # row's name followed by one "column: value" line per number
        assert any(row.algorithm in line and all(number in " ".join(lines[i:i + 4]) for number in numbers)
                   for i, line in enumerate(lines)), row.algorithm


def _regeneration_cost(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "benchmarks" / "regeneration_cost.py"), *args],
                          capture_output=True, text=True, cwd=REPO, timeout=300)


def test_regeneration_cost_counts_the_published_records_a_change_would_stale():
    """A change to TD3+BC stales the TD3+BC runs and the SS-ORL runs on a TD3+BC base, and so sends
    their whole references to a new revision; references without them, and files no record pins, cost
    nothing; the shared network module stales every record."""
    def stale(records: list[dict]) -> int:
        return sum("td3_bc" in (record["algorithm"], (record.get("config") or {}).get("base")) for record in records)

    result = _regeneration_cost("algorithms/td3_bc.py")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[2:-1]}
    assert set(rows) == {path.name for path in REFERENCES}
    for directory in REFERENCES:
        runs = [json.loads(line) for line in (directory / "runs.jsonl").read_text().splitlines()]
        checks = [json.loads(line) for line in (directory / "budget-check" / "runs.jsonl").read_text().splitlines()]
        _, stale_runs, rerun_hours, _, stale_checks, _ = rows[directory.name]
        assert stale_runs == f"{stale(runs)}/{len(runs)}" and stale_checks == f"{stale(checks)}/{len(checks)}"
        assert (float(rerun_hours) > 0) == (stale(runs) > 0)  # a stale reference reruns whole
    assert {name for name, row in rows.items() if row[1][0] != "0"} == {"default", "ssorl"}
    nothing = _regeneration_cost("offrl_bench/cli.py").stdout.splitlines()[-1]
    assert nothing.startswith("total: 0.00 worker-h")
    shared = _regeneration_cost("algorithms/nn.py").stdout.splitlines()[2:-1]
    assert all(row.split()[1].split("/")[0] == row.split()[1].split("/")[1] for row in shared)


def test_regeneration_cost_bad_input_is_one_line_and_exit_code_2():
    for args, message in [(("nope.py",), "not files of this repository: nope.py"),
                          (("--since", "nope"), "--since: cannot diff against 'nope'"),
                          ((), "name the files you intend to change, or --since REVISION")]:
        result = _regeneration_cost(*args)
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"error: {message}")
