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
