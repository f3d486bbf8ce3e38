"""STORI stochasticity as a benchmark axis, at CPU scale.

Agents are trained on data from the default environment and evaluated under each STORI type; a
second dataset per environment is collected under type 1 (action noise) to test the reverse
direction. The leaderboard's ``drop_from_default`` column is the normalised score lost relative to
the same agent evaluated on the default environment.
"""

from offrl_bench.data.make import DatasetRequest
from offrl_bench.suites import Suite

#: Type 1, 2.1, 2.2 and 3.2 (twice: dropped frames and a masked feature); "" is type 3.1.
STORI_WRAPPERS = (
    "",
    "stori:action:p=0.3",
    "stori:events:mode=state,p=0.05,sigma=0.1",
    "stori:drift:at=100,to=stori:partial:mode=drop,p=0.5,fill=previous",
    "stori:partial:mode=drop,p=0.3,fill=previous",
    "stori:partial:mode=mask,features=1",
)

STORI = Suite(
    name="stori",
    description="BC trained on default (and type-1 noisy) data, evaluated under every STORI stochasticity type",
    datasets=tuple(
        DatasetRequest(env_id, "expert", wrapper=wrapper)
        for env_id in ("CartPole-v1", "Pendulum-v1") for wrapper in ("", "stori:action:p=0.3")
    ),
    algorithms=("bc",),
    wrappers=STORI_WRAPPERS,
    seeds=(0, 1, 2, 3, 4),
    updates=2_000,
    eval_every=1_000,
    eval_episodes=30,
    checkpoint_every=1_000,
)
