"""Offline RL on pixels at CPU scale: MinAtar Breakout and SpaceInvaders, expert and mixed data.

MinAtar (Young & Tian, 2019) keeps the dynamics of five Atari games on 10x10 grids with one channel
per object kind, so that a CNN learner trains on a CPU in minutes. The behaviour policies are the
shipped PPO checkpoints (``offrl_bench/data/policies/MinAtar/``; Breakout expert 6.2, medium 3.1,
random 0.37; SpaceInvaders 50.0, 26.9, 4.32). Expert data come from the expert policy, mixed data
from equal shares of random, medium and expert episodes (by episode count, as every ``mixed``
dataset here), all with the project's collection noise.

The learners read the uint8 grids through the MinAtar encoder (``algorithms/nn.py``, chosen from
the frame size). BC, BCQ, CQL and IQL run ``UPDATES`` updates at their own defaults; the Decision
Transformer is the generalization suite's small one (context 10, 64-dim embeddings, 2 layers), in
the suite's last two parts because a CNN per token makes it the suite's cost: the other rows can be
published before its runs finish. The question the suite answers is the D4RL-style claim
``offline-rl-beats-bc-on-mixed``: on mixed data, do the value-based learners beat BC?
"""

from offrl_bench.data.make import DatasetRequest
from offrl_bench.suites import CombinedSuite, Suite
from offrl_bench.suites.generalization import SMALL_DT

GAMES = ("MinAtar/Breakout-v1", "MinAtar/SpaceInvaders-v1")
QUALITIES = ("expert", "mixed")
#: Episodes per dataset, about 40,000-60,000 transitions each: with the collection noise (10% random
#: actions), Breakout's random, medium and expert episodes last about 10, 42 and 61 steps, and
#: SpaceInvaders' 60, 197 and 152 (16 episodes each, seed 0). By episodes, not ``steps``: collecting
#: until a number of transitions first plays one episode per wanted transition (``data.make``).
EPISODES = {"MinAtar/Breakout-v1": 1_000, "MinAtar/SpaceInvaders-v1": 300}
UPDATES = 5_000
ALGORITHMS = ("bc", "bcq", "cql", "iql")


def _part(game: str, algorithms: tuple[str, ...]) -> Suite:
    return Suite(
        name="atari", description="",
        datasets=tuple(DatasetRequest(game, quality, episodes=EPISODES[game]) for quality in QUALITIES),
        algorithms=algorithms, seeds=(0, 1, 2, 3, 4), updates=UPDATES, eval_every=1_000, eval_episodes=30,
        checkpoint_every=1_000, overrides={"dt": SMALL_DT},
    )


ATARI = CombinedSuite(
    name="atari",
    description="BC, BCQ, CQL, IQL and DT on MinAtar Breakout and SpaceInvaders frames, expert and mixed data "
                "(5 seeds)",
    parts=(*(_part(game, ALGORITHMS) for game in GAMES), *(_part(game, ("dt",)) for game in GAMES)),
)
