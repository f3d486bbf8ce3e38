"""Model-based offline RL with and without MOREC's dynamics-reward filter, next to model-free
baselines (MOREC paper, Table 1 style), at CPU scale on Pendulum-v1 medium and mixed data and
Hopper-v5 medium data (the ``mujoco`` extra; MOPO's rollouts end at Hopper's health check).

MOPO and MOPO+MOREC use the defaults of ``algorithms/mopo.py`` (7-member ensemble, h = 5, lambda =
1, real ratio 0.05, MOREC's 10 candidates and threshold 0.6); TD3+BC, IQL and CQL (the offline
suite's CPU settings) are the model-free reference. 4,000 updates, 5 seeds. The leaderboard row
names are ``mopo``, ``mopo+morec`` (the same ensemble as ``mopo``, filtered) and
``mopo+morec+adversarial-model`` (the filter over MOREC's adversarially fine-tuned copy of the
ensemble: what changing the model as well as the filter adds).
"""

from offrl_bench.data.make import DatasetRequest
from offrl_bench.suites import Suite
from offrl_bench.suites.offline import CQL_CPU_SETTINGS

MOREC = Suite(
    name="morec",
    description="MOPO vs MOPO+MOREC vs TD3+BC, IQL, CQL on Pendulum-v1 medium and mixed and Hopper-v5 medium "
                "data (needs the mujoco extra)",
    datasets=(DatasetRequest("Pendulum-v1", "medium"), DatasetRequest("Pendulum-v1", "mixed"),
              DatasetRequest("Hopper-v5", "medium")),
    algorithms=("td3_bc", "iql", "cql", "mopo"),
    variants=(("mopo", (("filter", "morec"),)), ("mopo", (("filter", "morec"), ("morec_model", "adversarial")))),
    seeds=(0, 1, 2, 3, 4),
    updates=4_000,
    eval_every=1_000,
    eval_episodes=30,
    checkpoint_every=1_000,
    overrides={"cql": CQL_CPU_SETTINGS},
)

#: MOPO working on a MuJoCo task, with and without the filter (MOREC's claims only mean something
#: where the base method works, and on Pendulum MOPO scores below BC): HalfCheetah, where MOPO is
#: strongest, on mixed data (random, medium and expert episodes of this project's SAC behaviour
#: policies, 50k transitions), where imitating the mixture leaves room to improve on the data.
#: Rollouts at MOPO's paper setting for HalfCheetah mixed and medium-expert data, h = 5 and lambda =
#: 1 (``algorithms/mopo.py``'s defaults); MOREC's experiments roll out 100 steps with lambda = 0.5 on
#: D4RL HalfCheetah (``generate_tmuxp_morec_mopo.py`` in polixir/morec), 20 times the model steps,
#: which at about 2.4 s per filtered 5-step rollout batch here (80 batches a run) would add about an
#: hour to each MOPO+MOREC run. 20,000 updates instead of MOPO's 1M+: MOPO trained 58.7
#: updates/s per worker in the reference run (2 workers on 2 cores), so SAC's part of a run is about
#: 6 minutes, next to 4-5 minutes for the 50 epochs of the ensemble.
MOREC_HALFCHEETAH = Suite(
    name="morec-halfcheetah",
    description="BC vs MOPO vs MOPO+MOREC on HalfCheetah-v5 mixed data (5 seeds; needs the mujoco extra)",
    datasets=(DatasetRequest("HalfCheetah-v5", "mixed"),),
    algorithms=("bc", "mopo"),
    variants=(("mopo", (("filter", "morec"),)),),
    seeds=(0, 1, 2, 3, 4),
    updates=20_000,
    eval_every=5_000,
    eval_episodes=30,
    checkpoint_every=5_000,
)
