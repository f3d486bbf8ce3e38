"""The offline generalization gap ("The Generalization Gap in Offline RL", Mediratta et al., 2024),
at CPU scale on MiniGrid.

Datasets are collected only on train levels (seeds 0-199 of MiniGrid-DoorKey-5x5-v0, whose door,
key and wall positions change with the seed) by an expert and a suboptimal ("medium") PPO policy,
like the paper's 1M_E and 1M_S. Each algorithm is trained on them and evaluated on train levels,
on validation levels 200-249 and on test levels 1,000,000-1,999,999 that no dataset contains. The
leaderboard's ``generalization_gap`` is the train-level minus the test-level normalised score.

CPU scale: 2,000 updates per run, and a smaller Decision Transformer (context 10, 64-dim
embeddings, 2 layers instead of CORL's 20 / 128 / 3; DoorKey-5x5 episodes of the expert last about
14 steps), which makes a DT update about 8x cheaper.
"""

from offrl_bench.data.make import DatasetRequest
from offrl_bench.suites import Suite

ENV_ID = "MiniGrid-DoorKey-5x5-v0"
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
