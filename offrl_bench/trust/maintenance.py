"""Keeping published references current: record their provenance, attest behaviour-neutral changes,
regenerate stale rows.

- :func:`record`: the provenance line of every training group of a reference that has none, from a
  traced replay at the group's own revision (installed in a worktree, :mod:`offrl_bench.trust.revisions`).
- :func:`attest`: for stale rows, replay at their recorded revision and at HEAD on this machine; if
  parameters, losses, evaluation returns and datasets are bit-identical, the change was
  behaviour-neutral: the line takes HEAD's code record and keeps an attestation.
- :func:`regenerate`: rerun the stale rows only, at a clean HEAD, outside the reference, and
  :func:`publish` each row as soon as its runs finish.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path

from offrl_bench.core.errors import UsageError
from offrl_bench.records.run_store import RunStore
from offrl_bench.trust import code_identity, provenance, revisions

Progress = Callable[[str], None]


@cache
def _action_kind(env_id: str) -> str:
    from offrl_bench.data.make import action_kind_of

    return action_kind_of(env_id)


def replay_budget(record: dict) -> int:
    """The replay length of a record's run: its algorithm's :meth:`~offrl_bench.core.api.Algorithm.replay_budget`
    at HEAD, or the run's whole budget where HEAD cannot say (an algorithm no longer installed)."""
    from offrl_bench.core import registry
    from offrl_bench.core.config import build_config
    from offrl_bench.core.errors import OffrlBenchError

    spec = record["spec"]
    try:
        cls = registry.algorithm_class(spec["algo"])
        config = build_config(cls, [tuple(pair) for pair in spec.get("overrides", ())])
        return int(cls.replay_budget(config, _action_kind(record["env_id"]), int(spec["updates"])))
    except (OffrlBenchError, ValueError, TypeError):
        return int(spec["updates"])


def groups(records: list[dict]) -> dict[str, list[dict]]:
    """Line key -> runs: the training groups of ``records``, apart by revision (a partly regenerated
    reference holds the same agent at two revisions, two lines)."""
    found: dict[str, list[dict]] = {}
    for record in records:
        revision = (record.get("versions") or {}).get("git_revision") or "unknown"
        found.setdefault(f"{provenance.group_key(record)}@{revision[:12]}", []).append(record)
    return found


def _item_key(line_key: str) -> str:
    """The replay's key: the group without its revision (each revision replays in its own folder)."""
    return line_key.split("@", 1)[0]


def replay_item(key: str, runs: list[dict]) -> dict:
    """A replay of one training group: its lowest seed under each wrapper it is evaluated with."""
    key = _item_key(key)
    seed = min(run["seed"] for run in runs)
    chosen: dict[str, dict] = {}
    for run in sorted(runs, key=lambda run: (run["seed"] != seed, run["seed"])):
        chosen.setdefault(run["wrapper"], run)
    first = next(iter(chosen.values()))
    return {"key": key, "specs": [run["spec"] for run in chosen.values()], "budget": replay_budget(first)}


def _code(executed: dict, root: Path) -> dict:
    return code_identity.code_record(executed["units"], root, executed["names"])


def line_for(key: str, runs: list[dict], replayed: dict, datasets: dict, root: Path) -> dict:
    """The provenance line of a training group from its replay (and its dataset's), with the code
    hashed from the sources under ``root`` (those the replay ran)."""
    spec = {k: v for k, v in runs[0]["spec"].items() if k not in ("seed", "device", "wrapper")}
    by_wrapper: dict[str, list[str]] = {}
    for run in sorted(runs, key=lambda run: run["seed"]):
        by_wrapper.setdefault(run["wrapper"], []).append(run["run_id"])
    per_wrapper = {wrapper: _code(executed, root) for wrapper, executed in replayed["executed"].items()}
    common = code_identity.common_code(list(per_wrapper.values()))
    extra = {wrapper: code_identity.code_beyond(code, common) for wrapper, code in per_wrapper.items()}
    dataset = datasets[runs[0]["dataset"]]
    data = {**{k: v for k, v in dataset.items() if k not in ("executed", "seconds")},
            "code": _code(dataset["executed"], root)}
    return {"key": key, "suite": runs[0]["suite"], "algorithm": runs[0]["algorithm"], "dataset": runs[0]["dataset"],
            "revision": runs[0]["versions"]["git_revision"], "spec": spec, "runs": by_wrapper,
            "replay": {"seed": min(run["seed"] for run in runs), "budget": replayed["budget"],
                       "threads": replayed["threads"]},
            "config": replayed["config"], "code": common,
            "wrapper_code": {wrapper: code for wrapper, code in extra.items() if code},
            "outcomes": replayed["outcomes"], "data": data}


def _environment(root: Path, revision: str) -> revisions.RevisionEnvironment:
    head = revisions.full_revision(root, "HEAD")
    if revision == head and revisions.head_is_clean(root):
        return revisions.working_tree(root, revisions.cache_root() / "revisions" / head / "datasets")
    return revisions.installed(root, revision)


def replay_at(root: Path, revision: str, suite: str, items: list[dict], datasets: list[str], workers: int,
              progress: Progress) -> tuple[dict, Path]:
    """The replays of ``items`` and ``datasets`` at ``revision``, and the source tree they ran."""
    environment = _environment(root, revision)
    result = revisions.cache_root() / "revisions" / revision / f"replays-{suite}.json"
    total = len(items) + len(datasets)
    done = [0]

    def report(event: dict) -> None:
        done[0] += 1
        progress(f"  [{revision[:7]}] {done[0]}/{total} {event['done'][:-1]} {event['key']} ({event['seconds']} s)")

    job = {"suite": suite, "datasets": datasets, "replays": items}
    return revisions.run_job(environment, job, result, workers=workers, progress=report), environment.root


def record(directory: Path, root: Path, workers: int = 2, progress: Progress = print) -> int:
    """Record the provenance of every training group in ``directory`` that has none (or one from
    another revision than its runs'); returns how many lines were added."""
    records = list(RunStore(directory).records().values())
    if not records:
        raise UsageError(f"no run records in {directory}")
    lines = {line["key"]: line for line in provenance.read_lines(directory)}
    by_revision: dict[str, dict[str, list[dict]]] = {}
    for key, runs in groups(records).items():
        revision = runs[0]["versions"]["git_revision"]
        if key not in lines or lines[key]["revision"] != revision:
            by_revision.setdefault(revision, {})[key] = runs
    suite = records[0]["suite"]
    added = 0
    for revision, todo in sorted(by_revision.items()):
        progress(f"replaying {len(todo)} training groups of {suite} at {revision[:7]}")
        items = [replay_item(key, runs) for key, runs in sorted(todo.items())]
        datasets = sorted({runs[0]["dataset"] for runs in todo.values()})
        result, tree = replay_at(root, revision, suite, items, datasets, workers, progress)
        for key, runs in todo.items():
            lines[key] = line_for(key, runs, result["replays"][_item_key(key)], result["datasets"], tree)
            added += 1
        provenance.write_lines(directory, list(lines.values()))
    return added


def attest(directory: Path, root: Path, rows: list[str] | None = None, workers: int = 2,
           progress: Progress = print) -> tuple[list[str], list[str]]:
    """Replay the training groups behind the stale rows of ``directory`` (those matching ``rows``:
    substrings of "dataset · wrapper · algorithm") at their recorded revision and at HEAD, on this
    machine. Groups whose parameters, losses, evaluation returns and dataset contents are
    bit-identical take HEAD's code record and an attestation. Returns (attested, refused) group
    descriptions, each refused one with why."""
    if not revisions.head_is_clean(root):
        raise UsageError("attest needs a clean tree: commit the change first (uncommitted code has no revision)")
    head = revisions.full_revision(root, "HEAD")
    records = list(RunStore(directory).records().values())
    lines = {line["key"]: line for line in provenance.read_lines(directory)}
    stale = [row for row in provenance.status(directory, records) if not row.fresh]
    if rows:
        stale = [row for row in stale if any(pattern in " · ".join(row.row[1:]) for pattern in rows)]
    by_run = {run_id: key for key, line in lines.items() for ids in line["runs"].values() for run_id in ids}
    all_groups = groups(records)
    keys = sorted({by_run[run["run_id"]] for row in stale for run in provenance.rows(records)[row.row]
                   if run["run_id"] in by_run})
    if not keys:
        return [], []
    suite = records[0]["suite"]
    by_code_revision: dict[str, list[str]] = {}
    for key in keys:
        by_code_revision.setdefault(_code_revision(lines[key]), []).append(key)
    attested, refused = [], []
    for old, group_keys in sorted(by_code_revision.items()):
        items = [replay_item(key, all_groups[key]) for key in group_keys]
        for item, key in zip(items, group_keys):  # the recorded replay's length, on both sides
            item["budget"] = lines[key]["replay"]["budget"]
        datasets = sorted({lines[key]["dataset"] for key in group_keys})
        progress(f"attesting {len(group_keys)} training groups of {suite}: {old[:7]} against HEAD {head[:7]}")
        before, _ = replay_at(root, old, suite, items, datasets, workers, progress)
        after, tree = replay_at(root, head, suite, items, datasets, workers, progress)
        for key in group_keys:
            line = lines[key]
            name = f"{line['algorithm']} on {line['dataset']} ({key})"
            differences = _outcome_differences(before, after, _item_key(key), line["dataset"])
            if differences:
                refused.append(f"{name}: {differences}")
                continue
            replayed = after["replays"][_item_key(key)]
            lines[key] = {**line_for(key, all_groups[key], replayed, after["datasets"], tree),
                          "attestations": [*line.get("attestations", []),
                                           {"from": old, "to": head, "machine": after["machine"],
                                            "parameters": sorted({o["parameters"]
                                                                  for o in replayed["outcomes"].values()})}]}
            attested.append(name)
        provenance.write_lines(directory, list(lines.values()))
    return attested, refused


def _code_revision(line: dict) -> str:
    """The revision whose code a line's code record describes: its last attestation's, else its runs'."""
    return line["attestations"][-1]["to"] if line.get("attestations") else line["revision"]


def _outcome_differences(before: dict, after: dict, key: str, dataset: str) -> str:
    old, new = before["replays"][key], after["replays"][key]
    problems = []
    if before["datasets"][dataset]["content"] != after["datasets"][dataset]["content"]:
        problems.append(f"dataset {dataset} differs")
    for wrapper in sorted(set(old["outcomes"]) | set(new["outcomes"])):
        a, b = old["outcomes"].get(wrapper), new["outcomes"].get(wrapper)
        for what in ("parameters", "losses", "returns"):
            if (a or {}).get(what) != (b or {}).get(what):
                problems.append(f"{what} differ" + (f" under {wrapper}" if wrapper else ""))
    return "; ".join(dict.fromkeys(problems))



def rebuild_leaderboard(directory: Path, records: list[dict] | None = None) -> Path:
    """``DIR/leaderboard.csv`` from its records, with the sanity-floor, FQE and stale columns (what
    ``offrl-bench leaderboard DIR`` writes)."""
    from offrl_bench.execution import ope
    from offrl_bench.records.leaderboard import leaderboard, write_leaderboard
    from offrl_bench.trust import budget

    records = list(RunStore(directory).records().values()) if records is None else records
    frame = leaderboard(records, budget=budget.for_directory(directory, records),
                        selection=ope.load_selections(directory), stale=provenance.stale_labels(directory, records))
    path = Path(directory) / "leaderboard.csv"
    write_leaderboard(frame, path)
    return path


def publish(directory: Path, root: Path, new_records: list[dict], progress: Progress = print) -> None:
    """Put ``new_records`` (regenerated runs) in the reference at ``directory`` in place of the records
    with their run ids, record their provenance, and rebuild the leaderboard. FQE selections of the
    replaced runs are dropped (``offrl-bench ope`` computes them again)."""
    from offrl_bench.execution import ope
    from offrl_bench.records.run_store import read_jsonl, write_atomic

    store = RunStore(directory)
    replaced = {record["run_id"]: record for record in new_records}
    records = [replaced.get(record["run_id"], record) for record in store.records().values()]
    write_atomic(store.records_path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    lines = []
    for line in provenance.read_lines(directory):
        runs = {wrapper: [run for run in ids if run not in replaced] for wrapper, ids in line["runs"].items()}
        runs = {wrapper: ids for wrapper, ids in runs.items() if ids}
        if runs:
            lines.append({**line, "runs": runs})
    provenance.write_lines(directory, lines)
    ope_path = Path(directory) / ope.FILE_NAME
    if ope_path.exists():
        kept = [line for line in read_jsonl(ope_path) if line["run_id"] not in replaced]
        write_atomic(ope_path, "".join(json.dumps(line) + "\n" for line in kept))
    record(directory, root, workers=1, progress=progress)
    rebuild_leaderboard(directory, records)


def regenerate(directory: Path, root: Path, workers: int = 2, progress: Progress = print) -> tuple[int, int]:
    """Rerun the stale rows of the reference at ``directory`` at a clean HEAD, row by row, in
    ``results/regenerate/<suite>/<revision>/`` (runs never write into the reference), publishing each row as
    soon as its runs finish. Interrupted, it keeps the rows it published and the runs it finished;
    the same call continues. Returns (rows regenerated, rows still stale)."""
    from offrl_bench.core import registry
    from offrl_bench.data.make import make_missing_datasets
    from offrl_bench.execution import scheduler
    from offrl_bench.execution.runner import RunSpec, preflight

    if not revisions.head_is_clean(root):
        raise UsageError("regenerate needs a clean tree: published rows come from committed revisions")
    records = list(RunStore(directory).records().values())
    stale = [row for row in provenance.status(directory, records) if not row.fresh]
    if not stale:
        return 0, 0
    suite = registry.suite(records[0]["suite"])
    # one folder per revision: it resumes this revision's runs, and never takes another revision's
    # finished runs (same run ids) for this one's
    work = root / "results" / "regenerate" / Path(directory).name / revisions.full_revision(root, "HEAD")[:12]
    by_row = provenance.rows(records)
    needed = {run["dataset"] for row in stale for run in by_row[row.row]}
    make_missing_datasets([request for request in suite.datasets if request.dataset_id in needed], log=progress)
    done = 0
    for row in stale:
        specs = [RunSpec(**{**run["spec"], "overrides": tuple(tuple(pair) for pair in run["spec"]["overrides"])})
                 for run in sorted(by_row[row.row], key=lambda run: run["seed"])]
        preflight(specs)
        outcome = scheduler.execute(specs, work, workers=workers, quiet=True, cpus_per_run=1)
        failed = outcome.failed + outcome.failed_earlier
        if failed:
            raise UsageError(f"{len(failed)} runs of {' · '.join(row.row)} failed, e.g. {failed[0]['reason']} "
                             f"(see {work / 'failures.jsonl'})")
        finished = RunStore(work).records()
        publish(directory, root, [finished[spec.run_id] for spec in specs], progress=progress)
        done += 1
        progress(f"regenerated {done}/{len(stale)}: {' · '.join(row.row)}")
    return done, len(stale) - done
