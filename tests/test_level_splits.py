"""Level splits: resets stay inside their split, levels are reproducible and recorded, datasets
never contain val/test levels, bad splits are refused, and the leaderboard reports the gap."""

import hashlib
import math

import numpy as np
import pytest
from scipy import stats

from offrl_bench.core.errors import UsageError
from offrl_bench.envs import make_env
from offrl_bench.envs.level_splits import DEFAULT_RANGES, MAX_LEVEL, check_disjoint, parse_range, split_of
from offrl_bench.records.leaderboard import leaderboard

MINIGRID = "MiniGrid-DoorKey-6x6-v0"


def grid_layout(env) -> bytes:
    """What a MiniGrid level shows, read from the environment itself (not from the wrapper's info):
    every cell's object, colour and state, and where the agent starts, facing which way."""
    world = env.unwrapped
    return world.grid.encode().tobytes() + bytes([*map(int, world.agent_pos), int(world.agent_dir)])


def layouts_of_levels(env_id: str, low: int, high: int) -> set[bytes]:
    env = make_env(env_id)
    found = set()
    for level in range(low, high + 1):
        env.reset(seed=level)
        found.add(grid_layout(env))
    return found


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_resets_draw_uniformly_from_the_split_only(split):
    """Every id of the split whose layout no earlier split shows is drawn, uniformly (chi-square at 1%)."""
    env = make_env(MINIGRID, f"levels:{split}")
    low, high = DEFAULT_RANGES[split]
    levels = [env.reset(seed=seed)[1]["level"] for seed in range(2000)]
    assert all(low <= level <= high for level in levels)
    if split != "test":  # small splits: every accepted level is drawn
        accepted = set(range(low, high + 1)) - {level for level in range(low, high + 1)
                                                if split == "val" and _fingerprint(level) in env.excluded}
        counts = np.bincount(np.array(levels) - low, minlength=high - low + 1)[[a - low for a in sorted(accepted)]]
        assert set(levels) == accepted and len(accepted) > 20
        assert stats.chisquare(counts).pvalue > 0.01
    assert [env.reset(seed=s)[1]["level"] for s in range(20)] == levels[:20]  # same seeds, same levels


def _fingerprint(level: int) -> str:
    from offrl_bench.envs.level_splits import level_fingerprint

    env = make_env(MINIGRID)
    env.reset(seed=level)
    return level_fingerprint(env)


@pytest.mark.parametrize("split", ["val", "test"])
def test_val_and_test_levels_show_no_layout_of_an_earlier_split(split):
    """Disjoint in what the environment draws, not just in ids: DoorKey-6x6's test ids repeat a train
    layout 27% of the time without the check (benchmarks/level_leak.py); with it, never."""
    earlier = layouts_of_levels(MINIGRID, *DEFAULT_RANGES["train"])
    if split == "test":
        earlier |= layouts_of_levels(MINIGRID, *DEFAULT_RANGES["val"])
    env = make_env(MINIGRID, f"levels:{split}")
    drawn = []
    for seed in range(300):
        info = env.reset(seed=seed)[1]
        drawn.append(grid_layout(env))
        assert info["level_fingerprint"] == hashlib.sha1(drawn[-1]).hexdigest()[:16]
    assert not any(layout in earlier for layout in drawn)
    assert len(set(drawn)) > 30  # many unseen layouts, not a few repeated


def test_a_layout_space_too_small_for_unseen_test_levels_is_refused():
    """MiniGrid-DoorKey-5x5 has 48 layouts: 200 train levels show nearly all of them."""
    with pytest.raises(UsageError, match=r"MiniGrid-DoorKey-5x5-v0 cannot give test levels unseen in the train and "
                                         r"val levels: those show 48 distinct layouts, 100% of 200 probed test levels "
                                         r"repeat one of them, and only 0 unseen layouts remain"):
        make_env("MiniGrid-DoorKey-5x5-v0", "levels:test")
    few_train_levels = make_env("MiniGrid-DoorKey-5x5-v0", "levels:split=test,train=0-19,val=20-29")
    seen = layouts_of_levels("MiniGrid-DoorKey-5x5-v0", 0, 29)
    for seed in range(100):
        few_train_levels.reset(seed=seed)
        assert grid_layout(few_train_levels) not in seen


def test_unseeded_resets_continue_the_seeded_sequence():
    a, b = make_env(MINIGRID, "levels:train"), make_env(MINIGRID, "levels:train")
    a.reset(seed=5)
    b.reset(seed=5)
    assert [a.reset()[1]["level"] for _ in range(10)] == [b.reset()[1]["level"] for _ in range(10)]


def test_a_level_fixes_the_layout():
    env = make_env(MINIGRID)
    first = env.reset(seed=17)[0]
    assert np.array_equal(env.reset(seed=17)[0], first)
    layouts = {env.reset(seed=level)[0].tobytes() for level in range(50)}
    assert len(layouts) > 10  # the seed really generates different levels
    split = make_env(MINIGRID, "levels:split=train,train=17-17")
    observation, info = split.reset(seed=3)
    assert info["level"] == 17 and np.array_equal(observation, first)


def test_global_rngs_untouched():
    np.random.seed(123)
    expected = np.random.random()
    np.random.seed(123)
    env = make_env(MINIGRID, "levels:val")
    for seed in range(5):
        env.reset(seed=seed)
    assert np.random.random() == expected


@pytest.mark.parametrize("spec, message", [
    ("levels:valid", "unknown split 'valid'; one of: train, val, test"),
    ("levels", "missing split"),
    ("levels:split=train,val=150-249", "level splits train (0-199) and val (150-249) overlap"),
    ("levels:split=test,test=5-300", "overlap"),
    ("levels:split=test,test=10-99999999999", "outside the valid level ids 0-2147483647"),
    ("levels:split=train,train=-5-3", "is not a level range"),
    ("levels:split=train,train=9-3", "FIRST > LAST"),
    ("levels:split=train,seeds=3", "unknown parameter 'seeds'"),
    ("levels:train:split=val", "give the split once"),
])
def test_bad_splits(spec, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_env(MINIGRID, spec)


def test_unknown_game():
    with pytest.raises(UsageError, match="cannot make environment 'MiniGrid-NoSuchGame-v0'"):
        make_env("MiniGrid-NoSuchGame-v0", "levels:train")


def test_dataset_holds_only_train_levels():
    from offrl_bench.data.datasets import load_dataset
    from offrl_bench.data.make import DatasetRequest, make_dataset

    request = DatasetRequest(MINIGRID, "medium", episodes=40, wrapper="levels:train", name="test/doorkey/train-v0")
    make_dataset(request, log=lambda m: None)
    dataset = load_dataset(request.dataset_id)
    levels = dataset.metadata["episode_levels"]
    assert len(levels) == 40 and all(0 <= level <= 199 for level in levels)
    val, test = DEFAULT_RANGES["val"], DEFAULT_RANGES["test"]
    assert not any(val[0] <= level <= val[1] or test[0] <= level <= test[1] for level in levels)
    assert dataset.observations.shape[1] == 147 and dataset.ref_max_score > dataset.ref_min_score
    # The dataset names what its levels show, so an evaluation can be checked against it.
    assert dataset.metadata["level_fingerprints"] == sorted({_fingerprint(level) for level in levels})


def _record(algorithm: str, wrapper: str, seed: int, score: float) -> dict:
    return {"run_id": f"{algorithm}{wrapper}{seed}", "suite": "generalization", "dataset": "d", "wrapper": wrapper,
            "algorithm": algorithm, "seed": seed, "return_mean": score / 100, "normalized_score": score,
            "updates": 10, "train_seconds": 1.0}


def test_leaderboard_split_and_generalization_gap():
    records = [_record(algo, f"levels:{split}", seed, score + seed)
               for algo, scores in (("bc", {"train": 90, "val": 70, "test": 60}),
                                    ("iql", {"train": 95, "val": 50, "test": 40}))
               for split, score in scores.items() for seed in range(3)]
    frame = leaderboard(records)
    assert list(frame.columns[-3:]) == ["split", "generalization_gap", "warning"]  # 3 seeds: indicative
    bc = frame[(frame.algorithm == "bc") & (frame.dataset == "d")]
    assert sorted(bc.split) == ["test", "train", "val"]
    assert np.allclose(bc.generalization_gap, 30.0) and np.allclose(frame[frame.algorithm == "iql"].generalization_gap,
                                                                     55.0)
    aggregates = frame[frame.dataset == "ALL"]
    assert len(aggregates) == 6 and set(aggregates.wrapper) == {"levels:train", "levels:val", "levels:test"}
    assert "drop_from_default" not in frame
    plain = leaderboard([_record("bc", "", seed, 50.0) for seed in range(2)])
    assert "split" not in plain and not any(math.isnan(x) for x in plain.normalized_mean)


def test_procgen_levels():
    """Procgen through its gym3 interface (optional; see docs/papers/generalization.md for the --no-deps install)."""
    pytest.importorskip("procgen", reason="procgen is not installed (optional; see docs/papers/generalization.md)")
    from offrl_bench.envs.procgen import EASY_SCORE_RANGES, GAMES

    assert set(EASY_SCORE_RANGES) == set(GAMES) and len(GAMES) == 16
    env = make_env("procgen/coinrun-v0", "levels:val")
    first, info = env.reset(seed=4)
    assert 200 <= info["level"] <= 249 and first.shape == (64, 64, 3)
    assert np.array_equal(env.reset(seed=4)[0], first)  # same seed -> same level -> same frame
    frames = {make_env("procgen/coinrun-v0", f"levels:split=train,train={lvl}-{lvl}").reset(seed=0)[0].tobytes()
              for lvl in range(8)}
    assert len(frames) > 1


def test_procgen_test_levels_show_no_first_frame_of_a_train_level():
    """Procgen fingerprints a level by its first frame. On coinrun, test ids alone repeat a train or
    val level's first frame in about 3% of resets (benchmarks/level_leak.py: 26 of 1,000); the
    wrapper's test levels never do."""
    pytest.importorskip("procgen", reason="procgen is not installed (optional; see docs/papers/generalization.md)")
    from offrl_bench.envs.level_splits import level_fingerprint

    env = make_env("procgen/coinrun-v0")
    first, _ = env.reset(seed=3)
    assert level_fingerprint(env) == hashlib.sha1(first.tobytes()).hexdigest()[:16]
    seen = set()
    for level in range(DEFAULT_RANGES["train"][0], DEFAULT_RANGES["val"][1] + 1):
        env.reset(seed=level)
        seen.add(level_fingerprint(env))
    test = make_env("procgen/coinrun-v0", "levels:test")
    drawn = []
    for seed in range(300):
        test.reset(seed=seed)
        drawn.append(level_fingerprint(test))
    assert not seen & set(drawn) and len(set(drawn)) > 280


def test_unknown_procgen_game_is_a_usage_error():
    pytest.importorskip("procgen", reason="procgen is not installed (optional; see docs/papers/generalization.md)")
    with pytest.raises(UsageError, match="cannot make environment 'procgen/notagame-v0'"):
        make_env("procgen/notagame-v0", "levels:train")


def test_generalization_suite_varies_levels_at_a_fixed_size_and_scores_all_on_the_same_test_levels():
    from offrl_bench.core import registry
    from offrl_bench.suites.generalization import SIZE_FACTOR, STEPS

    suite = registry.suite("generalization")
    specs = suite.runs()
    requests = {request.dataset_id: request for request in suite.datasets}
    levels = {request.dataset_id: make_env(request.env_id, request.wrapper).get_wrapper_attr("high") + 1
              for request in suite.datasets}
    expert_at_steps = sorted(levels[d] for d, r in requests.items() if r.quality == "expert" and r.steps == STEPS)
    assert expert_at_steps == [25, 50, 100, 200]
    assert {r.steps for r in requests.values()} == {STEPS, SIZE_FACTOR * STEPS}
    assert all(r.episodes is None for r in requests.values())  # sized in transitions, not episodes
    for spec in specs:
        if split_of(spec.wrapper) == "train":  # each dataset is scored on exactly its own levels
            assert spec.wrapper == requests[spec.dataset].wrapper
        else:
            assert spec.wrapper == "levels:test"
    assert {spec.algo for spec in specs} == {"bc", "bcq", "cql", "iql", "dt", "ppo"}
    assert len({spec.seed for spec in specs}) >= 5


def test_level_ranges_parse_with_their_bounds_inclusive():
    assert parse_range("train", "0-199") == (0, 199) and parse_range("test", 7) == (7, 7)
    assert parse_range("test", f"5-{MAX_LEVEL}") == (5, MAX_LEVEL)
    for bad in ("5-3", f"0-{MAX_LEVEL + 1}", "-1", "a-b"):
        with pytest.raises(ValueError, match="level"):
            parse_range("test", bad)


def test_splits_sharing_even_one_level_id_overlap():
    check_disjoint({"train": (0, 9), "test": (10, 19)})
    with pytest.raises(ValueError, match=r"level splits train \(0-10\) and test \(10-19\) overlap"):
        check_disjoint({"train": (0, 10), "test": (10, 19)})


def test_no_suite_scores_on_levels_whose_layouts_its_data_shows():
    """For every registered suite, each val/test evaluation is checked against the layouts of the
    levels its dataset was collected on, read from the environment's grids: at most 10% of resets
    may repeat one (the level-split wrapper makes it 0). And against their *maps* (the grid without
    the agent): at most 10% may repeat one, unless no generalization claim reads the suite's rows on
    that environment (DoorKey-6x6, whose test levels are new start poses on its 36 known maps)."""
    from offrl_bench.core import registry
    from offrl_bench.envs.level_splits import split_of
    from offrl_bench.trust.claims import named

    checked = {}
    for name in registry.available(registry.SUITES):
        suite = registry.suite(name)
        requests = {request.dataset_id: request for request in suite.datasets}
        for spec in suite.runs():
            request = requests[spec.dataset]
            if split_of(spec.wrapper) in ("val", "test") and request.env_id.startswith("MiniGrid-"):
                checked.setdefault((request.env_id, request.wrapper, spec.wrapper), []).append(f"{name}/{spec.algo}")
    assert checked, "no suite evaluates MiniGrid on held-out levels"
    for (env_id, data_wrapper, eval_wrapper), runs in checked.items():
        collected = make_env(env_id, data_wrapper)
        seen = layouts_of_levels(env_id, collected.get_wrapper_attr("low"), collected.get_wrapper_attr("high"))
        seen_maps = {layout[:-3] for layout in seen}  # the grid encoding, without position and direction
        evaluated = make_env(env_id, eval_wrapper)
        repeats = known_maps = 0
        for seed in range(200):
            evaluated.reset(seed=seed)
            repeats += grid_layout(evaluated) in seen
            known_maps += grid_layout(evaluated)[:-3] in seen_maps
        assert repeats / 200 <= 0.10, f"{env_id} {eval_wrapper} ({runs[0]}...): {repeats} of 200 resets repeat a layout"
        if known_maps / 200 > 0.10:  # then no claim about unseen levels may read these rows
            dataset = next(r.dataset_id for name in registry.available(registry.SUITES)
                           for r in registry.suite(name).datasets if (r.env_id, r.wrapper) == (env_id, data_wrapper))
            readers = [c.name for c in named(["generalization-gap", "bc-*", "offline-below-online-ppo"])
                       if c.a.matches({"dataset": dataset, "wrapper": eval_wrapper})]
            assert readers == ["bc-ppo-reaches-90-sooner"], (env_id, known_maps, readers)


@pytest.mark.slow
def test_shipped_procgen_coinrun_expert_beats_random_on_train_and_test_levels():
    """The coinrun PPO ships (4M steps on train levels 0-199, about 70 minutes on one CPU core) and acts
    by sampling; it succeeds far more often than random actions on train and on unseen test levels."""
    pytest.importorskip("procgen", reason="procgen is not installed (optional; see docs/papers/generalization.md)")
    from offrl_bench.data import behaviour

    assert behaviour.checkpoint_path("procgen/coinrun-v0", "expert").parent == behaviour.SHIPPED_DIR / "procgen"
    policy = behaviour.load_sb3_policy("procgen/coinrun-v0", "expert", np.random.default_rng(0))
    for split in ("train", "test"):
        env_fn = lambda split=split: make_env("procgen/coinrun-v0", f"levels:{split}")  # noqa: E731
        expert = behaviour.mean_return(env_fn, policy, 20)
        random = behaviour.mean_return(env_fn, behaviour.random_policy(env_fn().action_space,
                                                                       np.random.default_rng(0)), 20)
        assert expert >= random + 3.0, (split, expert, random)


def test_a_map_fingerprint_leaves_out_the_start_pose_and_finds_every_doorkey_test_map_known():
    """The audit's check, done as a new user would: the map is the grid without the agent. DoorKey-6x6's
    200 train levels show 36 maps, and its test levels (through the split wrapper, whose layouts
    include the start pose) show only those maps: they differ from train levels in the start pose
    alone. MultiRoom-N2-S4's test levels show new maps."""
    from offrl_bench.envs.level_splits import level_fingerprint, map_fingerprint

    def fingerprints(env_id, wrapper="", seeds=range(200)):
        env = make_env(env_id, wrapper)
        found = []
        for seed in seeds:
            env.reset(seed=seed)
            found.append((level_fingerprint(env), map_fingerprint(env)))
            assert found[-1][1] == hashlib.sha1(env.unwrapped.grid.encode().tobytes()).hexdigest()[:16]
        return found

    train = fingerprints(MINIGRID)
    assert len({plan for _, plan in train}) == 36 and len({pose for pose, _ in train}) > 150
    test = fingerprints(MINIGRID, "levels:test", range(100))
    assert not {pose for pose, _ in test} & {pose for pose, _ in train}  # new layouts ...
    assert {plan for _, plan in test} <= {plan for _, plan in train}  # ... on known maps
    multiroom = "MiniGrid-MultiRoom-N2-S4-v0"
    known = {plan for _, plan in fingerprints(multiroom)}
    assert sum(plan not in known for _, plan in fingerprints(multiroom, "levels:test", range(100))) >= 95
