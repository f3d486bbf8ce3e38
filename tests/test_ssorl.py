"""SS-ORL: action-free datasets, the inverse dynamics model, proxy labelling around a base algorithm."""

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch

from offrl_bench.algorithms.inverse_dynamics import (
    IDMSettings,
    InverseDynamics,
    _split_validation,
    observation_windows,
)
from offrl_bench.core import registry
from offrl_bench.core.api import EnvSpec, OfflineAlgorithm
from offrl_bench.core.config import build_config
from offrl_bench.core.errors import UsageError
from offrl_bench.core.rollout import Episode
from offrl_bench.data.action_free import choose_labelled_episodes, hide_actions, select_episodes
from offrl_bench.data.datasets import TransitionDataset, load_dataset, open_dataset, write_dataset
from offrl_bench.execution.runner import RunSpec, execute_run, preflight
from offrl_bench.records.run_store import RunStore
from tests.conftest import assert_resumes_exactly, assert_usage_error

SMALL_IDM = (("idm_width", "64"), ("idm_updates", "1500"), ("idm_eval_every", "100"))


def toy_dataset(kind: str, n_episodes: int = 20, length: int = 40, seed: int = 0,
                action_low=(-1.0, -1.0), action_high=(1.0, 1.0)) -> TransitionDataset:
    """A deterministic toy system: s' = s + B u (continuous: u in [-1, 1]^2 is the action a, uniform
    in [action_low, action_high], rescaled to [-1, 1]) or s' = s + 0.5 e_a (discrete, 3 actions), with
    uniformly random actions. Episode returns increase with the index."""
    rng = np.random.default_rng(seed)
    low, high = np.array(action_low, dtype=np.float32), np.array(action_high, dtype=np.float32)
    mixing = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, -0.5], [0.3, 0.8]], dtype=np.float32)
    observations, next_observations, actions = [], [], []
    for _ in range(n_episodes):
        state = rng.normal(size=4).astype(np.float32)
        for _ in range(length):
            if kind == "discrete":
                action = rng.integers(3)
                step = 0.5 * np.eye(4, dtype=np.float32)[action]
            else:
                unit = rng.uniform(-1, 1, size=2).astype(np.float32)
                action = unit * (high - low) / 2 + (high + low) / 2  # exactly u on [-1, 1]
                step = mixing @ unit
            observations.append(state)
            state = state + step
            next_observations.append(state)
            actions.append(action)
    n = n_episodes * length
    action_space = gym.spaces.Discrete(3) if kind == "discrete" else gym.spaces.Box(low, high, (2,), np.float32)
    spec = EnvSpec(gym.spaces.Box(-np.inf, np.inf, (4,), np.float32), action_space)
    return TransitionDataset(
        dataset_id="toy", spec=spec,
        observations=torch.tensor(np.array(observations)), actions=torch.tensor(np.array(actions)),
        rewards=torch.zeros(n), next_observations=torch.tensor(np.array(next_observations)),
        terminals=torch.zeros(n), timeouts=torch.zeros(n),
        episode_starts=torch.arange(0, n, length), episode_returns=np.arange(n_episodes, dtype=float),
    )


@pytest.mark.parametrize("kind, tolerance", [("continuous", 0.08), ("discrete", 0.01)])
def test_idm_recovers_actions_of_a_deterministic_system(kind, tolerance):
    dataset = toy_dataset(kind)
    idm = InverseDynamics(dataset.spec, IDMSettings(width=64, updates=1500, eval_every=100), 0, torch.device("cpu"))
    train, held_out = torch.arange(0, 600), torch.arange(600, 800)  # episodes 0-14 and 15-19
    idm.fit(dataset, train)
    # unseen episodes: RMSE in [-1, 1] action units, or the error rate
    assert idm.error(dataset, held_out, dataset.actions[held_out]) < tolerance
    labels = idm.label(dataset, held_out)
    assert labels.dtype == dataset.actions.dtype and labels.shape == dataset.actions[held_out].shape
    none = idm.label(dataset, torch.empty(0, dtype=torch.long))  # an empty index: labels of no transitions
    assert none.dtype == labels.dtype and none.shape == dataset.actions[:0].shape


def test_frame_differences_are_a_named_idm_option_that_helps_on_unseen_episodes():
    """The paper's IDM sees the frames alone; this project's default adds their differences, which
    halve (or better) the held-out error on s' = s + Ba. The rows carry the option in their name."""
    dataset = toy_dataset("continuous")
    train, held_out = torch.arange(0, 600), torch.arange(600, 800)
    errors = {}
    for differences in (True, False):
        idm = InverseDynamics(dataset.spec, IDMSettings(width=64, updates=1500, eval_every=100,
                                                        frame_differences=differences), 0, torch.device("cpu"))
        assert idm.model.heads.weights[0].shape[1] == (5 if differences else 3) * 4  # s_{t-1}, s_t, s_{t+1}
        idm.fit(dataset, train)
        errors[differences] = idm.error(dataset, held_out, dataset.actions[held_out])
    assert errors[True] < 0.5 * errors[False], errors
    cls = registry.algorithm_class("ssorl")
    config = build_config(cls, (("idm_frame_differences", "false"), ("selection", "low_return")))
    assert cls.leaderboard_name(config) == "ssorl(iql, low_return, idm frames only)"


def test_ssorl_suite_headline_rows_label_low_return_episodes_with_five_seeds():
    runs = registry.suite("ssorl").runs()
    headline = [spec for spec in runs if dict(spec.overrides).get("selection") == "low_return"]
    assert {dict(spec.overrides)["label_fraction"] for spec in headline} == {"0.01", "0.1"}
    assert {dict(spec.overrides).get("selection", "random") for spec in runs} == {"low_return", "random"}
    assert {dict(spec.overrides)["label_fraction"] for spec in runs} == {"0.01", "0.1", "1.0"}
    assert len({spec.dataset for spec in headline}) == 2
    for overrides in {spec.overrides for spec in runs}:
        assert {spec.seed for spec in runs if spec.overrides == overrides} >= {0, 1, 2, 3, 4}


def test_idm_dropout_trains_from_the_idms_own_seed_and_leaves_the_callers_random_state_alone():
    """Dropout (the SS-ORL authors' 0.1) masks hidden units while the IDM trains, from its own seed:
    two fits give the same model, the caller's torch generator is where it was, and labelling (eval
    mode) uses every unit."""
    dataset = toy_dataset("continuous")
    settings = IDMSettings(width=64, updates=300, eval_every=100, dropout=0.1)

    def fitted() -> InverseDynamics:
        idm = InverseDynamics(dataset.spec, settings, 0, torch.device("cpu"))
        idm.fit(dataset, torch.arange(0, 600))
        return idm

    torch.manual_seed(123)
    first = fitted()
    after_fit = torch.rand(3)
    torch.manual_seed(123)
    assert torch.equal(torch.rand(3), after_fit)  # fit drew nothing from the caller's generator
    second = fitted()
    held_out = torch.arange(600, 800)
    assert torch.equal(first.label(dataset, held_out), second.label(dataset, held_out))
    assert torch.equal(first.label(dataset, held_out), first.label(dataset, held_out))  # no dropout when labelling
    heads = first.model.heads
    heads.train()
    x = torch.randn(32, heads.weights[0].shape[1])
    assert not torch.equal(heads(x), heads(x))  # while training, units are dropped
    assert first.error(dataset, held_out, dataset.actions[held_out]) < 0.2


def test_the_paper_idm_settings_are_named_and_give_their_rows_a_name_of_their_own():
    from offrl_bench.algorithms.ssorl import PAPER_IDM, SSORL

    config = build_config(SSORL, PAPER_IDM)
    assert dataclasses.astuple(config.idm_settings())[1:] == (1024, 2, 1, 1e-4, 1024, 100, 10, 0.1, False, 0.1)
    default = build_config(SSORL, ())
    assert default.idm_dropout == 0.0 and SSORL.leaderboard_name(default) == "ssorl(iql)"
    assert SSORL.leaderboard_name(config) == ("ssorl(iql, idm frames only, idm width=1024 lr=0.0001 "
                                              "batch_size=1024 updates=100 eval_every=10 dropout=0.1)")


def test_idm_labels_in_the_environments_action_units():
    """Pendulum-like bounds that are not [-1, 1]: labels must come back in the environment's units,
    compared with the true actions (the model itself works in [-1, 1])."""
    dataset = toy_dataset("continuous", action_low=(-2.0, 0.0), action_high=(2.0, 10.0))
    idm = InverseDynamics(dataset.spec, IDMSettings(width=64, updates=1500, eval_every=100), 0, torch.device("cpu"))
    idm.fit(dataset, torch.arange(0, 600))
    held_out = torch.arange(600, 800)
    labels, truth = idm.label(dataset, held_out).numpy(), dataset.actions[held_out].numpy()
    half_range = np.array([2.0, 5.0])
    assert (np.sqrt(((labels - truth) ** 2).mean(0)) / half_range < 0.08).all()
    assert labels[:, 1].min() > -0.1 and labels[:, 1].max() > 9  # in [0, 10], reaching its top


def test_a_single_short_labelled_episode_still_holds_out_a_validation_transition():
    dataset = toy_dataset("continuous", n_episodes=2, length=4)
    train, validation = _split_validation(dataset, torch.arange(0, 4), 0.1, torch.Generator().manual_seed(0))
    assert len(validation) == 1 and len(train) == 3  # round(0.1 x 4) = 0, but never an empty validation
    assert sorted(torch.cat([train, validation]).tolist()) == [0, 1, 2, 3]


def test_idm_labels_with_its_best_validation_checkpoint():
    dataset = toy_dataset("continuous")
    # one labelled episode and a high learning rate: the validation error is far from monotone
    idm = InverseDynamics(dataset.spec, IDMSettings(width=64, updates=600, eval_every=20, lr=3e-2), 0,
                          torch.device("cpu"))
    idm.fit(dataset, torch.arange(0, 40))
    errors = [error for _, error in idm.history]
    assert len(errors) == 30 and idm.validation_error == min(errors)
    assert idm.best_update == idm.history[int(np.argmin(errors))][0]
    assert errors[-1] > min(errors)  # the last checkpoint is worse: the kept one is not the last
    from offrl_bench.algorithms.inverse_dynamics import _split_validation

    _, validation = _split_validation(dataset, torch.arange(0, 40), 0.1,
                                      torch.Generator().manual_seed(0))  # the split fit() made
    assert idm.error(dataset, validation, dataset.actions[validation]) == pytest.approx(min(errors), rel=1e-5)


def test_observation_windows_never_cross_episode_boundaries():
    dataset = toy_dataset("continuous", n_episodes=3, length=5)
    # observation = (episode, step, 0, 0)
    episode = dataset.episode_of_transitions().float()
    step = torch.arange(len(dataset)) - dataset.episode_starts[episode.long()]
    dataset.observations = torch.stack([episode, step.float(), torch.zeros(15), torch.zeros(15)], dim=1)
    dataset.next_observations = dataset.observations + torch.tensor([0.0, 1.0, 0.0, 0.0])
    starts = dataset.episode_starts[dataset.episode_of_transitions()]
    windows = observation_windows(dataset, torch.arange(15), 3, starts)
    assert windows.shape == (15, 5, 4)
    assert (windows[:, :, 0] == episode[:, None]).all()  # every frame from the transition's own episode
    expected_steps = (step[:, None] + torch.tensor([-3, -2, -1, 0, 1])).clamp(min=0).float()
    assert (windows[:, :, 1] == expected_steps).all()  # edge padding with the first observation


def test_label_selection_modes():
    dataset = toy_dataset("continuous", n_episodes=40)
    rng = np.random.default_rng(0)
    chosen = choose_labelled_episodes(dataset, 0.1, "random", rng)
    assert len(chosen) == 4 and len(set(chosen)) == 4
    assert len(choose_labelled_episodes(dataset, 0.001, "random", rng)) == 1  # at least one episode
    low = choose_labelled_episodes(dataset, 0.5, "low_return", rng)
    assert sorted(low) == list(range(20))  # returns increase with the index: the bottom half
    with pytest.raises(UsageError, match="only 20 below-median episodes"):
        choose_labelled_episodes(dataset, 0.6, "low_return", rng)
    # hiding is only ever narrowed: episodes already hidden are never candidates
    hidden = hide_actions(dataset, np.arange(10))
    again = choose_labelled_episodes(hidden, 0.5, "random", rng)
    assert len(again) == 5 and set(again) <= set(range(10))  # half of the 10 labelled episodes
    assert list(choose_labelled_episodes(hidden, 1.0, "random", rng)) == list(range(10))
    with pytest.raises(UsageError, match="only 5 below-median"):  # 6 of 10 labelled; 15-19 are below median
        choose_labelled_episodes(hide_actions(dataset, np.arange(15, 25)), 0.6, "low_return", rng)


def test_hide_and_select_episodes():
    dataset = toy_dataset("discrete", n_episodes=4, length=5)
    hidden = hide_actions(dataset, np.array([1, 3]))
    assert hidden.labelled.tolist() == [False] * 5 + [True] * 5 + [False] * 5 + [True] * 5
    assert (hidden.actions[~hidden.labelled] == -1).all()
    assert torch.equal(hidden.actions[hidden.labelled], dataset.actions[hidden.labelled])
    assert (dataset.actions >= 0).all()  # the original is untouched
    only = select_episodes(hidden, np.array([1, 3]))
    assert only.episode_starts.tolist() == [0, 5] and len(only) == 10 and only.labelled.all()
    assert torch.equal(only.observations, dataset.observations[torch.cat([torch.arange(5, 10), torch.arange(15, 20)])])
    assert list(only.episode_returns) == [1.0, 3.0]


class SpyBase(OfflineAlgorithm):
    """A base algorithm that remembers the dataset and batches SS-ORL hands it."""

    name = "spy"
    config_class = dataclasses.make_dataclass("SpyConfig", [("batch_size", int, 32)])
    seen: list = []

    def setup(self, dataset):
        SpyBase.seen.append(dataset)

    def update(self, batch):
        assert not batch.actions.isnan().any()
        return {"loss": 0.0}

    def act(self, observations):
        return np.zeros((len(observations), *self.spec.action_space.shape), np.float32)

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


@pytest.fixture
def spy_registry(monkeypatch):
    real = registry.algorithm_class
    monkeypatch.setattr(registry, "algorithm_class", lambda name: SpyBase if name == "spy" else real(name))
    SpyBase.seen = []
    return SpyBase


def build_ssorl(spec, *overrides):
    cls = registry.algorithm_class("ssorl")
    return cls(spec, build_config(cls, (("base", "spy"), *SMALL_IDM, *overrides)), 0)


def test_base_algorithm_sees_proxy_labels_never_hidden_actions(spy_registry):
    dataset = toy_dataset("continuous")
    ssorl = build_ssorl(dataset.spec, ("label_fraction", "0.25"))
    ssorl.setup(dataset)
    (given,) = spy_registry.seen
    keep = np.sort(np.random.default_rng(0 + 7_919).choice(20, 5, replace=False))
    labelled = torch.zeros(20, dtype=torch.bool)
    labelled[keep] = True
    labelled = labelled[dataset.episode_of_transitions()]
    assert given.labelled is None and not given.actions.isnan().any()
    assert torch.equal(given.actions[labelled], dataset.actions[labelled])  # true labels kept
    proxy = given.actions[~labelled]
    assert not torch.equal(proxy, dataset.actions[~labelled])  # ...the others are the IDM's
    hidden = hide_actions(dataset, keep)
    assert torch.allclose(proxy, ssorl.idm.label(hidden, torch.nonzero(~labelled).squeeze(1)))
    assert ssorl.diagnostics["proxy_label_error"] < 0.2  # guessing 0 would be 0.58 (uniform actions)
    assert ssorl.diagnostics["labelled_transitions"] == 0.25
    batch = ssorl.sample(dataset, 256, torch.Generator().manual_seed(0))
    assert len(batch) == 32  # the base algorithm's batch size, from the proxy-labelled data
    assert set(ssorl.update(batch)) >= {"loss", "idm_validation_error", "proxy_label_error"}


def test_labelled_only_baseline_trains_on_labelled_episodes(spy_registry):
    dataset = toy_dataset("discrete")
    ssorl = build_ssorl(dataset.spec, ("label_fraction", "0.1"), ("unlabelled", "drop"))
    ssorl.setup(dataset)
    (given,) = spy_registry.seen
    assert len(given) == 2 * 40 and given.n_episodes == 2 and (given.actions >= 0).all()
    assert type(ssorl).leaderboard_name(ssorl.config) == "spy (labelled only)"


def test_ssorl_learns_pendulum_from_mostly_action_free_data(pendulum_expert, tmp_path):
    overrides = (("base", "bc"), ("base_set", "width=64"), ("label_fraction", "0.25"), ("idm_updates", "2000"))
    record = execute_run(RunSpec("ssorl", pendulum_expert, 0, updates=1500, eval_every=1500, checkpoint_every=500,
                                 eval_episodes=5, overrides=overrides), RunStore(tmp_path))
    assert record["normalized_score"] > 60, record["return_mean"]  # random ~0, 5 of 20 episodes labelled
    # a row with other IDM settings than the default is named with them
    assert record["algorithm_label"] == "ssorl(bc, idm updates=2000)" and record["columns"] == {"label_fraction": 0.25}
    assert record["final_losses"]["proxy_label_error"] < 0.15
    assert record["setup_seconds"] > 0


def test_resumed_ssorl_run_equals_uninterrupted(pendulum_expert, tmp_path):
    spec = RunSpec("ssorl", pendulum_expert, 3, updates=120, eval_every=120, checkpoint_every=20, eval_episodes=2,
                   overrides=(("base", "td3_bc"), ("base_set", "width=64"), ("idm_updates", "200"),
                              ("idm_width", "32")))
    assert_resumes_exactly(spec, tmp_path)


def write_action_free_copy(source_id: str, target_id: str, hidden: list[int], use_metadata: bool) -> None:
    """A Minari dataset whose episodes ``hidden`` carry no actions: NaN actions, or (``use_metadata``)
    listed in the project metadata with placeholder actions."""
    source = open_dataset(source_id)
    episodes = []
    for i, episode in enumerate(source.iterate_episodes()):
        actions = np.array(episode.actions)
        if i in hidden:
            actions = np.zeros_like(actions) if use_metadata else np.full_like(actions, np.nan)
        episodes.append(Episode(seed=i, episode_return=float(np.sum(episode.rewards)), length=len(episode.rewards),
                                observations=episode.observations, actions=actions, rewards=episode.rewards,
                                terminations=episode.terminations, truncations=episode.truncations))
    meta = {"action_free_episodes": hidden} if use_metadata else {}
    write_dataset(target_id, episodes, source.spec.env_spec.id, source.observation_space, source.action_space,
                  source.storage.metadata["ref_min_score"], source.storage.metadata["ref_max_score"], "test", meta)


@pytest.mark.parametrize("source, use_metadata", [("pendulum", False), ("cartpole", True)])
def test_genuinely_action_free_minari_dataset(source, use_metadata, request, tmp_path, cli):
    source_id = request.getfixturevalue(f"{source}_expert")
    target = f"test/{source}/action-free-{int(use_metadata)}-v0"
    write_action_free_copy(source_id, target, [1, 2, 3, 4, 5, 6, 7, 8], use_metadata)
    dataset = load_dataset(target)
    assert dataset.action_free
    starts = dataset.episode_starts.tolist() + [len(dataset)]
    assert not dataset.labelled[starts[1]:starts[9]].any() and dataset.labelled[:starts[1]].all()
    hidden = dataset.actions[~dataset.labelled]
    assert ((hidden == -1) if use_metadata else hidden.isnan()).all()

    # listed in the metadata or found as all-NaN actions: refused before any run starts
    result = cli("run", "--algo", "bc", "--dataset", target, "--out", str(tmp_path / "bc"))
    assert_usage_error(result, f"dataset '{target}' has action-free episodes", "--algo ssorl --set base=bc")
    assert not (tmp_path / "bc" / "runs").exists() and not (tmp_path / "bc" / "failures.jsonl").exists()
    record = execute_run(RunSpec("ssorl", target, 0, updates=20, eval_every=20, eval_episodes=1,
                                 overrides=(("base", "bc"), ("label_fraction", "1.0"), *SMALL_IDM)),
                         RunStore(tmp_path))
    # label_fraction 1.0 keeps every label the dataset has; the rest was proxy-labelled
    assert record["final_losses"]["labelled_transitions"] == pytest.approx(float(dataset.labelled.float().mean()))
    assert "proxy_label_error" not in record["final_losses"]  # the truth is not in the file


@pytest.mark.parametrize("option, fragment", [
    ("label_fraction=0", "expected a float in (0, 1]"),
    ("label_fraction=1.5", "expected a float in (0, 1]"),
    ("label_fraction=-0.1", "expected a float in (0, 1]"),
    ("selection=best", "unknown selection 'best'; one of: low_return, random"),
    ("unlabelled=keep", "unknown unlabelled 'keep'; one of: drop, proxy"),
    ("base=nope", "unknown algorithm 'nope'"),
    ("base=ssorl", "base cannot be ssorl itself"),
    ("base_set=expectile=2", "invalid value '2' for iql.expectile"),
])
def test_bad_ssorl_settings_are_usage_errors(option, fragment, cli, pendulum_expert, tmp_path):
    result = cli("run", "--algo", "ssorl", "--dataset", pendulum_expert, "--set", option, "--out", str(tmp_path))
    assert_usage_error(result, fragment)


def test_ssorl_inherits_the_base_action_spaces(cartpole_expert, pendulum_expert):
    with pytest.raises(UsageError, match=r"algorithm 'ssorl\(td3_bc\)' does not support discrete actions"):
        preflight([RunSpec("ssorl", cartpole_expert, 0, overrides=(("base", "td3_bc"),))])
    preflight([RunSpec("ssorl", pendulum_expert, 0, overrides=(("base", "td3_bc"),))])


@pytest.mark.parametrize("bright", [255, 1])
def test_idm_reads_image_observations_with_its_cnn(bright):
    """A bright pixel on an 8x8 uint8 image (0-255 like Atari, or 0/1 like MinAtar) moves by the
    action (one of the 4 directions that keep it on the image)."""
    rng = np.random.default_rng(0)
    moves = np.array([(0, 1), (0, -1), (1, 0), (-1, 0)])
    n_episodes, length = 60, 20
    frames, next_frames, actions = [], [], []
    for _ in range(n_episodes):
        position = rng.integers(8, size=2)
        for _ in range(length):
            action = rng.choice([a for a, move in enumerate(moves) if ((position + move) % 8 == position + move).all()])
            image = np.zeros((8, 8, 1), np.uint8)
            image[tuple(position)] = bright
            position = position + moves[action]
            following = np.zeros((8, 8, 1), np.uint8)
            following[tuple(position)] = bright
            frames.append(image)
            next_frames.append(following)
            actions.append(action)
    n = n_episodes * length
    dataset = TransitionDataset(
        dataset_id="pixels", spec=EnvSpec(gym.spaces.Box(0, bright, (8, 8, 1), np.uint8), gym.spaces.Discrete(4)),
        observations=torch.tensor(np.array(frames)), actions=torch.tensor(actions),
        rewards=torch.zeros(n), next_observations=torch.tensor(np.array(next_frames)), terminals=torch.zeros(n),
        timeouts=torch.zeros(n), episode_starts=torch.arange(0, n, length), episode_returns=np.zeros(n_episodes),
    )
    idm = InverseDynamics(dataset.spec, IDMSettings(window=0, width=64, updates=1000, eval_every=250), 0,
                          torch.device("cpu"))
    assert idm.model.image_shape == (8, 8, 1)
    idm.fit(dataset, torch.arange(0, 1000))
    held_out = torch.arange(1000, 1200)
    assert idm.error(dataset, held_out, dataset.actions[held_out]) < 0.05  # chance: 0.75
