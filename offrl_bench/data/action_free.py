"""Action-free trajectories: datasets whose actions are known for only some episodes.

Semi-supervised offline RL (Zheng et al., "Semi-Supervised Offline Reinforcement Learning with
Action-Free Trajectories", ICML 2023) trains on many trajectories of observations and rewards, of
which only a few carry actions. This module makes such a dataset out of a fully labelled one (the
benchmark setting: the hidden actions really are replaced, so nothing downstream can read them),
restricts a dataset to its labelled episodes, and fills in proxy actions.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from offrl_bench.core.errors import UsageError, one_of
from offrl_bench.data.datasets import TransitionDataset

#: ``random``: labelled episodes drawn uniformly. ``low_return``: drawn from the episodes whose return
#: is below the median, the paper's harder setting (actions are known only for poor trajectories).
SELECTIONS = ("random", "low_return")


def labelled_episode_count(n_episodes: int, fraction: float) -> int:
    """Episodes that keep their actions: ``fraction`` of them, rounded, and at least one."""
    if not 0 < fraction <= 1:
        raise UsageError(f"label fraction must be in (0, 1], got {fraction}")
    return max(1, round(fraction * n_episodes))


def choose_labelled_episodes(dataset: TransitionDataset, fraction: float, selection: str,
                             rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of the episodes whose actions stay known: ``fraction`` of the episodes that have
    actions (all of a fully labelled dataset's; on an already partly action-free dataset, 1.0 keeps
    every label it has and hidden actions stay hidden)."""
    if selection not in SELECTIONS:
        raise UsageError(f"unknown label selection '{selection}'; {one_of(SELECTIONS)}")
    has_actions = np.ones(dataset.n_episodes, dtype=bool)
    if dataset.labelled is not None:
        has_actions = dataset.labelled[dataset.episode_starts].cpu().numpy()
    count = labelled_episode_count(int(has_actions.sum()), fraction)
    candidates = np.arange(dataset.n_episodes)
    if selection == "low_return":
        order = np.argsort(dataset.episode_returns, kind="stable")
        candidates = np.sort(order[: dataset.n_episodes // 2])
    candidates = candidates[has_actions[candidates]]
    if count > len(candidates):
        raise UsageError(
            f"label fraction {fraction} needs {count} labelled episodes but dataset '{dataset.dataset_id}' has "
            f"only {len(candidates)} {'below-median ' if selection == 'low_return' else ''}episodes with actions")
    return np.sort(rng.choice(candidates, size=count, replace=False))


def _episode_mask(dataset: TransitionDataset, episodes: np.ndarray) -> torch.Tensor:
    chosen = torch.zeros(dataset.n_episodes, dtype=torch.bool, device=dataset.episode_starts.device)
    chosen[torch.as_tensor(episodes, dtype=torch.long, device=chosen.device)] = True
    return chosen[dataset.episode_of_transitions()]


def placeholder_action(dataset: TransitionDataset) -> float:
    return -1 if dataset.spec.action_kind == "discrete" else float("nan")


def hide_actions(dataset: TransitionDataset, keep_episodes: np.ndarray) -> TransitionDataset:
    """A copy of ``dataset`` in which only ``keep_episodes`` have actions; every other action is
    overwritten with the placeholder (in a new tensor: ``dataset`` itself is unchanged)."""
    labelled = _episode_mask(dataset, keep_episodes)
    if dataset.labelled is not None:
        labelled &= dataset.labelled
    actions = dataset.actions.clone()
    actions[~labelled] = placeholder_action(dataset)
    return dataclasses.replace(dataset, actions=actions, labelled=labelled)


def select_episodes(dataset: TransitionDataset, episodes: np.ndarray) -> TransitionDataset:
    """Only the given episodes (in order), e.g. the labelled-only baseline."""
    episodes = torch.as_tensor(np.sort(episodes), dtype=torch.long, device=dataset.episode_starts.device)
    keep = _episode_mask(dataset, episodes.cpu().numpy())
    lengths = dataset.episode_lengths[episodes]
    take = lambda tensor: tensor[keep]  # noqa: E731
    return dataclasses.replace(
        dataset,
        observations=take(dataset.observations), actions=take(dataset.actions), rewards=take(dataset.rewards),
        next_observations=take(dataset.next_observations), terminals=take(dataset.terminals),
        timeouts=take(dataset.timeouts),
        episode_starts=torch.cumsum(lengths, 0) - lengths,
        episode_returns=dataset.episode_returns[episodes.cpu().numpy()],
        labelled=None if dataset.labelled is None else take(dataset.labelled),
    )


def with_proxy_actions(dataset: TransitionDataset, proxy: torch.Tensor) -> TransitionDataset:
    """``dataset`` with ``proxy`` (one action per unlabelled transition, in order) filled in."""
    if dataset.labelled is None:
        return dataset
    unlabelled = ~dataset.labelled
    if len(proxy) != int(unlabelled.sum()):
        raise ValueError(f"{len(proxy)} proxy actions for {int(unlabelled.sum())} unlabelled transitions")
    actions = dataset.actions.clone()
    actions[unlabelled] = proxy.to(actions.dtype)
    return dataclasses.replace(dataset, actions=actions, labelled=None)
