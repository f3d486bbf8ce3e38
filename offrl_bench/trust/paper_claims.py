"""The built-in claims: each implemented paper's headline finding, in the form a CPU-scale offline
benchmark can test (see ``../shared/PAPERS.md`` and the paper pages in docs/).

Registered in ``pyproject.toml`` under ``offrl_bench.claims``, one entry point per paper, exactly as
a plugin package registers its own. Margins are in normalised points (0 = random, 100 = expert).
"""

from offrl_bench.trust.claims import Claim, Rows

#: Equivalence and non-inferiority margin: differences under 5 normalised points are "as good".
MARGIN = 5.0

#: STORI (2025): each stochasticity type lowers the score of each algorithm against the default
#: environment (type 3.1). The same trained agent is evaluated on both, seed by seed: paired.
STORI = tuple(
    Claim(name=f"stori-type-{kind}-lowers-score", paper="STORI",
          statement=f"type {kind} ({what}) lowers each algorithm's score against the default environment",
          a=Rows(wrapper=pattern), b=Rows(wrapper="none"), relation="less",
          per=("algorithm", "dataset"), each=("wrapper",), paired=True)
    for kind, what, pattern in (("1", "action-dependent", "stori:action:*"),
                                ("2.1", "random events", "stori:events:*"),
                                ("2.2", "concept drift", "stori:drift:*"),
                                ("3.2", "partial observability", "stori:partial:*"))
)

#: The Generalization Gap in Offline RL (Mediratta et al., ICLR 2024).
OFFLINE_ALGORITHMS = ("bcq", "iql", "cql", "td3_bc", "dt")
GENERALIZATION = (
    Claim(name="generalization-gap", paper="Generalization gap (Mediratta et al. 2024)",
          statement="each algorithm scores lower on unseen test levels than on its train levels",
          a=Rows(wrapper="levels:*test*"), b=Rows(wrapper="levels:*train*"), relation="less",
          per=("algorithm", "dataset"), paired=True),
    Claim(name="bc-generalizes-best", paper="Generalization gap (Mediratta et al. 2024)",
          statement=f"on test levels no offline-RL algorithm beats BC by more than {MARGIN:g} points",
          a=Rows(algorithm=OFFLINE_ALGORITHMS, wrapper="levels:*test*"),
          b=Rows(algorithm="bc", wrapper="levels:*test*"),
          relation="at_most", margin=MARGIN, per=("dataset",), each=("algorithm",)),
    Claim(name="offline-below-online-ppo", paper="Generalization gap (Mediratta et al. 2024)",
          statement="each offline learner scores below PPO trained online on the same train levels, on the train "
                    "and on the test levels",
          a=Rows(algorithm=("bc", *OFFLINE_ALGORITHMS), wrapper="levels:*"),
          b=Rows(algorithm="ppo", wrapper="levels:*"), relation="less", per=("dataset", "wrapper"),
          each=("algorithm",)),
    # The generalization suite's datasets: the same number of transitions from 25 or 200 train
    # levels, and SIZE_FACTOR x as many from 25 (offrl_bench.suites.generalization).
    Claim(name="level-diversity-helps", paper="Generalization gap (Mediratta et al. 2024)",
          statement="at the same number of transitions, expert data from 200 train levels gives a higher "
                    "test-level score than data from 25",
          a=Rows(dataset="*/expert-200-levels-v0", wrapper="levels:*test*"),
          b=Rows(dataset="*/expert-25-levels-v0", wrapper="levels:*test*"), relation="greater", per=("algorithm",)),
    Claim(name="diversity-beats-more-data", paper="Generalization gap (Mediratta et al. 2024)",
          statement="expert data from 200 train levels gives a higher test-level score than several times as "
                    "many transitions from 25",
          a=Rows(dataset="*/expert-200-levels-v0", wrapper="levels:*test*"),
          b=Rows(dataset="*/expert-25-levels-*k-steps-v0", wrapper="levels:*test*"), relation="greater",
          per=("algorithm",)),
)

#: SS-ORL (Zheng et al., ICML 2023), one pair of claims per base algorithm: IQL (the default suite's
#: base; its claims carry no base suffix), and BC and TD3+BC (the ``ssorl`` suite's other bases; the
#: paper's are DT, CQL and TD3+BC). The paper's headline setting labels episodes below the median
#: return (``selection=low_return``); the same claims on randomly drawn labels are checked where a
#: suite has those rows (the ``ssorl`` suite).
SSORL_BASES = {"iql": ("", "IQL"), "bc": ("-bc", "BC"), "td3_bc": ("-td3-bc", "TD3+BC")}


def _ssorl_claims(base: str, selection: str) -> tuple[Claim, ...]:
    base_suffix, base_name = SSORL_BASES[base]
    name_suffix = base_suffix + ("" if selection == "low_return" else "-random-labels")
    episodes = "low-return" if selection == "low_return" else "random"
    label = "" if selection == "random" else f", {selection}"  # as SSORL.leaderboard_name writes it
    proxy = Rows(algorithm=f"ssorl({base}{label})[label_fraction=0.1]")
    return (
        Claim(name=f"ssorl-10pc-matches-full-labels{name_suffix}", paper="SS-ORL (Zheng et al. 2023)",
              statement=f"at 10% labels ({episodes} episodes), IDM proxy labels score within {MARGIN:g} points "
                        f"of full labels ({base_name})",
              a=proxy, b=Rows(algorithm=f"ssorl({base})[label_fraction=1.0]"), relation="equivalent",
              margin=MARGIN, per=("dataset",)),
        Claim(name=f"ssorl-10pc-beats-labelled-only{name_suffix}", paper="SS-ORL (Zheng et al. 2023)",
              statement=f"at 10% labels ({episodes} episodes), IDM proxy labels beat training on the labelled "
                        f"episodes alone ({base_name})",
              a=proxy, b=Rows(algorithm=f"{base} (labelled only{label})[label_fraction=0.1]"), relation="greater",
              per=("dataset",)),
    )


#: Not the paper's: this implementation gives the IDM the differences of consecutive frames as well
#: (``idm_frame_differences``); the ``ssorl`` suite's ``idm frames only`` row measures what they buy.
FRAME_DIFFERENCES = Claim(
    name="ssorl-frame-differences-help", paper="SS-ORL (this implementation's IDM)",
    statement="at 10% low-return labels, an IDM that also sees frame differences gives a higher score than "
              "one that sees the frames alone (IQL)",
    a=Rows(algorithm="ssorl(iql, low_return)[label_fraction=0.1]"),
    b=Rows(algorithm="ssorl(iql, low_return, idm frames only)[label_fraction=0.1]"), relation="greater",
    per=("dataset",))

SSORL = tuple(claim for base in SSORL_BASES for selection in ("low_return", "random")
              for claim in _ssorl_claims(base, selection)) + (FRAME_DIFFERENCES,)

#: MOREC (Luo et al., ICLR 2024): the filter picks model transitions closer to the real dynamics,
#: and must not make MOPO worse, which only means something where MOPO itself beats BC. The first
#: is measured against the simulator by ``benchmarks/morec_one_step_error.py --csv
#: DIR/morec_one_step_error.csv``: per seed, one trained model, the same start states and actions,
#: MOREC's chosen candidate against a random elite's.
MOREC = (
    Claim(name="mopo-beats-bc", paper="MOREC (Luo et al. 2024)",
          statement="MOPO, the base method of the filter comparison, scores above BC on the same data",
          a=Rows(algorithm="mopo"), b=Rows(algorithm="bc"), relation="greater", per=("dataset", "wrapper")),
    Claim(name="morec-lowers-true-error", paper="MOREC (Luo et al. 2024)",
          statement="the candidate MOREC's filter keeps has a lower true one-step error than a random candidate",
          a=Rows(algorithm="morec-chosen"), b=Rows(algorithm="random-candidate"), relation="less",
          per=("dataset",), paired=True, metric="value", source="morec_one_step_error.csv"),
    Claim(name="morec-at-least-mopo", paper="MOREC (Luo et al. 2024)",
          statement=f"MOPO with MOREC's filter scores at least MOPO's score minus {MARGIN:g} points",
          a=Rows(algorithm="mopo+morec"), b=Rows(algorithm="mopo"), relation="at_least", margin=MARGIN,
          per=("dataset", "wrapper")),
)

#: Offline-to-online: a BC warm start reaches a high score in fewer environment steps than PPO.
OFFLINE_TO_ONLINE = (
    Claim(name="bc-ppo-reaches-90-sooner", paper="Offline-to-online",
          statement="BC -> PPO reaches a normalised 90 in fewer environment steps than PPO from scratch",
          a=Rows(algorithm="bc_ppo*"), b=Rows(algorithm="ppo"), relation="less", metric="steps_to_score",
          threshold=90.0, per=("dataset", "wrapper"), each=("algorithm",)),
)

#: Data quality (D4RL-style results, e.g. Kumar et al. 2020; Kostrikov et al. 2022): offline RL
#: beats behaviour cloning when the data mixes good and bad behaviour.
DATA_QUALITY = (
    Claim(name="offline-rl-beats-bc-on-mixed", paper="Data quality (D4RL)",
          statement="each offline-RL algorithm scores above BC on mixed-quality data",
          a=Rows(algorithm=OFFLINE_ALGORITHMS, dataset="*/mixed-v0", wrapper="none"),
          b=Rows(algorithm="bc", dataset="*/mixed-v0", wrapper="none"), relation="greater",
          per=("dataset",), each=("algorithm",)),
)
