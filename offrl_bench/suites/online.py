"""Offline data to speed up online RL ("Using Offline Data to Speed-up Reinforcement Learning in
Procedurally Generated Environments", Andres et al., 2023), at CPU scale on MiniGrid.

PPO learns MiniGrid-DoorKey-6x6 on the train levels (seeds 0-199) from scratch, after BC
pre-training on 2 or 10 expert episodes of those levels (``bc_ppo``), or with the BC loss kept
during PPO (``bc_ppo+il``, imitation coefficient 0.5). Every run is scored on test levels
1,000,000-1,999,999 whose layouts neither the demonstrations nor training show, every 4,096 environment
steps; ``offrl-bench plot`` draws the sample-efficiency curves (score against environment steps).
"""

from offrl_bench.data.make import DatasetRequest
from offrl_bench.suites import Suite

#: The MiniGrid task of the online suite and of the default suite's level-split and online rows.
ENV_ID = "MiniGrid-DoorKey-6x6-v0"
ONLINE = Suite(
    name="online",
    description="PPO from scratch vs BC->PPO and concurrent imitation from 2 or 10 expert demos (MiniGrid levels)",
    datasets=(DatasetRequest(ENV_ID, "expert", wrapper="levels:train"),),
    algorithms=("ppo",),
    variants=(
        ("bc_ppo", (("demonstrations", "2"),)),
        ("bc_ppo", (("demonstrations", "10"),)),
        ("bc_ppo", (("demonstrations", "2"), ("imitation_coef", "0.5"))),
    ),
    wrappers=("levels:test",),
    seeds=(0, 1, 2, 3, 4),
    # 80 PPO rollouts of 8 x 256 steps: the PPO that trained the behaviour policy on these train
    # levels first reached the goal after about 150,000 steps.
    env_steps=163_840,
    env_steps_eval_every=8_192,
    eval_episodes=20,
)
