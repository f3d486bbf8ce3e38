"""Adaptive comparisons of algorithms with AdaStop (Mathieu et al., 2023, "AdaStop: adaptive
statistical testing for sound comparisons of Deep RL agents").

AdaStop is a sequential permutation test: the scores of ``n`` new runs per algorithm arrive at
each of at most ``K`` interims, and the test stops as soon as it can tell, with family-wise error
``alpha``, which algorithm is better, or says "equal" after the last interim. The run records
already hold per-seed scores, so :func:`compare` replays them through the test in seed order; when
the records run out before a decision it reports how many more runs per algorithm AdaStop asks
for, and which seeds to run.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import numpy as np

from offrl_bench.core.errors import UsageError, one_of
from offrl_bench.records.leaderboard import scores_by_variant


@dataclass(frozen=True)
class Comparison:
    algorithms: tuple[str, ...]
    #: for each pair (a, b): "larger" (a is better), "smaller", "equal", or "undecided"
    decisions: dict[tuple[str, str], str]
    runs_used: int  # per algorithm
    #: the seeds each algorithm still has to run before AdaStop's next interim (none once decided)
    next_seeds: dict[str, tuple[int, ...]]
    tasks: tuple[str, ...]

    @property
    def finished(self) -> bool:
        return not self.next_seeds


def per_seed_scores(records: list[dict], algorithms: list[str]) -> tuple[dict[str, dict[int, float]], tuple[str, ...]]:
    """For every algorithm, its score per seed: the mean normalised score over the tasks
    (dataset x wrapper) that every compared algorithm has, counting only seeds that ran all of them."""
    recorded = scores_by_variant(records)
    missing = [a for a in algorithms if a not in recorded]
    if missing:
        raise UsageError(f"no runs of {', '.join(repr(m) for m in missing)} in these records; {one_of(recorded)}")
    by_algorithm = {name: recorded[name] for name in algorithms}
    shared = set.intersection(*(set(tasks) for tasks in by_algorithm.values()))
    if not shared:
        raise UsageError(f"{', '.join(algorithms)} have no dataset and wrapper in common to compare on")
    tasks = sorted(shared)
    scores = {}
    for name, per_task in by_algorithm.items():
        seeds = set.intersection(*(set(per_task[task]) for task in tasks))
        scores[name] = {seed: float(np.mean([per_task[task][seed] for task in tasks])) for seed in sorted(seeds)}
    return scores, tuple(f"{dataset} [{wrapper}]" for dataset, wrapper in tasks)


def compare(records: list[dict], algorithms: list[str], n: int = 5, interims: int = 5, alpha: float = 0.05,
            permutations: int = 10_000, seed: int = 0) -> Comparison:
    """Replay the recorded scores through AdaStop, ``n`` runs per algorithm per interim (lowest
    seeds first), up to ``interims`` interims."""
    from adastop import MultipleAgentsComparator

    if len(set(algorithms)) < 2:
        raise UsageError("compare needs at least two different algorithms")
    if n < 2 or interims < 1 or not 0 < alpha < 1:
        raise UsageError(f"need --n >= 2, --interims >= 1 and 0 < --alpha < 1, got {n}, {interims}, {alpha}")
    scores, tasks = per_seed_scores(records, algorithms)
    comparator = MultipleAgentsComparator(n=n, K=interims, B=permutations, alpha=alpha, seed=seed)
    runs_used, next_seeds = 0, {}
    for interim in range(interims):
        needed = (interim + 1) * n
        short = {name: needed - len(per_seed) for name, per_seed in scores.items() if len(per_seed) < needed}
        if short:
            first = {name: max(scores[name], default=-1) + 1 for name in short}
            next_seeds = {name: tuple(range(first[name], first[name] + count)) for name, count in short.items()}
            break
        values = {name: np.array(list(per_seed.values())[:needed]) for name, per_seed in scores.items()}
        with contextlib.redirect_stdout(io.StringIO()):  # adastop prints its steps
            comparator.partial_compare(values, verbose=False)
        runs_used = needed
        if comparator.is_finished:
            break
    decisions = {}
    for i, a in enumerate(algorithms):
        for j, b in enumerate(algorithms[i + 1:], start=i + 1):
            decision = (comparator.decisions or {}).get(str(np.array([i, j])), "continue") if runs_used else "continue"
            decisions[(a, b)] = "undecided" if decision == "continue" else decision
    return Comparison(tuple(algorithms), decisions, runs_used, next_seeds, tasks)
