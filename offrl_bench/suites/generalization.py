"""The offline generalization gap ("The Generalization Gap in Offline RL", Mediratta et al., 2024),
at CPU scale on MiniGrid.

Datasets are collected only on train levels (seeds 0-199 of MiniGrid-DoorKey-6x6-v0, whose wall,
door, key and start positions change with the seed) by an expert and a suboptimal ("medium") PPO
policy that were themselves trained on those levels only, like the paper's 1M_E and 1M_S. Each
algorithm is trained on them and evaluated on train levels, on validation levels 200-249 and on
test levels 1,000,000-1,999,999, where the level-split wrapper skips every id whose layout a train
(or val) level shows. The leaderboard's ``generalization_gap`` is the train-level minus the
test-level normalised score.

Why DoorKey-6x6: DoorKey-5x5 draws only 48 layouts, all of which the 200 train levels show, so its
test levels could not be unseen. The 6x6 train levels show 171 layouts; 35% of test ids repeat one
of them (or a val layout) and are skipped (``benchmarks/level_leak.py``).

CPU scale: 2,000 updates per run, and a smaller Decision Transformer (context 10, 64-dim
embeddings, 2 layers instead of CORL's 20 / 128 / 3; DoorKey-6x6 episodes of the expert last about
20 steps), which makes a DT update about 8x cheaper.
"""

from offrl_bench.data.make import DatasetRequest
from offrl_bench.suites import Suite

ENV_ID = "MiniGrid-DoorKey-6x6-v0"
SMALL_DT = (("context", "10"), ("embedding_dim", "64"), ("layers", "2"))  # see above

GENERALIZATION = Suite(
    name="generalization",
    description="BC, BCQ, CQL, IQL, DT on MiniGrid DoorKey train-level data; scores on train/val/test levels",
    datasets=tuple(DatasetRequest(ENV_ID, quality, wrapper="levels:train") for quality in ("expert", "medium")),
    algorithms=("bc", "bcq", "cql", "iql", "dt"),
    wrappers=("levels:train", "levels:val", "levels:test"),
    seeds=(0, 1, 2, 3, 4),
    updates=2_000,
    eval_every=1_000,
    eval_episodes=20,
    checkpoint_every=1_000,
    overrides={"dt": SMALL_DT},
)
