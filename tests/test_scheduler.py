"""Executing many runs: parallel workers, skip-finished."""

import json

from offrl_bench.results import RunStore
from offrl_bench.runner import RunSpec
from offrl_bench.scheduler import execute


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
