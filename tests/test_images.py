"""Image observations: uint8 frame datasets stacked at sample time, the three CNN encoders, and the
discrete learners that read images through them."""

from __future__ import annotations

import csv

import gymnasium as gym
import h5py
import numpy as np
import pytest
import torch

from offrl_bench.algorithms.nn import (
    EncodedNetwork,
    ImpalaEncoder,
    MinAtarEncoder,
    NatureDQNEncoder,
    encoder_for_shape,
    make_encoder,
)
from offrl_bench.core import registry
from offrl_bench.core.config import build_config
from offrl_bench.core.errors import UsageError
from offrl_bench.core.rollout import Episode, run_episodes
from offrl_bench.data.datasets import dataset_path, load_dataset, write_dataset
from offrl_bench.execution.evaluation import evaluate
from offrl_bench.execution.runner import RunSpec, build_algorithm, execute_run, preflight
from offrl_bench.records.run_store import RunStore


class ShownSide(gym.Env):
    """A bright 3x3 patch somewhere on a noisy uint8 image, in its left or right half; the action
    names the half (0 left, 1 right). 10 steps, reward 1 per correct answer: random scores 5, a
    policy that reads the image 10. The patch moves every step, so only features that find it where
    it is can answer."""

    def __init__(self, size: int = 10, channels: int = 1, high: int = 255) -> None:
        self.size, self.high = size, high
        self.observation_space = gym.spaces.Box(0, high, (size, size, channels), np.uint8)
        self.action_space = gym.spaces.Discrete(2)

    def _draw(self) -> np.ndarray:
        image = (self.np_random.random(self.observation_space.shape) < 0.05).astype(np.uint8) * (self.high // 3 or 1)
        self.side = int(self.np_random.integers(2))
        half = self.size // 2
        column = int(self.np_random.integers(0, half - 2)) + half * self.side
        row = int(self.np_random.integers(0, self.size - 2))
        image[row:row + 3, column:column + 3] = self.high
        return image

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.steps = 0
        return self._draw(), {}

    def step(self, action):
        reward = float(int(action) == self.side)
        self.steps += 1
        return self._draw(), reward, False, self.steps >= 10, {}


for size in (10, 36, 64):
    gym.register(f"test/ShownSide{size}-v0", entry_point=f"{__name__}:ShownSide", kwargs={"size": size})
gym.register("test/ShownSideGrid10-v0", entry_point=f"{__name__}:ShownSide", kwargs={"size": 10, "high": 1})  # 0/1


def _side_of(observations: np.ndarray) -> np.ndarray:
    """The expert: which half holds the patch (the brightest 3x3 block)."""
    half = observations.shape[2] // 2
    bright = observations[..., 0] == observations[..., 0].max(axis=(1, 2), keepdims=True)
    return (bright[:, :, half:].sum((1, 2)) > bright[:, :, :half].sum((1, 2))).astype(np.int64)


def _shown_side_dataset(size: int, episodes: int = 60, grid: bool = False) -> str:
    """Noisy-expert data (25% random actions) on ShownSide of ``size`` pixels (0/1 grids as MinAtar's
    if ``grid``, else 0-255 images), written as a Minari dataset."""
    kind = "Grid" if grid else ""
    env_id, name = f"test/ShownSide{kind}{size}-v0", f"test/shown-side{kind.lower()}-{size}/mixed-v0"
    rng = np.random.default_rng(size)

    def policy(observations: np.ndarray) -> np.ndarray:
        random = rng.integers(2, size=len(observations))
        return np.where(rng.random(len(observations)) < 0.25, random, _side_of(observations))

    data = run_episodes(lambda: gym.make(env_id), policy, episodes, seed=0, record=True)
    env = gym.make(env_id)
    write_dataset(name, data, env_id, env.observation_space, env.action_space, 5.0, 10.0, "test", {}, overwrite=True)
    return name


def _train_and_score(algo: str, dataset_id: str, updates: int, **overrides) -> float:
    dataset = load_dataset(dataset_id)
    cls = registry.algorithm_class(algo)
    config = build_config(cls, tuple((key, str(value)) for key, value in overrides.items()))
    torch.manual_seed(0)
    algorithm = cls(dataset.spec, config, seed=0)
    algorithm.setup(dataset)
    generator = torch.Generator().manual_seed(0)
    for _ in range(updates):
        algorithm.update(algorithm.sample(dataset, config.batch_size, generator))
    return float(np.mean([e.episode_return for e in evaluate(algorithm, dataset.spec.env_id, "", 20, 1_000)]))


# Datasets -----------------------------------------------------------------------------------------

def _episode(rng: np.random.Generator, length: int, shape: tuple[int, ...]) -> Episode:
    observations = rng.integers(0, 256, (length + 1, *shape), dtype=np.uint8)
    return Episode(seed=0, episode_return=0.0, length=length, observations=observations,
                   actions=rng.integers(3, size=length), rewards=np.zeros(length),
                   terminations=np.zeros(length, bool), truncations=np.eye(1, length, length - 1, dtype=bool)[0])


def test_atari_shaped_frames_are_stored_exactly_compressed_and_stacked_at_sample_time(isolated_storage):
    """84x84 frames (which Minari would store as JPEG) round-trip bit for bit through gzip-compressed
    HDF5; an observation stacks the last 4 frames, repeating the episode's first before it starts."""
    rng = np.random.default_rng(0)
    episodes = [_episode(rng, length, (84, 84, 1)) for length in (5, 3)]
    frame_space = gym.spaces.Box(0, 255, (84, 84, 1), np.uint8)
    write_dataset("test/frames/stacked-v0", episodes, "CartPole-v1", frame_space, gym.spaces.Discrete(3), 0.0, 1.0,
                  "test", {"frame_stack": 4}, overwrite=True)
    with h5py.File(dataset_path("test/frames/stacked-v0") / "data" / "main_data.hdf5") as file:
        stored = file["episode_0"]["observations"]
        assert stored.dtype == np.uint8 and stored.compression == "gzip" and stored.shape == (6, 84, 84, 1)
        np.testing.assert_array_equal(stored[()], episodes[0].observations)  # exact: no JPEG

    dataset = load_dataset("test/frames/stacked-v0")
    assert dataset.spec.observation_space.shape == (84, 84, 4) and dataset.spec.image_observations
    assert dataset.observations.shape == (8, 84, 84, 4) and len(dataset) == 8
    frames = [e.observations[..., 0] for e in episodes]
    for i, (episode, t) in enumerate([(0, t) for t in range(5)] + [(1, t) for t in range(3)]):
        expected = np.stack([frames[episode][max(t - back, 0)] for back in (3, 2, 1, 0)], axis=-1)
        following = np.stack([frames[episode][max(t + 1 - back, 0)] for back in (3, 2, 1, 0)], axis=-1)
        np.testing.assert_array_equal(dataset.observations[torch.tensor([i])][0].numpy(), expected)
        np.testing.assert_array_equal(dataset.next_observations[torch.tensor([i])][0].numpy(), following)
    batch = dataset.sample(16, torch.Generator().manual_seed(0))
    assert batch.observations.dtype == torch.uint8 and batch.observations.shape == (16, 84, 84, 4)
    assert dataset.observations.frames.shape == (10, 84, 84, 1)  # every frame once, none stacked
    moved = dataset.to("meta")  # a dataset moved to another device copies its frames once, for both views
    assert moved.observations.frames is moved.next_observations.frames
    assert moved.observations.frames.device.type == "meta" and moved.observations.shape == (8, 84, 84, 4)


def test_frame_stack_metadata_is_checked(isolated_storage):
    rng = np.random.default_rng(1)
    write_dataset("test/frames/bad-stack-v0", [_episode(rng, 3, (12, 12, 2))], "CartPole-v1",
                  gym.spaces.Box(0, 255, (12, 12, 2), np.uint8), gym.spaces.Discrete(3), 0.0, 1.0, "test",
                  {"frame_stack": 0}, overwrite=True)
    with pytest.raises(UsageError, match="frame_stack=0 in its metadata; expected a positive integer"):
        load_dataset("test/frames/bad-stack-v0")


# Encoders -----------------------------------------------------------------------------------------

def test_the_encoder_follows_the_frame_size_and_the_setting_overrides_it():
    assert encoder_for_shape((10, 10, 4)) == "minatar"
    assert encoder_for_shape((64, 64, 3)) == "impala"
    assert encoder_for_shape((84, 84, 4)) == "nature"
    minatar = gym.spaces.Box(0, 1, (10, 10, 4), np.uint8)
    assert isinstance(make_encoder(minatar), MinAtarEncoder) and make_encoder(minatar).scale == 1.0
    assert isinstance(make_encoder(minatar, "impala"), ImpalaEncoder)
    atari = make_encoder(gym.spaces.Box(0, 255, (84, 84, 4), np.uint8))
    assert isinstance(atari, NatureDQNEncoder) and atari.scale == pytest.approx(1 / 255)
    assert atari(torch.zeros(2, 84, 84, 4, dtype=torch.uint8)).shape == (2, 512)
    impala = make_encoder(gym.spaces.Box(0, 255, (64, 64, 3), np.uint8))
    assert impala(torch.zeros(2, 64, 64, 3, dtype=torch.uint8)).shape == (2, 256)
    assert [m.out_channels for m in impala.convs if isinstance(m, torch.nn.Conv2d)] == [16, 32, 32]


def test_an_unknown_encoder_is_a_usage_error(cli, isolated_storage):
    name = _shown_side_dataset(10, episodes=4)
    from tests.conftest import assert_usage_error

    result = cli("run", "--algo", "bc", "--dataset", name, "--set", "encoder=resnet50", "--updates", "10",
                 "--out", str(isolated_storage / "bad-encoder"))
    assert_usage_error(result, "unknown encoder 'resnet50'", "auto, nature, minatar, impala")


def test_algorithms_without_an_image_path_are_refused_before_any_run(isolated_storage):
    name = _shown_side_dataset(10, episodes=4)
    with pytest.raises(UsageError, match="does not take image observations with discrete actions.*bc, bcq, cql, dqn"):
        preflight([RunSpec("bc_ppo", name, 0)])
    preflight([RunSpec(algo, name, 0) for algo in ("bc", "bcq", "cql", "iql", "dt", "ppo", "dqn")])


@pytest.mark.parametrize("size, encoder, updates", [(10, MinAtarEncoder, 300), (36, NatureDQNEncoder, 150),
                                                    pytest.param(64, ImpalaEncoder, 60, marks=pytest.mark.slow)])
def test_bc_learns_to_read_images_through_each_encoder(isolated_storage, size, encoder, updates):
    """Random scores 5 of 10; the patch moves every step, so a policy above 8 finds it in the image."""
    name = _shown_side_dataset(size)
    algorithm_class = registry.algorithm_class("bc")
    spec = load_dataset(name).spec
    policy = algorithm_class(spec, build_config(algorithm_class, ()), seed=0).policy
    assert isinstance(policy, EncodedNetwork) and isinstance(policy.encoder, encoder)
    assert _train_and_score("bc", name, updates, batch_size=64) > 8.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here: the GPU path is untested")
@pytest.mark.parametrize("algo", ["bc", "cql"])
def test_the_cnn_path_learns_on_cuda(cli, isolated_storage, tmp_path, algo):
    """``--device cuda`` trains and evaluates an image learner on the GPU through the command line:
    on 10x10 shown-side frames it must clear the CPU tests' bar (return above 8 of 10; random 5)."""
    name = _shown_side_dataset(10)
    result = cli("run", "--algo", algo, "--dataset", name, "--device", "cuda", "--updates", "300", "--eval-every",
                 "300", "--checkpoint-every", "300", "--eval-episodes", "20", "--set", "batch_size=64", "--out",
                 str(tmp_path), "--quiet", "--workers", "1")
    assert result.code == 0, result.err
    (record,) = RunStore(tmp_path).records().values()
    assert record["spec"]["device"] == "cuda" and record["return_mean"] > 8.0


@pytest.mark.parametrize("algo, updates", [("bcq", 300), ("cql", 300), ("iql", 300),
                                           pytest.param("dt", 300, marks=pytest.mark.slow)])
def test_discrete_learners_read_images(isolated_storage, algo, updates):
    name = _shown_side_dataset(10)
    overrides = {"dt": {"batch_size": 16, "context": 5, "warmup_steps": 50},
                 # returns span only 5-10 here: the locomotion rule would scale rewards ~200x and slow IQL
                 "iql": {"batch_size": 64, "reward_normalization": "none"}}.get(algo, {"batch_size": 64})
    assert _train_and_score(algo, name, updates, **overrides) > 8.0


@pytest.mark.parametrize("algo, size, grid, steps, encoder", [
    ("ppo", 10, True, 8_192, MinAtarEncoder),
    pytest.param("ppo", 36, False, 8_192, NatureDQNEncoder, marks=pytest.mark.slow),  # the fast tests are over budget
    pytest.param("dqn", 10, True, 3_000, MinAtarEncoder, marks=pytest.mark.slow),
])
def test_online_baselines_read_images_through_sb3_cnn_policies(isolated_storage, tmp_path, algo, size, grid, steps,
                                                               encoder):
    """SB3's CnnPolicy with the encoder the frame size picks; 0-255 frames reach it channels first
    (SB3 transposes them), MinAtar's 0/1 grids channels last. Random scores 5 of 10 (0 normalised)."""
    name = _shown_side_dataset(size, episodes=4, grid=grid)
    spec = RunSpec(algo, name, 0, updates=steps, eval_every=steps, checkpoint_every=steps, eval_episodes=20)
    record = execute_run(spec, RunStore(tmp_path))
    assert record["normalized_score"] > 50, record["normalized_score"]
    dataset = load_dataset(name)
    trained = build_algorithm(spec, dataset)
    trained.load_state_dict(torch.load(tmp_path / "runs" / spec.run_id / "checkpoint.pt",
                                       weights_only=False)["algorithm"])
    extractor = trained.model.policy.features_extractor if algo == "ppo" else trained.model.q_net.features_extractor
    assert isinstance(extractor.encoder, encoder) and extractor.channels_first == (not grid)
    frames = dataset.observations[:200].numpy()
    assert (trained.act(frames) == _side_of(frames)).mean() > 0.75


# MinAtar ------------------------------------------------------------------------------------------

def test_minatar_observations_are_uint8_grids_and_episodes_replay_from_their_seed():
    from offrl_bench.envs import make_env

    env = make_env("MinAtar/Breakout-v1")
    assert env.observation_space == gym.spaces.Box(0, 1, (10, 10, 4), np.uint8)
    runs = [run_episodes(lambda: make_env("MinAtar/Breakout-v1"), lambda obs: np.full(len(obs), 1), 3, seed=5,
                         record=True) for _ in range(2)]
    for first, second in zip(*runs):
        assert first.observations.dtype == np.uint8 and set(np.unique(first.observations)) <= {0, 1}
        np.testing.assert_array_equal(first.observations, second.observations)


@pytest.mark.slow
def test_minatar_data_make_and_an_offline_run_end_to_end(cli, isolated_storage, tmp_path):
    """The shipped Breakout behaviour policies make a mixed dataset of uint8 grids; discrete CQL trains
    on it through the MinAtar encoder and is evaluated in the game."""
    name = "test/minatar-breakout/mixed-v0"
    made = cli("data", "make", "MinAtar/Breakout-v1", "--quality", "mixed", "--episodes", "6", "--name", name)
    assert made.code == 0, made.err
    dataset = load_dataset(name)
    assert dataset.observations.dtype == torch.uint8 and dataset.spec.observation_space.shape == (10, 10, 4)
    assert dataset.ref_max_score > 3 * max(dataset.ref_min_score, 0.5)  # the expert clearly beats random
    out = tmp_path / "cql"
    ran = cli("run", "--algo", "cql", "--dataset", name, "--updates", "200", "--eval-every", "100",
              "--eval-episodes", "2", "--workers", "1", "--out", str(out))
    assert ran.code == 0, ran.err
    rows = list(csv.DictReader((out / "leaderboard.csv").open()))
    assert rows[0]["algorithm"] == "cql" and np.isfinite(float(rows[0]["normalized_mean"]))
    from offrl_bench.execution.ope import FQEConfig, evaluate_run

    [run_dir] = (out / "runs").iterdir()
    assert "image observations" in evaluate_run(run_dir, FQEConfig())  # skipped with the reason, no crash
