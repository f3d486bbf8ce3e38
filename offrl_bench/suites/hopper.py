"""Offline RL on MuJoCo Hopper-v5 at CPU scale (needs the ``mujoco`` extra).

D4RL's Hopper tasks, made locally: the behaviour policies are SAC checkpoints this project trained
(360k environment steps, shipped with the package), each dataset is 100 episodes at expert, medium
or mixed quality. 20,000 updates per run instead of the papers' 1M: enough for BC to reach its
behaviour policy and for the offline methods to show whether they improve on it. CQL is left out
here: with the offline suite's CPU settings it trains at 23 updates/s on one core on Hopper data,
15 minutes per run at this budget; the ``morec`` suite has it on Hopper medium data at 4,000 updates.
"""

from offrl_bench.data.make import DatasetRequest
from offrl_bench.suites import Suite

HOPPER = Suite(
    name="hopper",
    description="BC, TD3+BC, IQL on Hopper-v5 expert/medium/mixed data (5 seeds; needs the mujoco extra)",
    datasets=tuple(DatasetRequest("Hopper-v5", quality) for quality in ("expert", "medium", "mixed")),
    algorithms=("bc", "td3_bc", "iql"),
    seeds=(0, 1, 2, 3, 4),
    updates=20_000,
    eval_every=2_000,
    eval_episodes=30,
    checkpoint_every=2_000,
)
