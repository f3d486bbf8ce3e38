"""The built-in claims: each implemented paper's headline finding, in the form a CPU-scale offline
benchmark can test (see ``../shared/PAPERS.md`` and the paper pages in docs/).

Registered in ``pyproject.toml`` under ``offrl_bench.claims``, one entry point per paper, exactly as
a plugin package registers its own. Margins are in normalised points (0 = random, 100 = expert).
"""

from offrl_bench.trust.claims import Claim, Rows

#: Equivalence and non-inferiority margin: differences under 5 normalised points are "as good"
#: (5% of the random-to-expert range, the band the project's claims have used from the start).
MARGIN = 5.0
#: The minimum effect of interest of a directional claim on normalised scores: the same 5 points.
#: A claim that A beats B is reproduced only when the whole interval of A - B clears +5; a drop of
#: 0.1-0.7 points under a perturbation is not the robustness failure STORI reports.
MIN_EFFECT = MARGIN
#: The minimum effect for metrics without a common scale (environment steps, model error), as a
#: fraction of B's mean: 10% fewer steps, or a 10% lower error.
MIN_RELATIVE_EFFECT = 0.10
#: The learners whose comparisons are primary in the generalization claims (at most four): BC, the
#: paper's strongest baseline, and the three value-based offline learners. DT is compared too, as
#: a secondary comparison.
PRIMARY_LEARNERS = ("bc", "bcq", "cql", "iql")
#: The many-level expert datasets, the paper's headline setting: 200 train levels.
MANY_LEVELS = ("*/expert-200-levels-v0",)
#: The paper's claims are about *unseen* levels. MiniGrid-DoorKey-6x6's 200 train levels show all 36
#: of its maps, so its test levels differ from them in the agent's start pose alone
#: (``benchmarks/level_leak.py``; ``tests/test_level_splits.py`` checks it): the default suite's
#: DoorKey rows are not evidence for these claims, and this pattern leaves them out.
NEW_MAPS_ONLY = "!*/minigrid-doorkey-*"

#: STORI's types as the claims below read them: (type, what, the wrappers of that type). Type 3.2
#: has two wrappers in the ``stori`` suite; dropped frames are its primary comparisons, a masked
#: feature secondary (at most four primaries per claim).
STORI_TYPES = (("1", "action-dependent", "stori:action:*"),
               ("2.1", "random events", "stori:events:*"),
               ("2.2", "concept drift", "stori:drift:*"),
               ("3.2", "partial observability", "stori:partial:*"))
STORI_PRIMARY = {"3.2": Rows(wrapper="stori:partial:mode=drop*")}

#: A robustness check with STORI's perturbations, not STORI's finding: agents trained on *clean*
#: data lose score when a perturbation is added at test time (type 1 replaces 30% of the actions,
#: so it lowers the score by construction). The same trained agent is evaluated on both, seed by
#: seed: the records show a paired design. Data collected under a STORI type are left out (the
#: ``stori-trained-in-*`` claims read them); data of unknown collection are kept.
STORI_ROBUSTNESS = tuple(
    Claim(name=f"robustness-type-{kind}-lowers-score", paper="STORI robustness check (clean training data)",
          statement=f"type {kind} ({what}) lowers each algorithm's score against the default environment by more "
                    f"than {MIN_EFFECT:g} points",
          a=Rows(wrapper=pattern, data_wrapper="!stori:*"), b=Rows(wrapper="none", data_wrapper="!stori:*"),
          relation="less", margin=MIN_EFFECT, per=("algorithm", "dataset"), each=("wrapper",),
          primary=STORI_PRIMARY.get(kind))
    for kind, what, pattern in STORI_TYPES
)

#: The weaker, secondary form of STORI's finding for offline learners, in STORI's own setting: agents
#: trained on data collected *in* the perturbed environment (the shipped expert acting under the
#: perturbation) and evaluated there score lower than the same learner trained and evaluated in the
#: default environment. Both sides are expert data of one environment; one seed's runs differ in the
#: environment alone (its data and its evaluation), so the design is paired.
STORI_TRAINED_IN = tuple(
    Claim(name=f"stori-trained-in-type-{kind}-loses-score", paper="STORI (secondary form: offline learners)",
          statement=f"learners trained on expert data collected under type {kind} ({what}) and evaluated under it "
                    f"score more than {MIN_EFFECT:g} points below the same learners trained and evaluated in the "
                    "default environment",
          a=Rows(dataset="*/expert-stori-*", wrapper=pattern, data_wrapper=pattern),
          b=Rows(dataset="*/expert-v0", wrapper="none", data_wrapper="none"), relation="less", margin=MIN_EFFECT,
          per=("algorithm", "env"), each=("wrapper",), primary=STORI_PRIMARY.get(kind))
    for kind, what, pattern in STORI_TYPES
)

#: STORI's own finding: "world models dramatically underestimate environmental variance". Measured
#: by ``benchmarks/stori_model_calibration.py --csv DIR/stori_model_calibration.csv``: per seed, MOPO's
#: dynamics ensemble trained on data collected in the perturbed environment, its predicted variance
#: of the next observation against the simulator's, at the same held-out states and actions.
CALIBRATION = "stori_model_calibration.csv"
CALIBRATION_COMMAND = "python benchmarks/stori_model_calibration.py --seeds 0,1,2,3,4 --csv DIR/" + CALIBRATION
#: "Dramatically underestimates": the predicted variance is less than half the true variance. A
#: factor of 2 is where a variance estimate stops being a usable uncertainty (a Gaussian 90%
#: interval then covers 75%).
VARIANCE_SHORTFALL = 0.5
#: The control may miss its nominal 90% coverage by 5 points and still count as calibrated.
COVERAGE_MARGIN = 0.05
STORI_MODELS = tuple(
    Claim(name=f"stori-models-underestimate-variance-type-{kind}", paper="STORI",
          statement=f"under type {kind} ({what}), a dynamics ensemble trained on data from the perturbed environment "
                    f"predicts less than {1 - VARIANCE_SHORTFALL:.0%} of the true variance of the next observation",
          a=Rows(algorithm="predicted-variance", wrapper=pattern), b=Rows(algorithm="true-variance", wrapper=pattern),
          relation="less", margin=VARIANCE_SHORTFALL, relative_margin=True, per=("dataset", "wrapper"),
          metric="value", source=CALIBRATION, produced_by=CALIBRATION_COMMAND)
    for kind, what, pattern in (("1", "action noise", "stori:action:*"),
                                ("2.1", "random state kicks", "stori:events:*"),
                                ("2.2", "drift into action noise", "stori:drift:*"))
) + (
    Claim(name="models-calibrated-on-clean-data", paper="STORI",
          statement=f"the control: on clean data the ensemble's 90% intervals cover the true next observation at "
                    f"least {0.9 - COVERAGE_MARGIN:.0%} of the time",
          a=Rows(algorithm="interval-coverage", wrapper="none"), b=Rows(algorithm="nominal-coverage", wrapper="none"),
          relation="at_least", margin=COVERAGE_MARGIN, per=("dataset",), metric="value", source=CALIBRATION,
          produced_by=CALIBRATION_COMMAND),
)

#: The Generalization Gap in Offline RL (Mediratta et al., ICLR 2024).
OFFLINE_ALGORITHMS = ("bcq", "iql", "cql", "td3_bc", "dt")
GENERALIZATION = (
    Claim(name="generalization-gap", paper="Generalization gap (Mediratta et al. 2024)",
          statement=f"each algorithm scores more than {MIN_EFFECT:g} points lower on unseen test levels than on its "
                    "train levels",
          a=Rows(dataset=NEW_MAPS_ONLY, wrapper="levels:*test*"), b=Rows(wrapper="levels:*train*"),
          relation="less", margin=MIN_EFFECT, per=("algorithm", "dataset"),
          primary=Rows(algorithm=PRIMARY_LEARNERS, dataset=MANY_LEVELS)),
    # The paper: BC outperforms the offline-RL learners on test levels when the data come from many
    # levels. Superiority of BC over each, on the many-level datasets; the non-inferiority below is
    # the weaker statement, reported beside it.
    Claim(name="bc-generalizes-best", paper="Generalization gap (Mediratta et al. 2024)",
          statement=f"on test levels, with data from many train levels, BC scores more than {MIN_EFFECT:g} points "
                    "above each offline-RL algorithm",
          a=Rows(algorithm=OFFLINE_ALGORITHMS, dataset=("*-200-levels-v0", *MANY_LEVELS), wrapper="levels:*test*"),
          b=Rows(algorithm="bc", wrapper="levels:*test*"), relation="less", margin=MIN_EFFECT,
          per=("dataset",), each=("algorithm",), primary=Rows(algorithm=PRIMARY_LEARNERS, dataset=MANY_LEVELS)),
    Claim(name="bc-not-beaten-on-test-levels", paper="Generalization gap (Mediratta et al. 2024)",
          statement=f"on test levels no offline-RL algorithm beats BC by more than {MARGIN:g} points",
          a=Rows(algorithm=OFFLINE_ALGORITHMS, dataset=NEW_MAPS_ONLY, wrapper="levels:*test*"),
          b=Rows(algorithm="bc", wrapper="levels:*test*"), relation="at_most", margin=MARGIN, per=("dataset",),
          each=("algorithm",), primary=Rows(algorithm=PRIMARY_LEARNERS, dataset=MANY_LEVELS)),
    Claim(name="offline-below-online-ppo", paper="Generalization gap (Mediratta et al. 2024)",
          statement=f"each offline learner scores more than {MIN_EFFECT:g} points below PPO trained online on the "
                    "same train levels, on the train and on the test levels",
          a=Rows(algorithm=("bc", *OFFLINE_ALGORITHMS), dataset=NEW_MAPS_ONLY, wrapper="levels:*"),
          b=Rows(algorithm="ppo", wrapper="levels:*"), relation="less", margin=MIN_EFFECT, per=("dataset", "wrapper"),
          each=("algorithm",), primary=Rows(algorithm=PRIMARY_LEARNERS, dataset=MANY_LEVELS, wrapper="levels:*test*")),
    # The generalization suite's datasets: the same number of transitions from 25 or 200 train
    # levels, and SIZE_FACTOR x as many from 25 (offrl_bench.suites.generalization).
    Claim(name="level-diversity-helps", paper="Generalization gap (Mediratta et al. 2024)",
          statement=f"at the same number of transitions, expert data from 200 train levels gives a test-level score "
                    f"more than {MIN_EFFECT:g} points higher than data from 25",
          a=Rows(dataset="*/expert-200-levels-v0", wrapper="levels:*test*"),
          b=Rows(dataset="*/expert-25-levels-v0", wrapper="levels:*test*"), relation="greater", margin=MIN_EFFECT,
          per=("algorithm",), primary=Rows(algorithm=PRIMARY_LEARNERS)),
    Claim(name="diversity-beats-more-data", paper="Generalization gap (Mediratta et al. 2024)",
          statement=f"expert data from 200 train levels gives a test-level score more than {MIN_EFFECT:g} points "
                    "higher than several times as many transitions from 25",
          a=Rows(dataset="*/expert-200-levels-v0", wrapper="levels:*test*"),
          b=Rows(dataset="*/expert-25-levels-*k-steps-v0", wrapper="levels:*test*"), relation="greater",
          margin=MIN_EFFECT, per=("algorithm",), primary=Rows(algorithm=PRIMARY_LEARNERS)),
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
                        f"episodes alone by more than {MIN_EFFECT:g} points ({base_name})",
              a=proxy, b=Rows(algorithm=f"{base} (labelled only{label})[label_fraction=0.1]"), relation="greater",
              margin=MIN_EFFECT, per=("dataset",)),
    )


#: Not the paper's: this implementation gives the IDM the differences of consecutive frames as well
#: (``idm_frame_differences``); the ``ssorl`` suite's ``idm frames only`` row measures what they buy.
FRAME_DIFFERENCES = Claim(
    name="ssorl-frame-differences-help", paper="SS-ORL (this implementation's IDM)",
    statement=f"at 10% low-return labels, an IDM that also sees frame differences gives a score more than "
              f"{MIN_EFFECT:g} points higher than one that sees the frames alone (IQL)",
    a=Rows(algorithm="ssorl(iql, low_return)[label_fraction=0.1]"),
    b=Rows(algorithm="ssorl(iql, low_return, idm frames only)[label_fraction=0.1]"), relation="greater",
    margin=MIN_EFFECT, per=("dataset",))

SSORL = tuple(claim for base in SSORL_BASES for selection in ("low_return", "random")
              for claim in _ssorl_claims(base, selection)) + (FRAME_DIFFERENCES,)

#: MOREC (Luo et al., ICLR 2024): the filter picks model transitions closer to the real dynamics,
#: and improves MOPO (its Table 1: MOREC-MOPO above MOPO on D4RL locomotion), or at least does not
#: make it worse; either only means something where MOPO itself beats BC. The first is measured
#: against the simulator by ``benchmarks/morec_one_step_error.py --csv DIR/morec_one_step_error.csv``:
#: per seed, one trained model, the same start states and actions, MOREC's chosen candidate against
#: a random elite's. None is decided on a run whose dynamics reward did not learn (held-out balanced
#: accuracy >= 0.6 with its interval above 0.5, ``algorithms/morec.py``): that tests an untrained filter.
REWARD_LEARNED = ("dynamics_reward_learned", "reward untrained")
REFRIGERATOR_COMMAND = ("python benchmarks/morec_refrigerator.py --seeds 0,1,2,3,4 --csv DIR/morec_refrigerator.csv "
                        "--figure DIR/plots/morec_refrigerator.png")
MOREC = (
    Claim(name="mopo-beats-bc", paper="MOREC (Luo et al. 2024)",
          statement=f"MOPO, the base method of the filter comparison, scores more than {MIN_EFFECT:g} points above "
                    "BC on the same data",
          a=Rows(algorithm="mopo"), b=Rows(algorithm="bc"), relation="greater", margin=MIN_EFFECT,
          per=("dataset", "wrapper")),
    Claim(name="morec-lowers-true-error", paper="MOREC (Luo et al. 2024)",
          statement=f"the candidate MOREC's filter keeps has a true one-step error more than "
                    f"{MIN_RELATIVE_EFFECT:.0%} lower than a random candidate's",
          a=Rows(algorithm="morec-chosen"), b=Rows(algorithm="random-candidate"), relation="less",
          margin=MIN_RELATIVE_EFFECT, relative_margin=True, per=("dataset",), metric="value",
          source="morec_one_step_error.csv", requires=REWARD_LEARNED,
          produced_by="python benchmarks/morec_one_step_error.py --seeds 0,1,2,3,4 --csv DIR/morec_one_step_error.csv"),
    Claim(name="refrigerator-model-fails-off-data", paper="MOREC (Luo et al. 2024)",
          statement=f"on MOREC's refrigerator example, the dynamics model's one-step error is more than "
                    f"{MIN_RELATIVE_EFFECT:.0%} larger where a new controller takes the fridge (more than 1 degree "
                    "from any temperature in the data) than where the data's controller keeps it",
          a=Rows(algorithm="mle-mean", dataset="refrigerator/unseen"),
          b=Rows(algorithm="mle-mean", dataset="refrigerator/seen"), relation="greater",
          margin=MIN_RELATIVE_EFFECT, relative_margin=True, metric="value", source="morec_refrigerator.csv",
          produced_by=REFRIGERATOR_COMMAND),
    Claim(name="morec-recovers-unseen-transitions", paper="MOREC (Luo et al. 2024)",
          statement=f"on MOREC's refrigerator example, off the data the candidate MOREC's filter keeps has a true "
                    f"one-step error more than {MIN_RELATIVE_EFFECT:.0%} lower than a random candidate's",
          a=Rows(algorithm="morec-chosen", dataset="refrigerator/unseen"),
          b=Rows(algorithm="random-candidate", dataset="refrigerator/unseen"), relation="less",
          margin=MIN_RELATIVE_EFFECT, relative_margin=True, per=("dataset",), metric="value",
          source="morec_refrigerator.csv", requires=REWARD_LEARNED, produced_by=REFRIGERATOR_COMMAND),
    Claim(name="morec-improves-mopo", paper="MOREC (Luo et al. 2024)",
          statement=f"MOPO with MOREC's filter scores more than {MIN_EFFECT:g} points above MOPO on the same "
                    "data and ensemble",
          a=Rows(algorithm="mopo+morec"), b=Rows(algorithm="mopo"), relation="greater", margin=MIN_EFFECT,
          per=("dataset", "wrapper"), requires=REWARD_LEARNED),
    Claim(name="morec-at-least-mopo", paper="MOREC (Luo et al. 2024)",
          statement=f"MOPO with MOREC's filter scores at least MOPO's score minus {MARGIN:g} points",
          a=Rows(algorithm="mopo+morec"), b=Rows(algorithm="mopo"), relation="at_least", margin=MARGIN,
          per=("dataset", "wrapper"), requires=REWARD_LEARNED),
)

#: Offline-to-online: a BC warm start reaches a high score in fewer environment steps than PPO.
OFFLINE_TO_ONLINE = (
    Claim(name="bc-ppo-reaches-90-sooner", paper="Offline-to-online",
          statement=f"BC -> PPO reaches a normalised 90 in more than {MIN_RELATIVE_EFFECT:.0%} fewer environment "
                    "steps than PPO from scratch",
          a=Rows(algorithm="bc_ppo*"), b=Rows(algorithm="ppo"), relation="less", margin=MIN_RELATIVE_EFFECT,
          relative_margin=True, metric="steps_to_score", threshold=90.0, per=("dataset", "wrapper"),
          each=("algorithm",)),
)

#: Data quality (D4RL-style results, e.g. Kumar et al. 2020; Kostrikov et al. 2022): offline RL
#: beats behaviour cloning when the data mixes good and bad behaviour. Primary: the four value-based
#: learners those papers compare with BC, on every mixed dataset but MinAtar Breakout's; DT and
#: Breakout are compared as secondary comparisons, so that the ``atari`` suite's two games keep the
#: primaries at three. Its primary game is SpaceInvaders, chosen before any of its runs: its
#: behaviour policies span a wider range (expert 11.6x random, 46 points above it) than Breakout's
#: (5.8 points; its PPO plateaued at 53k steps), and a pilot run of BC on Breakout's mixed data
#: scored 71-86 of its 100 (six evaluations, 1,000-6,000 updates, on an earlier 50k-transition build).
PRIMARY_MIXED = ("*", "!*/minatar-breakout/mixed-v0")
DATA_QUALITY = (
    Claim(name="offline-rl-beats-bc-on-mixed", paper="Data quality (D4RL)",
          statement=f"each offline-RL algorithm scores more than {MIN_EFFECT:g} points above BC on mixed-quality data",
          a=Rows(algorithm=OFFLINE_ALGORITHMS, dataset="*/mixed-v0", wrapper="none"),
          b=Rows(algorithm="bc", dataset="*/mixed-v0", wrapper="none"), relation="greater", margin=MIN_EFFECT,
          per=("dataset",), each=("algorithm",),
          primary=Rows(algorithm=("bcq", "cql", "iql", "td3_bc"), dataset=PRIMARY_MIXED)),
)
