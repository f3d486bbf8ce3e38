"""AdaStop comparisons from recorded per-seed scores (`offrl-bench compare`)."""

import json

import numpy as np
import pytest

from offrl_bench.analysis.comparison import compare
from offrl_bench.records.leaderboard import variant_name
from tests.conftest import assert_usage_error


def runs(name, mean, seeds, datasets=("d1", "d2"), columns=None, rng=np.random.default_rng(0)):
    return [{"run_id": f"{name}-{d}-{s}-{columns}", "algorithm": name, "dataset": d, "wrapper": "", "seed": s,
             "normalized_score": float(rng.normal(mean, 5)), **({"columns": columns} if columns else {})}
            for s in seeds for d in datasets]


def test_a_clear_difference_is_decided_at_the_first_interim():
    result = compare(runs("good", 80, range(10)) + runs("bad", 40, range(10)), ["good", "bad"], n=5, interims=3)
    assert result.decisions == {("good", "bad"): "larger"} and result.runs_used == 5 and result.finished
    flipped = compare(runs("good", 80, range(10)) + runs("bad", 40, range(10)), ["bad", "good"], n=5, interims=3)
    assert flipped.decisions == {("bad", "good"): "smaller"}


def test_no_difference_is_called_equal_only_after_the_last_interim():
    result = compare(runs("a", 50, range(10)) + runs("b", 50, range(10)), ["a", "b"], n=5, interims=2)
    assert result.decisions == {("a", "b"): "equal"} and result.runs_used == 10


def test_too_few_seeds_says_which_runs_adastop_asks_for():
    result = compare(runs("a", 50, range(3)) + runs("b", 52, range(8)), ["a", "b"], n=5, interims=3)
    assert result.decisions == {("a", "b"): "undecided"} and result.runs_used == 0
    assert result.next_seeds == {"a": (3, 4)}  # b already has the 5 seeds of the first interim
    # a seed counts only if it ran on every task the algorithms share
    partial = runs("a", 50, range(5)) + runs("b", 50, range(5))
    partial = [r for r in partial if not (r["algorithm"] == "b" and r["seed"] == 4 and r["dataset"] == "d2")]
    assert compare(partial, ["a", "b"], n=5).next_seeds == {"b": (4,)}


def test_variants_are_named_with_their_columns():
    records = runs("ssorl", 80, range(5), columns={"label_fraction": 0.1})
    for r in records:
        r["algorithm_label"] = "ssorl(iql)"
    assert variant_name(records[0]) == "ssorl(iql)[label_fraction=0.1]"
    result = compare(records + runs("iql", 30, range(5)), ["ssorl(iql)[label_fraction=0.1]", "iql"], n=5, interims=1)
    assert result.decisions[("ssorl(iql)[label_fraction=0.1]", "iql")] == "larger"


def test_compare_command(cli, tmp_path):
    records = runs("td3_bc", 80, range(5)) + runs("bc[x]", 40, range(5))
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    result = cli("compare", str(tmp_path), "--algos", "td3_bc,bc[x]", "--n", "5", "--interims", "2")
    assert result.code == 0, result.err
    assert "td3_bc > bc[x]" in result.out and "runs used per algorithm: 5" in result.out
    more = cli("compare", str(tmp_path), "--algos", "td3_bc,bc[x]", "--n", "8")
    assert "AdaStop asks for 3 more run(s) of td3_bc: seeds 5,6,7" in more.out
    # DESIGN.md's form: --algos A B
    spaced = cli("compare", str(tmp_path), "--algos", "td3_bc", "bc[x]", "--n", "5", "--interims", "2")
    assert spaced.code == 0 and "td3_bc > bc[x]" in spaced.out


def test_names_with_several_variant_columns_keep_their_commas(cli, tmp_path):
    records = runs("td3_bc", 80, range(5)) + runs("mine", 40, range(5), columns={"a": 1, "b": 2})
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    result = cli("compare", str(tmp_path), "--algos", "td3_bc,mine[a=1,b=2]", "--n", "5", "--interims", "2")
    assert result.code == 0, result.err
    assert "td3_bc > mine[a=1,b=2]" in result.out


@pytest.mark.parametrize("args, fragment", [
    (["--algos", "td3_bc,nope"], "no runs of 'nope' in these records; one of: bc, td3_bc"),
    (["--algos", "td3_bc"], "compare needs at least two different algorithms"),
    (["--algos", "td3_bc,bc", "--n", "1"], "need --n >= 2"),
    (["--algos", "td3_bc,bc", "--alpha", "2"], "0 < --alpha < 1"),
])
def test_compare_usage_errors(args, fragment, cli, tmp_path):
    records = runs("td3_bc", 80, range(5)) + runs("bc", 40, range(5))
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert_usage_error(cli("compare", str(tmp_path), *args), fragment)


def test_compare_without_records_is_a_usage_error(cli, tmp_path):
    assert_usage_error(cli("compare", str(tmp_path), "--algos", "a,b"), "no run records")


def test_suite_seeds_run_in_adastop_batches_until_decided(cli, cartpole_expert, tmp_path, monkeypatch):
    from offrl_bench.core import registry
    from offrl_bench.data.make import DatasetRequest
    from offrl_bench.suites import Suite

    tiny = Suite(name="tiny", description="bc against random", algorithms=("bc", "random"), seeds=(0,),
                 datasets=(DatasetRequest("CartPole-v1", "expert", name=cartpole_expert),), updates=300,
                 eval_every=300, eval_episodes=3, checkpoint_every=300)
    monkeypatch.setattr(registry, "suite", lambda name: tiny)
    result = cli("run", "--suite", "tiny", "--adastop", "bc,random", "--adastop-n", "5", "--adastop-interims", "3",
                 "--out", str(tmp_path), "--quiet")
    assert result.code == 0, result.err
    assert "AdaStop after 5 seeds per algorithm: bc > random" in result.err
    records = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert sorted((r["algorithm"], r["seed"]) for r in records) == sorted(
        (a, s) for a in ("bc", "random") for s in range(5))  # decided after the first batch: no more runs
    assert_usage_error(cli("run", "--suite", "tiny", "--adastop", "bc,dt", "--out", str(tmp_path)),
                       "--adastop names 'dt' not in this suite; one of: bc, random")
    assert_usage_error(cli("run", "--algo", "bc", "--dataset", cartpole_expert, "--adastop", "bc,random"),
                       "give it with --suite")
