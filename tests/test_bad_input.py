"""Fuzzed bad input: whatever the user hands over, the answer is either a working object or one
clear ``UsageError``, never a traceback from deep inside, and existing results are left intact."""

import dataclasses
import shutil
import typing

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offrl_bench.core import registry
from offrl_bench.core.config import build_config, parse_set_options
from offrl_bench.core.errors import UsageError
from offrl_bench.data.d4rl import import_d4rl
from offrl_bench.data.datasets import dataset_path, load_dataset
from offrl_bench.envs import make_env

FUZZ = settings(max_examples=400, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

numbers = st.one_of(st.integers(-5, 5000).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                    st.sampled_from(["", "nan", "-inf", "1e309", "0x10", "true", "none", "0.5.5", "½"]))
words = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@st.composite
def wrapper_specs(draw) -> str:
    """Mostly near-misses of real specs (right names, wrong values), some plain noise."""
    def one(draw) -> str:
        name = draw(st.sampled_from(["stori", "stori", "stori", "levels", "warp", "", "STORI"]))
        mode = draw(st.sampled_from(["action", "events", "drift", "partial", "bogus", "", "p=0.3"]))
        keys = st.sampled_from(["p", "mode", "scale", "at", "period", "sigma", "features", "fill", "to", "box", "x"])
        params = draw(st.lists(st.tuples(keys, st.one_of(numbers, words)), max_size=3))
        text = ":".join(filter(None, [name, mode, ",".join(f"{k}={v}" for k, v in params)]))
        return text
    spec = "+".join(one(draw) for _ in range(draw(st.integers(1, 2))))
    return draw(st.one_of(st.just(spec), words))


@FUZZ
@given(spec=wrapper_specs())
def test_wrapper_specs(spec):
    try:
        env = make_env("CartPole-v1", spec)
    except UsageError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    env.reset(seed=0)
    for _ in range(20):  # an accepted spec must also work when stepped
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    env.close()


def _settable_fields() -> list[tuple[str, str]]:
    pairs = []
    for name in ("bc", "td3_bc", "iql", "cql", "bcq", "dt"):
        cls = registry.algorithm_class(name)
        pairs += [(name, f.name) for f in dataclasses.fields(cls.config_class)]
    return pairs


@FUZZ
@given(target=st.sampled_from(_settable_fields()), value=st.one_of(numbers, words))
def test_set_values(target, value):
    algo, key = target
    cls = registry.algorithm_class(algo)
    try:
        config = build_config(cls, parse_set_options([f"{key}={value}"]))
    except UsageError as exc:
        assert f"{algo}.{key}" in str(exc) or "invalid config" in str(exc) or "malformed --set" in str(exc)
        return
    hint = typing.get_type_hints(cls.config_class)[key]
    assert isinstance(getattr(config, key), hint)  # what was accepted has the declared type


@pytest.mark.parametrize("option, fragment", [
    ("lr=-1", "invalid value '-1' for bc.lr: expected a float > 0"),
    ("batch_size=0", "invalid value '0' for bc.batch_size: expected a int >= 1"),
    ("lr=nan", "invalid value 'nan' for bc.lr: expected a finite number"),
])
def test_set_range_errors_are_specific(option, fragment):
    with pytest.raises(UsageError, match=fragment.replace("(", r"\(")):
        build_config(registry.algorithm_class("bc"), parse_set_options([option]))


def test_dt_heads_must_divide_the_embedding():
    with pytest.raises(UsageError, match=r"embedding_dim \(128\) must be a multiple of heads \(3\)"):
        build_config(registry.algorithm_class("dt"), (("heads", "3"),))


@st.composite
def d4rl_arrays(draw) -> dict:
    """Five D4RL arrays whose lengths, shapes and dtypes are each sometimes wrong."""
    n = draw(st.integers(0, 6))
    dtypes = st.sampled_from(["float32", "float64", "int64", "bool", "S3", "complex64"])
    arrays = {}
    for key, shape in (("observations", (3,)), ("actions", (1,)), ("rewards", ()), ("terminals", ()),
                       ("timeouts", ())):
        if draw(st.integers(0, 9)) == 0:
            continue  # missing
        rows = n if draw(st.integers(0, 4)) else draw(st.integers(0, 6))
        cols = shape if draw(st.integers(0, 4)) else draw(st.sampled_from([(), (2,), (3, 1), (4,)]))
        dtype = draw(dtypes) if draw(st.integers(0, 3)) == 0 else ("bool" if key in ("terminals", "timeouts")
                                                                    else "float32")
        arrays[key] = np.zeros((rows, *cols), dtype=dtype)
    return arrays


@FUZZ
@given(arrays=d4rl_arrays())
def test_d4rl_files_with_wrong_shapes_and_dtypes(tmp_path_factory, arrays):
    path = tmp_path_factory.mktemp("d4rl") / "fuzz.hdf5"
    with h5py.File(path, "w") as f:
        for key, array in arrays.items():
            f.create_dataset(key, data=array)
    try:
        import_d4rl(path, "Pendulum-v1", "fuzz/pendulum/imported-v0", -1000.0, 0.0, overwrite=True,
                    log=lambda m: None)
    except UsageError as exc:
        assert str(path) in str(exc) or "transitions" in str(exc) or "observation" in str(exc) \
            or "action" in str(exc), str(exc)
        return
    dataset = load_dataset("fuzz/pendulum/imported-v0")  # accepted -> loads with the env's shapes
    assert dataset.observations.shape[1:] == (3,) and dataset.actions.shape[1:] == (1,)


@FUZZ
@given(cut=st.floats(0, 1, exclude_max=True), noise=st.binary(max_size=64), target=st.sampled_from(
    ["main_data.hdf5", "metadata.json"]))
def test_corrupt_minari_datasets(cartpole_expert, cut, noise, target):
    source = dataset_path(cartpole_expert)
    broken_id = "fuzz/cartpole/broken-v0"
    broken = dataset_path(broken_id)
    shutil.rmtree(broken, ignore_errors=True)
    shutil.copytree(source, broken)
    path = broken / "data" / target
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * cut)] + noise)
    try:
        loaded = load_dataset(broken_id)
    except UsageError as exc:
        assert broken_id in str(exc) and "\n" not in str(exc), str(exc)
        return
    finally:
        shutil.rmtree(broken)
    original = load_dataset(cartpole_expert)  # the damage was harmless (e.g. a trailing newline): same data
    assert loaded.observations.equal(original.observations) and loaded.rewards.equal(original.rewards)
