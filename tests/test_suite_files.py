"""Suites as files: every installed suite written by 'suite show' reads back to the same run ids,
a suite file runs through 'run --suite FILE', and each mistake is one line naming the key."""

from __future__ import annotations

import textwrap
import tomllib

import pytest
import yaml

from offrl_bench.core import registry
from offrl_bench.records.run_store import RunStore
from offrl_bench.suites.files import suite_from_dict
from tests.conftest import assert_usage_error


@pytest.mark.parametrize("name", sorted(registry.available(registry.SUITES)))
def test_every_installed_suite_round_trips_through_its_file_to_the_same_run_ids(name, cli):
    shown = cli("suite", "show", name)
    assert shown.code == 0, shown.err
    from_file = suite_from_dict(tomllib.loads(shown.out), "shown")
    suite = registry.suite(name)
    assert [spec.run_id for spec in from_file.runs()] == [spec.run_id for spec in suite.runs()]
    assert from_file.datasets == suite.datasets


SUITE = """
name = "tiny"
description = "BC (two configs) and random on CartPole expert data"
algorithms = ["bc", "random"]
seeds = [0, 1]
updates = 60
eval_every = 30
checkpoint_every = 30
eval_episodes = 1
datasets = [{{ env_id = "CartPole-v1", quality = "expert", name = "{dataset}" }}]
variants = [{{ algorithm = "bc", set = {{ lr = 1e-3, width = 64 }} }}]
"""


def test_a_suite_file_runs_with_the_ids_of_the_same_suite_in_python(cartpole_expert, cli, tmp_path):
    from offrl_bench.data.make import DatasetRequest
    from offrl_bench.suites import Suite

    path = tmp_path / "tiny.toml"
    path.write_text(SUITE.format(dataset=cartpole_expert))
    result = cli("run", "--suite", str(path), "--out", str(tmp_path / "out"), "--quiet")
    assert result.code == 0, result.err
    python = Suite("tiny", "BC (two configs) and random on CartPole expert data",
                   (DatasetRequest("CartPole-v1", "expert", name=cartpole_expert),), ("bc", "random"), seeds=(0, 1),
                   updates=60, eval_every=30, checkpoint_every=30, eval_episodes=1,
                   variants=(("bc", (("lr", "0.001"), ("width", "64"))),))
    assert set(RunStore(tmp_path / "out").records()) == {spec.run_id for spec in python.runs()}
    assert len(python.runs()) == 6

    as_yaml = tmp_path / "tiny.yaml"  # the same suite in YAML: the same ids, so nothing left to run
    as_yaml.write_text(yaml.safe_dump(tomllib.loads(path.read_text())))
    again = cli("run", "--suite", str(as_yaml), "--out", str(tmp_path / "out"))
    assert again.code == 0 and "6 already finished, 0 to do" in again.err


@pytest.mark.parametrize("edit, fragments", [
    (lambda text: text.replace("seeds = [0, 1]", "seeds = [0, 1]\nseed = 3"),
     ("unknown key 'seed'", "accepted:", "seeds")),
    (lambda text: text.replace("updates = 60", "updates = \"60\""), ("'updates' must be an integer",)),
    (lambda text: text.replace('quality = "expert", ', ""), ("missing key 'datasets[0].quality'",)),
    (lambda text: text.replace("algorithm = \"bc\"", "algo = \"bc\""), ("unknown key 'variants[0].algo'",)),
    (lambda text: text.replace("seeds = [0, 1]", "seeds = [0, 1"), ("is not valid TOML",)),
    (lambda text: text.replace('name = "tiny"\n', ""), ("'name' must be a non-empty string",)),
])
def test_suite_file_mistakes_are_one_line_naming_the_key(edit, fragments, cli, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(edit(SUITE.format(dataset="test/cartpole/expert-v0")))
    assert_usage_error(cli("run", "--suite", str(path), "--out", str(tmp_path / "out")), f"suite file {path}",
                       *fragments)


def test_missing_suite_file_and_unknown_format(cli, tmp_path):
    assert_usage_error(cli("run", "--suite", str(tmp_path / "nope.toml")), "does not exist")
    (tmp_path / "suite.json").write_text("{}")
    assert_usage_error(cli("run", "--suite", str(tmp_path / "suite.json")), "unknown format '.json'", ".toml")
    assert_usage_error(cli("suite", "show", "nope"), "unknown suite 'nope'")


def test_the_documented_example_suite_file_is_valid():
    from tests.conftest import REPO

    page = (REPO / "docs" / "concepts" / "runs.md").read_text()
    example = page.split("```toml\n", 1)[1].split("```", 1)[0]
    suite = suite_from_dict(tomllib.loads(textwrap.dedent(example)), "docs")
    assert len(suite.runs()) == 2 * 2 * 4 * 5  # datasets x wrappers x (3 algorithms + 1 variant) x seeds
