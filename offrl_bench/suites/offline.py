"""Offline RL algorithms against BC across data quality, at CPU scale.

Pendulum-v1 (continuous) and CartPole-v1 (discrete) at expert, medium and mixed quality; every
installed built-in offline algorithm that supports the action space. 4,000 updates per run instead
of the papers' 1M, so CQL's actor learning rate is raised from CORL's 3e-5 (tuned for 1M steps) to
3e-4 and it samples 4 instead of 10 actions per state for its logsumexp estimate.
"""

from offrl_bench.data.make import DatasetRequest
from offrl_bench.suites import Suite

#: CQL at CPU scale (see above); the other suites that run CQL use it too.
CQL_CPU_SETTINGS = (("actor_lr", "3e-4"), ("n_actions", "4"))

OFFLINE = Suite(
    name="offline",
    description="BC, TD3+BC, IQL, CQL, BCQ on Pendulum-v1 and CartPole-v1 expert/medium/mixed data (5 seeds)",
    datasets=tuple(DatasetRequest(env_id, quality) for env_id in ("Pendulum-v1", "CartPole-v1")
                   for quality in ("expert", "medium", "mixed")),
    algorithms=("bc", "td3_bc", "iql", "cql", "bcq"),
    seeds=(0, 1, 2, 3, 4),
    updates=4_000,
    eval_every=1_000,
    eval_episodes=30,
    checkpoint_every=1_000,
    overrides={"cql": CQL_CPU_SETTINGS},
)
