"""Offline RL algorithms: shared pieces, learning on small datasets, exact resume, action-space checks.

Small networks (width 64) keep these to seconds; the orderings on larger runs are in the documentation (docs/).
"""

import json

import numpy as np
import pytest
import torch

from offrl_bench.algorithms.nn import FusedMLPEnsemble, frozen, mlp, soft_update
from offrl_bench.core.errors import UsageError
from offrl_bench.execution.runner import RunSpec, execute_run, preflight, update_autocast
from offrl_bench.records.run_store import RunStore
from tests.conftest import assert_resumes_exactly

SMALL = (("width", "64"),)


def test_fused_ensemble_members_are_independent_mlps():
    torch.manual_seed(0)
    ensemble = FusedMLPEnsemble(3, 5, 2, width=16, depth=2)
    x = torch.randn(7, 5)
    out = ensemble(x)
    assert out.shape == (3, 7, 2)
    for i in range(3):
        reference = mlp(5, 2, width=16, depth=2)
        with torch.no_grad():
            for layer, (weight, bias) in zip([m for m in reference if isinstance(m, torch.nn.Linear)],
                                             zip(ensemble.weights, ensemble.biases)):
                layer.weight.copy_(weight[i].T)
                layer.bias.copy_(bias[i, 0])
        assert torch.allclose(out[i], reference(x), atol=1e-5)
        assert torch.allclose(ensemble.forward_member(x, i), out[i], atol=1e-6)
    assert not torch.allclose(out[0], out[1])  # members start different
    # per-member inputs, and gradients reach only the member that produced a loss
    per_member = ensemble(torch.randn(3, 7, 5))
    per_member[1].sum().backward()
    assert ensemble.weights[0].grad[0].abs().sum() == 0 and ensemble.weights[0].grad[1].abs().sum() > 0


@pytest.mark.parametrize("shared_input", [True, False])
def test_fused_ensemble_batched_path_matches_the_per_member_path(shared_input):
    """A shared input on a CPU loops over members; otherwise one batched matmul per layer. Same function."""
    torch.manual_seed(0)
    ensemble = FusedMLPEnsemble(4, 5, 3, width=16, depth=3)
    x = torch.randn(9, 5) if shared_input else torch.randn(4, 9, 5)
    looped = ensemble(x)
    looped.square().sum().backward()
    looped_grads = [p.grad.clone() for p in ensemble.parameters()]
    ensemble.zero_grad()
    batched = ensemble.forward_batched(x)
    batched.square().sum().backward()
    assert torch.allclose(looped, batched, atol=1e-6)
    for looped_grad, parameter in zip(looped_grads, ensemble.parameters()):
        assert torch.allclose(looped_grad, parameter.grad, atol=1e-5)


def test_frozen_critic_passes_gradients_to_actions_only():
    torch.manual_seed(0)
    critic = FusedMLPEnsemble(2, 4, 1, width=16)
    actions = torch.randn(8, 4, requires_grad=True)
    critic(actions).sum().backward()
    expected = actions.grad.clone()
    critic.zero_grad(set_to_none=True)
    actions.grad = None
    with frozen(critic):
        value = critic(actions).sum()
    value.backward()
    assert torch.equal(actions.grad, expected)
    assert all(p.grad is None for p in critic.parameters())
    assert all(p.requires_grad for p in critic.parameters())  # unfrozen after the block


def test_soft_update():
    source, target = torch.nn.Linear(3, 3), torch.nn.Linear(3, 3)
    expected = [0.9 * t.detach() + 0.1 * s.detach() for t, s in zip(target.parameters(), source.parameters())]
    soft_update(target, source, 0.1)
    assert all(torch.allclose(t, e) for t, e in zip(target.parameters(), expected))


@pytest.mark.parametrize("algo, updates, overrides, threshold", [
    ("td3_bc", 2500, SMALL, 60),
    ("iql", 1500, SMALL, 60),
    ("bcq", 600, SMALL + (("vae_width", "64"),), 60),
])
def test_continuous_algorithms_learn_pendulum(algo, updates, overrides, threshold, pendulum_expert, tmp_path):
    record = execute_run(RunSpec(algo, pendulum_expert, 0, updates=updates, eval_every=updates,
                                 checkpoint_every=updates, eval_episodes=5, overrides=overrides), RunStore(tmp_path))
    assert record["normalized_score"] > threshold, record["return_mean"]  # random scores ~0


@pytest.mark.parametrize("algo", ["iql", "cql", "bcq"])
def test_discrete_algorithms_learn_cartpole(algo, cartpole_expert, tmp_path):
    store = RunStore(tmp_path)
    record = execute_run(RunSpec(algo, cartpole_expert, 0, updates=1000, eval_every=500, checkpoint_every=500,
                                 eval_episodes=5, overrides=SMALL), store)
    assert record["normalized_score"] > 80, record["return_mean"]
    assert all(np.isfinite(v) for v in record["final_losses"].values())


def test_iql_reward_scale_is_the_papers_per_domain_rule():
    """x1000 / (max - min return) for dense rewards (locomotion), unscaled for sparse goal rewards."""
    from types import SimpleNamespace

    from offrl_bench.algorithms.iql import reward_scale

    def dataset(rewards_per_episode):
        rewards = torch.tensor([r for episode in rewards_per_episode for r in episode])
        return SimpleNamespace(rewards=rewards, n_episodes=len(rewards_per_episode),
                               episode_returns=np.array([sum(episode) for episode in rewards_per_episode]))

    dense = dataset([[-1.0, -2.0, -3.0], [-0.5, -0.5, -1.0]])  # returns -6 and -2
    goal = dataset([[0.0, 0.0, 0.6], [0.0, 0.97], [0.0, 0.0, 0.0]])  # one reward at the goal, or none
    assert reward_scale(dense, "auto") == reward_scale(dense, "returns") == pytest.approx(1000 / 4)
    assert reward_scale(goal, "auto") == reward_scale(goal, "none") == reward_scale(dense, "none") == 1.0
    assert reward_scale(goal, "returns") == pytest.approx(1000 / 0.97)
    # returns that span less than a tenth of their largest magnitude (one episode, identical returns of
    # an expert at CartPole's limit, or nearly identical ones) define no range: rewards unscaled, so
    # the factor stays bounded however close the returns are (it was 1000 / spread above 1e-6)
    assert reward_scale(dataset([[1.0, 1.0]]), "returns") == 1.0
    assert reward_scale(dataset([[1.0] * 3, [1.0] * 3, [1.0] * 3]), "auto") == 1.0
    for gap in (1e-7, 1e-6 + 1e-9, 1e-3, 0.33):  # 0.33 < (3 + 0.33) / 10
        assert reward_scale(dataset([[1.0] * 3, [1.0] * 3, [1.0, 1.0, 1.0 + gap]]), "returns") == 1.0
    spread = dataset([[1.0] * 3, [1.0] * 3, [1.0, 1.0, 1.5]])  # returns 3, 3, 3.5: a range of 0.5 >= 0.35
    assert reward_scale(spread, "returns") == pytest.approx(1000 / 0.5)
    assert reward_scale(dataset([[0.0, 0.0], [0.0, 0.0]]), "returns") == 1.0  # nothing to scale
    # at a spread of exactly a tenth of the largest |return|: the paper's factor, 10,000 / max |return|
    assert reward_scale(dataset([[-10.0], [-9.0]]), "returns") == pytest.approx(1000 / 1.0)


def test_iql_rejects_an_unknown_reward_normalization(cli, cartpole_expert):
    result = cli("run", "--algo", "iql", "--dataset", cartpole_expert, "--set", "reward_normalization=paper")
    assert result.code == 2 and "unknown reward_normalization 'paper'" in result.err
    assert "returns" in result.err and "Traceback" not in result.err


@pytest.mark.slow
def test_iql_learns_minigrid_expert_levels_unless_its_sparse_reward_is_scaled_up(tmp_path):
    """The locomotion rule multiplies the goal reward by 1000 / (max - min return), over 1,000x here, and
    the saturated advantage weights keep IQL near random; unscaled (the default for sparse rewards) it learns."""
    from offrl_bench.data.make import DatasetRequest, make_dataset

    request = DatasetRequest("MiniGrid-DoorKey-6x6-v0", "expert", episodes=60, wrapper="levels:train",
                             name="test/doorkey/expert-train-v0")
    make_dataset(request, log=lambda m: None)
    scores = {normalization: execute_run(RunSpec(
        "iql", request.dataset_id, 0, wrapper="levels:train", updates=1000, eval_every=1000, checkpoint_every=1000,
        eval_episodes=10, overrides=(("reward_normalization", normalization),)), RunStore(tmp_path))["normalized_score"]
        for normalization in ("auto", "returns")}
    assert scores["auto"] > 80 and scores["returns"] < 50, scores


SMALL_DT = (("embedding_dim", "32"), ("layers", "1"), ("context", "5"))
SMALL_BCQ = SMALL + (("vae_width", "64"), ("n_eval_samples", "10"))
RESUME_OVERRIDES = {"cql": SMALL + (("n_actions", "2"),), "dt": SMALL_DT, "bcq": SMALL_BCQ}


@pytest.mark.parametrize("algo, dataset", [
    ("td3_bc", "pendulum"), ("iql", "pendulum"), ("cql", "pendulum"), ("cql", "cartpole"), ("bcq", "cartpole"),
    ("bcq", "pendulum"), ("iql", "cartpole"), ("dt", "cartpole"), ("dt", "pendulum"),
])
def test_resumed_run_equals_uninterrupted(algo, dataset, request, tmp_path):
    """Every random source (init, sampling, dropout, target noise) and every schedule is in the checkpoint."""
    dataset_id = request.getfixturevalue(f"{dataset}_expert")
    overrides = RESUME_OVERRIDES.get(algo, SMALL)
    spec = RunSpec(algo, dataset_id, 5, updates=120, eval_every=120, checkpoint_every=20, eval_episodes=2,
                   overrides=overrides)
    assert_resumes_exactly(spec, tmp_path)


@pytest.mark.parametrize("algo, dataset, kind", [("td3_bc", "cartpole", "discrete"), ("mopo", "cartpole", "discrete"),
                                                    ("dqn", "pendulum", "continuous")])
def test_unsupported_action_space_is_rejected(algo, dataset, kind, request):
    dataset_id = request.getfixturevalue(f"{dataset}_expert")
    with pytest.raises(UsageError, match=f"algorithm '{algo}' does not support {kind} actions"):
        preflight([RunSpec(algo, dataset_id, 0)])


@pytest.mark.slow
def test_cql_learns_pendulum(pendulum_expert, tmp_path):
    record = execute_run(RunSpec("cql", pendulum_expert, 0, updates=4000, eval_every=4000, checkpoint_every=4000,
                                 eval_episodes=5, overrides=SMALL + (("actor_lr", "3e-4"), ("n_actions", "4"))),
                         RunStore(tmp_path))
    assert record["normalized_score"] > 40, record["return_mean"]  # random ~0; CQL swings up by ~4k updates


def test_continuous_bcq_perturbs_within_phi_and_acts_on_its_own_random_stream():
    import gymnasium as gym

    from offrl_bench.algorithms.bcq import BCQ, BCQConfig
    from offrl_bench.core.api import EnvSpec

    spec = EnvSpec(gym.spaces.Box(-np.inf, np.inf, (3,), np.float32), gym.spaces.Box(-2, 2, (2,), np.float32))
    config = BCQConfig(width=32, vae_width=32, perturbation=0.05, n_eval_samples=16)
    bcq = BCQ(spec, config, seed=0)
    observations = torch.randn(64, 3)
    actions = torch.rand(64, 2) * 2 - 1
    with torch.no_grad():
        bcq.actor.net[-1].weight.mul_(1000)  # saturate the tanh: the shift reaches Phi, never more
        shift = bcq.actor(observations, actions) - actions
    inside = actions.abs() < 0.9  # away from the [-1, 1] clip
    assert shift.abs().max() <= 0.05 + 1e-6 and (shift[inside].abs() > 0.049).float().mean() > 0.9
    bcq.actor.load_state_dict(bcq.actor_target.state_dict())

    # The chosen action is the highest-Q candidate of the perturbed VAE samples ...
    states = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    generator_state = bcq.acting_generator.get_state()
    global_state = torch.get_rng_state()
    chosen = bcq.act(states)
    assert torch.equal(torch.get_rng_state(), global_state)  # evaluating never shifts training randomness
    bcq.acting_generator.set_state(generator_state)
    with torch.no_grad():
        repeated = torch.from_numpy(states).repeat_interleave(16, dim=0)
        candidates = bcq.actor(repeated, bcq.vae.sample(repeated, bcq.acting_generator))
        q = bcq.critic.forward_member(torch.cat([repeated, candidates], -1), 0).view(5, 16)
    best = candidates.view(5, 16, 2)[torch.arange(5), q.argmax(-1)]
    assert np.allclose(chosen, bcq.scaler.from_unit(best).numpy(), atol=1e-6)
    assert chosen.shape == (5, 2) and np.abs(chosen).max() <= 2


def test_cql_lagrange_variant_runs(pendulum_expert, tmp_path):
    record = execute_run(RunSpec("cql", pendulum_expert, 0, updates=20, eval_every=20, eval_episodes=1,
                                 overrides=SMALL + (("lagrange", "true"), ("n_actions", "2"))), RunStore(tmp_path))
    assert np.isfinite(record["final_losses"]["cql_loss"])


class CountingEpisodicPolicy:
    """Remembers what an episodic policy is told: which slot starts when, which rewards it sees."""

    def __init__(self):
        self.starts, self.rewards, self.steps, self.finished = [], {}, {}, []

    def start_episode(self, slot):
        if slot in self.rewards:
            self.finished.append(len(self.rewards[slot]))
        self.starts.append(slot)
        self.rewards[slot], self.steps[slot] = [], 0

    def act(self, observations, slots):
        for slot in slots:
            self.steps[slot] += 1
        return np.array([self.steps[slot] % 2 for slot in slots])

    def observe_rewards(self, slots, rewards):
        for slot, reward in zip(slots, rewards):
            self.rewards[slot].append(reward)


def test_rollout_drives_episodic_policies_per_slot():
    from offrl_bench.core.rollout import run_episodes
    from offrl_bench.envs import make_env

    policy = CountingEpisodicPolicy()
    episodes = run_episodes(lambda: make_env("CartPole-v1"), policy, n_episodes=7, seed=0, n_envs=3)
    assert len(policy.starts) == 7 and set(policy.starts) == {0, 1, 2}
    plain = run_episodes(lambda: make_env("CartPole-v1"), lambda obs: np.zeros(len(obs), dtype=np.int64), 7, 0, 3)
    assert len(plain) == len(episodes) == 7
    # every episode's rewards reached the slot that played it, one per step
    lengths = policy.finished + [len(rewards) for rewards in policy.rewards.values()]
    assert sorted(lengths) == sorted(e.length for e in episodes)
    assert all(policy.steps[slot] == len(policy.rewards[slot]) for slot in policy.rewards)


@pytest.mark.parametrize("dataset", ["cartpole", "pendulum"])
def test_decision_transformer_trains_and_acts(dataset, request, tmp_path):
    dataset_id = request.getfixturevalue(f"{dataset}_expert")
    overrides = SMALL_DT + (("warmup_steps", "10"), ("lr", "1e-3"))
    store = RunStore(tmp_path)
    record = execute_run(RunSpec("dt", dataset_id, 0, updates=300, eval_every=150, checkpoint_every=300,
                                 eval_episodes=3, overrides=overrides), store)
    losses = [json.loads(line)["action_loss"] for line in (store.run_dir(record["run_id"]) / "metrics.jsonl").open()]
    assert losses[-1] < min(0.5, losses[0])
    if dataset == "cartpole":  # 300 updates of a 1-layer model: better than random, far from expert
        assert record["normalized_score"] > 5, record["return_mean"]  # random policies score ~0 (sd ~2)


@pytest.mark.slow  # 2,500 bf16 updates: slow on CPUs without bf16 units (that bf16 steps are seen: the next test)
def test_bf16_precision_trains_and_is_recorded(pendulum_expert, tmp_path):
    spec = RunSpec("td3_bc", pendulum_expert, 0, updates=2500, eval_every=2500, checkpoint_every=2500,
                   eval_episodes=5, overrides=SMALL, precision="bf16")
    record = execute_run(spec, RunStore(tmp_path))
    assert record["spec"]["precision"] == "bf16" and spec.run_id != RunSpec(
        "td3_bc", pendulum_expert, 0, updates=2500, eval_every=2500, checkpoint_every=2500, eval_episodes=5,
        overrides=SMALL).run_id
    assert record["normalized_score"] > 60, record["return_mean"]


def test_bf16_update_sees_the_weights_it_stepped():
    """An update that steps a network and uses it again (IQL's V, SAC's actor) must see the new weights.

    Autocast's weight cache would hand the second pass the bfloat16 copy made before the step.
    """
    torch.manual_seed(0)
    layer = torch.nn.Linear(8, 8)
    optimizer = torch.optim.SGD(layer.parameters(), lr=1.0)
    x = torch.randn(16, 8)
    with update_autocast("cpu", "bf16"):
        before = layer(x)
        before.float().square().sum().backward()
        optimizer.step()
        after = layer(x)
    assert after.dtype == torch.bfloat16
    stepped = torch.nn.functional.linear(x, layer.weight, layer.bias).detach()
    torch.testing.assert_close(after.float(), stepped, rtol=0.02, atol=0.05)
    assert (after.float() - before.float()).abs().max() > 1.0


def test_unknown_precision_is_a_usage_error(cli, cartpole_expert):
    from conftest import assert_usage_error

    result = cli("run", "--algo", "bc", "--dataset", cartpole_expert, "--precision", "fp8")
    assert_usage_error(result, "unknown precision 'fp8'; one of: fp32, bf16")


@pytest.mark.slow
@pytest.mark.parametrize("env_id, quality, algo, margin", [
    ("CartPole-v1", "medium", "iql", 25),
    ("Pendulum-v1", "mixed", "iql", 20),
    ("Pendulum-v1", "mixed", "td3_bc", 15),
    # continuous BCQ (100 VAE samples per action) takes 160 s here; that it learns Pendulum is
    # checked in seconds by test_continuous_algorithms_learn_pendulum
    pytest.param("Pendulum-v1", "mixed", "bcq", 20, marks=pytest.mark.thorough),
])
def test_offline_rl_beats_bc_on_suboptimal_data(env_id, quality, algo, margin, ordering_store):
    """The literature's ordering on medium/mixed data, with the default suite's datasets and budget
    (2,000 updates, seeds 0 and 1): value-based offline RL clearly above behaviour cloning. In the
    default suite's runs: CartPole medium IQL 100/100 vs BC 42/57; Pendulum mixed IQL 80/43 and
    TD3+BC 39/44 vs BC 20/14. Continuous BCQ in the offline suite's runs, at update 2,000: 45/52.
    The cases share one store, so BC on a dataset trains once (a finished run id is read back)."""
    from offrl_bench.data.datasets import dataset_exists
    from offrl_bench.data.make import DatasetRequest, make_dataset

    request = DatasetRequest(env_id, quality, name=f"ordering/{env_id.lower()}/{quality}-v0")
    if not dataset_exists(request.dataset_id):
        make_dataset(request, log=lambda m: None)

    def score(name: str, seed: int) -> float:
        spec = RunSpec(name, request.dataset_id, seed, updates=2000, eval_every=2000, checkpoint_every=2000,
                       eval_episodes=10)
        finished = ordering_store.records().get(spec.run_id)
        return (finished or execute_run(spec, ordering_store))["normalized_score"]

    scores = {name: np.mean([score(name, seed) for seed in (0, 1)]) for name in ("bc", algo)}
    assert scores[algo] > scores["bc"] + margin, scores


@pytest.fixture(scope="module")
def ordering_store(tmp_path_factory) -> RunStore:
    return RunStore(tmp_path_factory.mktemp("ordering"))
