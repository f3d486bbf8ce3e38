"""MOREC's dynamics reward and rollout filter (Luo et al., "Reward-Consistent Dynamics Models are
Strongly Generalizable for Offline Reinforcement Learning", ICLR 2024).

The dynamics reward scores how real a transition (s, a, s') looks. The authors learn it
adversarially, as in GAIL with a dynamics model in the role of the policy: a discriminator learns to
tell dataset transitions from the model's, and the model (the *generator*) is pushed through
reparameterised samples to make transitions the discriminator takes for real, alongside its
likelihood loss. Here, by default, the generator stays as it is (``generator_steps=0``, see the
deviations below): the discriminators learn against the transitions of the ensemble the filter will
score.

The generator is a copy of the trained MOPO ensemble. The ensemble that MOPO rolls out is not
touched, so ``mopo`` and ``mopo`` with ``filter=morec`` roll out the same model, bit for bit, and
differ in the filter alone. (Training the copy adversarially and rolling it out instead is MOPO's
``morec_model=adversarial`` variant, a separate leaderboard row.)

As in the authors' code, the dynamics reward is an ensemble of *historical* discriminators, not the
last one. A snapshot is kept after every round; the last ``history_kept`` are retained and every
``history_every``-th of those, counted back from the newest, scores. The authors' code clamps each
snapshot's logit to that snapshot's own [learner value, expert value] and maps it linearly onto
[-R/2, R/2], R = 2 max over snapshots of |expert|, |learner|; here those two values are the
snapshot's mean logits on a batch of generator and of dataset transitions when it was taken. A
snapshot whose dataset mean is not above its generator mean separates nothing and is left out.
The reward of a transition is -log(1 - mean_k min(p_k, 0.999)),
p_k the calibrated probability of snapshot k, so the rollout threshold 0.6 ends a rollout where the
snapshots' mean probability is below 1 - e^-0.6 = 0.451, i.e. near or below the generator's level.

In rollouts (:meth:`DynamicsReward.filter`), every step draws candidates from all elites (default
5 x 2), keeps the one with the highest dynamics reward (or samples one with a softmax at a
temperature), and ends the rollout where even the best candidate scores below the threshold.

Where each constant comes from (authors' code, polixir/morec at be8a641, ``EnsembleDynamics`` and
``DiscriminatorEnsemble``): the threshold (``terminal_dynamics_reward`` 0.6), the probability clip
(``d_clip`` 0.999, its argparse default; its experiment launcher ``generate_tmuxp_morec_mopo.py``
sets 1.0), the reward transform (``prob_mean_clip``), 400 retained snapshots
(``max_maintaining_disc``; the launcher's ``max_retain_num``), every 10th scoring
(``history_discriminator_interval``), the softmax temperature 0.1 of its ``softmax_elite`` option
(here off by default: ``select_elite`` keeps the best; the launcher picks one of the two per task),
2 candidates per elite (the launcher's ``resample_num_in_transition``; the argparse default is 1).
The code that trains the dynamics reward is not public (the repository ships trained ones), so the
round structure, 100 rounds of 30 discriminator steps, is this project's CPU scale.

Two deviations from the authors' training, both measured (``benchmarks/morec_diagnosis.py``, the
MOREC documentation page): with the generator trained alongside (5 generator steps a round) and
the discriminator reading (s, a, s'), the discriminators ended at chance on Pendulum (held-out
balanced accuracy 0.50-0.52) and the threshold never fired, because the model's one-step errors
are 0.1-0.4% of s' 's spread. So by default the discriminators learn against the ensemble the
filter faces, *frozen* (``generator_steps=0``; MOPO's ``morec_model=adversarial`` trains the
generator as the authors do), and read **(s, a, s' - s)**, standardised, in which the same errors
are 1-2% of the spread; with 30 discriminator steps a round they separated 0.63-0.72 there.

**Did the reward learn?** The discriminators never see the dataset's last 10% of episodes. After
each round the discriminator is scored on them, real transitions against the model's (one random
elite's sample each, the negatives the filter faces): balanced accuracy, with a 95% normal interval
that treats the held-out transitions as independent. :meth:`DynamicsReward.report` gives the last
round's, every scoring round's, the reward's AUC and whether the reward *learned*: balanced
accuracy >= 0.6 with its interval above 0.5. The claims engine decides no MOREC claim on a run
whose reward did not learn ("reward untrained").
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from offrl_bench.algorithms.dynamics_model import DynamicsModel, model_inputs
from offrl_bench.algorithms.nn import FusedMLPEnsemble, adam, mlp
from offrl_bench.data.datasets import TransitionDataset


@dataclass(frozen=True)
class MORECSettings:
    width: int = 256
    depth: int = 2
    lr: float = 3e-4
    rounds: int = 100
    discriminator_steps: int = 30  # per round
    generator_steps: int = 0  # per round; 0: the discriminators learn against the frozen ensemble
    adversarial_weight: float = 0.1  # of the generator's "look real" loss next to its NLL
    batch_size: int = 256
    history_kept: int = 400
    history_every: int = 10
    probability_clip: float = 0.999
    candidates_per_elite: int = 2
    threshold: float = 0.6
    temperature: float = 0.0  # 0: keep the best candidate
    held_out: float = 0.1  # the share of episodes (the last ones) the discriminators are scored on, never trained on
    learned_accuracy: float = 0.6  # the held-out balanced accuracy a learned reward reaches


@dataclass(frozen=True)
class RoundAccuracy:
    """A discriminator after one round: its accuracy on a training batch of dataset and of generator
    transitions, and its held-out balanced accuracy with that estimate's standard error."""
    round: int
    dataset_accuracy: float
    generator_accuracy: float
    held_out: float
    held_out_error: float

    @property
    def held_out_low(self) -> float:
        return self.held_out - 1.96 * self.held_out_error


@dataclass(frozen=True)
class Snapshot:
    """A discriminator's weights after one round, with its mean logits at that time."""
    state: dict[str, torch.Tensor]
    expert: float  # mean logit on dataset transitions
    learner: float  # mean logit on generator transitions


class DynamicsReward:
    def __init__(self, obs_dim: int, action_dim: int, settings: MORECSettings, device: torch.device) -> None:
        self.settings = settings
        self.in_dim = 2 * obs_dim + action_dim
        self.device = device
        self.discriminator = mlp(self.in_dim, 1, settings.width, settings.depth).to(device)
        self.mean = torch.zeros(self.in_dim, device=device)
        self.std = torch.ones(self.in_dim, device=device)
        #: the scoring snapshots as one fused ensemble, with their calibration (None before :meth:`fit`)
        self.scorers: FusedMLPEnsemble | None = None
        self.expert: torch.Tensor | None = None  # (K, 1) dataset mean logit of each scorer
        self.learner: torch.Tensor | None = None  # (K, 1) generator mean logit of each scorer
        self.half_range = 1.0
        self.history: list[RoundAccuracy] = []
        #: the finished reward on the held-out episodes: AUC, and the share of real and of model
        #: transitions whose reward is under the threshold (see :meth:`report`)
        self.held_out_reward: dict[str, float] = {}

    def features(self, observations: torch.Tensor, unit_actions: torch.Tensor, next_observations: torch.Tensor
                 ) -> torch.Tensor:
        """Standardised (s, a, s' - s); broadcasts over leading candidate dimensions of ``next_observations``."""
        shape = next_observations.shape[:-1]
        observations = observations.expand(*shape, -1)
        features = torch.cat([observations, unit_actions.expand(*shape, -1), next_observations - observations], dim=-1)
        return (features - self.mean) / self.std

    def logits(self, observations: torch.Tensor, unit_actions: torch.Tensor, next_observations: torch.Tensor
               ) -> torch.Tensor:
        """The discriminator in training (not the dynamics reward)."""
        return self.discriminator(self.features(observations, unit_actions, next_observations)).squeeze(-1)

    def score(self, observations: torch.Tensor, unit_actions: torch.Tensor, next_observations: torch.Tensor
              ) -> torch.Tensor:
        """The dynamics reward -log(1 - mean calibrated probability), in [0, -log(1 - clip)]."""
        features = self.features(observations, unit_actions, next_observations)
        shape = features.shape[:-1]
        if self.scorers is None or self.scorers.n == 0:  # nothing separates: every transition alike
            probability = torch.full(shape, 0.5, device=features.device)
        else:
            logits = self.scorers(features.reshape(-1, self.in_dim)).squeeze(-1)  # (K, N)
            logits = torch.minimum(torch.maximum(logits, self.learner), self.expert)
            calibrated = (logits - self.learner) / (self.expert - self.learner) * 2 * self.half_range - self.half_range
            probability = torch.sigmoid(calibrated).clamp(max=self.settings.probability_clip).mean(0).reshape(shape)
        return -torch.log1p(-probability)

    def fit(self, dataset: TransitionDataset, unit_actions: torch.Tensor, model: DynamicsModel,
            generator: torch.Generator) -> DynamicsModel:
        """Rounds of discriminator (and, with ``generator_steps``, generator) updates on all but the
        held-out episodes; the generator starts as a copy of ``model``, which stays as it is. Returns
        the generator, its elites re-ranked (``model``'s copy, unchanged, without generator steps)."""
        s = self.settings
        n_train = _held_out_start(dataset, s.held_out)
        observations, next_observations = dataset.observations, dataset.next_observations
        features = torch.cat([observations, unit_actions, next_observations - observations], dim=1)[:n_train]
        self.mean, self.std = features.mean(0), features.std(0) + 1e-6
        learner = copy.deepcopy(model)
        targets = learner.training_targets(dataset)
        d_optimizer = adam(self.discriminator.parameters(), lr=s.lr)
        g_optimizer = adam(learner.ensemble.parameters(), lr=learner.settings.lr)
        draw = lambda: torch.randint(n_train, (s.batch_size,), generator=generator,  # noqa: E731
                                     device=features.device)
        held = slice(n_train, len(dataset))
        held_obs, held_act, held_next = observations[held], unit_actions[held], next_observations[held]
        held_fake = None
        self.history, snapshots = [], []
        for round_ in range(1, s.rounds + 1):
            for _ in range(s.discriminator_steps):
                pick = draw()
                obs, act, nxt = observations[pick], unit_actions[pick], next_observations[pick]
                with torch.no_grad():
                    fake, _ = learner.sample_all_members(obs, act)
                real_logits, fake_logits = self.logits(obs, act, nxt), self.logits(obs, act, fake)
                loss = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                        + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
                d_optimizer.zero_grad(set_to_none=True)
                loss.backward()
                d_optimizer.step()
            with torch.no_grad():
                pick = draw()
                obs, act, nxt = observations[pick], unit_actions[pick], next_observations[pick]
                fake, _ = learner.sample_all_members(obs, act)
                real_logits, fake_logits = self.logits(obs, act, nxt), self.logits(obs, act, fake)
                if held_fake is None or s.generator_steps:  # a moving generator makes new negatives
                    held_fake = _one_elite_sample(learner, held_obs, held_act, generator)
                held_out, error = _balanced_accuracy(self.logits(held_obs, held_act, held_next) > 0,
                                                     self.logits(held_obs, held_act, held_fake) < 0)
            snapshots.append(Snapshot({k: v.detach().clone() for k, v in self.discriminator.state_dict().items()},
                                      float(real_logits.mean()), float(fake_logits.mean())))
            self.history.append(RoundAccuracy(round_, float((real_logits > 0).float().mean()),
                                              float((fake_logits < 0).float().mean()), held_out, error))
            for _ in range(s.generator_steps):
                pick = draw()
                obs, act = observations[pick], unit_actions[pick]
                fake, _ = learner.sample_all_members(obs, act)
                fake_logits = self.logits(obs, act, fake)
                look_real = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
                loss = learner.ensemble.nll(model_inputs(obs, act), targets[pick]) + s.adversarial_weight * look_real
                g_optimizer.zero_grad(set_to_none=True)
                loss.backward()
                g_optimizer.step()
        self._keep_scorers(snapshots)
        learner.select_elites()
        with torch.no_grad():
            real, fake = self.score(held_obs, held_act, held_next), self.score(held_obs, held_act, held_fake)
        self.held_out_reward = {"auc": _auc(real, fake),
                                "real_below_threshold": float((real < s.threshold).float().mean()),
                                "model_below_threshold": float((fake < s.threshold).float().mean())}
        return learner

    @property
    def learned(self) -> bool:
        """Whether the last discriminator separates held-out real from model transitions: balanced
        accuracy at least ``learned_accuracy`` and its 95% interval above chance."""
        last = self.history[-1]
        return last.held_out >= self.settings.learned_accuracy and last.held_out_low > 0.5

    def report(self) -> dict[str, float]:
        """What the run records about its dynamics reward (see the module docstring): the last
        round's held-out balanced accuracy and its interval's lower end, the same at every round
        whose snapshot scores, the finished reward's held-out AUC and threshold shares, and
        ``dynamics_reward_learned`` (1 or 0)."""
        s, last = self.settings, self.history[-1]
        scoring = self.history[::-1][:s.history_kept][::s.history_every][::-1]
        return {"dynamics_reward_accuracy": last.held_out, "dynamics_reward_accuracy_low": last.held_out_low,
                **{f"dynamics_reward_accuracy_round_{r.round:03d}": r.held_out for r in scoring},
                **{f"dynamics_reward_held_out_{name}": value for name, value in self.held_out_reward.items()},
                "dynamics_reward_learned": float(self.learned)}

    def _keep_scorers(self, snapshots: list[Snapshot]) -> None:
        s = self.settings
        chosen = [snapshot for snapshot in snapshots[-s.history_kept:][::-1][::s.history_every]
                  if snapshot.expert > snapshot.learner]
        self.half_range = max((max(abs(snapshot.expert), abs(snapshot.learner)) for snapshot in chosen), default=1.0)
        self.scorers = FusedMLPEnsemble(len(chosen), self.in_dim, 1, s.width, s.depth).to(self.device)
        linear_layers = [name.rsplit(".", 1)[0] for name in self.discriminator.state_dict() if name.endswith("weight")]
        with torch.no_grad():
            for k, snapshot in enumerate(chosen):
                for layer, name in enumerate(linear_layers):
                    self.scorers.weights[layer][k].copy_(snapshot.state[f"{name}.weight"].T)
                    self.scorers.biases[layer][k, 0].copy_(snapshot.state[f"{name}.bias"])
        self.expert = torch.tensor([[snapshot.expert] for snapshot in chosen], device=self.device)
        self.learner = torch.tensor([[snapshot.learner] for snapshot in chosen], device=self.device)

    @torch.no_grad()
    def filter(self, model: DynamicsModel, observations: torch.Tensor, unit_actions: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One filtered model step for a batch: (next observations, rewards, MOPO uncertainty, the
        chosen candidates' dynamics rewards, whether the rollout goes on: reward >= threshold)."""
        s = self.settings
        candidates, rewards, uncertainty = model.sample(observations, unit_actions, s.candidates_per_elite)
        scores = self.score(observations, unit_actions, candidates)  # (C, B)
        if s.temperature > 0:
            choice = torch.multinomial((scores / s.temperature).softmax(0).T, 1).squeeze(1)
        else:
            choice = scores.argmax(0)
        rows = torch.arange(len(observations), device=observations.device)
        best = scores[choice, rows]
        return candidates[choice, rows], rewards[choice, rows], uncertainty, best, best >= s.threshold


def _held_out_start(dataset: TransitionDataset, share: float) -> int:
    """The first transition of the held-out episodes: the last ``share`` of them, at least one, the
    discriminators' training keeping at least one; with a single episode, its last ``share`` of steps."""
    episodes = len(dataset.episode_starts)
    held = min(episodes - 1, max(1, round(share * episodes)))
    if held >= 1:
        return int(dataset.episode_starts[episodes - held])
    return len(dataset) - max(1, round(share * len(dataset)))


def _one_elite_sample(model: DynamicsModel, observations: torch.Tensor, unit_actions: torch.Tensor,
                      generator: torch.Generator) -> torch.Tensor:
    """One random elite's sample of the next observation per transition: an unfiltered MOPO step."""
    candidates, _, _ = model.sample(observations, unit_actions, 1)
    choice = torch.randint(len(candidates), (len(observations),), generator=generator, device=observations.device)
    return candidates[choice, torch.arange(len(observations), device=observations.device)]


def _balanced_accuracy(real_right: torch.Tensor, model_right: torch.Tensor) -> tuple[float, float]:
    """Balanced accuracy from which real and which model transitions were classified right, and its
    standard error as if the transitions were independent."""
    p_real, p_model = float(real_right.float().mean()), float(model_right.float().mean())
    variance = p_real * (1 - p_real) / len(real_right) + p_model * (1 - p_model) / len(model_right)
    return 0.5 * (p_real + p_model), 0.5 * math.sqrt(variance)


def _auc(positive: torch.Tensor, negative: torch.Tensor) -> float:
    """P(a real transition's reward is above a model transition's), ties counting half."""
    ordered = negative.sort().values
    below = torch.searchsorted(ordered, positive, right=False)
    tied = torch.searchsorted(ordered, positive, right=True) - below
    return float((below.double() + 0.5 * tied.double()).sum() / (len(positive) * len(negative)))
