"""Published references: clean provenance, the comparison every suite run ends with, and the
README's claims table, which must be what ``offrl-bench claims`` prints for the committed records."""

import json
import re
import subprocess
import sys

import pandas as pd
import pytest

from conftest import PUBLISHED_REFERENCES, REPO, assert_usage_error, published_leaderboard, run_cli_process
from offrl_bench.records.leaderboard import leaderboard_csv
from offrl_bench.records.run_store import RunStore
from offrl_bench.trust import budget, provenance, reference
from offrl_bench.trust.claim_tables import markdown
from offrl_bench.trust.claims import evaluate_directory

REFERENCES = PUBLISHED_REFERENCES


def test_the_main_job_and_the_quick_suite_have_references():
    assert {path.name for path in REFERENCES} >= {"default", "quick"}
    for directory in REFERENCES:  # and every published suite its sanity-floor verdicts
        assert (directory / budget.FILE_NAME).is_file(), directory


@pytest.mark.parametrize("directory", REFERENCES, ids=lambda p: p.name)
def test_committed_references_come_from_clean_ancestor_revisions_row_by_row(directory):
    records = list(RunStore(directory).records().values())
    assert provenance.reference_problems(records, REPO) == []
    lines = provenance.read_lines(directory)
    covered = [run for line in lines for ids in line["runs"].values() for run in ids]
    assert sorted(covered) == sorted(record["run_id"] for record in records)  # each run on exactly one line
    revision = {record["run_id"]: record["versions"]["git_revision"] for record in records}
    for line in lines:  # a line describes runs of its own revision, replayed at one seed of theirs
        assert {revision[run] for ids in line["runs"].values() for run in ids} == {line["revision"]}
        assert line["code"] and line["data"]["code"] and line["replay"]["budget"] >= 1
        assert isinstance(line["config"], dict)  # empty for an algorithm without settings (random)


def test_every_published_row_is_fresh_or_labelled_stale_wherever_it_is_shown():
    """``reference status`` decides; the leaderboard CSV's stale column, the claims verdicts and the
    reference comparison say the same, row by row."""
    head = provenance.HeadState(REPO)
    for directory in REFERENCES:
        records = list(RunStore(directory).records().values())
        rows = {row.row: row for row in provenance.status(directory, records, head)}
        assert set(rows) == set(provenance.rows(records))
        frame = pd.read_csv(directory / "leaderboard.csv", keep_default_na=False)
        tasks = frame[frame.dataset != "ALL"]
        assert sorted(tasks.stale) == sorted(row.label for row in rows.values())
        for verdict in evaluate_directory(directory):
            for comparison in verdict.comparisons:
                assert (comparison.verdict in ("stale", "untrained")) == bool(comparison.undecided)
                if comparison.verdict == "stale":
                    assert comparison.undecided in {row.label for row in rows.values()}


def test_reference_status_command_reports_every_row_and_checks(cli):
    result = cli("reference", "status", "--check")
    statuses = [row for directory in REFERENCES for row in provenance.status(directory)]
    fresh = sum(row.fresh for row in statuses)
    assert f"{fresh}/{len(statuses)} rows fresh" in result.out
    assert result.code == (0 if fresh == len(statuses) else 1)
    assert len(result.out.splitlines()) >= len(statuses) - fresh + 1  # one line per stale row
    for command in ("status", "record", "attest", "regenerate"):
        bad = cli("reference", command, "nope")
        assert_usage_error(bad, "no published reference 'nope'; one of: ")
        assert bad.out == ""


@pytest.mark.parametrize("directory", REFERENCES, ids=lambda p: p.name)
def test_committed_leaderboards_are_rebuilt_from_their_records(directory):
    expected = published_leaderboard(directory)
    assert (directory / "leaderboard.csv").read_text() == leaderboard_csv(expected)
    assert "stale" in expected  # a reference's leaderboard always says which rows are stale


def test_no_other_committed_results_directory():
    """Everything under results/ besides the references is user output, ignored by git."""
    tracked = subprocess.run(["git", "ls-files", "results"], capture_output=True, text=True, cwd=REPO).stdout.split()
    assert tracked and all(path.startswith("results/reference/") for path in tracked)


def _records(revision: str | None, dirty: bool | None, algorithm: str = "bc") -> list[dict]:
    return [{"run_id": f"r{seed}", "suite": "s", "algorithm": algorithm, "dataset": "d", "wrapper": "", "seed": seed,
             "versions": {"git_revision": revision, "git_dirty": dirty}} for seed in range(2)]


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, cwd=REPO, check=True).stdout.strip()


def test_provenance_warning_names_dirty_records_and_mixed_revisions():
    head = _git("rev-parse", "HEAD")
    assert provenance.warning(_records(head, False)) is None
    assert "2 of 2 records ran on uncommitted changes" in provenance.warning(_records(head, True))
    before = _git("rev-parse", "HEAD~1")
    assert "records mix 2 revisions" in provenance.warning(_records(head, False)[:1] + _records(before, False)[:1])
    problems = provenance.reference_problems(_records(head, None), REPO)
    assert problems == ["2 of 2 records are not from a clean tree (git_dirty true or missing)"]
    assert provenance.reference_problems(_records("0" * 40, False), REPO) == [
        f"revision {'0' * 40} is not an ancestor of HEAD"]
    # rows may come from different revisions; one row's runs may not
    mixed = _records(head, False)[:1] + _records(before, False)[1:]
    assert provenance.reference_problems(mixed, REPO) == [f"row s · d · none · bc mixes revisions {head[:7]} x1, "
                                                           f"{before[:7]} x1"]


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
    # the rule: the Welch (Hsu df) 95% interval of the difference of per-seed means contains 0; here
    # each side's seeds are 0..4 points apart (variance 2.5), so the interval is shift +- 2.776 * 1
    near = reference.compare_with_reference(_suite_records(shift=2.0))
    assert near.agreeing == 4
    apart = reference.compare_with_reference(_suite_records(shift=4.0))
    row = next(r for r in apart.rows if r.key == "d · none · iql")
    assert not row.agrees and row.difference == pytest.approx((4.0, 4.0 - 2.776445, 4.0 + 2.776445), abs=1e-5)
    assert "difference of means +4.0 [+1.2, +6.8]" in apart.disagreements()[0]
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
    frame = published_leaderboard(default)
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


def test_regeneration_cost_counts_the_stale_rows_only():
    """Per reference: its stale rows (those ``reference status`` names), their runs, and the worker
    time those runs took; fresh rows cost nothing."""
    result = _regeneration_cost()
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:-1]}
    assert set(rows) == {path.name for path in REFERENCES}
    head = provenance.HeadState(REPO)
    for directory in REFERENCES:
        records = list(RunStore(directory).records().values())
        statuses = provenance.status(directory, records, head)
        stale = [row for row in statuses if not row.fresh]
        runs = [run for row in stale for run in provenance.rows(records)[row.row]]
        seconds = sum(sum(run.get(k) or 0.0 for k in ("setup_seconds", "train_seconds", "eval_seconds"))
                      for run in runs)
        assert rows[directory.name][1:] == [f"{len(stale)}/{len(statuses)}", f"{len(runs)}/{len(records)}",
                                            f"{seconds / 3600:.2f}"]
    one = _regeneration_cost("quick", "--workers", "1").stdout.splitlines()
    assert [line.split()[0] for line in one[1:-1]] == ["quick"] and "on 1 workers" in one[-1]


def test_regeneration_cost_bad_input_is_one_line_and_exit_code_2():
    for args, message in [(("nope",), "no published reference 'nope'; one of: "),
                          (("--workers", "0"), "--workers must be at least 1, got 0")]:
        result = _regeneration_cost(*args)
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"error: {message}")


def test_a_stale_published_row_is_labelled_in_the_csv_the_claims_and_the_comparison(cli, published, tmp_path,
                                                                                     monkeypatch):
    """Wherever a stale row shows, it says so: the leaderboard's stale column (and its ALL row), a
    claim comparison that rests on it (stale, not a verdict), and the comparison with the reference."""
    from offrl_bench.trust import claims

    label = "stale since aaaaaaa: algorithms/iql.py:IQL.update changed"
    monkeypatch.setattr(provenance, "stale_labels",
                        lambda directory, records: {("s", "d", "none", "iql"): label}
                        if str(directory) in (str(published), str(tmp_path / "mine")) else None)
    (published / "leaderboard.csv").unlink(missing_ok=True)
    assert cli("leaderboard", str(published)).code == 0
    frame = pd.read_csv(published / "leaderboard.csv", keep_default_na=False)
    assert dict(zip(frame.algorithm + "/" + frame.dataset, frame.stale)) == {
        "bc/d": "", "iql/d": label, "bc/ALL": "", "iql/ALL": "stale: 1 of 1 tasks"}
    claim = claims.Claim(name="iql-beats-bc", paper="p", statement="IQL beats BC", relation="greater",
                         a=claims.Rows(algorithm="iql"), b=claims.Rows(algorithm="bc"), per=("dataset",))
    (verdict,) = evaluate_directory(published, [claim])
    assert verdict.verdict == "stale" and verdict.text() == label
    assert markdown([verdict]).count(label) == 1
    from offrl_bench.analysis.report import build_report

    page = build_report(published).read_text()
    assert f'data-value="{label}"' in page  # the report's leaderboard table
    comparison = reference.compare_with_reference(_suite_records())
    assert comparison.stale_rows() == [f"d · none · iql: {label}", f"ALL · ALL · iql: {label}"]
    assert "2 published rows are stale at HEAD" in comparison.summary()


def test_every_published_report_was_built_with_the_installed_claims():
    """A report's verdicts are computed when it is built: one older than the claims (or than the
    claims engine's rule) shows verdicts the engine no longer gives. Rebuild with ``offrl-bench report
    results/reference/SUITE``."""
    from offrl_bench.trust.claim_tables import fingerprint
    from offrl_bench.trust.claims import installed

    current = fingerprint(installed())
    for directory in REFERENCES:
        page = (directory / "report.html").read_text()
        found = re.search(r'<meta name="offrl-bench-claims" content="(\w+)">', page)
        assert found and found.group(1) == current, f"{directory.name}/report.html is older than its claims"
