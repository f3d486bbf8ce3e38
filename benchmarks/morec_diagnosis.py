"""Why MOREC's dynamics reward sat at chance on Pendulum, and what the fix changed: each cause, measured.

The MOREC rows published before the fix showed discriminators right on about half of dataset and
of model transitions after their last round, a mean dynamics reward of 0.694 (= -log 0.5) in every
run, and a threshold that never fired. This script trains the dynamics reward the way ``--algo mopo
--set filter=morec`` does (MOPO's ensemble, then ``DynamicsReward.fit``) on the first 90% of a
dataset's episodes and measures, on the held-out 10%, how well it separates real transitions from
the transitions of the ensemble MOPO rolls out (one random elite's sample per transition, the
negatives the filter faces):

- **balanced accuracy** of the last discriminator (logit > 0 = real) and
- **AUC** of the dynamics reward itself (the historical ensemble, as the filter scores), and the
  share of model transitions whose reward is under the 0.6 threshold.

Variants, each named by what it changes against the implementation as it is now (``as-is``: the
discriminators read (s, a, s' - s), learn against the frozen ensemble, 30 steps a round):

- ``before-fix``: the implementation the published rows had before the fix: (s, a, s') features,
  the generator trained alongside (5 steps a round), 10 discriminator steps a round;
- ``raw-features``: (s, a, s') instead of (s, a, s' - s). A one-step model error of 0.008 is 0.1-0.4%
  of s' 's spread but 1-2% of s' - s 's;
- ``generator-trained``: 5 generator steps a round (the authors' adversarial game; GAIL's
  equilibrium is a discriminator at chance);
- ``10-steps``: 10 discriminator steps a round instead of 30.

It also prints how far the negatives are from the real transitions: the model's mean absolute
one-step error per observation dimension, in units of that dimension's spread in s' and in s' - s.
(``fit`` also holds out the last 10% of the episodes it is given, here of the 90%: its own
record of held-out accuracy is not what this script prints.)

    python benchmarks/morec_diagnosis.py --seeds 0,1,2 [--variants as-is,before-fix,...]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from offrl_bench.algorithms.morec import DynamicsReward, MORECSettings
from offrl_bench.core import registry
from offrl_bench.core.config import build_config
from offrl_bench.data.datasets import TransitionDataset, load_dataset
from offrl_bench.data.make import DatasetRequest, make_missing_datasets


class RawFeatures(DynamicsReward):
    """The dynamics reward on (s, a, s'), standardised by the dataset's statistics of those (the
    features before the fix): the same network and training, other inputs."""

    def fit(self, dataset, unit_actions, model, generator):
        inputs = torch.cat([dataset.observations, unit_actions, dataset.next_observations], 1)
        self.raw_statistics = inputs.mean(0), inputs.std(0) + 1e-6
        return super().fit(dataset, unit_actions, model, generator)

    def features(self, observations, unit_actions, next_observations):
        shape = next_observations.shape[:-1]
        features = torch.cat([observations.expand(*shape, -1), unit_actions.expand(*shape, -1), next_observations],
                             dim=-1)
        mean, std = self.raw_statistics
        return (features - mean) / std


VARIANTS = {
    "as-is": (DynamicsReward, {}),
    "before-fix": (RawFeatures, {"generator_steps": 5, "discriminator_steps": 10}),
    "raw-features": (RawFeatures, {}),
    "generator-trained": (DynamicsReward, {"generator_steps": 5}),
    "10-steps": (DynamicsReward, {"discriminator_steps": 10}),
}


def split(dataset: TransitionDataset, held_out: float) -> tuple[TransitionDataset, dict[str, torch.Tensor]]:
    """The first episodes as a dataset, the last ``held_out`` share of episodes as tensors."""
    first_held = int(dataset.episode_starts[int(len(dataset.episode_starts) * (1 - held_out))])
    names = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")
    train = dataclasses.replace(dataset, **{name: getattr(dataset, name)[:first_held] for name in names},
                                episode_starts=dataset.episode_starts[dataset.episode_starts < first_held])
    return train, {name: getattr(dataset, name)[first_held:] for name in names}


def auc(positive: torch.Tensor, negative: torch.Tensor) -> float:
    """P(a real transition scores above a model one), ties counting half."""
    both = torch.cat([positive, negative]).numpy()
    ranks = both.argsort().argsort().astype(float) + 1
    for value in np.unique(both):  # midranks for ties (the reward saturates at its clip)
        tied = both == value
        ranks[tied] = ranks[tied].mean()
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def trained_mopo(dataset: TransitionDataset, seed: int):
    """MOPO with its ensemble trained, as the MOREC runs train it (shared by every variant of a seed:
    the dynamics reward fine-tunes a copy and leaves it as it is)."""
    cls = registry.algorithm_class("mopo")
    mopo = cls(dataset.spec, build_config(cls, ()), seed)
    mopo.setup(dataset)
    return mopo


def measure(variant: str, mopo, dataset: TransitionDataset, held: dict[str, torch.Tensor], seed: int,
            rounds: int) -> dict:
    reward_class, changes = VARIANTS[variant]
    torch.manual_seed(seed)  # the discriminator's initialisation
    reward = reward_class(dataset.spec.observation_dim, dataset.spec.action_dim,
                          dataclasses.replace(MORECSettings(rounds=rounds), **changes), torch.device("cpu"))
    generator = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    reward.fit(dataset, mopo.scaler.to_unit(dataset.actions), mopo.model, generator)
    seconds = time.perf_counter() - started
    obs, unit = held["observations"], mopo.scaler.to_unit(held["actions"])
    with torch.no_grad():
        candidates, _, _ = mopo.model.sample(obs, unit, 1)
        fake = candidates[torch.randint(len(candidates), (len(obs),), generator=generator), torch.arange(len(obs))]
        real_logits, fake_logits = reward.logits(obs, unit, held["next_observations"]), reward.logits(obs, unit, fake)
        real_reward, fake_reward = reward.score(obs, unit, held["next_observations"]), reward.score(obs, unit, fake)
    error = (fake - held["next_observations"]).abs().mean(0)
    return {"balanced_accuracy": 0.5 * float((real_logits > 0).float().mean() + (fake_logits < 0).float().mean()),
            "reward_auc": auc(real_reward, fake_reward),
            "model_below_threshold": float((fake_reward < reward.settings.threshold).float().mean()),
            "real_below_threshold": float((real_reward < reward.settings.threshold).float().mean()),
            "mean_reward": float(fake_reward.mean()), "scorers": reward.scorers.n if reward.scorers is not None else 0,
            "error_over_next": (error / held["next_observations"].std(0)).numpy(),
            "error_over_delta": (error / (held["next_observations"] - obs).std(0)).numpy(), "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--rounds", type=int, default=MORECSettings().rounds, help="adversarial rounds (as the runs)")
    args = parser.parse_args()
    unknown = sorted(set(args.variants.split(",")) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant {', '.join(unknown)}; accepted: {', '.join(VARIANTS)}")
    torch.set_num_threads(1)
    request = DatasetRequest("Pendulum-v1", "medium")  # the default suite's MOREC data
    make_missing_datasets([request], log=lambda message: print(f"  {message}"))
    dataset, held = split(load_dataset(request.dataset_id), held_out=0.1)
    print(f"{request.dataset_id}: {len(dataset)} training and {len(held['observations'])} held-out transitions")
    print(f"{'variant':>24} {'seed':>4} {'bal. acc.':>9} {'reward AUC':>10} {'model<0.6':>9} {'real<0.6':>8} "
          f"{'mean reward':>11} {'scorers':>7} {'s':>5}")
    for seed in (int(s) for s in args.seeds.split(",")):
        mopo = trained_mopo(dataset, seed)
        for variant in args.variants.split(","):
            r = measure(variant, mopo, dataset, held, seed, args.rounds)
            print(f"{variant:>24} {seed:>4} {r['balanced_accuracy']:>9.3f} {r['reward_auc']:>10.3f} "
                  f"{r['model_below_threshold']:>9.1%} {r['real_below_threshold']:>8.1%} {r['mean_reward']:>11.3f} "
                  f"{r['scorers']:>7} {r['seconds']:>5.0f}")
            if variant == "as-is":
                print(f"{'':>29} model error / spread of s': {np.round(r['error_over_next'], 4)}, "
                      f"/ spread of s' - s: {np.round(r['error_over_delta'], 4)}")


if __name__ == "__main__":
    main()
