"""MOPO (Yu et al., 2020, "MOPO: Model-based Offline Policy Optimization"), optionally with MOREC's
dynamics-reward filter (``--set filter=morec``).

1. Train a probabilistic dynamics ensemble on the dataset (7 members, 5 elites); with MOREC, also
   the dynamics reward (:mod:`offrl_bench.algorithms.morec`), whose discriminators learn against
   that ensemble, frozen: MOPO and MOPO+MOREC roll out the same ensemble, bit for bit, and differ in
   the filter alone. ``morec_model=adversarial`` trains the generator, a copy of the ensemble, in
   the discriminators' rounds as the authors do and rolls it out instead (leaderboard row
   ``mopo+morec+adversarial-model``), MOREC's dynamics reward changing the model too. The run's
   losses record whether the reward learned (``dynamics_reward_learned``, see the morec module).
2. Every ``rollout_every`` updates, roll the current policy out in the model for ``rollout_length``
   steps from ``rollout_batch`` dataset states. The reward is penalised by the model's uncertainty:
   r - penalty * max over elites of ||std||. Unfiltered, every step takes a random elite's sample;
   with MOREC, the best of 10 candidates by dynamics reward, and a rollout ends when even that one
   scores below the threshold.
3. SAC trains on batches with ``real_ratio`` dataset transitions and the rest from the model buffer.

Step 1 runs in :meth:`setup`, seeded from the run's seed, so a resumed run retrains the same model;
the model buffer is in the checkpoint. Continuous actions. A rollout step ends its rollout where the
environment's termination function (:mod:`offrl_bench.envs.termination`, e.g. Hopper's health
check) says the real episode would end; datasets with terminal transitions from an environment
without one are refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from offrl_bench.algorithms.dynamics_model import DynamicsModel, DynamicsSettings
from offrl_bench.algorithms.morec import DynamicsReward, MORECSettings
from offrl_bench.algorithms.nn import (
    BoxScaler,
    CheckpointedAttributes,
    ObservationNormalizer,
    as_observation_tensor,
    seeded_init,
)
from offrl_bench.algorithms.soft_actor_critic import SoftActorCritic
from offrl_bench.core.api import Batch, EnvSpec, OfflineAlgorithm
from offrl_bench.core.config import Fraction, NonNegativeFloat, PositiveFloat, PositiveInt, UnitFloat
from offrl_bench.core.errors import UsageError, one_of
from offrl_bench.data.datasets import TransitionDataset
from offrl_bench.envs.termination import TERMINATION_FUNCTIONS, termination_function

FILTERS = ("none", "morec")
MOREC_MODELS = ("mle", "adversarial")
_MODEL_SEED_OFFSET = 104_729
#: generator steps per adversarial round with ``morec_model=adversarial`` (this project's CPU scale)
ADVERSARIAL_GENERATOR_STEPS = 5


@dataclass
class MOPOConfig:
    # SAC as in MOPO's code (lr 3e-4, 256x256, batch 256, discount 0.99, tau 0.005).
    actor_lr: PositiveFloat = 3e-4
    critic_lr: PositiveFloat = 3e-4
    alpha_lr: PositiveFloat = 3e-4
    discount: UnitFloat = 0.99
    tau: UnitFloat = 0.005
    width: PositiveInt = 256
    depth: PositiveInt = 2
    batch_size: PositiveInt = 256
    # Model usage: MOPO's real ratio 0.05, h = 5, lambda = 1 (its hopper setting). MOPO starts 50,000
    # rollouts every 1,000 updates; CPU scale: 2,000 every 250.
    real_ratio: Fraction = 0.05
    rollout_length: PositiveInt = 5
    penalty: NonNegativeFloat = 1.0
    rollout_batch: PositiveInt = 2_000
    rollout_every: PositiveInt = 250
    retain_rollouts: PositiveInt = 5  # the model buffer holds this many rollout rounds
    # Dynamics ensemble (MOPO/MBPO): 7 members, 5 elites, 4 x 200.
    model_members: PositiveInt = 7
    model_elites: PositiveInt = 5
    model_width: PositiveInt = 200
    model_depth: PositiveInt = 4
    model_max_epochs: PositiveInt = 50
    # MOREC's filter: 5 elites x 2 candidates, threshold 0.6 (the paper's defaults).
    filter: str = "none"
    morec_candidates_per_elite: PositiveInt = 2
    morec_threshold: NonNegativeFloat = 0.6  # on the dynamics reward -log(1 - p), in [0, 6.9]
    morec_temperature: NonNegativeFloat = 0.0
    morec_rounds: PositiveInt = 100
    morec_model: str = "mle"  # "adversarial": roll out MOREC's fine-tuned generator instead of MOPO's ensemble

    def __post_init__(self) -> None:
        if self.filter not in FILTERS:
            raise ValueError(f"unknown filter '{self.filter}'; {one_of(FILTERS)}")
        if self.morec_model not in MOREC_MODELS:
            raise ValueError(f"unknown morec_model '{self.morec_model}'; {one_of(MOREC_MODELS)}")
        if self.morec_model != "mle" and self.filter != "morec":
            raise ValueError("morec_model=adversarial needs filter=morec")
        if self.model_elites > self.model_members:
            raise ValueError(f"model_elites ({self.model_elites}) cannot exceed model_members ({self.model_members})")


class MOPO(CheckpointedAttributes, OfflineAlgorithm):
    name = "mopo"
    action_spaces = ("continuous",)
    config_class = MOPOConfig
    checkpointed = ("sac", "normalizer", "buffer", "buffer_size", "buffer_next", "updates", "rollout_stats")

    @classmethod
    def replay_budget(cls, config: MOPOConfig, action_kind: str, budget: int) -> int:
        # past enough model rollouts that the model buffer wraps around
        return min(budget, config.rollout_every * (config.retain_rollouts + 1) + 1)

    def __init__(self, spec: EnvSpec, config: MOPOConfig, seed: int, device: str = "cpu") -> None:
        super().__init__(spec, config, seed, device)
        obs_dim, action_dim = spec.observation_dim, spec.action_dim
        with seeded_init(seed):
            self.sac = SoftActorCritic(obs_dim, action_dim, config.width, config.depth, config.actor_lr,
                                       config.critic_lr, config.alpha_lr, self.device)
        with seeded_init(seed + _MODEL_SEED_OFFSET):
            self.model = DynamicsModel(obs_dim, action_dim, DynamicsSettings(
                members=config.model_members, elites=config.model_elites, width=config.model_width,
                depth=config.model_depth, max_epochs=config.model_max_epochs), self.device)
            self.dynamics_reward = None if config.filter == "none" else DynamicsReward(
                obs_dim, action_dim, MORECSettings(rounds=config.morec_rounds,
                                                   candidates_per_elite=config.morec_candidates_per_elite,
                                                   threshold=config.morec_threshold,
                                                   temperature=config.morec_temperature,
                                                   generator_steps=ADVERSARIAL_GENERATOR_STEPS
                                                   if config.morec_model == "adversarial" else 0), self.device)
        self.normalizer = ObservationNormalizer(obs_dim).to(self.device)
        self.scaler = BoxScaler(spec.action_space, self.device)
        capacity = config.rollout_batch * config.rollout_length * config.retain_rollouts
        # one row per model transition: observation, unit action, penalised reward, next observation, terminal
        self.buffer = torch.zeros(capacity, 2 * obs_dim + action_dim + 2, device=self.device)
        self.terminated = termination_function(spec.env_id)
        self.buffer_size, self.buffer_next, self.updates = 0, 0, 0
        self.rollout_stats: dict[str, float] = {}
        self.model_diagnostics: dict[str, float] = {}

    @classmethod
    def leaderboard_name(cls, config: MOPOConfig) -> str:
        if config.filter == "none":
            return "mopo"
        return "mopo+morec" + ("+adversarial-model" if config.morec_model == "adversarial" else "")

    def setup(self, dataset: TransitionDataset) -> None:
        if bool(dataset.terminals.any()) and self.terminated is None:
            raise UsageError(f"mopo: dataset '{dataset.dataset_id}' has terminal transitions, and no termination "
                             f"function for model rollouts is known for {self.spec.env_id} (known: "
                             f"{', '.join(TERMINATION_FUNCTIONS)}); use a dataset whose episodes end by time limit")
        self.normalizer.fit(dataset.observations)
        unit_actions = self.scaler.to_unit(dataset.actions)
        seed = self.seed + _MODEL_SEED_OFFSET
        with seeded_init(seed):  # model noise draws from torch's global RNG: keep it the run's own
            generator = torch.Generator(device=self.device).manual_seed(seed)
            self.model.fit(dataset, unit_actions, generator)
            if self.dynamics_reward is not None:
                fine_tuned = self.dynamics_reward.fit(dataset, unit_actions, self.model, generator)
                if self.config.morec_model == "adversarial":
                    self.model = fine_tuned
        self.model_diagnostics = {"model_epochs": float(self.model.epochs),
                                  "model_holdout_mse": float(self.model.holdout_mse[self.model.elites.cpu()].mean()),
                                  **(self.dynamics_reward.report() if self.dynamics_reward is not None else {})}

    @torch.no_grad()
    def _rollout(self, dataset: TransitionDataset, generator: torch.Generator) -> None:
        cfg = self.config
        starts = torch.randint(len(dataset), (cfg.rollout_batch,), generator=generator, device=self.device)
        observations = dataset.observations[starts]
        alive = torch.ones(cfg.rollout_batch, dtype=torch.bool, device=self.device)
        added, uncertainties, scores = 0, [], []
        ended_by_filter = torch.zeros_like(alive)
        for _ in range(cfg.rollout_length):
            actions, _ = self.sac.actor(self.normalizer(observations))
            if self.dynamics_reward is None:
                candidates, rewards, uncertainty = self.model.sample(observations, actions, 1)
                choice = torch.randint(len(candidates), (len(observations),), device=self.device)
                rows = torch.arange(len(observations), device=self.device)
                next_observations, rewards = candidates[choice, rows], rewards[choice, rows]
            else:
                next_observations, rewards, uncertainty, score, keep = self.dynamics_reward.filter(
                    self.model, observations, actions)
                ended_by_filter |= alive & ~keep
                alive &= keep
                scores.append(score.mean())
            terminal = (torch.zeros_like(alive) if self.terminated is None
                        else self.terminated(next_observations))
            rows = torch.cat([observations, actions, (rewards - cfg.penalty * uncertainty)[:, None],
                              next_observations, terminal[:, None].float()], dim=1)[alive]
            self._store(rows)
            added += len(rows)
            alive &= ~terminal
            uncertainties.append(uncertainty.mean())
            observations = next_observations
        self.rollout_stats = {"rollout_length": added / cfg.rollout_batch,
                              "model_uncertainty": float(torch.stack(uncertainties).mean())}
        if scores:
            self.rollout_stats["dynamics_reward"] = float(torch.stack(scores).mean())
            self.rollout_stats["filter_ended_rollouts"] = float(ended_by_filter.float().mean())

    def _store(self, rows: torch.Tensor) -> None:
        capacity = len(self.buffer)
        index = (self.buffer_next + torch.arange(len(rows), device=self.device)) % capacity
        self.buffer[index] = rows
        self.buffer_next = (self.buffer_next + len(rows)) % capacity
        self.buffer_size = min(capacity, self.buffer_size + len(rows))

    def sample(self, dataset: TransitionDataset, batch_size: int, generator: torch.Generator) -> Batch:
        if self.updates % self.config.rollout_every == 0:
            self._rollout(dataset, generator)
        # With MOREC every rollout may end at its first step: then the batch is all dataset transitions.
        n_real = max(1, round(self.config.real_ratio * batch_size)) if self.buffer_size else batch_size
        real = dataset.sample(n_real, generator)
        n_model = batch_size - n_real
        model_rows = torch.randint(max(self.buffer_size, 1), (n_model,), generator=generator, device=self.device)
        rows = self.buffer[model_rows]
        obs_dim, action_dim = self.spec.observation_dim, self.spec.action_dim
        observations, actions, rewards, next_observations, terminals = rows.split(
            [obs_dim, action_dim, 1, obs_dim, 1], dim=1)
        return Batch(
            observations=torch.cat([real.observations, observations]),
            actions=torch.cat([self.scaler.to_unit(real.actions), actions]),  # unit actions throughout
            rewards=torch.cat([real.rewards, rewards.squeeze(1)]),
            next_observations=torch.cat([real.next_observations, next_observations]),
            terminals=torch.cat([real.terminals, terminals.squeeze(1)]),
        )

    def update(self, batch: Batch) -> dict[str, float]:
        cfg = self.config
        self.updates += 1
        observations = self.normalizer(batch.observations)
        next_observations = self.normalizer(batch.next_observations)
        actor_loss, alpha = self.sac.update_temperature_and_actor(observations)
        target = self.sac.td_target(next_observations, batch.rewards, batch.terminals, cfg.discount)
        td_loss, _ = self.sac.td_loss(observations, batch.actions, target)
        self.sac.step_critic(td_loss, cfg.tau)
        return {"td_loss": td_loss.item(), "actor_loss": actor_loss, "alpha": alpha.item(), **self.rollout_stats,
                **self.model_diagnostics}

    @torch.no_grad()
    def act(self, observations: np.ndarray) -> np.ndarray:
        unit, _ = self.sac.actor(self.normalizer(as_observation_tensor(observations, self.device)), deterministic=True)
        return self.scaler.to_env(unit)
