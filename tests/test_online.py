"""Online baselines (SB3 PPO, DQN, SAC) and offline-to-online BC -> PPO through the runner."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from offrl_bench.algorithms.bc_to_ppo import _ImitationOptimizer
from offrl_bench.algorithms.sb3_online import PPOAlgorithm
from offrl_bench.envs.level_splits import LevelSplit, training_wrapper
from offrl_bench.execution.runner import RunSpec, execute_run
from offrl_bench.records.run_store import RunStore
from tests.conftest import assert_resumes_exactly, assert_usage_error

SMALL_PPO = (("batch_size", "64"), ("n_envs", "2"), ("n_steps", "64"))


@pytest.mark.parametrize("algo, dataset, overrides", [
    ("ppo", "cartpole", SMALL_PPO),
    ("ppo", "pendulum", SMALL_PPO),
    ("dqn", "cartpole", (("batch_size", "32"), ("gradient_steps", "8"), ("learning_starts", "100"),
                         ("train_freq", "16"))),
    ("sac", "pendulum", (("batch_size", "32"), ("learning_starts", "100"))),
    ("bc_ppo", "cartpole", SMALL_PPO + (("bc_updates", "20"), ("demonstrations", "3"), ("imitation_coef", "0.5"))),
])
def test_online_run_resumes_exactly(algo, dataset, overrides, request, tmp_path):
    """Interrupted after the third learn() (the checkpoint is from the second), resumed: same
    evaluation returns and same final SB3 diagnostics as an uninterrupted run. Checks that the model,
    replay buffer, counters, schedules and every seeded random source survive a checkpoint."""
    spec = RunSpec(algo, request.getfixturevalue(f"{dataset}_expert"), 3, updates=512, eval_every=256,
                   checkpoint_every=128, eval_episodes=2, overrides=overrides)
    record = assert_resumes_exactly(spec, tmp_path, interrupt_at=300)
    assert record["env_steps"] == record["updates"] >= 512
    assert record["paradigm"] == ("offline-to-online" if algo == "bc_ppo" else "online")
    assert len((tmp_path / "uninterrupted" / "runs" / spec.run_id / "metrics.jsonl").read_text().splitlines()) == 2


def test_bc_ppo_policy_snapshot_loads_into_a_fresh_instance_and_keeps_its_pretraining(cartpole_expert, tmp_path):
    """The snapshot saved at each evaluation is what ``load_state_dict`` reads: a fresh BC -> PPO acts
    like the trained one and does not pre-train again."""
    from offrl_bench.data.datasets import load_dataset
    from offrl_bench.execution.runner import build_algorithm

    spec = RunSpec("bc_ppo", cartpole_expert, 0, updates=128, eval_every=128, checkpoint_every=128, eval_episodes=1,
                   overrides=SMALL_PPO + (("bc_updates", "20"),))
    execute_run(spec, RunStore(tmp_path))
    snapshot = torch.load(tmp_path / "runs" / spec.run_id / "policies" / "128.pt", weights_only=False)["algorithm"]
    assert snapshot["pretrained"] is True
    dataset = load_dataset(cartpole_expert)
    fresh = build_algorithm(spec, dataset)
    fresh.load_state_dict(snapshot)
    assert fresh.pretrained is True
    observations = dataset.observations[:64].numpy()
    trained = build_algorithm(spec, dataset)
    trained.load_state_dict(torch.load(tmp_path / "runs" / spec.run_id / "checkpoint.pt",
                                       weights_only=False)["algorithm"])
    assert (fresh.act(observations) == trained.act(observations)).all()


@pytest.mark.slow
@pytest.mark.parametrize("algo, dataset, steps", [("ppo", "cartpole", 30_000), ("dqn", "cartpole", 50_000),
                                                  ("sac", "pendulum", 5_000)])
def test_online_baselines_learn(algo, dataset, steps, request, tmp_path):
    """rl-baselines3-zoo settings learn within these budgets. One seed's outcome depends on the CPU's
    floating-point kernels: all three reached 100 on the AMD EPYC machine these budgets were set on;
    on this Intel Xeon PPO reaches 68.2 and DQN 51.8 (random: 0), so the bar is clear learning."""
    spec = RunSpec(algo, request.getfixturevalue(f"{dataset}_expert"), 0, updates=steps, eval_every=steps,
                   checkpoint_every=steps, eval_episodes=10)
    record = execute_run(spec, RunStore(tmp_path))
    assert record["normalized_score"] > 40, record["normalized_score"]


def test_dqn_exploration_schedule_spans_the_whole_budget(cartpole_expert, tmp_path):
    """learn() runs per evaluation stretch; epsilon must still decay over the run's budget, not the stretch."""
    overrides = (("exploration_fraction", "0.5"), ("gradient_steps", "1"), ("learning_starts", "10000"),
                 ("train_freq", "100"))
    spec = RunSpec("dqn", cartpole_expert, 0, updates=2_000, eval_every=500, checkpoint_every=500,
                   eval_episodes=1, overrides=overrides)
    execute_run(spec, store := RunStore(tmp_path))
    lines = (store.run_dir(spec.run_id) / "metrics.jsonl").read_text().splitlines()
    rates = [json.loads(line)["exploration_rate"] for line in lines]
    # 1.0 -> 0.04 linearly over the first 1,000 of 2,000 steps: 0.52 at step 500, then the floor.
    assert rates == pytest.approx([0.52, 0.04, 0.04, 0.04], abs=0.01)


def test_bc_pretraining_starts_ppo_near_the_expert(cartpole_expert, tmp_path):
    """Five expert episodes of BC before the first environment step: the first evaluation (after one
    PPO rollout) is near-expert, while PPO from scratch is still near random."""
    scores = {}
    for algo, overrides in (("ppo", ()), ("bc_ppo", (("bc_updates", "500"), ("demonstrations", "5")))):
        spec = RunSpec(algo, cartpole_expert, 0, updates=2_048, eval_every=2_048, checkpoint_every=2_048,
                       eval_episodes=5, overrides=overrides)
        scores[algo] = execute_run(spec, RunStore(tmp_path))["normalized_score"]
    assert scores["bc_ppo"] > 80 > 40 > scores["ppo"], scores


def test_imitation_optimizer_minimises_the_summed_loss():
    """zero_grad() leaves coef * grad(BC); the caller's backward adds grad(PPO): the step is on the sum."""
    torch.manual_seed(0)
    weights = torch.nn.Parameter(torch.randn(3))
    x, y = torch.randn(3), torch.randn(3)
    bc_loss = lambda: (weights * x).sum() ** 2  # noqa: E731
    ppo_loss = lambda: (weights - y).pow(2).sum()  # noqa: E731
    optimizer = _ImitationOptimizer(torch.optim.SGD([weights], lr=0.1), bc_loss, coef=0.5)
    optimizer.zero_grad()
    ppo_loss().backward()
    expected = torch.autograd.grad(ppo_loss() + 0.5 * bc_loss(), weights)[0]
    assert torch.allclose(weights.grad, expected)
    assert optimizer.last_bc_loss == pytest.approx(bc_loss().item())
    assert optimizer.param_groups[0]["lr"] == 0.1  # everything else is the wrapped optimiser's


def test_training_wrapper_moves_every_level_split_to_train():
    assert training_wrapper("levels:test") == "levels:train"
    assert training_wrapper("levels:split=val,val=200-249") == "levels:split=train,val=200-249"
    assert training_wrapper("stori:action:p=0.3+levels:test:test=5-9") == "stori:action:p=0.3+levels:train:test=5-9"
    assert training_wrapper("stori:events:p=0.1") == "stori:events:p=0.1"


def test_online_agents_train_on_train_levels_and_are_scored_on_the_wrapper_split(cartpole_expert, tmp_path,
                                                                                  monkeypatch):
    seen = []
    learn = PPOAlgorithm.learn

    def spy(self, env_fn, steps, seed, total_steps):
        env = env_fn()
        while not isinstance(env, LevelSplit):
            env = env.env
        seen.append(env.split)
        return learn(self, env_fn, steps, seed, total_steps)

    monkeypatch.setattr(PPOAlgorithm, "learn", spy)
    spec = RunSpec("ppo", cartpole_expert, 0, wrapper="levels:test", updates=512, eval_every=256,
                   checkpoint_every=256, eval_episodes=2, overrides=SMALL_PPO)
    record = execute_run(spec, RunStore(tmp_path))
    assert seen == ["train", "train"]
    assert record["wrapper"] == "levels:test"


def test_online_agents_train_and_are_scored_under_stori_wrappers(cartpole_expert, tmp_path, monkeypatch):
    """A STORI wrapper perturbs both the training environments and the evaluation episodes."""
    perturbed = []
    learn = PPOAlgorithm.learn

    def spy(self, env_fn, steps, seed, total_steps):
        env, flags = env_fn(), []
        env.reset(seed=0)
        for _ in range(300):
            _, _, terminated, truncated, info = env.step(env.action_space.sample())
            flags.append(info["stori"]["action_replaced"])
            if terminated or truncated:
                env.reset()
        perturbed.append(np.mean(flags))
        return learn(self, env_fn, steps, seed, total_steps)

    monkeypatch.setattr(PPOAlgorithm, "learn", spy)
    spec = RunSpec("ppo", cartpole_expert, 0, wrapper="stori:action:p=0.3", updates=256, eval_every=256,
                   checkpoint_every=256, eval_episodes=3, overrides=SMALL_PPO)
    record = execute_run(spec, RunStore(tmp_path))
    assert 0.15 < perturbed[0] < 0.45
    assert 0.15 < record["perturbation_rates"]["action_replaced"] < 0.45


@pytest.mark.parametrize("args, fragments", [
    (("--algo", "dqn", "--dataset", "{pendulum}"), ("'dqn' does not support continuous", "supports: discrete")),
    (("--algo", "sac", "--dataset", "{cartpole}"), ("'sac' does not support discrete", "supports: continuous")),
    (("--algo", "ppo", "--dataset", "{cartpole}", "--precision", "bf16"), ("--precision bf16", "'ppo' is online")),
    (("--algo", "ppo", "--dataset", "{cartpole}", "--set", "n_steps=0"), ("ppo.n_steps", ">= 1")),
    (("--algo", "bc_ppo", "--dataset", "{cartpole}", "--set", "imitation_coef=-1"), ("bc_ppo.imitation_coef",)),
    (("--algo", "bc_ppo", "--dataset", "{cartpole}", "--set", "demonstrations=9999"),
     ("'bc_ppo' on dataset", "demonstrations=9999 but the dataset has 10 episodes")),
])
def test_online_usage_errors(args, fragments, cli, cartpole_expert, pendulum_expert, tmp_path):
    args = [a.format(cartpole=cartpole_expert, pendulum=pendulum_expert) for a in args]
    assert_usage_error(cli("run", *args, "--out", str(tmp_path), "--quiet"), *fragments)


def test_suites_give_online_algorithms_environment_step_budgets():
    from offrl_bench.data.make import DatasetRequest
    from offrl_bench.suites import CombinedSuite, Suite

    part = Suite("part", "", datasets=(DatasetRequest("CartPole-v1", "expert"),), algorithms=("bc", "ppo"),
                 seeds=(0,), updates=300, eval_every=100, checkpoint_every=100, env_steps=4_096,
                 env_steps_eval_every=2_048)
    budgets = {spec.algo: (spec.updates, spec.eval_every, spec.checkpoint_every)
               for spec in part.runs(precision="bf16")}
    assert budgets == {"bc": (300, 100, 100), "ppo": (4_096, 2_048, 2_048)}
    assert {spec.algo: spec.precision for spec in part.runs(precision="bf16")} == {"bc": "bf16", "ppo": "fp32"}
    combined = CombinedSuite("both", "", parts=(part, part))
    assert [spec.suite for spec in combined.runs()] == ["both", "both"]  # a run two parts share runs once
    assert [request.dataset_id for request in combined.datasets] == ["offrl/cartpole/expert-v0"]


def test_default_suite_covers_every_axis():
    from offrl_bench.core import registry

    runs = registry.suite("default").runs()
    algorithms = {spec.algo for spec in runs}
    assert {"bc", "td3_bc", "iql", "cql", "bcq", "ssorl", "mopo", "ppo", "bc_ppo"} <= algorithms
    assert "dt" not in algorithms  # at random level at this budget: the suite's docstring says why
    wrappers = {spec.wrapper for spec in runs}
    assert {"stori:action:p=0.3", "levels:train", "levels:test"} <= wrappers
    assert any(w.startswith("stori:events") for w in wrappers) and any(w.startswith("stori:drift") for w in wrappers)
    assert ("filter", "morec") in {pair for spec in runs for pair in spec.overrides}
    assert ("label_fraction", "0.1") in {pair for spec in runs for pair in spec.overrides}
    assert len({spec.run_id for spec in runs}) == len(runs)
    assert {spec.seed for spec in runs} == {0, 1, 2, 3, 4}  # every compared row: 5 seeds
