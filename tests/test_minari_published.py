"""Minari's published datasets run by their own (namespaced) ids, with Minari's reference scores.
Nothing is downloaded: the datasets are written here in Minari's layout by ``minari.DataCollector``,
with the metadata Minari's remote datasets carry."""

from __future__ import annotations

import json

import gymnasium as gym
import minari
import pytest

from offrl_bench.data.datasets import dataset_path
from offrl_bench.records.run_store import RunStore
from tests.conftest import assert_usage_error

REF_MIN, REF_MAX = -1400.0, -150.0  # chosen here; what matters is that the leaderboard uses Minari's


def _publish_like_minari(dataset_id: str, episodes: int = 3) -> str:
    env = minari.DataCollector(gym.make("Pendulum-v1"))
    env.action_space.seed(0)
    for episode in range(episodes):
        env.reset(seed=episode)
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            done = terminated or truncated
    env.create_dataset(dataset_id=dataset_id, algorithm_name="random", author="offrl-bench tests",
                       author_email="tests@example.org", code_permalink="https://example.org",
                       eval_env="Pendulum-v1", ref_min_score=REF_MIN, ref_max_score=REF_MAX,
                       description="random Pendulum, in the layout of Minari's remote datasets")
    env.close()
    return dataset_id


@pytest.fixture(scope="module")
def published(isolated_storage) -> str:
    return _publish_like_minari("mujoco/pendulum/random-v0")


def test_a_published_namespaced_id_runs_with_minaris_reference_scores(published, cli, tmp_path):
    result = cli("run", "--algo", "bc", "--dataset", published, "--updates", "50", "--eval-every", "50",
                 "--eval-episodes", "1", "--out", str(tmp_path), "--quiet")
    assert result.code == 0, result.err
    (record,) = RunStore(tmp_path).records().values()
    assert record["dataset"] == published and record["env_id"] == "Pendulum-v1"
    assert (record["ref_min_score"], record["ref_max_score"]) == (REF_MIN, REF_MAX)
    assert record["normalized_score"] == pytest.approx(100 * (record["return_mean"] - REF_MIN) / (REF_MAX - REF_MIN))


def test_a_dataset_without_env_spec_asks_for_env_and_runs_with_it(isolated_storage, cli, tmp_path):
    dataset_id = _publish_like_minari("D4RL/pendulum/no-spec-v0", episodes=2)
    metadata_file = dataset_path(dataset_id) / "data" / "metadata.json"
    metadata = json.loads(metadata_file.read_text())
    del metadata["env_spec"]
    metadata_file.write_text(json.dumps(metadata))

    arguments = ("run", "--algo", "bc", "--dataset", dataset_id, "--updates", "20", "--eval-every", "20",
                 "--eval-episodes", "1", "--out", str(tmp_path), "--quiet")
    assert_usage_error(cli(*arguments), f"dataset '{dataset_id}' stores no env_spec", "pass --env Pendulum-v1")
    result = cli(*arguments, "--env", "Pendulum-v1")
    assert result.code == 0, result.err
    (record,) = RunStore(tmp_path).records().values()
    assert record["env_id"] == "Pendulum-v1" and record["spec"]["env"] == "Pendulum-v1"


def test_a_published_id_that_is_not_local_says_how_to_download_it(isolated_storage, cli, tmp_path):
    assert_usage_error(cli("run", "--algo", "bc", "--dataset", "mujoco/hopper/medium-v0", "--out", str(tmp_path)),
                       "one of Minari's published datasets", "minari download mujoco/hopper/medium-v0")
