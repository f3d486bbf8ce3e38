"""Semi-supervised offline RL: proxy-labelling action-free trajectories with an inverse dynamics model.

Zheng et al., "Semi-Supervised Offline Reinforcement Learning with Action-Free Trajectories" (ICML
2023) find that labelling the action-free trajectories with an IDM trained on a few labelled ones
recovers most of the fully labelled score at 10% labels, and beats training on the labelled
trajectories alone. This suite checks that at CPU scale on a 200-episode Pendulum-v1 dataset of
mixed quality (equal shares of random, medium and expert episodes; 40,000 transitions).

Labelled episodes are drawn at random. Base algorithms BC, IQL and CQL at label fractions 1%, 5%,
10% and 100% (100%: the base algorithm on the fully labelled data), and the labelled-only baseline
at 1%, 5% and 10%. CQL, ten times slower per update than IQL on a CPU, runs at 10% and 100% only.
4,000 updates per run with the offline suite's CQL settings.
"""

from offrl_bench.data.make import DatasetRequest
from offrl_bench.suites import Suite

FRACTIONS = ("0.01", "0.05", "0.1")
CQL_SETTINGS = "actor_lr=3e-4,n_actions=4"  # the offline suite's CPU-scale CQL (see suites/offline.py)


def _variants(base: str, fractions: tuple[str, ...], base_set: str = "") -> tuple:
    common = (("base", base),) + ((("base_set", base_set),) if base_set else ())
    proxy = [common + (("label_fraction", f),) for f in (*fractions, "1.0")]
    labelled_only = [common + (("label_fraction", f), ("unlabelled", "drop")) for f in fractions]
    return tuple(("ssorl", tuple(sorted(overrides))) for overrides in proxy + labelled_only)


SSORL = Suite(
    name="ssorl",
    description="IDM proxy labels vs labelled-only vs fully labelled: BC, IQL, CQL on Pendulum mixed data",
    datasets=(DatasetRequest("Pendulum-v1", "mixed", episodes=200, name="offrl/pendulum/mixed-200ep-v0"),),
    algorithms=(),
    variants=_variants("bc", FRACTIONS) + _variants("iql", FRACTIONS) + _variants("cql", ("0.1",), CQL_SETTINGS),
    seeds=(0, 1, 2, 3, 4),
    updates=4_000,
    eval_every=1_000,
    eval_episodes=30,
    checkpoint_every=1_000,
)
