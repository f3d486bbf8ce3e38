"""The results directory's files: records, failures and commands, appended safely and written atomically."""

import os
import stat

from offrl_bench.records.run_store import RunStore, write_atomic


def test_failures_are_the_latest_attempt_of_runs_not_finished_since(tmp_path):
    store = RunStore(tmp_path)
    store.append_failure({"run_id": "a", "error": "first"})
    store.append_failure({"run_id": "a", "error": "second"})
    store.append_failure({"run_id": "b", "error": "only"})
    assert {run_id: f["error"] for run_id, f in store.failures().items()} == {"a": "second", "b": "only"}
    store.append({"run_id": "b", "seed": 0})  # b finished on a later attempt
    assert list(store.failures()) == ["a"]


def test_a_torn_line_of_any_length_is_repaired_before_the_next_entry(tmp_path):
    store = RunStore(tmp_path)
    tmp_path.mkdir(exist_ok=True)
    for torn in ("{", '{"run_id": "x'):
        store.records_path.write_text(torn)
        assert store.append({"run_id": "y", "seed": 1})
        assert store.records() == {"y": {"run_id": "y", "seed": 1}}
        assert store.records_path.read_text().splitlines()[0] == torn  # kept, on a line of its own


def test_commands_are_kept_in_order(tmp_path):
    store = RunStore(tmp_path)
    store.append_command("offrl-bench run --suite quick", "2026-12-01T00:00:00")
    store.append_command("offrl-bench run --suite default", "2026-12-01T01:00:00")
    assert [c["command"] for c in store.commands()] == ["offrl-bench run --suite quick",
                                                        "offrl-bench run --suite default"]


def test_atomic_writes_get_the_permissions_open_would_give_and_leave_the_umask_alone(tmp_path):
    previous = os.umask(0o022)
    try:
        write_atomic(tmp_path / "leaderboard.csv", "a,b\n1,2\n")
        assert os.umask(0o022) == 0o022  # unchanged by the write
        with open(tmp_path / "plain.txt", "w") as f:
            f.write("x")
    finally:
        os.umask(previous)
    mode = stat.S_IMODE((tmp_path / "leaderboard.csv").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == 0o644
    assert (tmp_path / "leaderboard.csv").read_text() == "a,b\n1,2\n"
    assert not list(tmp_path.glob(".leaderboard.csv.*"))

