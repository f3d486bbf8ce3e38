"""Executing many runs: parallel workers, skip-finished."""

import json

from offrl_bench.execution.runner import RunSpec
from offrl_bench.execution.scheduler import execute
from offrl_bench.records.run_store import RunStore


def test_two_workers_finish_every_run_once_and_rerun_skips(cartpole_expert, tmp_path):
    specs = [RunSpec(algo, cartpole_expert, seed, updates=200, eval_every=200, eval_episodes=2)
             for algo in ("bc", "random") for seed in (0, 1)]
    outcome = execute(specs, tmp_path, workers=2, quiet=True)
    assert len(outcome.completed) == 4 and outcome.skipped == 0
    lines = (tmp_path / "runs.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["run_id"] for line in lines) == sorted(s.run_id for s in specs)
    again = execute(specs, tmp_path, workers=2, quiet=True)
    assert again.skipped == 4 and not again.completed
    assert len(RunStore(tmp_path).records()) == 4


def test_failing_run_in_a_worker_ends_cleanly(tmp_path, cartpole_expert):
    """A plugin that produces NaN inside a worker process: one error line, no worker tracebacks,
    and the other finished runs stay recorded."""
    from conftest import install_on_path, run_cli_process

    env = install_on_path(
        tmp_path / "site", "nan_plugin",
        "from offrl_bench.algorithms.bc import BC\n"
        "class NaNAfterSeedOne(BC):\n"
        "    name = 'nan-bc'\n"
        "    def update(self, batch):\n"
        "        return {'loss': float('nan')} if self.seed == 1 else super().update(batch)\n",
        "[offrl_bench.algorithms]\nnan-bc = nan_plugin:NaNAfterSeedOne\n")
    out = tmp_path / "out"
    result = run_cli_process("run", "--algo", "nan-bc", "--dataset", cartpole_expert, "--seeds", "0,1",
                             "--updates", "100", "--eval-every", "100", "--eval-episodes", "2", "--workers", "2",
                             "--out", str(out), "--quiet", env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "algorithm 'nan-bc' produced non-finite loss at update 0" in result.stderr
    records = RunStore(out).records()
    assert [r["seed"] for r in records.values()] == [0]


def test_a_suite_starts_its_longest_runs_first():
    """From the default reference's recorded durations: the same runs, ordered by decreasing
    expected duration, MOPO's and MOPO+MOREC's (8,000 updates with a dynamics ensemble) first. A run
    the reference does not hold takes its algorithm's time per update on that dataset; one nothing is
    known about goes in at the median."""
    import dataclasses

    from offrl_bench.core import registry
    from offrl_bench.trust.durations import expected_seconds, longest_first

    specs = registry.suite("default").runs()
    ordered = longest_first(specs)
    assert sorted(spec.run_id for spec in ordered) == sorted(spec.run_id for spec in specs)
    expected = expected_seconds(specs)
    durations = [expected[spec.run_id] for spec in ordered]
    assert None not in durations and durations == sorted(durations, reverse=True)
    assert {spec.algo for spec in ordered[:10]} == {"mopo"} and specs[0].algo != "mopo"

    bc = next(spec for spec in specs if spec.algo == "bc" and spec.wrapper == "")
    longer = dataclasses.replace(bc, updates=4 * bc.updates)  # not in the reference: 4x BC's time per update
    unknown = dataclasses.replace(bc, algo="my_algo")
    estimates = expected_seconds([bc, longer, unknown])
    assert estimates[longer.run_id] > 2 * estimates[bc.run_id] and estimates[unknown.run_id] is None
    assert [spec.algo for spec in longest_first([unknown, longer, bc])] == ["bc", "my_algo", "bc"]
