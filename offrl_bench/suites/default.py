"""The published default leaderboard: every axis of the benchmark at CPU scale, in one suite.

- **Data quality**: BC, TD3+BC, IQL and CQL on Pendulum-v1 medium and mixed data; BC, IQL, CQL and
  BCQ on CartPole-v1 medium data. (Continuous BCQ, with its 750-wide VAE sampling ten actions per
  next state, is in the ``offline`` suite, not here.) Decision Transformer is left out: at this
  budget (2,000 updates, half of them learning-rate warm-up) it stayed at random level on Pendulum
  (-0.2 and -8.9 normalised in the 3-seed default leaderboard of 2026-11-23) and at 14.7 against
  BC's 49.1 on CartPole, so its row would measure the budget, not the method.
- **STORI stochasticity**: BC and IQL trained on Pendulum-v1 expert data, evaluated on the default
  environment and under types 1 (action noise), 2.1 (random events), 2.2 (concept drift) and 3.2
  (dropped frames).
- **Level splits**: BC, BCQ and IQL on MiniGrid-DoorKey-6x6 train-level expert data, scored on the
  train levels and on test levels whose layouts no train level shows. A layout there includes the
  agent's start pose: DoorKey-6x6 has 36 maps and its 200 train levels show them all, so its test
  levels are new start poses on known maps, and the generalization claims do not read these rows
  (the ``generalization`` suite, on MultiRoom, tests unseen maps).
- **Label fractions**: SS-ORL (IQL on IDM proxy labels) against IQL on the labelled episodes alone
  and IQL on fully labelled data, at 10% labels of the 200-episode Pendulum mixed dataset, the
  labelled episodes drawn from those below the median return (the paper's headline setting).
- **MOREC**: MOPO and MOPO with MOREC's dynamics-reward filter over the same trained ensemble on
  Pendulum medium, next to the model-free rows above.
- **Offline-to-online**: PPO from scratch against BC -> PPO from 2 expert demonstrations on the
  MiniGrid train levels, scored on test levels.

Offline runs take 2,000 updates (CQL with the offline suite's CPU settings), MOPO 8,000, online
runs 163,840 environment steps: the PPO that trained DoorKey-6x6's behaviour policy on the same train
levels first reached the goal after about 150,000 steps, so a shorter budget would compare BC -> PPO
against a PPO that cannot yet have learned. 5 seeds per row, the fewest at which the claims engine calls a
verdict more than indicative, and 30 evaluation episodes per evaluation: one Pendulum policy's
returns range from about 0 to -1,500 with the start state, and evaluation costs a fraction of a
second.

Sanity floors (``benchmarks/budget_check.py --suite default``; verdicts in the published reference):
every algorithm must reach half of expert level on its tasks' expert data at its budget. Two did
not at 2,000 updates, and each was fixed by measurement, not by dropping the row. IQL on MiniGrid
DoorKey-5x5 expert data (the level task before DoorKey-6x6) scored 11.0: its rewards were scaled by
the paper's locomotion rule, x2,700 there; unscaled, as the paper treats sparse goal rewards, it
scored 100.0 (now IQL's default for sparse rewards). MOPO on Pendulum expert data scored 12.9 at
2,000 updates and 89.6 at 8,000 (5 seeds each): SAC on model rollouts needs more updates than the
regularised model-free methods, so the MOREC part (MOPO with and without the filter, same budget)
runs 8,000 updates.
"""

from offrl_bench.data.make import DatasetRequest
from offrl_bench.suites import CombinedSuite, Suite
from offrl_bench.suites.offline import CQL_CPU_SETTINGS
from offrl_bench.suites.online import ENV_ID as MINIGRID
from offrl_bench.suites.ssorl import DATASETS as SSORL_DATASETS
from offrl_bench.suites.stori import STORI_WRAPPERS

SCALE = dict(seeds=(0, 1, 2, 3, 4), updates=2_000, eval_every=1_000, checkpoint_every=1_000, eval_episodes=30)
MINIGRID_EXPERT = DatasetRequest(MINIGRID, "expert", wrapper="levels:train")

DEFAULT = CombinedSuite(
    name="default",
    description="Every axis at CPU scale: data quality, STORI types, level splits, label fractions, MOREC, "
                "offline-to-online",
    parts=(
        Suite("quality", "", datasets=(DatasetRequest("Pendulum-v1", "medium"), DatasetRequest("Pendulum-v1", "mixed")),
              algorithms=("bc", "td3_bc", "iql", "cql"), overrides={"cql": CQL_CPU_SETTINGS}, **SCALE),
        Suite("quality", "", datasets=(DatasetRequest("CartPole-v1", "medium"),),
              algorithms=("bc", "iql", "cql", "bcq"), overrides={"cql": CQL_CPU_SETTINGS}, **SCALE),
        Suite("stori", "", datasets=(DatasetRequest("Pendulum-v1", "expert"),), algorithms=("bc", "iql"),
              wrappers=STORI_WRAPPERS[:5], **SCALE),
        Suite("levels", "", datasets=(MINIGRID_EXPERT,), algorithms=("bc", "bcq", "iql"),
              wrappers=("levels:train", "levels:test"), **SCALE),
        Suite("labels", "", datasets=SSORL_DATASETS[:1], algorithms=(),
              variants=(("ssorl", (("base", "iql"), ("label_fraction", "0.1"), ("selection", "low_return"))),
                        ("ssorl", (("base", "iql"), ("label_fraction", "0.1"), ("selection", "low_return"),
                                   ("unlabelled", "drop"))),
                        ("ssorl", (("base", "iql"), ("label_fraction", "1.0")))), **SCALE),
        Suite("morec", "", datasets=(DatasetRequest("Pendulum-v1", "medium"),), algorithms=("mopo",),
              variants=(("mopo", (("filter", "morec"),)),), **{**SCALE, "updates": 8_000}),
        Suite("online", "", datasets=(MINIGRID_EXPERT,), algorithms=("ppo",),
              variants=(("bc_ppo", (("demonstrations", "2"),)),), wrappers=("levels:test",),
              env_steps=163_840, env_steps_eval_every=16_384, **SCALE),
    ),
)
