"""MOPO and MOREC: the dynamics ensemble, the dynamics reward, the rollout filter, runs through the runner."""

import numpy as np
import pytest
import torch
from scipy import stats

from offrl_bench.algorithms.dynamics_model import DynamicsModel, DynamicsSettings
from offrl_bench.algorithms.morec import DynamicsReward, MORECSettings
from offrl_bench.core import registry
from offrl_bench.core.config import build_config
from offrl_bench.core.errors import UsageError
from offrl_bench.execution.runner import RunSpec, execute_run
from offrl_bench.records.run_store import RunStore
from tests.conftest import assert_resumes_exactly, assert_usage_error
from tests.test_ssorl import toy_dataset

SMALL_MODEL = DynamicsSettings(members=4, elites=2, width=64, depth=2, max_epochs=300, patience=20)
TINY_MOPO = (("width", "32"), ("model_width", "32"), ("model_depth", "2"), ("model_max_epochs", "2"),
             ("rollout_batch", "64"), ("rollout_every", "20"), ("morec_rounds", "2"))
TINY_MOPO_ROLLOUT_LENGTH = 5  # MOPO's default h


def fitted_model(settings=SMALL_MODEL, seed=0):
    dataset = toy_dataset("continuous", n_episodes=20, length=40, seed=seed)
    dataset.rewards = dataset.observations[:, 0].clone()  # something to predict
    torch.manual_seed(seed)
    model = DynamicsModel(4, 2, settings, torch.device("cpu"))
    model.fit(dataset, dataset.actions, torch.Generator().manual_seed(seed))
    return dataset, model


def test_ensemble_predicts_the_dynamics_and_keeps_its_best_members_as_elites():
    dataset, model = fitted_model()
    assert model.epochs >= 1 and len(model.holdout_mse) == 4
    assert model.elites.tolist() == torch.argsort(model.holdout_mse)[:2].tolist()
    observations, actions = dataset.observations[:10], dataset.actions[:10]
    candidates, rewards, uncertainty = model.sample(observations, actions, 3)
    assert candidates.shape == (6, 10, 4) and rewards.shape == (6, 10) and uncertainty.shape == (10,)
    # learnt: the elites' samples are close to s' = s + B a (the data's spread of s' - s is ~1)
    assert (candidates - dataset.next_observations[:10]).norm(dim=-1).mean() < 0.3
    # a member whose output layer is wrecked drops out of the elites at the next ranking
    best = int(model.elites[0])
    with torch.no_grad():
        model.ensemble.net.weights[-1][best] += 5.0
    model.select_elites()
    assert best not in model.elites.tolist()


def test_dynamics_reward_separates_real_from_corrupted_transitions():
    # a model trained one epoch makes clearly wrong transitions for the discriminator to learn from
    dataset, model = fitted_model(DynamicsSettings(members=4, elites=2, width=32, depth=2, max_epochs=1))
    reward = DynamicsReward(4, 2, MORECSettings(width=64, rounds=100, generator_steps=0), torch.device("cpu"))
    reward.fit(dataset, dataset.actions, model, torch.Generator().manual_seed(0))
    assert reward.scorers.n == 10  # the newest of 100 snapshots and every 10th before it
    pick = torch.arange(0, 800, 4)
    observations, actions = dataset.observations[pick], dataset.actions[pick]
    with torch.no_grad():
        real = reward.score(observations, actions, dataset.next_observations[pick])
        noise = 2 * torch.randn(len(pick), 4, generator=torch.Generator().manual_seed(0))
        corrupted = reward.score(observations, actions, dataset.next_observations[pick] + noise)
    # at MOREC's threshold: real transitions pass, many corrupted ones are stopped (a discriminator
    # trained against one bad model's transitions does not flag every other kind of wrong one)
    assert (real >= 0.6).float().mean() > 0.95 and (corrupted < 0.6).float().mean() > 0.4
    assert corrupted.mean() < 0.6 * real.mean()


class TrueDynamics:
    """A stand-in for a perfect dynamics model of ``toy_dataset``'s system (s' = s + M u): every
    member's sample is the true next state, so no discriminator can tell its transitions apart."""

    mixing = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, -0.5], [0.3, 0.8]])

    def __init__(self, members: int = 4) -> None:
        self.members, self.settings = members, DynamicsSettings()
        self.ensemble = torch.nn.Linear(1, 1)  # for the generator's optimiser; no generator steps here

    def step(self, observations, unit_actions):
        return observations + unit_actions @ self.mixing.T

    def training_targets(self, dataset):
        return dataset.next_observations

    def sample_all_members(self, observations, unit_actions):
        return self.step(observations, unit_actions).expand(self.members, -1, -1), None

    def sample(self, observations, unit_actions, samples_per_elite):
        n = len(observations)
        candidates = self.step(observations, unit_actions).expand(2 * samples_per_elite, -1, -1)
        return candidates, torch.zeros(len(candidates), n), torch.zeros(n)

    def select_elites(self):
        pass


def test_the_dynamics_reward_records_whether_it_learned_on_held_out_episodes():
    """Against a model trained one epoch the discriminators separate the held-out episodes' real
    transitions from the model's (balanced accuracy >= 0.6, interval above 0.5); against a perfect
    model they cannot, and the reward reports itself untrained. The per-round accuracies are those
    of the scoring rounds, from held-out episodes the discriminators never trained on."""
    dataset, model = fitted_model(DynamicsSettings(members=4, elites=2, width=32, depth=2, max_epochs=1))
    settings = MORECSettings(width=64, rounds=40, discriminator_steps=10)
    reward = DynamicsReward(4, 2, settings, torch.device("cpu"))
    reward.fit(dataset, dataset.actions, model, torch.Generator().manual_seed(0))
    report = reward.report()
    assert report["dynamics_reward_learned"] == 1.0 and report["dynamics_reward_accuracy"] >= 0.6
    assert 0.5 < report["dynamics_reward_accuracy_low"] < report["dynamics_reward_accuracy"]
    assert report["dynamics_reward_held_out_auc"] > 0.6
    assert report["dynamics_reward_held_out_model_below_threshold"] > report[
        "dynamics_reward_held_out_real_below_threshold"]
    rounds = sorted(key for key in report if key.startswith("dynamics_reward_accuracy_round_"))
    assert rounds == [f"dynamics_reward_accuracy_round_{r:03d}" for r in (10, 20, 30, 40)]
    assert report["dynamics_reward_accuracy_round_040"] == report["dynamics_reward_accuracy"]
    # held out: the last 2 of the 20 episodes (80 transitions); the standardisation saw the other 18
    expected_error = 0.5 * np.sqrt(sum(p * (1 - p) / 80 for p in (reward.history[-1].held_out,) * 2))
    assert reward.history[-1].held_out_error == pytest.approx(expected_error, rel=0.6)
    first_18 = dataset.observations[:720]
    torch.testing.assert_close(reward.mean[:4], first_18.mean(0))

    untrained = DynamicsReward(4, 2, settings, torch.device("cpu"))
    untrained.fit(dataset, dataset.actions, TrueDynamics(), torch.Generator().manual_seed(0))
    report = untrained.report()
    assert report["dynamics_reward_learned"] == 0.0 and not untrained.learned
    assert abs(report["dynamics_reward_accuracy"] - 0.5) < 0.1


def test_held_out_split_balanced_accuracy_and_auc_by_hand():
    from offrl_bench.algorithms.morec import _auc, _balanced_accuracy, _held_out_start

    assert _held_out_start(toy_dataset("continuous", n_episodes=20, length=40), 0.1) == 18 * 40  # last 2 episodes
    assert _held_out_start(toy_dataset("continuous", n_episodes=3, length=40), 0.1) == 2 * 40  # at least one
    assert _held_out_start(toy_dataset("continuous", n_episodes=1, length=100), 0.1) == 90  # one: its last steps
    # 3 of 4 real right, 1 of 2 model right: (0.75 + 0.5) / 2, SE 0.5 sqrt(0.75 * 0.25 / 4 + 0.25 / 2)
    accuracy, error = _balanced_accuracy(torch.tensor([True, True, True, False]), torch.tensor([True, False]))
    assert accuracy == pytest.approx(0.625) and error == pytest.approx(0.5 * np.sqrt(0.1875 / 4 + 0.125))
    # pairs (real, model): 1>0, 1<2, 2>0, 2=2 (half), 3>0, 3>2: 4.5 of 6
    assert _auc(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 0.0])) == pytest.approx(0.75)


def test_filter_keeps_the_best_candidate_and_flags_those_below_the_threshold():
    dataset, model = fitted_model()
    reward = DynamicsReward(4, 2, MORECSettings(candidates_per_elite=3, threshold=0.5), torch.device("cpu"))
    truth = dataset.next_observations[:48]
    # A stand-in dynamics reward: closeness to the true next state, scaled so that each row's best
    # candidate scores exactly 0.25, 0.5 (the threshold: kept) or 0.75, in turn.
    levels = torch.tensor([0.25, 0.5, 0.75]).repeat(16)

    def stand_in(observations, actions, candidates):
        closeness = torch.exp(-10 * (candidates - truth).norm(dim=-1))
        return levels * (closeness / closeness.max(0).values)

    reward.score = stand_in
    torch.manual_seed(0)
    next_observations, rewards, _, best, keep = reward.filter(model, dataset.observations[:48], dataset.actions[:48])
    torch.manual_seed(0)
    candidates, candidate_rewards, _ = model.sample(dataset.observations[:48], dataset.actions[:48], 3)
    closest = (candidates - truth).norm(dim=-1).argmin(0)
    assert torch.equal(next_observations, candidates[closest, torch.arange(48)])
    assert torch.equal(rewards, candidate_rewards[closest, torch.arange(48)])
    assert torch.equal(best, levels)
    assert keep.tolist() == [False, True, True] * 16


def test_adversarial_rounds_move_a_copy_of_the_model_and_rerank_its_elites():
    """MOREC's generator steps change a copy of the ensemble (nothing without them) and rank its
    elites again on the held-out transitions; the ensemble passed in is left as it was."""
    for generator_steps, moves in ((5, True), (0, False)):
        dataset, model = fitted_model(DynamicsSettings(members=4, elites=2, width=32, depth=2, max_epochs=20))
        before = [p.detach().clone() for p in model.ensemble.parameters()]
        reward = DynamicsReward(4, 2, MORECSettings(width=32, rounds=2, discriminator_steps=5,
                                                     generator_steps=generator_steps), torch.device("cpu"))
        fine_tuned = reward.fit(dataset, dataset.actions, model, torch.Generator().manual_seed(0))
        assert all(torch.equal(a, b) for a, b in zip(before, model.ensemble.parameters()))
        changed = any(not torch.equal(a, b) for a, b in zip(before, fine_tuned.ensemble.parameters()))
        assert changed == moves
        mse = fine_tuned.ensemble.member_mse(*fine_tuned.holdout).cpu()
        assert torch.equal(fine_tuned.holdout_mse, mse)
        assert fine_tuned.elites.tolist() == torch.argsort(mse)[:2].tolist()


def test_dynamics_reward_is_the_authors_transform_of_calibrated_historical_discriminators():
    """With every snapshot scoring, the newest scorer is the final discriminator, and the reward is
    -log(1 - mean_k min(sigmoid(calibrated logit_k), 0.999)), each logit clamped to its snapshot's
    [generator mean, dataset mean] and mapped onto [-R, R]."""
    dataset, model = fitted_model(DynamicsSettings(members=4, elites=2, width=32, depth=2, max_epochs=1))
    reward = DynamicsReward(4, 2, MORECSettings(width=32, rounds=6, discriminator_steps=20, history_every=1,
                                                generator_steps=0), torch.device("cpu"))
    reward.fit(dataset, dataset.actions, model, torch.Generator().manual_seed(0))
    assert 1 <= reward.scorers.n <= 6 and bool((reward.expert > reward.learner).all())
    observations, actions = dataset.observations[:50], dataset.actions[:50]
    candidates = dataset.next_observations[:50] + torch.randn(3, 50, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        features = reward.features(observations, actions, candidates)
        per_scorer = reward.scorers(features.reshape(-1, 10)).squeeze(-1).reshape(-1, 3, 50)
        torch.testing.assert_close(per_scorer[0], reward.logits(observations, actions, candidates))
        low, high = reward.learner[:, :, None], reward.expert[:, :, None]
        half_range = max(reward.expert.abs().max(), reward.learner.abs().max())
        calibrated = (per_scorer.clamp(min=low).clamp(max=high) - low) / (high - low) * 2 * half_range - half_range
        expected = -torch.log(1 - torch.sigmoid(calibrated).clamp(max=0.999).mean(0))
        torch.testing.assert_close(reward.score(observations, actions, candidates), expected)


def test_mopo_and_mopo_with_the_morec_filter_roll_out_the_same_ensemble_bit_for_bit():
    dataset = toy_dataset("continuous")
    cls = registry.algorithm_class("mopo")
    models = {}
    for name, overrides in (("mopo", ()), ("mopo+morec", (("filter", "morec"),)),
                            ("mopo+morec+adversarial-model", (("filter", "morec"), ("morec_model", "adversarial")))):
        config = build_config(cls, (*TINY_MOPO, *overrides))
        assert cls.leaderboard_name(config) == name
        mopo = cls(dataset.spec, config, 3)
        mopo.setup(dataset)  # the state before the first rollout
        models[name] = mopo.model
    plain, filtered, adversarial = models.values()
    assert plain.ensemble.state_dict().keys() == filtered.ensemble.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(plain.ensemble.state_dict().values(),
                                                 filtered.ensemble.state_dict().values()))
    assert torch.equal(plain.elites, filtered.elites)
    assert not all(torch.equal(a, b) for a, b in zip(plain.ensemble.state_dict().values(),
                                                     adversarial.ensemble.state_dict().values()))


def test_temperature_samples_candidates_by_the_softmax_of_their_dynamics_rewards():
    dataset, model = fitted_model()
    reward = DynamicsReward(4, 2, MORECSettings(candidates_per_elite=2, threshold=0.0, temperature=0.25),
                            torch.device("cpu"))
    levels = torch.tensor([0.2, 0.4, 0.6, 0.8])  # candidate c of every row scores levels[c]
    reward.score = lambda observations, actions, candidates: levels[:, None].expand(candidates.shape[:-1])
    observations, actions = dataset.observations[:40].repeat(100, 1), dataset.actions[:40].repeat(100, 1)
    torch.manual_seed(0)
    best = reward.filter(model, observations, actions)[3]
    counts = [(best == level).sum().item() for level in levels]
    weights = np.exp(levels.double().numpy() / 0.25)
    expected = weights / weights.sum() * len(best)
    assert sum(counts) == len(best) and stats.chisquare(counts, expected).pvalue > 1e-3


@pytest.mark.parametrize("level, expected_length", [(0.5, 0.0), (0.7, 5.0)])
def test_rollouts_end_where_the_dynamics_reward_falls_below_the_threshold(level, expected_length):
    dataset = toy_dataset("continuous")
    cls = registry.algorithm_class("mopo")
    mopo = cls(dataset.spec, build_config(cls, (*TINY_MOPO, ("filter", "morec"))), 0)
    mopo.setup(dataset)
    mopo.dynamics_reward.score = lambda o, a, candidates: torch.full(candidates.shape[:-1], level)
    mopo._rollout(dataset, torch.Generator().manual_seed(0))
    assert mopo.rollout_stats["rollout_length"] == expected_length
    assert mopo.rollout_stats["filter_ended_rollouts"] == (1.0 if expected_length == 0 else 0.0)
    assert mopo.buffer_size == int(64 * expected_length)
    # rows stop independently: a rollout ends once its own best candidate scores below 0.6
    mopo.buffer_size = mopo.buffer_next = 0
    mopo.dynamics_reward.score = lambda o, a, candidates: torch.where(o[..., 0] > 0, 0.9, 0.1).expand(
        candidates.shape[:-1])
    mopo._rollout(dataset, torch.Generator().manual_seed(1))
    stored = mopo.buffer[: mopo.buffer_size, 0]
    assert (stored > 0).all()  # only transitions from states the stand-in reward accepts


def test_rollouts_stop_at_terminal_states_and_model_batches_carry_the_flag():
    dataset = toy_dataset("continuous")
    cls = registry.algorithm_class("mopo")
    mopo = cls(dataset.spec, build_config(cls, TINY_MOPO), 0)
    mopo.setup(dataset)
    mopo.terminated = lambda next_observations: next_observations[:, 0] > 0  # a stand-in health check
    mopo._rollout(dataset, torch.Generator().manual_seed(0))
    obs_dim, action_dim = 4, 2
    stored = mopo.buffer[: mopo.buffer_size]
    next_first, terminal = stored[:, obs_dim + action_dim + 1], stored[:, -1]
    assert torch.equal(terminal.bool(), next_first > 0)
    assert 0.2 < terminal.mean() < 0.8
    # a terminal transition ends its rollout: no stored transition starts from a terminal state
    terminal_states = {tuple(row.tolist()) for row in stored[terminal.bool(), obs_dim + action_dim + 1: -1]}
    assert not any(tuple(row.tolist()) in terminal_states for row in stored[:, :obs_dim])
    assert mopo.rollout_stats["rollout_length"] < TINY_MOPO_ROLLOUT_LENGTH
    batch = mopo.sample(dataset, 256, torch.Generator().manual_seed(1))
    model_part = slice(max(1, round(mopo.config.real_ratio * 256)), None)
    assert torch.equal(batch.terminals[model_part].bool(), batch.next_observations[model_part, 0] > 0)


def test_mopo_refuses_terminal_data_from_environments_without_a_termination_function():
    dataset = toy_dataset("continuous")
    dataset.terminals[39] = 1.0
    cls = registry.algorithm_class("mopo")
    with pytest.raises(UsageError, match="no termination function for model rollouts is known"):
        cls(dataset.spec, build_config(cls, TINY_MOPO), 0).setup(dataset)


def test_hopper_termination_function_matches_the_environment():
    pytest.importorskip("mujoco", reason="needs the 'mujoco' extra")
    import gymnasium as gym

    from offrl_bench.envs.termination import termination_function

    terminated = termination_function("Hopper-v5")
    env = gym.make("Hopper-v5")
    rng = np.random.default_rng(0)
    predicted, actual = [], []
    for episode in range(40):
        env.reset(seed=episode)
        done = False
        while not done:
            observation, _, terminal, truncated, _ = env.step(rng.uniform(-1, 1, 3).astype(np.float32))
            predicted.append(bool(terminated(torch.tensor(observation[None], dtype=torch.float32))[0]))
            actual.append(terminal)
            done = terminal or truncated
    assert sum(actual) == 40 and predicted == actual


def test_batches_are_all_dataset_transitions_in_unit_actions_when_every_rollout_ends(pendulum_expert):
    from offrl_bench.data.datasets import load_dataset

    dataset = load_dataset(pendulum_expert)
    assert dataset.actions.abs().max() > 1  # Pendulum's torque is in [-2, 2]
    cls = registry.algorithm_class("mopo")
    mopo = cls(dataset.spec, build_config(cls, (*TINY_MOPO, ("filter", "morec"))), 0)
    mopo.setup(dataset)
    mopo.dynamics_reward.score = lambda o, a, candidates: torch.full(candidates.shape[:-1], 0.5)  # below 0.6
    batch = mopo.sample(dataset, 256, torch.Generator().manual_seed(0))
    assert mopo.buffer_size == 0 and len(batch) == 256
    assert batch.actions.abs().max() <= 1  # the [-1, 1] units SAC trains in, like model transitions


def test_mopo_resumes_to_the_same_numbers(pendulum_expert, tmp_path):
    spec = RunSpec("mopo", pendulum_expert, 2, updates=60, eval_every=60, checkpoint_every=20, eval_episodes=2,
                   overrides=(*TINY_MOPO, ("filter", "morec")))
    reference = assert_resumes_exactly(spec, tmp_path)
    assert reference["algorithm_label"] == "mopo+morec"
    assert {"rollout_length", "dynamics_reward", "model_holdout_mse", "filter_ended_rollouts",
            "dynamics_reward_learned", "dynamics_reward_accuracy"} <= set(reference["final_losses"])


@pytest.mark.parametrize("option, fragment", [
    ("filter=gail", "unknown filter 'gail'; one of: morec, none"),
    ("model_elites=9", "model_elites (9) cannot exceed model_members (7)"),
    ("morec_threshold=-0.5", "expected a float"),
    ("morec_model=gan", "unknown morec_model 'gan'; one of: adversarial, mle"),
    ("morec_model=adversarial", "morec_model=adversarial needs filter=morec"),
    ("real_ratio=0", "expected a float in (0, 1]"),
])
def test_bad_mopo_settings_are_usage_errors(option, fragment, cli, pendulum_expert, tmp_path):
    assert_usage_error(cli("run", "--algo", "mopo", "--dataset", pendulum_expert, "--set", option,
                           "--out", str(tmp_path)), fragment)


def test_mopo_refuses_discrete_actions(cli, cartpole_expert, tmp_path):
    assert_usage_error(cli("run", "--algo", "mopo", "--dataset", cartpole_expert, "--out", str(tmp_path)),
                       "does not support discrete actions")


def test_mopo_numbers_are_reproducible(pendulum_expert, tmp_path):
    spec = RunSpec("mopo", pendulum_expert, 1, updates=30, eval_every=30, eval_episodes=1, overrides=TINY_MOPO)
    first, second = execute_run(spec, RunStore(tmp_path / "a")), execute_run(spec, RunStore(tmp_path / "b"))
    assert first["final_losses"] == second["final_losses"] and np.isfinite(first["final_losses"]["td_loss"])
