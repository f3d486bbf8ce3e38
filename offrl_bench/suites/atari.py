"""Offline RL on pixels at CPU scale: MinAtar Breakout and SpaceInvaders, expert and mixed data.

MinAtar (Young & Tian, 2019) keeps the dynamics of five Atari games on 10x10 grids with one channel
per object kind, so that a CNN learner trains on a CPU in minutes. The behaviour policies are the
shipped PPO checkpoints (``offrl_bench/data/policies/MinAtar/``; Breakout expert 6.2, medium 3.1,
random 0.37; SpaceInvaders 50.0, 26.9, 4.32). Every dataset holds ``STEPS`` transitions of whole
episodes: expert data from the expert policy, mixed data from equal shares of random, medium and
expert episodes (by episode count, as every ``mixed`` dataset here).

The learners read the uint8 grids through the MinAtar encoder (``algorithms/nn.py``, chosen from
the frame size). BC, BCQ, CQL and IQL run ``UPDATES`` updates at their own defaults; the Decision
Transformer is the generalization suite's small one (context 10, 64-dim embeddings, 2 layers), in
its own part (``DT``) because a CNN per token makes it the suite's cost: it can be run and
published separately. The question the suite answers is the D4RL-style claim
``offline-rl-beats-bc-on-mixed``: on mixed data, do the value-based learners beat BC?
"""

from offrl_bench.data.make import DatasetRequest
from offrl_bench.suites import CombinedSuite, Suite
from offrl_bench.suites.generalization import SMALL_DT

GAMES = ("MinAtar/Breakout-v1", "MinAtar/SpaceInvaders-v1")
QUALITIES = ("expert", "mixed")
#: Transitions per dataset: about 1,000 expert Breakout episodes, 60 expert SpaceInvaders episodes.
STEPS = 50_000
UPDATES = 5_000
ALGORITHMS = ("bc", "bcq", "cql", "iql")


def _part(game: str, algorithms: tuple[str, ...]) -> Suite:
    return Suite(
        name="atari", description="",
        datasets=tuple(DatasetRequest(game, quality, steps=STEPS) for quality in QUALITIES),
        algorithms=algorithms, seeds=(0, 1, 2, 3, 4), updates=UPDATES, eval_every=1_000, eval_episodes=30,
        checkpoint_every=1_000, overrides={"dt": SMALL_DT},
    )


ATARI = CombinedSuite(
    name="atari",
    description="BC, BCQ, CQL, IQL and DT on MinAtar Breakout and SpaceInvaders frames, expert and mixed data "
                "(5 seeds)",
    parts=(*(_part(game, ALGORITHMS) for game in GAMES), *(_part(game, ("dt",)) for game in GAMES)),
)
