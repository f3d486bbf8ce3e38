"""The offline generalization gap ("The Generalization Gap in Offline RL", Mediratta et al., 2024),
at CPU scale on MiniGrid MultiRoom.

The paper's protocol, on an environment whose levels are all different:
MiniGrid-MultiRoom-N2-S4-v0 draws two rooms joined by a door, with room sizes, positions, door and
goal changing with the seed (``benchmarks/level_leak.py``: 200 train levels show 200 layouts, and
no test id repeats one).

- **Data.** An expert and a suboptimal ("medium") PPO policy, trained on train levels 0-199 only
  like the paper's 1M_E and 1M_S, collect ``STEPS`` transitions each on those levels.
- **Gap.** Every algorithm is scored on its data's train levels and on test levels
  1,000,000-1,999,999 (the level-split wrapper skips any test id whose layout a train or val level
  shows). The leaderboard's ``generalization_gap`` is the train-level minus the test-level score.
- **Diversity at a fixed size** (the paper's third finding): expert datasets of the same ``STEPS``
  transitions from the first 25, 50, 100 and 200 train levels, each scored on its own train levels
  and on the same test levels. One more dataset has ``SIZE_FACTOR`` x the transitions from 25 levels:
  whether more data from few levels makes up for diversity.
- **Online reference.** PPO trains on train levels 0-199 for ``env_steps`` environment steps and is
  scored on the train and the test levels.

CPU scale: 2,000 updates per offline run, and a smaller Decision Transformer (context 10, 64-dim
embeddings, 2 layers instead of CORL's 20 / 128 / 3: expert episodes last about ten steps). 100
evaluation episodes per evaluation, so that one run's score has a standard error of a few points.
"""

from offrl_bench.data.make import DatasetRequest
from offrl_bench.envs.level_splits import DEFAULT_RANGES
from offrl_bench.suites import CombinedSuite, Suite

ENV_ID = "MiniGrid-MultiRoom-N2-S4-v0"
#: The default train split (levels 0-199): PPO trains on it (``levels:test`` trains on the default
#: train levels), so the largest dataset's levels must be exactly these.
TRAIN_LEVELS = DEFAULT_RANGES["train"][1] - DEFAULT_RANGES["train"][0] + 1
#: Transitions in every dataset of the diversity comparison (and the medium one).
STEPS = 10_000
DIVERSITY_LEVELS = (25, 50, 100, TRAIN_LEVELS)
#: The "more data from few levels" dataset: this many times ``STEPS`` from the fewest levels.
SIZE_FACTOR = 4
ALGORITHMS = ("bc", "bcq", "cql", "iql", "dt")
SMALL_DT = (("context", "10"), ("embedding_dim", "64"), ("layers", "2"))  # see above
TEST = "levels:test"


def train_levels(levels: int) -> str:
    """The wrapper spec of the first ``levels`` levels of the default train split."""
    first = DEFAULT_RANGES["train"][0]
    return f"levels:train:train={first}-{first + levels - 1}"


def dataset(quality: str, levels: int, steps: int = STEPS) -> DatasetRequest:
    size = "" if steps == STEPS else f"-{steps // 1000}k-steps"
    return DatasetRequest(ENV_ID, quality, steps=steps, wrapper=train_levels(levels),
                          name=f"offrl/minigrid-multiroom-n2-s4/{quality}-{levels}-levels{size}-v0")


def _part(request: DatasetRequest, levels: int, algorithms: tuple[str, ...] = ALGORITHMS) -> Suite:
    return Suite(
        name="generalization", description="", datasets=(request,), algorithms=algorithms,
        wrappers=(train_levels(levels), TEST), seeds=(0, 1, 2, 3, 4), updates=2_000, eval_every=1_000,
        eval_episodes=100, checkpoint_every=1_000, overrides={"dt": SMALL_DT},
        env_steps=163_840, env_steps_eval_every=8_192,
    )


GENERALIZATION = CombinedSuite(
    name="generalization",
    description="BC, BCQ, CQL, IQL, DT and PPO on MiniGrid MultiRoom: train vs unseen test levels, "
                "and 25-200 train levels at a fixed data size",
    parts=(
        *(_part(dataset("expert", levels), levels) for levels in DIVERSITY_LEVELS),
        _part(dataset("medium", TRAIN_LEVELS), TRAIN_LEVELS),
        _part(dataset("expert", DIVERSITY_LEVELS[0], SIZE_FACTOR * STEPS), DIVERSITY_LEVELS[0]),
        _part(dataset("expert", TRAIN_LEVELS), TRAIN_LEVELS, algorithms=("ppo",)),
    ),
)
