"""Offline policy selection: Fitted Q Evaluation over a run's checkpoints.

Offline RL papers usually report the last checkpoint, or the best one by evaluating every
checkpoint in the simulator, which a real offline setting forbids. Fitted Q Evaluation (FQE; Le et
al. 2019, used for selection by Paine et al. 2020) estimates a fixed policy's value from the
dataset alone: regress Q(s, a) on r + gamma * Q'(s', pi(s')) over the dataset's transitions, then
average Q(s0, pi(s0)) over the episodes' first states. ``offrl-bench ope DIR`` fits one FQE per
checkpoint that the runner kept (``runs/<id>/policies/N.pt``, one per evaluation) and stores the
estimate next to the checkpoint's true score in ``DIR/ope.jsonl``. From it come, per leaderboard
row, the score of the checkpoint FQE selects, against the final checkpoint's and the best one's
(the oracle, which used the simulator), and FQE's rank correlation with the true scores per task.

The oracle's score is optimistic: it picks the maximum of noisy evaluations with the same episodes
that score it. Policies that condition on the episode so far (``episodic``, e.g. Decision
Transformer) have no per-state action to evaluate and are skipped.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

from offrl_bench.algorithms.nn import mlp
from offrl_bench.core.api import Algorithm
from offrl_bench.data.datasets import TransitionDataset
from offrl_bench.records.run_store import RunStore, append_jsonl, read_jsonl, write_atomic

FILE_NAME = "ope.jsonl"


@dataclass(frozen=True)
class FQEConfig:
    """FQE at CPU scale. With hard target updates, FQE's k-th target network holds the policy's
    k-step discounted return, so the estimate covers ``updates / target_update_interval`` steps of
    horizon (80 by default, against 1 / (1 - gamma) = 100 for gamma 0.99). d3rlpy's defaults (lr
    1e-4, a target update every 100 steps) need far more updates than a CPU can spend per checkpoint;
    here each target is fitted for 50 steps at lr 3e-4, warm-started from the last one. The network
    is small because the tasks are (64x2; FQE's cost is per checkpoint, and a run keeps several)."""

    updates: int = 4_000
    batch_size: int = 256
    lr: float = 3e-4
    gamma: float = 0.99
    target_update_interval: int = 50
    width: int = 64
    depth: int = 2


def _actions(algorithm: Algorithm, observations: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """The policy's action for every row (its evaluation behaviour, ``act``), as a tensor."""
    parts = [np.asarray(algorithm.act(observations[i:i + chunk].cpu().numpy())) for i in
             range(0, len(observations), chunk)]
    return torch.as_tensor(np.concatenate(parts))


def fqe_value(algorithm: Algorithm, dataset: TransitionDataset, config: FQEConfig, seed: int) -> float:
    """FQE's estimate of the policy's discounted return from the dataset's initial states."""
    discrete = dataset.spec.action_kind == "discrete"
    keep = dataset.labelled if dataset.labelled is not None else torch.ones(len(dataset), dtype=torch.bool)
    observations, next_observations = dataset.observations[keep], dataset.next_observations[keep]
    actions, rewards, terminals = dataset.actions[keep], dataset.rewards[keep], dataset.terminals[keep]
    next_actions = _actions(algorithm, next_observations)
    starts = dataset.observations[dataset.episode_starts]
    start_actions = _actions(algorithm, starts)
    # No value can leave [min(0, r_min), max(0, r_max)] / (1 - gamma): clipping the targets there keeps
    # bootstrapping on out-of-distribution actions from diverging to impossible values.
    low = min(0.0, float(rewards.min())) / (1.0 - config.gamma)
    high = max(0.0, float(rewards.max())) / (1.0 - config.gamma)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if discrete:
            q = mlp(dataset.spec.observation_dim, dataset.spec.action_space.n, config.width, config.depth)
        else:
            q = mlp(dataset.spec.observation_dim + dataset.spec.action_dim, 1, config.width, config.depth)
    target = copy.deepcopy(q)
    optimizer = torch.optim.Adam(q.parameters(), lr=config.lr)

    def value(network: torch.nn.Module, states: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
        if discrete:
            return network(states).gather(1, chosen.long().view(-1, 1)).squeeze(1)
        return network(torch.cat([states, chosen.float().view(len(states), -1)], dim=1)).squeeze(1)

    for step in range(config.updates):
        index = torch.randint(len(observations), (config.batch_size,), generator=generator)
        with torch.no_grad():
            bootstrap = value(target, next_observations[index], next_actions[index])
            y = (rewards[index] + config.gamma * (1.0 - terminals[index]) * bootstrap).clamp(low, high)
        loss = F.mse_loss(value(q, observations[index], actions[index]), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if (step + 1) % config.target_update_interval == 0:
            target.load_state_dict(q.state_dict())
    with torch.no_grad():
        return float(value(q, starts, start_actions).mean())


@dataclass(frozen=True)
class Checkpoint:
    step: int
    fqe: float
    score: float  # the true normalised score of this checkpoint's evaluation


def load_policy(algorithm: Algorithm, policy: dict, dataset: TransitionDataset) -> None:
    """Load a policy snapshot (:meth:`~offrl_bench.core.api.Algorithm.policy_state_dict`). A plugin whose
    ``load_state_dict`` also wants keys the snapshot leaves out (BC -> PPO's ``pretrained`` flag at
    b1a1c98) gets them from a freshly set-up instance: they are training state, not what ``act``
    uses. Only then is ``setup`` called, since for some plugins it trains a model."""
    try:
        algorithm.load_state_dict(policy)
    except KeyError:
        algorithm.setup(dataset)
        algorithm.load_state_dict({**algorithm.state_dict(), **policy})


def evaluate_run(run_dir: Path, config: FQEConfig, seed: int = 0,
                 known: dict[tuple, float] | None = None) -> list[Checkpoint] | str:
    """FQE for every checkpoint of one finished run; a string says why the run has none.

    ``known`` maps (dataset, environment, policy file digest) to estimates made before with the same
    settings: runs that differ only in their evaluation wrapper train the same policy, bit for bit,
    and FQE's estimate (from the dataset alone, seeded) is then the same too."""
    from offrl_bench.execution.runner import RunSpec, _cached_dataset, build_algorithm

    spec = RunSpec(**{key: tuple(tuple(pair) for pair in value) if key == "overrides" else value
                      for key, value in json.loads((run_dir / "spec.json").read_text()).items()})
    snapshots = sorted(run_dir.glob("policies/*.pt"), key=lambda path: int(path.stem))
    scores = {line["updates"]: line["normalized_score"] for line in read_jsonl(run_dir / "metrics.jsonl")}
    snapshots = [path for path in snapshots if int(path.stem) in scores]
    if not snapshots:
        return "no policy snapshots (runs before snapshots existed, or algorithms that do not train)"
    dataset = _cached_dataset(spec.dataset, "cpu", spec.env)
    if dataset.spec.image_observations:
        return "image observations: FQE's Q network reads vector observations only"
    algorithm = build_algorithm(spec, dataset)
    if algorithm.episodic:
        return f"'{spec.algo}' conditions on the episode so far: no per-state action to evaluate"
    known = {} if known is None else known
    checkpoints = []
    for path in snapshots:
        policy = path.read_bytes()
        key = (spec.dataset, spec.env, hashlib.sha256(policy).hexdigest())
        if key not in known:
            load_policy(algorithm, torch.load(io.BytesIO(policy), map_location="cpu", weights_only=False)["algorithm"],
                        dataset)
            known[key] = fqe_value(algorithm, dataset, config, seed)
        checkpoints.append(Checkpoint(int(path.stem), known[key], float(scores[int(path.stem)])))
    return checkpoints


def evaluate_directory(directory: Path, config: FQEConfig, seed: int = 0, only: Iterable[str] = (),
                       progress: Callable[[str, int, int], None] | None = None) -> list[dict]:
    """FQE for every finished run of ``directory`` (``only``: these algorithms) not already in its
    ``ope.jsonl`` with these settings; each run's line is appended as soon as it is done, so an
    interrupted evaluation resumes. Returns every line for these settings."""
    from offrl_bench.execution.runner import _environment_versions

    store = RunStore(directory)
    path = directory / FILE_NAME
    settings = {"fqe": asdict(config), "seed": seed}
    done = {line["run_id"]: line for line in read_lines(directory) if line["settings"] == settings}
    records = [record for record in store.records().values()
               if record.get("paradigm", "offline") != "online" and (not only or record["algorithm"] in only)]
    todo = [record for record in records if record["run_id"] not in done]
    known: dict[tuple, float] = {}
    for i, record in enumerate(todo):
        if progress:
            progress(record["run_id"], i, len(todo))
        result = evaluate_run(store.run_dir(record["run_id"]), config, seed, known)
        # which code estimated (the run's own record says which code trained it)
        line = {"run_id": record["run_id"], "settings": settings, "versions": _environment_versions()}
        line.update({"skipped": result} if isinstance(result, str) else
                    {"checkpoints": [[c.step, c.fqe, c.score] for c in result]})
        append_jsonl(path, line)
        done[record["run_id"]] = line
    return [done[record["run_id"]] for record in records if record["run_id"] in done]


def read_lines(directory: Path) -> list[dict]:
    """``DIR/ope.jsonl``; a line torn by a kill is skipped, so that run is evaluated again."""
    return list(read_jsonl(directory / FILE_NAME))


@dataclass(frozen=True)
class Selection:
    final: float  # the last checkpoint's score
    selected: float  # the score of the checkpoint with the highest FQE estimate
    oracle: float  # the best checkpoint's score (chosen with the simulator)


def selections(lines: Iterable[dict]) -> dict[str, Selection]:
    """Per run id, the scores of its final, FQE-selected and best checkpoints (latest settings win)."""
    chosen = {}
    for line in lines:
        checkpoints = line.get("checkpoints")
        if not checkpoints:
            continue
        steps, estimates, scores = zip(*checkpoints)
        chosen[line["run_id"]] = Selection(final=scores[int(np.argmax(steps))],
                                           selected=scores[int(np.argmax(estimates))], oracle=max(scores))
    return chosen


def rank_correlations(lines: Iterable[dict], records: dict[str, dict]) -> dict[tuple[str, str], tuple[float, int]]:
    """Per task (dataset, wrapper): Spearman's rho between FQE estimates and true scores over every
    checkpoint of every run, and the number of checkpoints."""
    by_task: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for line in lines:
        record = records.get(line["run_id"])
        if record is None or not line.get("checkpoints"):
            continue
        by_task.setdefault((record["dataset"], record["wrapper"]), []).extend(
            (estimate, score) for _, estimate, score in line["checkpoints"])
    result = {}
    for task, pairs in sorted(by_task.items()):
        estimates, scores = zip(*pairs)
        defined = len(pairs) > 2 and len(set(scores)) > 1 and len(set(estimates)) > 1  # else rho is undefined
        rho = spearmanr(estimates, scores).statistic if defined else float("nan")
        result[task] = (float(rho), len(pairs))
    return result


def selection_summary(chosen: dict[str, Selection]) -> str:
    """One line: how FQE's choices compare with the final and the best checkpoints, over runs."""
    if not chosen:
        return "no run has checkpoints to choose from"
    gain = np.array([c.selected - c.final for c in chosen.values()])
    oracle = np.array([c.oracle - c.final for c in chosen.values()])
    return (f"over {len(chosen)} runs, the FQE-selected checkpoint scores {gain.mean():+.1f} points against the final "
            f"one on average (better in {int((gain > 0).sum())}, worse in {int((gain < 0).sum())}, the same in "
            f"{int((gain == 0).sum())}); the best checkpoint would score {oracle.mean():+.1f}")


def load_selections(directory: Path) -> dict[str, Selection]:
    return selections(read_lines(directory))


def write_summary(directory: Path, lines: list[dict]) -> Path:
    """``DIR/ope_rank_correlation.csv``: FQE's rank correlation per task."""
    records = RunStore(directory).records()
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")  # wrapper specs hold commas
    writer.writerow(["dataset", "wrapper", "checkpoints", "spearman_rho"])
    writer.writerows([dataset, wrapper or "none", n, f"{rho:.4g}"]
                     for (dataset, wrapper), (rho, n) in rank_correlations(lines, records).items())
    path = directory / "ope_rank_correlation.csv"
    write_atomic(path, text.getvalue())
    return path
