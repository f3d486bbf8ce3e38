"""``offrl-bench plot DIR``: figures and aggregate statistics from an output directory's run records.

Writes into ``DIR/plots/``:

- ``learning_curves.png``: normalised score against gradient updates per task (offline runs), mean
  over seeds with a 95% bootstrap band (from ``runs/<id>/metrics.jsonl``; skipped when the run
  directories are absent); ``sample_efficiency.png``: the same against environment steps for
  online and offline-to-online runs, and ``sample_efficiency.csv``: their mean score over training
  and the steps each seed took to reach a normalised score of 90;
- ``aggregates.png`` and ``aggregates.csv``: IQM, mean, median and optimality gap with 95%
  stratified-bootstrap intervals per algorithm (rliable), per suite and level split;
- ``performance_profiles.png``: fraction of runs above each normalised score, with 95% bands;
- ``probability_of_improvement.png`` and ``.csv``: P(X > Y) for every pair (up to 8 algorithms);
- ``generalization_gap.png`` when runs were evaluated on level splits, ``stori_drops.png`` when
  they ran under wrappers next to the plain environment;
- ``stori_settings.png`` when agents trained on data collected under a STORI type were evaluated
  under it: per type and algorithm, their score beside that of agents trained on clean data and
  evaluated under the same type, with the clean agents' score in the plain environment.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from offrl_bench.core.errors import UsageError
from offrl_bench.records.leaderboard import (
    ALL,
    CSV_FLOAT_FORMAT,
    NO_WRAPPER,
    Task,
    leaderboard,
    scores_by_variant,
    split_of,
    variant_name,
)
from offrl_bench.records.run_store import RunStore, write_atomic
from offrl_bench.records.statistics import aggregate_table, performance_profiles, probability_of_improvement

MAX_PAIRWISE = 8
THRESHOLDS = np.linspace(0, 110, 56)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    plt.rcParams["axes.prop_cycle"] = plt.cycler(color=_palette(plt))
    return plt


def _palette(plt) -> list[tuple]:
    """20 distinct colours: tab20's ten full hues first, then their light twins, so that up to ten
    algorithms never share a hue."""
    colours = plt.get_cmap("tab20").colors
    return list(colours[0::2]) + list(colours[1::2])


def _colours(names) -> dict[str, tuple]:
    """One colour per algorithm variant across every panel of a figure, whichever panels it is missing from."""
    palette = _palette(_pyplot())
    return {name: palette[i % len(palette)] for i, name in enumerate(sorted(set(names)))}


ScoresByTask = dict[str, dict[str, dict[Task, dict[int, float]]]]  # group -> variant -> task -> seed


def scores_by_task(records: list[dict]) -> ScoresByTask:
    """Normalised scores grouped per "suite" or "suite, levels:split" (level splits answer different
    questions and are never pooled), then per algorithm variant, task (dataset, wrapper) and seed."""
    groups: dict[str, list[dict]] = {}
    for record in records:
        split = split_of(record["wrapper"] or NO_WRAPPER)
        groups.setdefault(record["suite"] + (f", levels:{split}" if split else ""), []).append(record)
    return {group: scores_by_variant(members) for group, members in sorted(groups.items())}


def score_matrix(per_task: dict[Task, dict[int, float]], tasks: list[Task]) -> np.ndarray:
    """(runs x tasks), lowest seeds first, as many runs as the task with the fewest seeds has (a
    stratified bootstrap needs a full matrix; the leaderboard's ALL rows do the same)."""
    ordered = {task: [score for _, score in sorted(per_task[task].items())] for task in tasks}
    n = min(len(scores) for scores in ordered.values())
    return np.array([[ordered[task][i] for task in tasks] for i in range(n)], dtype=float)


def score_matrices(groups: ScoresByTask, common_tasks: bool) -> dict[str, dict[str, np.ndarray]]:
    """Per group, each variant's score matrix over its own tasks, or (``common_tasks``) over the tasks
    every variant of the group ran; groups without any such task are left out."""
    matrices = {}
    for group, variants in groups.items():
        shared = sorted(set.intersection(*(set(per_task) for per_task in variants.values())))
        if common_tasks and not shared:
            continue
        matrices[group] = {name: score_matrix(per_task, shared if common_tasks else sorted(per_task))
                           for name, per_task in sorted(variants.items())}
    return matrices


Curves = dict[tuple[str, str], dict[str, dict[int, dict[int, float]]]]  # task -> variant -> seed -> step -> score
#: The normalised score whose first crossing ``sample_efficiency.csv`` reports.
REACHED = 90.0


def _sample_efficiency(curves: Curves, path: Path) -> bool:
    """Per task and variant: the mean normalised score over all evaluations of a run (the area under
    its sample-efficiency curve, divided by its length), averaged over seeds with a 95% bootstrap
    interval; and the environment steps each seed took to first reach a score of 90."""
    rows = []
    rng = np.random.default_rng(0)
    for (dataset, wrapper), variants in sorted(curves.items()):
        for name, seeds in sorted(variants.items()):
            seeds = {seed: points for seed, points in seeds.items() if points}
            if not seeds:
                continue
            areas = np.array([np.mean(list(points.values())) for points in seeds.values()])
            band = np.percentile(rng.choice(areas, (1000, len(areas))).mean(1), [2.5, 97.5])
            reached = [min((step for step, score in points.items() if score >= REACHED), default=None)
                       for points in seeds.values()]
            steps = [step for step in reached if step is not None]
            rows.append({"dataset": dataset, "wrapper": wrapper, "algorithm": name, "n_seeds": len(seeds),
                         "mean_score_over_training": areas.mean(), "ci_low": band[0], "ci_high": band[1],
                         "median_steps_to_90": float(np.median(steps)) if len(steps) == len(reached) else np.nan,
                         "seeds_reaching_90": len(steps),
                         "steps_to_90_per_seed": " ".join("never" if s is None else str(s) for s in reached)})
    if rows:
        write_atomic(path, pd.DataFrame(rows).to_csv(index=False, float_format=CSV_FLOAT_FORMAT))
    return bool(rows)


def _legend_outside(figure, axes) -> None:
    """One legend right of the figure: with many algorithm variants an inner legend hides the lines.
    It gathers every panel's lines, as an algorithm may be missing from some (TD3+BC on discrete data)."""
    entries: dict[str, object] = {}
    for axis in np.ravel(axes):
        for handle, label in zip(*axis.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    labels = sorted(entries)
    figure.legend([entries[label] for label in labels], labels, loc="center left", bbox_to_anchor=(1.0, 0.5),
                  fontsize=7)


def _curves(store: RunStore, records: list[dict]) -> Curves:
    """Every evaluation of ``records`` (``runs/<id>/metrics.jsonl``) by task, variant and seed."""
    curves: Curves = {}
    # by seed, not in the order runs happened to finish: the bootstrap bands resample in this order
    for record in sorted(records, key=lambda r: r["seed"]):
        metrics = store.run_dir(record["run_id"]) / "metrics.jsonl"
        if not metrics.exists():
            continue
        task = (record["dataset"], record["wrapper"] or NO_WRAPPER)
        points = curves.setdefault(task, {}).setdefault(variant_name(record), {}).setdefault(record["seed"], {})
        for line in metrics.read_text().splitlines():
            if line.strip():
                point = json.loads(line)
                points[point["updates"]] = point["normalized_score"]
    return curves


def _learning_curves(by_seed: Curves, path: Path, steps: str) -> bool:
    """Curves against ``steps`` ("updates" or "environment steps")."""
    curves: dict[tuple[str, str], dict[str, dict[int, list[float]]]] = {}
    for task, variants in by_seed.items():
        for name, seeds in variants.items():
            per_update = curves.setdefault(task, {}).setdefault(name, {})
            for points in seeds.values():
                for step, score in points.items():
                    per_update.setdefault(step, []).append(score)
    if not curves:
        return False
    plt = _pyplot()
    columns = min(3, len(curves))
    rows = -(-len(curves) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.6 * rows), squeeze=False)
    rng = np.random.default_rng(0)
    colours = _colours(name for variants in curves.values() for name in variants)
    for axis, ((dataset, wrapper), variants) in zip(axes.flat, sorted(curves.items())):
        for name, per_update in sorted(variants.items()):
            if not per_update:  # nothing to learn (e.g. ``random``): evaluated once, no curve
                continue
            updates = sorted(per_update)
            means = np.array([np.mean(per_update[u]) for u in updates])
            bands = np.array([np.percentile(rng.choice(per_update[u], (1000, len(per_update[u]))).mean(1), [2.5, 97.5])
                              for u in updates])
            axis.plot(updates, means, marker="o", markersize=3, label=name, color=colours[name])
            axis.fill_between(updates, bands[:, 0], bands[:, 1], alpha=0.2, color=colours[name])
        axis.set_title(dataset + ("" if wrapper == NO_WRAPPER else f"\n{wrapper}"), fontsize=9)
        axis.set_xlabel(steps)
        axis.set_ylabel("normalised score")
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(curves):]:
        axis.axis("off")
    kind = "Learning curves" if steps == "updates" else "Sample efficiency"
    figure.suptitle(f"{kind}: mean over seeds, 95% bootstrap band")
    figure.tight_layout()
    _legend_outside(figure, axes)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return True


def _aggregates(matrices: dict[str, dict[str, np.ndarray]], png: Path, csv: Path) -> None:
    tables = []
    for group, scores in matrices.items():
        table = aggregate_table(scores)
        table.insert(0, "group", group)
        tables.append(table)
    frame = pd.concat(tables, ignore_index=True)
    write_atomic(csv, frame.to_csv(index=False, float_format=CSV_FLOAT_FORMAT))
    plt = _pyplot()
    metrics = ["iqm", "mean", "median", "optimality_gap"]
    figure, axes = plt.subplots(len(matrices), 4, figsize=(16, 0.5 + 0.45 * max(len(s) for s in matrices.values())
                                                           * len(matrices) + 1.2), squeeze=False)
    for row, (group, scores) in zip(axes, matrices.items()):
        names = sorted(scores)
        for axis, metric in zip(row, metrics):
            part = frame[(frame.group == group) & (frame.metric == metric)].set_index("algorithm").loc[names]
            value, low, high = (part[c].to_numpy() for c in ("value", "ci_low", "ci_high"))
            axis.barh(range(len(names)), value, xerr=[value - low, high - value], color="tab:blue", alpha=0.7,
                      capsize=3)
            axis.set_yticks(range(len(names)), names if metric == "iqm" else [""] * len(names), fontsize=8)
            axis.set_title(f"{group}: {metric.replace('_', ' ')}", fontsize=9)
            axis.grid(axis="x", alpha=0.3)
    figure.suptitle("Aggregate normalised scores, 95% stratified-bootstrap CIs (rliable)")
    figure.tight_layout()
    figure.savefig(png, dpi=110)
    plt.close(figure)


def _profiles(matrices: dict[str, dict[str, np.ndarray]], path: Path) -> None:
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(matrices), figsize=(6 * len(matrices), 4), squeeze=False)
    colours = _colours(name for scores in matrices.values() for name in scores)
    for axis, (group, scores) in zip(axes[0], matrices.items()):
        profiles, bands = performance_profiles(scores, THRESHOLDS)
        for name in sorted(scores):
            axis.plot(THRESHOLDS, profiles[name], label=name, color=colours[name])
            axis.fill_between(THRESHOLDS, bands[name][0], bands[name][1], alpha=0.2, color=colours[name])
        axis.set_title(group, fontsize=9)
        axis.set_xlabel("normalised score τ")
        axis.set_ylabel("fraction of runs with score > τ")
        axis.grid(alpha=0.3)
    figure.suptitle("Performance profiles, 95% bands (rliable)")
    figure.tight_layout()
    _legend_outside(figure, axes)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)


def _improvement(matrices: dict[str, dict[str, np.ndarray]], png: Path, csv: Path) -> bool:
    tables = []
    for group, scores in matrices.items():
        if 2 <= len(scores) <= MAX_PAIRWISE:
            table = probability_of_improvement(scores)
            table.insert(0, "group", group)
            tables.append(table)
    if not tables:
        return False
    frame = pd.concat(tables, ignore_index=True)
    write_atomic(csv, frame.to_csv(index=False, float_format=CSV_FLOAT_FORMAT))
    shown = frame[frame.x < frame.y]  # P(Y > X) = 1 - P(X > Y): one of each pair
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 0.5 + 0.35 * len(shown)))
    labels = [f"{g}: P({x} > {y})" for g, x, y in zip(shown.group, shown.x, shown.y)]
    value, low, high = (shown[c].to_numpy() for c in ("probability", "ci_low", "ci_high"))
    axis.barh(range(len(shown)), value, xerr=[value - low, high - value], alpha=0.7, capsize=3)
    axis.axvline(0.5, color="black", linewidth=0.8)
    axis.set_yticks(range(len(shown)), labels, fontsize=7)
    axis.set_xlim(0, 1)
    axis.set_title("Probability of improvement, 95% CIs (rliable)")
    figure.tight_layout()
    figure.savefig(png, dpi=110)
    plt.close(figure)
    return True


def _bars(frame: pd.DataFrame, column: str, title: str, path: Path) -> None:
    plt = _pyplot()
    pivot = frame.pivot_table(index="algorithm", columns="label", values=column, aggfunc="mean")
    axis = pivot.plot.bar(figsize=(max(6, 1.2 * len(pivot)), 4), rot=30, alpha=0.8)
    axis.axhline(0, color="black", linewidth=0.8)
    axis.set_ylabel(column.replace("_", " ") + " (normalised points)")
    axis.set_title(f"{title} (mean over datasets)", fontsize=10)
    axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axis.figure.tight_layout()
    axis.figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(axis.figure)


def plot_directory(directory: Path) -> list[Path]:
    """Write every figure the records of ``directory`` support; returns the files written."""
    store = RunStore(directory)
    records = list(store.records().values())
    if not records:
        raise UsageError(f"no run records in '{directory}' (expected {store.records_path})")
    out = Path(directory) / "plots"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    online = [r for r in records if r.get("paradigm", "offline") != "offline"]
    offline = [r for r in records if r.get("paradigm", "offline") == "offline"]
    online_curves = _curves(store, online)
    for curves, name, steps in ((_curves(store, offline), "learning_curves.png", "updates"),
                                (online_curves, "sample_efficiency.png", "environment steps")):
        if _learning_curves(curves, out / name, steps):
            written.append(out / name)
    if _sample_efficiency(online_curves, out / "sample_efficiency.csv"):
        written.append(out / "sample_efficiency.csv")
    groups = scores_by_task([r for r in records if np.isfinite(r["normalized_score"])])
    if groups:
        own_tasks = score_matrices(groups, common_tasks=False)
        _aggregates(own_tasks, out / "aggregates.png", out / "aggregates.csv")
        _profiles(own_tasks, out / "performance_profiles.png")
        written += [out / "aggregates.png", out / "aggregates.csv", out / "performance_profiles.png"]
        if _improvement(score_matrices(groups, common_tasks=True), out / "probability_of_improvement.png",
                        out / "probability_of_improvement.csv"):
            written += [out / "probability_of_improvement.png", out / "probability_of_improvement.csv"]
    board = leaderboard(records)
    if "generalization_gap" in board:
        rows = board[(board.dataset != ALL) & (board.split == "test")].assign(label=lambda f: f.dataset)
        if rows.generalization_gap.notna().any():
            _bars(rows, "generalization_gap", "Generalization gap: train-level minus test-level score",
                  out / "generalization_gap.png")
            written.append(out / "generalization_gap.png")
    if "drop_from_default" in board:
        rows = board[(board.dataset != ALL) & (board.wrapper != NO_WRAPPER)].assign(label=lambda f: f.wrapper)
        if rows.drop_from_default.notna().any():
            _bars(rows, "drop_from_default", "Score lost under each wrapper (STORI type) vs the plain env",
                  out / "stori_drops.png")
            written.append(out / "stori_drops.png")
    if "data_wrapper" in board and _stori_settings(board, out / "stori_settings.png"):
        written.append(out / "stori_settings.png")
    return written


#: The settings of ``stori_settings.png``, in the order drawn.
TRAINED_IN, CLEAN_DATA = "trained where tested", "clean data"


def _stori_settings(board: pd.DataFrame, path: Path) -> bool:
    """STORI's two settings side by side: for each type, a bar per (algorithm, setting), each the
    mean over environments of the rows' normalised means, and a dashed line per algorithm at its
    clean agents' score in the plain environment; False when no row was trained where it was tested."""
    rows = board[(board.dataset != ALL) & board.wrapper.str.startswith("stori:")]
    setting = np.where(rows.data_wrapper == rows.wrapper, TRAINED_IN,
                       np.where(rows.data_wrapper == "", CLEAN_DATA, ""))
    rows = rows.assign(setting=setting)[setting != ""]
    if not (rows.setting == TRAINED_IN).any():
        return False
    plt = _pyplot()
    pivot = rows.pivot_table(index="wrapper", columns=["algorithm", "setting"], values="normalized_mean",
                             aggfunc="mean").reindex(columns=[TRAINED_IN, CLEAN_DATA], level="setting")
    figure, axis = plt.subplots(figsize=(max(7.0, 2.2 * len(pivot)), 4.5))
    palette, algorithms = _palette(plt), sorted(set(pivot.columns.get_level_values("algorithm")))
    colour = {algorithm: palette[i % 10] for i, algorithm in enumerate(algorithms)}  # clean data: its light twin
    width = 0.8 / len(pivot.columns)
    for k, ((algorithm, name), scores) in enumerate(pivot.items()):
        axis.bar(np.arange(len(pivot)) + (k - (len(pivot.columns) - 1) / 2) * width, scores.to_numpy(), width,
                 color=colour[algorithm] if name == TRAINED_IN else palette[10 + algorithms.index(algorithm) % 10],
                 label=f"{algorithm}, {name}")
    clean = board[(board.dataset != ALL) & (board.wrapper == NO_WRAPPER) & (board.data_wrapper == "")]
    for algorithm, score in clean.groupby("algorithm").normalized_mean.mean().items():
        if algorithm in colour:
            axis.axhline(score, color=colour[algorithm], linestyle="--", linewidth=1.0,
                         label=f"{algorithm}, clean data, plain environment")
    axis.set_xticks(np.arange(len(pivot)), [wrapper.replace(",", ",\n") for wrapper in pivot.index], fontsize=7)
    axis.set_ylabel("normalised score")
    axis.set_title("STORI types: trained where tested vs trained on clean data (mean over environments)",
                   fontsize=10)
    axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return True
