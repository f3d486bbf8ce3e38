"""The embedded default job: small enough for a fresh CPU machine in a few minutes."""

from offrl_bench.data.make import DatasetRequest
from offrl_bench.suites import Suite

QUICK = Suite(
    name="quick",
    description="BC vs random on CartPole-v1 and Pendulum-v1 expert and medium data (3 seeds, CPU minutes)",
    datasets=(
        DatasetRequest("CartPole-v1", "expert"),
        DatasetRequest("CartPole-v1", "medium"),
        DatasetRequest("Pendulum-v1", "expert"),
        DatasetRequest("Pendulum-v1", "medium"),
    ),
    algorithms=("bc", "random"),
    seeds=(0, 1, 2),
    updates=2_000,
    eval_every=500,
    eval_episodes=10,
    checkpoint_every=500,
)
