"""STORI stochasticity as a benchmark axis, at CPU scale, in two settings the leaderboard's
``data_wrapper`` column names apart.

- **Trained where it is tested** (STORI's setting: its agents learn *in* the stochastic game): for
  each type, an expert dataset collected by the shipped behaviour policy acting under the
  perturbation, and the agents trained on it evaluated under the same perturbation
  (``data_wrapper`` = ``wrapper``). The ``stori-trained-in-type-*`` claims compare them with the
  same learners trained and evaluated in the default environment.
- **Robustness check**: agents trained on clean data (``data_wrapper`` empty), evaluated under every
  type. That is not STORI's finding (type 1 lowers the score by construction); the
  ``robustness-type-*`` claims read it.

BC and IQL (one imitation learner, one value-based offline learner: STORI finds the drop differs
by type and learner) on CartPole-v1 and Pendulum-v1 expert data, 5 seeds, 2,000 updates with an
evaluation every 500 (4 points along training).

Settings, and where each comes from (STORI's ``Exp_configs.json`` at ARY2260/stori 84a1380 sets
them for its four Atari games):

- type 1, ``p=0.3``: STORI's ``stochastic_action_prob`` for all four games;
- type 2.1, a state kick with probability 0.05, N(0, 0.1) on every state variable: ours. STORI's
  events are game RAM edits (probabilities 0.001-0.3 per frame, by game) with no vector-state
  counterpart; the default suite and the model-calibration benchmark use the same kick;
- type 2.2, a sudden drift into type 3.2, as STORI's Breakout and Boxing drift (``temporal_mode``
  sudden, ``secondary_concept_type`` 3.2), at step 100 (STORI: frame 300 of a game; here mid-way
  through Pendulum's 200-step episodes), into frames dropped with probability 0.5: ours;
- type 3.2, dropped frames (probability 0.3, the last frame repeated): ours, and a feature masked on
  every step (``features=1``: Pendulum's sin(angle), CartPole's cart velocity), the vector
  counterpart of STORI's blackout of a screen region with probability 1.0 (Breakout, Gopher).
"""

from offrl_bench.data.make import DatasetRequest
from offrl_bench.suites import CombinedSuite, Suite

#: Type 1, 2.1, 2.2 and 3.2 (twice: dropped frames and a masked feature); "" is type 3.1.
STORI_WRAPPERS = (
    "",
    "stori:action:p=0.3",
    "stori:events:mode=state,p=0.05,sigma=0.1",
    "stori:drift:at=100,to=stori:partial:mode=drop,p=0.5,fill=previous",
    "stori:partial:mode=drop,p=0.3,fill=previous",
    "stori:partial:mode=mask,features=1",
)
ENV_IDS = ("CartPole-v1", "Pendulum-v1")
SCALE = dict(algorithms=("bc", "iql"), seeds=(0, 1, 2, 3, 4), updates=2_000, eval_every=500, eval_episodes=30,
             checkpoint_every=500)

STORI = CombinedSuite(
    name="stori",
    description="BC and IQL trained on data collected under each STORI type and evaluated under it, and "
                "trained on clean data and evaluated under every type",
    parts=(
        Suite("stori", "robustness: clean data, every type at test time",
              datasets=tuple(DatasetRequest(env_id, "expert") for env_id in ENV_IDS), wrappers=STORI_WRAPPERS,
              **SCALE),
        *(Suite("stori", f"trained where tested: {wrapper}",
                datasets=tuple(DatasetRequest(env_id, "expert", wrapper=wrapper) for env_id in ENV_IDS),
                wrappers=(wrapper,), **SCALE)
          for wrapper in STORI_WRAPPERS[1:]),
    ),
)
