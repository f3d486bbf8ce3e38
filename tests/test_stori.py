"""STORI wrappers: statistically checked effects, exact switching and masks, seeding, bad specs."""

import gymnasium as gym
import numpy as np
import pytest
from scipy import stats

from offrl_bench.core.errors import UsageError
from offrl_bench.envs import make_env
from offrl_bench.envs.stori import ActionPerturbation, ConceptDrift, PartialObservability


def rollout(env, steps, seed=0, action=None):
    """Step through episodes; returns observations and info["stori"] of every step."""
    observations, infos = [], []
    observation, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    for _ in range(steps):
        observation, _, terminated, truncated, info = env.step(env.action_space.sample() if action is None else action)
        observations.append(observation)
        infos.append(info.get("stori", {}))
        if terminated or truncated:
            observation, _ = env.reset()
    return np.array(observations), infos


def binomial_interval(successes, n, level=0.999):
    result = stats.binomtest(successes, n).proportion_ci(confidence_level=level)
    return result.low, result.high


@pytest.mark.parametrize("env_id, p", [("CartPole-v1", 0.3), ("Pendulum-v1", 0.3), ("CartPole-v1", 0.05)])
def test_action_replacement_rate_matches_p(env_id, p):
    env = make_env(env_id, f"stori:action:p={p}")
    _, infos = rollout(env, 5_000)
    replaced = sum(i["action_replaced"] for i in infos)
    low, high = binomial_interval(replaced, 5_000)
    assert low <= p <= high, (replaced, low, high)


def test_replaced_actions_are_really_executed():
    """With p=1 on CartPole, a constant 'push right' policy moves the cart like a random policy."""
    always = make_env("CartPole-v1", "stori:action:p=1.0")
    never = make_env("CartPole-v1", "stori:action:p=0.0")
    lengths = []
    for env in (always, never):
        episode_lengths = []
        for seed in range(30):
            env.reset(seed=seed)
            steps, done = 0, False
            while not done:
                _, _, terminated, truncated, _ = env.step(1)
                steps, done = steps + 1, terminated or truncated
            episode_lengths.append(steps)
        lengths.append(np.mean(episode_lengths))
    assert lengths[1] < 12 < lengths[0]  # pushing right always falls within ~10 steps; random lasts ~20


def test_gaussian_action_noise_stays_in_bounds_and_is_centered():
    env = make_env("Pendulum-v1", "stori:action:p=1.0,mode=gaussian,sigma=0.1")
    seen = []
    inner_step = env.unwrapped.step
    env.unwrapped.step = lambda a: (seen.append(np.array(a)), inner_step(a))[1]
    rollout(env, 2_000, action=np.array([1.0], dtype=np.float32))
    executed = np.concatenate(seen)
    assert executed.min() >= -2.0 and executed.max() <= 2.0
    assert abs(np.median(executed) - 1.0) < 0.05 and 0.15 < executed.std() < 0.25  # sigma = 0.1 x half-range 2


@pytest.mark.parametrize("p", [1.0, 0.3])
def test_continuous_random_replacement_is_the_torque_the_simulator_applies(p):
    """Judged from the simulator, not the wrapper's flag: Pendulum stores the torque it applied in
    ``last_u``. Kept steps apply the chosen 0.5; replaced steps a uniform draw from [-2, 2]."""
    env = make_env("Pendulum-v1", f"stori:action:p={p},mode=random")
    env.reset(seed=0)
    torques, flagged = [], []
    for _ in range(3_000):
        _, _, terminated, truncated, info = env.step(np.array([0.5], dtype=np.float32))
        torques.append(float(env.unwrapped.last_u))
        flagged.append(info["stori"]["action_replaced"])
        if terminated or truncated:
            env.reset()
    torques, flagged = np.array(torques), np.array(flagged)
    assert (torques[~flagged] == 0.5).all()
    replaced = torques[flagged]
    low, high = binomial_interval(len(replaced), len(torques))
    assert low <= p <= high and (replaced != 0.5).all()
    assert stats.kstest(replaced, stats.uniform(-2, 4).cdf).pvalue > 1e-3


def test_random_events_rate_and_effect():
    env = make_env("CartPole-v1", "stori:events:mode=state,p=0.2,sigma=0.05")
    _, infos = rollout(env, 4_000)
    events = sum(i["random_event"] for i in infos)
    low, high = binomial_interval(events, 4_000)
    assert low <= 0.2 <= high
    # a state kick changes the physics: under a fixed alternating policy, kicked episodes end sooner
    def mean_length(env):
        lengths = []
        for seed in range(20):
            env.reset(seed=seed)
            steps, done = 0, False
            while not done:
                _, _, terminated, truncated, _ = env.step(steps % 2)
                steps, done = steps + 1, terminated or truncated
            lengths.append(steps)
        return np.mean(lengths)

    calm = mean_length(make_env("CartPole-v1", "stori:events:mode=state,p=0.0"))
    kicked = mean_length(make_env("CartPole-v1", "stori:events:mode=state,p=1.0,sigma=0.2"))
    assert kicked < 0.7 * calm, (kicked, calm)


def test_state_kick_on_mujoco():
    pytest.importorskip("mujoco", reason="needs the 'mujoco' extra")
    plain, kicked = make_env("Hopper-v5"), make_env("Hopper-v5", "stori:events:mode=state,p=1.0,sigma=0.5")
    plain.reset(seed=0)
    kicked.reset(seed=0)
    action = np.zeros(3, dtype=np.float32)
    assert not np.allclose(plain.step(action)[0], kicked.step(action)[0])
    assert not np.allclose(plain.unwrapped.data.qvel, kicked.unwrapped.data.qvel)


def test_obs_noise_leaves_the_state_alone():
    plain, noisy = make_env("Pendulum-v1"), make_env("Pendulum-v1", "stori:events:mode=obs-noise,p=1.0,sigma=0.3")
    a, _ = rollout(plain, 50)
    b, _ = rollout(noisy, 50)
    assert np.abs(a - b).mean() > 0.1
    assert np.allclose(plain.unwrapped.state, noisy.unwrapped.state)  # same dynamics underneath


def test_sudden_drift_switches_exactly_at_T():
    env = make_env("CartPole-v1", "stori:drift:at=7,to=stori:action:p=1.0")
    env.reset(seed=0)
    flags = [env.step(0)[4]["stori"] for _ in range(9)]
    assert [f["drifted"] for f in flags] == [False] * 7 + [True] * 2
    assert [f["action_replaced"] for f in flags[:7]] == [False] * 7 and all(f["action_replaced"] for f in flags[7:])
    env.reset(seed=1)  # per-episode clock: back to the default regime
    assert env.step(0)[4]["stori"]["drifted"] is False


def test_cyclic_drift_alternates_every_period_and_lifetime_clock():
    env = make_env("Pendulum-v1", "stori:drift:period=4,to=stori:partial:mode=drop,p=1.0")
    env.reset(seed=0)
    observations, flags = [], []
    for _ in range(16):
        observation, *_, info = env.step(np.zeros(1, dtype=np.float32))
        observations.append(observation)
        flags.append(info["stori"]["drifted"])
    assert flags == ([False] * 4 + [True] * 4) * 2
    hidden = [not observation.any() for observation in observations]
    assert hidden == flags  # the drop regime blanks exactly the drifted steps
    lifetime = make_env("Pendulum-v1", "stori:drift:at=3,per=lifetime,to=stori:action:p=1.0")
    lifetime.reset(seed=0)
    for _ in range(3):
        lifetime.step(np.zeros(1, dtype=np.float32))
    lifetime.reset(seed=1)
    assert lifetime.step(np.zeros(1, dtype=np.float32))[4]["stori"]["drifted"] is True


def test_mask_hides_exactly_the_configured_features():
    plain, masked = make_env("CartPole-v1"), make_env("CartPole-v1", "stori:partial:mode=mask,features=1/3")
    a, _ = rollout(plain, 30, action=0)
    b, infos = rollout(masked, 30, action=0)
    assert np.all(b[:, [1, 3]] == 0) and np.array_equal(a[:, [0, 2]], b[:, [0, 2]])
    assert all(i["observation_hidden"] for i in infos)


def test_drop_rate_and_previous_fill():
    env = make_env("Pendulum-v1", "stori:partial:mode=drop,p=0.25,fill=previous")
    observations, infos = rollout(env, 4_000)
    hidden = np.array([i["observation_hidden"] for i in infos])
    low, high = binomial_interval(int(hidden.sum()), 4_000)
    assert low <= 0.25 <= high
    index = np.flatnonzero(hidden[1:])[:50] + 1
    assert np.array_equal(observations[index], observations[index - 1])  # a frozen frame


class ImageEnv(gym.Env):
    """A 12x10 RGB image environment whose pixels are all 200."""

    observation_space = gym.spaces.Box(0, 255, (12, 10, 3), np.uint8)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.full((12, 10, 3), 200, np.uint8), {}

    def step(self, action):
        return np.full((12, 10, 3), 200, np.uint8), 0.0, False, False, {}


class GrayImageEnv(ImageEnv):
    """The same, 12x10 grayscale (no channel axis)."""

    observation_space = gym.spaces.Box(0, 255, (12, 10), np.uint8)

    def reset(self, *, seed=None, options=None):
        return super().reset(seed=seed)[0][..., 0], {}


@pytest.mark.parametrize("mode", ["blackout", "crop"])
@pytest.mark.parametrize("box", [(2, 5, 3, 7), (0, 12, 0, 1)])  # the second touches the edges
@pytest.mark.parametrize("image", [ImageEnv, GrayImageEnv])
def test_image_regions_cover_exactly_the_box(mode, box, image):
    env = PartialObservability(image(), mode=mode, box="/".join(map(str, box)))
    observation, _ = env.reset(seed=0)
    inside = np.zeros(image.observation_space.shape, bool)
    inside[box[0]:box[1], box[2]:box[3]] = True
    if mode == "blackout":
        assert np.all(observation[inside] == 0) and np.all(observation[~inside] == 200)
    else:
        assert np.all(observation[inside] == 200) and np.all(observation[~inside] == 0)


def test_pixel_events_touch_only_a_rectangle():
    from offrl_bench.envs.stori import RandomEvents

    env = RandomEvents(ImageEnv(), mode="pixels", p=1.0, size=0.5)
    env.reset(seed=0)
    changed = np.any(env.step(0)[0] != 200, axis=2)
    rows, cols = np.flatnonzero(changed.any(1)), np.flatnonzero(changed.any(0))
    assert changed.any() and changed[rows.min():rows.max() + 1].any()
    assert rows.max() - rows.min() < 7 and cols.max() - cols.min() < 6  # at most half of each side (+1)
    # over many events the rectangles reach every row and column, the edges included
    touched = np.zeros((12, 10), bool)
    for _ in range(2_000):
        touched |= np.any(env.step(0)[0] != 200, axis=2)
    assert touched.all()


@pytest.mark.parametrize("spec", [
    "stori:action:p=0.3", "stori:events:mode=state,p=0.3", "stori:partial:mode=drop,p=0.5",
    "stori:drift:period=5,to=stori:action:p=0.5", "stori:action:p=0.2+stori:partial:mode=drop,p=0.2",
])
def test_same_seed_same_trajectory(spec):
    a, infos_a = rollout(make_env("CartPole-v1", spec), 300, seed=3)
    b, infos_b = rollout(make_env("CartPole-v1", spec), 300, seed=3)
    c, infos_c = rollout(make_env("CartPole-v1", spec), 300, seed=4)
    assert np.array_equal(a, b) and infos_a == infos_b
    assert not (np.array_equal(a[:len(c)], c[:len(a)]) and infos_a == infos_c)


def test_wrappers_do_not_touch_global_rngs():
    np.random.seed(123)
    expected = np.random.random()
    np.random.seed(123)
    rollout(make_env("CartPole-v1", "stori:action:p=0.5+stori:events:mode=state,p=0.5+stori:partial:mode=drop,p=0.5"),
            200)
    assert np.random.random() == expected


def test_composition_order():
    env = make_env("CartPole-v1", "stori:action:p=0.3+stori:drift:at=2,to=stori:partial:mode=drop,p=1.0")
    layers = []
    while isinstance(env, gym.Wrapper):
        layers.append(type(env))
        env = env.env
    # left to right: the action wrapper sits inside the drift (whose regime wraps it)
    assert layers.index(ConceptDrift) < layers.index(PartialObservability) < layers.index(ActionPerturbation)


@pytest.mark.parametrize("spec, message", [
    ("stori:action:p=1.5", "p must be a probability in [0, 1], got 1.5"),
    ("stori:action:p=-0.1", "p must be a probability"),
    ("stori:action:p=0.3,q=1", "unknown parameter q for stori:action; accepted: p, mode, sigma"),
    ("stori:teleport", "unknown STORI type 'teleport'; one of: action, events, partial, drift"),
    ("stori", "unknown STORI type 'None'"),
    ("stori:action:mode=gaussian", "mode=gaussian needs continuous actions"),
    ("stori:partial:mode=squint", "unknown partial mode 'squint'; one of: drop, mask, blackout, crop"),
    ("stori:partial:mode=mask,features=9", "features 9 outside the observation's 4 features"),
    ("stori:partial:mode=mask,features=0/4", "features 0/4 outside the observation's 4 features"),
    ("stori:partial:mode=blackout,box=0/5/0/5", "mode=blackout needs image observations"),
    ("stori:partial:mode=drop,fill=blur", "unknown fill 'blur'"),
    ("stori:events:mode=pixels", "mode=pixels needs image observations"),
    ("stori:events:mode=breakout-block-cancel", "needs the Atari game Breakout"),
    ("stori:drift:to=stori:action:p=0.3", "exactly one of at=T (sudden) or period=P (cyclic)"),
    ("stori:drift:at=5,period=5,to=stori:action:p=0.3", "exactly one of"),
    ("stori:drift:period=0,to=stori:action:p=0.3", "period must be a positive integer"),
    ("stori:drift:at=5,to=levels:train", "drift targets must be stori wrappers"),
    ("stori:drift:at=5,to=", "'to=' needs a wrapper spec"),
])
def test_invalid_specs(spec, message):
    with pytest.raises(UsageError) as info:
        make_env("CartPole-v1", spec)
    assert message in str(info.value), str(info.value)


def test_cli_rejects_bad_wrapper_before_training(cli, cartpole_expert):
    from conftest import assert_usage_error

    result = cli("run", "--algo", "bc", "--dataset", cartpole_expert, "--wrapper", "stori:action:p=2")
    assert_usage_error(result, "invalid wrapper 'stori'", "p must be a probability in [0, 1], got 2")


def test_evaluation_and_dataset_record_perturbation_rates(tmp_path, cartpole_expert):
    from offrl_bench.data.datasets import load_dataset
    from offrl_bench.data.make import DatasetRequest, make_dataset
    from offrl_bench.execution.runner import RunSpec, execute_run
    from offrl_bench.records.run_store import RunStore

    record = execute_run(RunSpec("random", cartpole_expert, 0, wrapper="stori:action:p=0.5", eval_episodes=20),
                         RunStore(tmp_path))
    assert 0.35 < record["perturbation_rates"]["action_replaced"] < 0.65
    request = DatasetRequest("CartPole-v1", "expert", episodes=4, wrapper="stori:action:p=0.3",
                             name="test/cartpole/noisy-v0")
    make_dataset(request, log=lambda m: None)
    meta = load_dataset(request.dataset_id).metadata
    assert meta["wrapper"] == "stori:action:p=0.3" and 0.2 < meta["perturbation_rates"]["action_replaced"] < 0.4
