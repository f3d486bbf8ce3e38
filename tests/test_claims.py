"""The claims engine: verdicts from hand-made records whose answer is known, the CLI, and a claim
shipped by a third-party package through the ``offrl_bench.claims`` entry point."""

import json

import numpy as np
import pytest

from conftest import assert_usage_error, install_on_path, run_cli_process
from offrl_bench.core import registry
from offrl_bench.trust.claim_tables import markdown, no_data_line
from offrl_bench.trust.claims import (
    AT_CEILING,
    CONTRADICTED,
    INCONCLUSIVE,
    NO_DATA,
    REPRODUCED,
    UNTRAINED,
    Claim,
    Rows,
    evaluate_claim,
    evaluate_directory,
    installed,
    named,
)


def record(algorithm: str, seed: int, score: float, dataset: str = "d", wrapper: str = "", **extra) -> dict:
    return {"run_id": f"{algorithm}|{dataset}|{wrapper}|{seed}|{extra.get('columns')}|{extra.get('algorithm_label')}",
            "suite": "s",
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
    assert not comparison.paired and comparison.method == "Welch t (Hsu df)"  # two learners: independent
    # Welch's standard error with min(n_a, n_b) - 1 = 4 df, by hand
    half = 2.776445 * np.sqrt(np.var(a, ddof=1) / 5 + np.var(b, ddof=1) / 5)
    expected = (comparison.difference - half, comparison.difference + half)
    assert (comparison.low, comparison.high) == pytest.approx(expected)
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


@pytest.mark.parametrize("relation, margin, edge", [("less", 3.0, -3.0), ("greater", 3.0, 3.0),
                                                    ("at_least", 3.0, -3.0), ("equivalent", 3.0, None)])
def test_the_seed_estimate_measures_the_distance_to_the_claims_boundary(relation, margin, edge):
    records = two_sides(scores(50, 10, seed=3), scores(50, 10, seed=4))
    (comparison,) = evaluate_claim(claim(relation, margin=margin), records).comparisons
    assert comparison.verdict == INCONCLUSIVE
    if edge is None:  # equivalence: the nearer of its two edges
        edge = min((-margin, margin), key=lambda e: abs(comparison.difference - e))
    half, distance = (comparison.high - comparison.low) / 2, abs(comparison.difference - edge)
    assert comparison.more_seeds == pytest.approx(5 * (half / distance) ** 2 - 5, abs=1)


def test_one_seed_a_side_decides_nothing_and_estimates_no_seeds():
    verdict = evaluate_claim(claim("greater"), two_sides([60.0], [40.0]))
    (comparison,) = verdict.comparisons
    assert verdict.verdict == INCONCLUSIVE and comparison.more_seeds is None
    assert "no estimate of the seeds it needs" in verdict.text() and "indicative only (1 seeds < 5)" in verdict.text()


def test_a_directional_claim_must_clear_its_minimum_effect():
    """A real but small drop (about 2 points, tightly measured) reproduces "A < B" and contradicts
    "A < B by more than 5"; between the two it is undecided."""
    records = two_sides(scores(48, 0.5, seed=8), scores(50, 0.5, seed=9))
    assert evaluate_claim(claim("less"), records).verdict == REPRODUCED
    five = evaluate_claim(claim("less", margin=5), records)
    assert five.verdict == CONTRADICTED and "minimum effect 5" in five.text()
    assert five.comparisons[0].high < 0 and five.comparisons[0].low > -5
    assert evaluate_claim(claim("less", margin=2), records).verdict == INCONCLUSIVE
    # the mirror cases: "A > B by more than 5" and "A >= B - 5" on a 2-point advantage of B
    assert evaluate_claim(claim("greater", margin=5), records).verdict == CONTRADICTED
    assert evaluate_claim(claim("at_least", margin=5), records).verdict == REPRODUCED
    assert evaluate_claim(claim("at_least", margin=1), records).verdict == CONTRADICTED
    assert evaluate_claim(claim("at_most", margin=1), records).verdict == REPRODUCED
    relative = evaluate_claim(claim("less", margin=0.1, relative_margin=True), records)  # 10% of 50 = 5
    assert relative.verdict == CONTRADICTED and relative.comparisons[0].boundary == pytest.approx(5, abs=0.3)
    assert claim("less", margin=0.1, relative_margin=True).assertion == "A < B - 10% of B"


def test_equivalence_needs_the_whole_interval_inside_the_margin():
    close = two_sides(scores(50, 0.5, seed=5), scores(50.2, 0.5, seed=6))
    far = two_sides(scores(70, 0.5, seed=5), scores(50, 0.5, seed=6))
    assert evaluate_claim(claim("equivalent", margin=5), close).verdict == REPRODUCED
    assert evaluate_claim(claim("equivalent", margin=5), far).verdict == CONTRADICTED


def test_pairing_comes_from_the_records_not_from_the_claim():
    """The same agent evaluated twice (same learner, seeds, budget; another wrapper): a per-seed drop
    of 1 point under seed-to-seed spread of 30 is decided paired. The same numbers from two
    different learners are independent and undecided."""
    base = scores(50, 30, seed=7)
    same_agent = ([record("iql", i, s - 1, wrapper="noisy") for i, s in enumerate(base)]
                  + [record("iql", i, s) for i, s in enumerate(base)])
    noisy = Claim(name="c", paper="p", statement="s", a=Rows(wrapper="noisy"), b=Rows(wrapper="none"), relation="less")
    paired = evaluate_claim(noisy, same_agent)
    assert paired.verdict == REPRODUCED and paired.comparisons[0].paired
    assert paired.comparisons[0].low == pytest.approx(-1) and paired.comparisons[0].high == pytest.approx(-1)
    assert "(paired;" in paired.text()
    two_learners = two_sides([s - 1 for s in base], base)
    independent = evaluate_claim(claim("less"), two_learners)
    assert independent.verdict == INCONCLUSIVE and not independent.comparisons[0].paired
    assert "(independent;" in independent.text()
    other_seeds = same_agent[:5] + [record("iql", i + 10, s) for i, s in enumerate(base)]
    assert not evaluate_claim(noisy, other_seeds).comparisons[0].paired  # no shared seed: nothing to pair
    spec = {"updates": 1_000, "eval_episodes": 30, "precision": "fp32"}
    with_specs = [{**r, "spec": spec} for r in same_agent]
    assert evaluate_claim(noisy, with_specs).comparisons[0].paired
    other_budget = with_specs[:5] + [{**r, "spec": {**spec, "updates": 9}} for r in with_specs[5:]]
    assert not evaluate_claim(noisy, other_budget).comparisons[0].paired  # differs in more than the factor


def test_primary_comparisons_decide_under_holm_and_secondary_ones_decide_nothing():
    """Four primary comparisons decide as a family under Holm; a contradicted secondary comparison
    does not contradict the claim, and without named primaries it does."""
    from scipy import stats

    records = []
    for offset, dataset in enumerate(("d1", "d2", "d3", "d4")):
        base = scores(50, 20, seed=20 + offset)
        gains = [8.9, 7.5, 11.9 - offset, 9.4, 10.2]
        records += [record("x", i, s - g, dataset, "w") for i, (s, g) in enumerate(zip(base, gains))]
        records += [record("x", i, s, dataset) for i, s in enumerate(base)]
    base = scores(50, 20, seed=30)
    records += [record("x", i, s + 10 + 0.1 * i, "d5", "w") for i, s in enumerate(base)]  # reversed, clearly
    records += [record("x", i, s, "d5") for i, s in enumerate(base)]
    lower = dict(name="c", paper="p", statement="s", a=Rows(wrapper="w"), b=Rows(wrapper="none"), relation="less",
                 per=("dataset",))
    verdict = evaluate_claim(Claim(**lower, primary=Rows(dataset=("d1", "d2", "d3", "d4"))), records)
    assert verdict.verdict == REPRODUCED, verdict.text()
    assert "4 primary, 4 in the claimed direction, 0 against; 1 secondary" in verdict.text()
    (secondary,) = [c for c in verdict.comparisons if not c.primary]
    assert secondary.verdict == CONTRADICTED and "secondary, p=" in secondary.numbers()
    # a secondary comparison's p is unadjusted: twice the smaller one-sided p, by hand
    t_secondary = secondary.difference / ((secondary.high - secondary.low) / (2 * stats.t.ppf(0.975, 4)))
    assert secondary.p_value == pytest.approx(2 * stats.t.sf(abs(t_secondary), 4), rel=1e-6)
    # Holm by hand: two-sided-equivalent p-values, the smallest times 4, the next times 3, ... made monotone
    primary = [c for c in verdict.comparisons if c.primary]
    raw = sorted(2 * stats.t.cdf(c.difference / ((c.high - c.low) / (2 * stats.t.ppf(0.975, 4))), 4) for c in primary)
    expected = np.maximum.accumulate([min(1, (4 - rank) * q) for rank, q in enumerate(raw)])
    assert sorted(c.p_value for c in primary) == pytest.approx(expected, rel=1e-6)
    everything = evaluate_claim(Claim(**lower), records)  # no primary named: all five decide, d5 contradicts
    assert everything.verdict == CONTRADICTED
    assert "5 primary, 4 in the claimed direction, 1 against" in everything.text()
    with pytest.raises(ValueError, match="primary may only select"):
        Claim(**lower, primary=Rows(algorithm="x"))


def test_an_undecided_secondary_comparison_estimates_its_seeds_at_95_percent():
    records = []
    for dataset, gain in (("d1", 20.0), ("d2", 2.0)):
        base = scores(50, 10, seed=40)
        noise = scores(0, 5, seed=41)
        records += [record("x", i, s + gain + n, dataset, "w") for i, (s, n) in enumerate(zip(base, noise))]
        records += [record("x", i, s, dataset) for i, s in enumerate(base)]
    gains = Claim(name="c", paper="p", statement="s", a=Rows(wrapper="w"), b=Rows(wrapper="none"),
                  relation="greater", per=("dataset",), primary=Rows(dataset="d1"))
    verdict = evaluate_claim(gains, records)
    secondary = next(c for c in verdict.comparisons if not c.primary)
    assert secondary.verdict == INCONCLUSIVE
    half, distance = (secondary.high - secondary.low) / 2, abs(secondary.difference)  # the 95% interval's
    assert secondary.more_seeds == pytest.approx(5 * (half / distance) ** 2 - 5, abs=1)
    assert gains.a.describe() == "wrapper=w" and Rows().describe() == "all runs"


def test_holm_keeps_a_family_of_marginal_comparisons_undecided():
    from offrl_bench.trust.claim_statistics import holm

    # each alone below 0.05; as a family of four only the smallest is decided
    assert holm([0.01, 0.04, 0.03, 0.02]) == pytest.approx([0.04, 0.06, 0.06, 0.06])
    assert holm([0.001, 0.02, 0.5]) == pytest.approx([0.003, 0.04, 0.5])


def test_both_sides_at_the_ceiling_are_no_evidence():
    records = two_sides(scores(100.4, 0.2, seed=10), scores(100.6, 0.2, seed=11))
    verdict = evaluate_claim(claim("at_most", margin=5), records)
    assert verdict.verdict == AT_CEILING and verdict.comparisons[0].verdict == AT_CEILING
    assert "1 at ceiling (no evidence)" in verdict.text()
    just_under = two_sides(scores(99.3, 0.1, seed=10), scores(99.5, 0.1, seed=11))  # within a point of 100
    assert evaluate_claim(claim("at_most", margin=5), just_under).verdict == AT_CEILING
    below = two_sides(scores(97.0, 0.2, seed=10), scores(100.6, 0.2, seed=11))  # one side off the ceiling
    assert evaluate_claim(claim("at_most", margin=5), below).verdict == REPRODUCED


def test_a_claim_that_requires_a_trained_component_is_not_decided_on_runs_without_one(tmp_path):
    """MOREC's claims require ``dynamics_reward_learned`` = 1 of every side-A run (final losses or
    a CSV column): one run that lacks it, or records 0, leaves the comparison undecided."""
    requires = ("dynamics_reward_learned", "reward untrained")
    clear = claim("greater", requires=requires)
    learned = {"final_losses": {"dynamics_reward_learned": 1.0}}
    records = ([record("a", i, s, **learned) for i, s in enumerate(scores(60, 2, seed=1))]
               + [record("b", i, s) for i, s in enumerate(scores(40, 2, seed=2))])  # side B needs nothing
    assert evaluate_claim(clear, records).verdict == REPRODUCED
    records[3]["final_losses"] = {"dynamics_reward_learned": 0.0}
    del records[4]["final_losses"]
    verdict = evaluate_claim(clear, records)
    assert verdict.verdict == UNTRAINED and verdict.comparisons[0].verdict == UNTRAINED
    assert verdict.text() == "reward untrained (2 of 5 runs of a: dynamics_reward_learned is not 1)"
    assert evaluate_claim(claim("greater"), records).verdict == REPRODUCED  # a claim without the requirement
    # a measurement CSV carries it as a column
    (tmp_path / "runs.jsonl").write_text(json.dumps(record("x", 0, 1.0)) + "\n")
    lower = Claim(name="c", paper="p", statement="s", a=Rows(algorithm="chosen"), b=Rows(algorithm="random"),
                  relation="less", metric="value", source="errors.csv", produced_by="python measure.py",
                  requires=requires)
    rows = [f"{name},d,,{seed},{value},{int(seed != 2)}" for seed in range(5)
            for name, value in (("chosen", 0.1 + seed / 100), ("random", 0.3 + seed / 100))]
    (tmp_path / "errors.csv").write_text("algorithm,dataset,wrapper,seed,value,dynamics_reward_learned\n"
                                         + "\n".join(rows) + "\n")
    (verdict,) = evaluate_directory(tmp_path, [lower])
    assert verdict.text() == "reward untrained (1 of 5 runs of chosen: dynamics_reward_learned is not 1)"
    (tmp_path / "errors.csv").write_text((tmp_path / "errors.csv").read_text().replace(",0\n", ",1\n"))
    (verdict,) = evaluate_directory(tmp_path, [lower])
    assert verdict.verdict == REPRODUCED


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
                  relation="less", metric="value", source="errors.csv", produced_by="python measure.py --csv DIR")
    (verdict,) = evaluate_directory(tmp_path, [lower])
    assert verdict.verdict == NO_DATA  # the benchmark has not written it here
    rows = [f"{name},d,,{seed},{value}" for seed in range(5)
            for name, value in (("chosen", 0.1 + seed / 100), ("random", 0.3 + seed / 100))]
    (tmp_path / "errors.csv").write_text("algorithm,dataset,wrapper,seed,value\n" + "\n".join(rows) + "\n")
    (verdict,) = evaluate_directory(tmp_path, [lower])
    assert verdict.verdict == REPRODUCED and verdict.comparisons[0].difference == pytest.approx(-0.2)
    assert verdict.comparisons[0].paired  # a seed is one unit in a measurement file: both rows measure it


@pytest.mark.parametrize("fields", [dict(relation="bigger"), dict(relation="equivalent"),
                                    dict(relation="greater", margin=-1), dict(relation="greater", metric="value"),
                                    dict(relation="greater", per=("colour",))])
def test_malformed_claims_are_rejected_when_declared(fields):
    with pytest.raises(ValueError):
        Claim(name="c", paper="p", statement="s", a=Rows(), b=Rows(), **fields)


def test_builtin_claims_cover_every_paper():
    papers = {c.paper.split(" (")[0] for c in installed()}  # STORI's secondary form is "STORI (...)"
    assert papers == {"STORI", "STORI robustness check", "Generalization gap", "SS-ORL", "MOREC", "Offline-to-online",
                      "Data quality"}


def test_builtin_claims_state_their_margins_and_name_at_most_four_primary_comparisons():
    """Every built-in claim tests against a stated margin or minimum effect, and on every published
    reference it forms at most four primary comparisons (the rest are secondary)."""
    from offrl_bench.trust.claims import MAX_PRIMARY
    from offrl_bench.trust.reference import reference_dir

    assert all(c.margin > 0 for c in installed())
    for suite in ("default", "generalization", "ssorl", "morec-halfcheetah", "atari", "stori"):
        for verdict in evaluate_directory(reference_dir(suite)):
            assert len(verdict.primary) <= MAX_PRIMARY, (suite, verdict.claim.name)


def test_claims_command(cli, tmp_path):
    records = ([record("iql", i, s, "offrl/x/mixed-v0") for i, s in enumerate(scores(90, 1))]
               + [record("bc", i, s, "offrl/x/mixed-v0") for i, s in enumerate(scores(40, 1))])
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    result = cli("claims", str(tmp_path))
    assert result.code == 0, result.err
    assert "[reproduced (independent; minimum effect 5; 1 primary, 1 in the claimed direction, 0 against)] " \
           "offline-rl-beats-bc-on-mixed" in result.out
    assert "dataset=offrl/x/mixed-v0, algorithm=iql: A 90." in result.out
    # the claims without data: one line, each with what produces its data (read off the references)
    last = result.out.strip().splitlines()[-1]
    others = [c for c in installed() if c.name != "offline-rl-beats-bc-on-mixed"]
    assert last == no_data_line(others) and last.startswith("no data here for: ")
    assert "generalization-gap (offrl-bench run --suite generalization)" in last  # DoorKey: known maps
    assert "morec-lowers-true-error (python benchmarks/morec_one_step_error.py" in last
    assert sum(f"] {c.name} (" in result.out for c in installed()) == 1
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
    assert "[reproduced (independent; minimum effect 0; 1 primary, 1 in the claimed direction, 0 against)] " \
           "my-paper-a-beats-b (My paper)" in result.stdout
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


def test_the_stori_claims_tell_data_collected_under_a_type_from_clean_data():
    """On records of exactly the stori suite's runs: the trained-where-tested claims compare each
    learner trained and evaluated under a type with itself trained and evaluated in the default
    environment, per environment (dropped frames primary for type 3.2, the masked feature
    secondary); the robustness claims read only the clean-data agents, each with itself."""
    from offrl_bench.records.leaderboard import data_wrapper_of

    records = []
    for spec in registry.suite("stori").runs():
        trained_in = spec.wrapper if data_wrapper_of({"suite": "stori", "dataset": spec.dataset}) else ""
        # clean agents lose 2 points under a type, agents trained under it 20
        score = 90.0 - (20.0 if trained_in else 2.0 if spec.wrapper else 0.0) + spec.seed / 10
        records.append(record(spec.algo, spec.seed, score, spec.dataset, spec.wrapper, suite="stori",
                              env_id=spec.dataset.split("/")[1]))
    for kind, primary, secondary in (("1", 4, 0), ("2.1", 4, 0), ("2.2", 4, 0), ("3.2", 4, 4)):
        verdict = evaluate_claim(named([f"stori-trained-in-type-{kind}-loses-score"])[0], records)
        assert (len(verdict.primary), len(verdict.comparisons) - len(verdict.primary)) == (primary, secondary)
        assert verdict.verdict == "reproduced" and all(c.paired for c in verdict.comparisons)
        assert {round(c.difference, 6) for c in verdict.comparisons} == {-20.0}
        robustness = evaluate_claim(named([f"robustness-type-{kind}-lowers-score"])[0], records)
        assert len(robustness.primary) == 4 and robustness.verdict == "contradicted"
        assert {round(c.difference, 6) for c in robustness.comparisons} == {-2.0}


def test_a_comparison_resting_on_a_still_rising_row_says_so_and_so_does_its_verdict():
    """A's scores climb 10 points over the last evaluation interval in every seed: the comparison is
    still decided, and it and the verdict name the still-rising side; B's flat curves are not marked."""
    def curve(final, gain):
        return {"learning_curve": [[1000, final - gain], [2000, final]]}

    records = [record("a", seed, s, **curve(s, 10.0 + seed)) for seed, s in enumerate(scores(90, 1))] \
        + [record("b", seed, s, **curve(s, 0.5 - seed / 4)) for seed, s in enumerate(scores(40, 1, seed=1))]
    verdict = evaluate_claim(claim("greater", margin=5.0), records)
    assert verdict.verdict == "reproduced" and verdict.comparisons[0].rising == "A"
    assert verdict.text().endswith("rests on still-rising rows (1 of 1 primary comparisons)")
    assert verdict.comparisons[0].numbers().endswith("[still rising: A]")
    flat = [r if r["algorithm"] == "b" else {**r, **curve(r["normalized_score"], 0.0)} for r in records]
    assert "rising" not in evaluate_claim(claim("greater", margin=5.0), flat).text()


def test_a_pattern_starting_with_an_exclamation_mark_excludes_what_it_matches():
    """The data-quality claim's primaries are every mixed dataset but MinAtar Breakout's."""
    from offrl_bench.trust.paper_claims import DATA_QUALITY

    every_mixed_but_breakout = Rows(dataset=("*/mixed-v0", "!*/minatar-breakout/*"))
    assert every_mixed_but_breakout.matches({"dataset": "offrl/hopper/mixed-v0"})
    assert not every_mixed_but_breakout.matches({"dataset": "offrl/minatar-breakout/mixed-v0"})
    assert not every_mixed_but_breakout.matches({"dataset": "offrl/hopper/medium-v0"})
    assert Rows(algorithm="!dt").matches({"algorithm": "bc"}) and not Rows(algorithm="!dt").matches({"algorithm": "dt"})
    (claim,) = DATA_QUALITY
    primary = {"algorithm": "cql"}
    assert claim.primary.matches({**primary, "dataset": "offrl/x/mixed-v0"})
    assert claim.primary.matches({**primary, "dataset": "offrl/minatar-spaceinvaders/mixed-v0"})
    assert not claim.primary.matches({**primary, "dataset": "offrl/minatar-breakout/mixed-v0"})
    assert not claim.primary.matches({"algorithm": "dt", "dataset": "offrl/x/mixed-v0"})
