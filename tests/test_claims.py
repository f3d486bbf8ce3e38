"""The claims engine: verdicts from hand-made records whose answer is known, the CLI, and a claim
shipped by a third-party package through the ``offrl_bench.claims`` entry point."""

import json

import numpy as np
import pytest

from conftest import assert_usage_error, install_on_path, run_cli_process
from offrl_bench.core import registry
from offrl_bench.trust.claims import (
    CONTRADICTED,
    INCONCLUSIVE,
    NO_DATA,
    REPRODUCED,
    Claim,
    Rows,
    evaluate_claim,
    evaluate_directory,
    installed,
    markdown,
    named,
)


def record(algorithm: str, seed: int, score: float, dataset: str = "d", wrapper: str = "", **extra) -> dict:
    return {"run_id": f"{algorithm}|{dataset}|{wrapper}|{seed}|{extra.get('columns')}", "suite": "s",
            "algorithm": algorithm, "dataset": dataset, "wrapper": wrapper, "seed": seed,
            "normalized_score": score, "updates": 1_000, **extra}


def scores(mean: float, spread: float, n: int = 5, seed: int = 0) -> list[float]:
    return list(np.random.default_rng(seed).normal(mean, spread, n))


def claim(relation: str, **fields) -> Claim:
    return Claim(name="c", paper="p", statement="s", a=Rows(algorithm="a"), b=Rows(algorithm="b"),
                 relation=relation, **fields)


def two_sides(a_scores, b_scores, **extra) -> list[dict]:
    return ([record("a", i, s, **extra) for i, s in enumerate(a_scores)]
            + [record("b", i, s, **extra) for i, s in enumerate(b_scores)])


def test_a_clear_difference_is_reproduced_and_its_reverse_contradicted():
    a, b = scores(60, 2, seed=1), scores(40, 2, seed=2)
    records = two_sides(a, b)
    greater = evaluate_claim(claim("greater"), records)
    assert greater.verdict == REPRODUCED
    (comparison,) = greater.comparisons
    assert comparison.difference == pytest.approx(np.mean(a) - np.mean(b))  # the mean's difference, by hand
    assert comparison.low > 0 and comparison.n_a == comparison.n_b == 5
    assert evaluate_claim(claim("less"), records).verdict == CONTRADICTED
    assert evaluate_claim(claim("at_most", margin=5), records).verdict == CONTRADICTED
    assert evaluate_claim(claim("at_least", margin=5), records).verdict == REPRODUCED


def test_overlapping_sides_are_inconclusive_with_a_seed_estimate():
    records = two_sides(scores(52, 10, seed=3), scores(50, 10, seed=4))
    verdict = evaluate_claim(claim("greater"), records)
    (comparison,) = verdict.comparisons
    assert verdict.verdict == INCONCLUSIVE and comparison.low < 0 < comparison.high
    assert comparison.more_seeds and comparison.more_seeds > 0
    # the interval's half-width shrinks as 1/sqrt(n): this many seeds would put the boundary outside it
    half, distance = (comparison.high - comparison.low) / 2, abs(comparison.difference)
    assert comparison.more_seeds == pytest.approx(5 * (half / distance) ** 2 - 5, abs=1)
    assert f"needs ~{comparison.more_seeds} more seeds" in verdict.text()


def test_equivalence_needs_the_whole_interval_inside_the_margin():
    close = two_sides(scores(50, 0.5, seed=5), scores(50.2, 0.5, seed=6))
    far = two_sides(scores(70, 0.5, seed=5), scores(50, 0.5, seed=6))
    assert evaluate_claim(claim("equivalent", margin=5), close).verdict == REPRODUCED
    assert evaluate_claim(claim("equivalent", margin=5), far).verdict == CONTRADICTED


def test_pairing_by_seed_removes_noise_the_two_sides_share():
    """The same agent evaluated twice: a per-seed drop of 1 point under seed-to-seed spread of 30."""
    base = scores(50, 30, seed=7)
    records = two_sides([s - 1 for s in base], base)
    assert evaluate_claim(claim("less"), records).verdict == INCONCLUSIVE
    paired = evaluate_claim(claim("less", paired=True), records)
    assert paired.verdict == REPRODUCED
    assert paired.comparisons[0].low == pytest.approx(-1) and paired.comparisons[0].high == pytest.approx(-1)


def test_per_and_each_split_the_comparisons():
    records = []
    for dataset in ("d1", "d2"):
        records += [record("bc", i, 50.0 + i, dataset) for i in range(5)]
        records += [record("iql", i, 80.0 + i, dataset) for i in range(5)]
        records += [record("cql", i, 20.0 + i, dataset) for i in range(5)]
    rl_beats_bc = Claim(name="c", paper="p", statement="s", a=Rows(algorithm=("iql", "cql")), b=Rows(algorithm="bc"),
                        relation="greater", per=("dataset",), each=("algorithm",))
    verdict = evaluate_claim(rl_beats_bc, records)
    outcome = {c.label: c.verdict for c in verdict.comparisons}
    assert outcome == {"dataset=d1, algorithm=cql": CONTRADICTED, "dataset=d1, algorithm=iql": REPRODUCED,
                       "dataset=d2, algorithm=cql": CONTRADICTED, "dataset=d2, algorithm=iql": REPRODUCED}
    assert verdict.verdict == CONTRADICTED  # one contradicted comparison contradicts the claim


def test_fewer_than_five_seeds_is_marked_indicative():
    verdict = evaluate_claim(claim("greater"), two_sides([60, 61, 62], [40, 41, 42]))
    assert verdict.verdict == REPRODUCED and verdict.indicative
    assert "indicative only (3 seeds < 5)" in verdict.text()
    assert not evaluate_claim(claim("greater"), two_sides(scores(60, 1), scores(40, 1))).indicative


def test_no_matching_runs_is_no_data():
    assert evaluate_claim(claim("greater"), [record("x", 0, 1.0)]).verdict == NO_DATA


def test_steps_to_score_reads_learning_curves_and_counts_a_run_that_never_gets_there_at_its_budget():
    fast = [[1_000, 50.0], [2_000, 95.0], [3_000, 99.0]]
    never = [[1_000, 10.0], [2_000, 40.0], [3_000, 60.0]]
    records = ([record("a", i, 99.0, learning_curve=fast) for i in range(5)]
               + [{**record("b", i, 60.0, learning_curve=never), "updates": 3_000} for i in range(5)])
    verdict = evaluate_claim(claim("less", metric="steps_to_score", threshold=90.0), records)
    (comparison,) = verdict.comparisons
    assert (comparison.mean_a, comparison.mean_b) == (2_000, 3_000)
    assert verdict.verdict == REPRODUCED
    old = [{k: v for k, v in r.items() if k != "learning_curve"} for r in records]  # records before curves existed
    assert evaluate_claim(claim("less", metric="steps_to_score"), old).verdict == NO_DATA


def test_variant_names_match_with_literal_brackets():
    ssorl = [record("ssorl", i, 70.0 + i, algorithm_label="ssorl(iql)", columns={"label_fraction": 0.1})
             for i in range(5)]
    only = [record("ssorl", i, 50.0 + i, algorithm_label="iql (labelled only)", columns={"label_fraction": 0.1})
            for i in range(5)]
    beats = Claim(name="c", paper="p", statement="s", a=Rows(algorithm="ssorl(iql)[label_fraction=0.1]"),
                  b=Rows(algorithm="iql (labelled only)[label_fraction=0.1]"), relation="greater")
    assert evaluate_claim(beats, ssorl + only).verdict == REPRODUCED


def test_measurement_csv_source(tmp_path):
    (tmp_path / "runs.jsonl").write_text(json.dumps(record("x", 0, 1.0)) + "\n")
    lower = Claim(name="c", paper="p", statement="s", a=Rows(algorithm="chosen"), b=Rows(algorithm="random"),
                  relation="less", paired=True, metric="value", source="errors.csv")
    (verdict,) = evaluate_directory(tmp_path, [lower])
    assert verdict.verdict == NO_DATA  # the benchmark has not written it here
    rows = [f"{name},d,,{seed},{value}" for seed in range(5)
            for name, value in (("chosen", 0.1 + seed / 100), ("random", 0.3 + seed / 100))]
    (tmp_path / "errors.csv").write_text("algorithm,dataset,wrapper,seed,value\n" + "\n".join(rows) + "\n")
    (verdict,) = evaluate_directory(tmp_path, [lower])
    assert verdict.verdict == REPRODUCED and verdict.comparisons[0].difference == pytest.approx(-0.2)


@pytest.mark.parametrize("fields", [dict(relation="bigger"), dict(relation="equivalent"),
                                    dict(relation="greater", margin=-1), dict(relation="greater", metric="value"),
                                    dict(relation="greater", per=("colour",))])
def test_malformed_claims_are_rejected_when_declared(fields):
    with pytest.raises(ValueError):
        Claim(name="c", paper="p", statement="s", a=Rows(), b=Rows(), **fields)


def test_builtin_claims_cover_every_paper():
    papers = {c.paper.split(" (")[0] for c in installed()}
    assert papers == {"STORI", "Generalization gap", "SS-ORL", "MOREC", "Offline-to-online", "Data quality"}


def test_claims_command(cli, tmp_path):
    records = ([record("iql", i, s, "offrl/x/mixed-v0") for i, s in enumerate(scores(90, 1))]
               + [record("bc", i, s, "offrl/x/mixed-v0") for i, s in enumerate(scores(40, 1))])
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    result = cli("claims", str(tmp_path))
    assert result.code == 0, result.err
    for builtin in installed():  # every claim gets a verdict line, with data or without
        assert f"] {builtin.name} (" in result.out
    assert "[reproduced] offline-rl-beats-bc-on-mixed" in result.out
    assert "dataset=offrl/x/mixed-v0, algorithm=iql: A 90." in result.out
    table = cli("claims", str(tmp_path), "--markdown", "--claim", "offline-rl-*")
    expected = [c for c in installed() if c.name == "offline-rl-beats-bc-on-mixed"]
    assert table.out == markdown(evaluate_directory(tmp_path, expected))
    assert_usage_error(cli("claims", str(tmp_path), "--claim", "nope*"), "no claim matches nope*")
    assert_usage_error(cli("claims", str(tmp_path / "missing")), "no run records")


def test_claims_command_prints_wrapper_specs_as_written(cli, tmp_path):
    """``levels:train:train=0-24`` holds Rich's emoji code ``:train:``: it must print as text."""
    records = [record(algo, i, s, "d", wrapper) for wrapper in ("levels:train:train=0-24", "levels:test")
               for algo, mean in (("bc", 90), ("ppo", 99)) for i, s in enumerate(scores(mean, 1))]
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    result = cli("claims", str(tmp_path), "--claim", "offline-below-online-ppo")
    assert "wrapper=levels:train:train=0-24, algorithm=bc" in result.out, result.out


def test_a_third_party_package_adds_a_claim(tmp_path):
    """A package installed on the path (a dist-info with an entry point) ships its paper's claim."""
    env = install_on_path(
        tmp_path / "site", "my_paper",
        "from offrl_bench.api import Claim, Rows\n"
        "CLAIMS = (Claim(name='my-paper-a-beats-b', paper='My paper', statement='A beats B',\n"
        "                a=Rows(algorithm='a'), b=Rows(algorithm='b'), relation='greater'),)\n",
        "[offrl_bench.claims]\nmy_paper = my_paper:CLAIMS\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in two_sides(scores(70, 1), scores(30, 1))))
    result = run_cli_process("claims", str(out), "--claim", "my-paper-*", env=env)
    assert result.returncode == 0, result.stderr
    assert "[reproduced] my-paper-a-beats-b (My paper)" in result.stdout
    without = run_cli_process("claims", str(out), "--claim", "my-paper-*")
    assert without.returncode == 2 and "no claim matches" in without.stderr


def test_the_generalization_claims_select_the_generalization_suites_rows():
    """The diversity and online-reference claims name the suite's datasets and wrappers by pattern:
    on records of exactly the suite's runs, each forms one comparison per offline algorithm."""
    from offrl_bench.envs.level_splits import split_of

    suite = registry.suite("generalization")
    levels = {r.dataset_id: (int(r.wrapper.rsplit("-", 1)[1]) + 1, r.steps) for r in suite.datasets}
    records = []
    for spec in suite.runs():
        n_levels, steps = levels[spec.dataset]
        if spec.algo == "ppo":
            score = 99.0
        elif split_of(spec.wrapper) == "train":
            score = 95.0
        else:  # more levels help, more transitions from few levels help less
            score = 60.0 + n_levels / 10 + steps / 10_000
        records.append(record(spec.algo, spec.seed, score + spec.seed / 10, spec.dataset, spec.wrapper))
    offline = {"bc", "bcq", "cql", "iql", "dt"}
    for name, expected in (("level-diversity-helps", offline), ("diversity-beats-more-data", offline),
                           ("offline-below-online-ppo", offline)):
        verdict = evaluate_claim(named([name])[0], records)
        compared = {c.label.split("algorithm=")[1].split(",")[0] for c in verdict.comparisons}
        assert compared == expected and verdict.verdict == "reproduced", name
    assert len(evaluate_claim(named(["offline-below-online-ppo"])[0], records).comparisons) == 2 * len(offline)
