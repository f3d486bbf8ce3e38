"""Which code produced a published row, and whether that is still the code here: behavioural,
per-row provenance.

Every record names the git revision it ran at and whether the tree had uncommitted changes
(``versions.git_revision``, ``versions.git_dirty``). Beside its ``runs.jsonl`` a published reference
keeps ``provenance.jsonl``: one line per trained agent (a *training group*: the runs that differ only
in their seed and, offline, in the wrapper they are evaluated under). A line holds what the group's
runs execute, found by a traced short replay (:mod:`offrl_bench.trust.replay`) at the group's own revision:

- **code**: every project function and method executed, and the import-time units of each module
  executed, as hashes of their normalised AST (:mod:`offrl_bench.trust.code_identity`), with the extra
  code each evaluation wrapper runs kept apart (``wrapper_code``);
- **dataset recipe**: the suite's dataset request, the shipped behaviour-policy files' hashes, the
  collection code (traced the same way) and the content hash of the dataset it built;
- **resolved config**: the whole config, defaults and a base algorithm's config included.

A row (suite, dataset, wrapper, algorithm) is **fresh** at HEAD when all of these are unchanged for
every run behind it, or an attestation (:mod:`offrl_bench.attest`) proved the change
behaviour-neutral, and **stale** otherwise, with the reason. Comments, docstrings, formatting, new
functions no run calls and functions that moved do not stale a row.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from offrl_bench.trust.code_identity import SourceTree, code_changes, joined_code

FILE_NAME = "provenance.jsonl"


@dataclass(frozen=True)
class Provenance:
    revisions: Counter  # revision -> number of records (None: not recorded)
    dirty: int  # records made from a tree with uncommitted changes
    unknown_dirty: int  # records that do not say whether their tree was clean
    total: int

    @property
    def revision(self) -> str | None:
        """The one revision every record ran at, else None."""
        return next(iter(self.revisions)) if len(self.revisions) == 1 else None

    def describe(self) -> str:
        """``abc1234`` for one revision, ``abc1234 x120, def5678 x55`` for several."""
        return ", ".join(f"{(rev or 'unknown')[:7]}" + (f" x{n}" if len(self.revisions) > 1 else "")
                         for rev, n in self.revisions.most_common())


def provenance(records: Iterable[dict]) -> Provenance:
    records = list(records)
    versions = [record.get("versions") or {} for record in records]
    return Provenance(revisions=Counter(v.get("git_revision") for v in versions),
                      dirty=sum(v.get("git_dirty") is True for v in versions),
                      unknown_dirty=sum(v.get("git_dirty") is None for v in versions), total=len(records))


def repository_root() -> Path | None:
    """The git checkout this package runs from; None for an installed copy."""
    here = Path(__file__).resolve()
    try:
        result = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, timeout=10,
                                cwd=here.parent)
    except (OSError, subprocess.SubprocessError):
        return None
    root = Path(result.stdout.strip()) if result.returncode == 0 else None
    return root if root and (root / "offrl_bench" / "trust" / "provenance.py").resolve() == here else None


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], capture_output=True, text=True, timeout=30, cwd=root)


def reference_problems(records: list[dict], root: Path) -> list[str]:
    """What keeps ``records`` from being publishable: each must come from a clean, committed revision
    that is an ancestor of HEAD, and the runs of one row from one revision. A reference may mix
    revisions row by row (a partial regeneration)."""
    found = provenance(records)
    problems = []
    if not records:
        problems.append("no records")
    if found.dirty or found.unknown_dirty:
        problems.append(f"{found.dirty + found.unknown_dirty} of {found.total} records are not from a clean tree "
                        "(git_dirty true or missing)")
    for revision in sorted(rev or "unknown" for rev in found.revisions):
        if revision == "unknown" or _git(root, "merge-base", "--is-ancestor", revision, "HEAD").returncode != 0:
            problems.append(f"revision {revision} is not an ancestor of HEAD")
    for row, runs in rows(records).items():
        if len(provenance(runs).revisions) > 1:
            problems.append(f"row {' · '.join(row)} mixes revisions {provenance(runs).describe()}")
    return problems


# ---------------------------------------------------------------------------------------------
# Training groups and rows


def group_key(record: dict) -> str:
    """The trained agent a record's run belongs to, across seeds: its spec without the seed and, for
    an offline algorithm (whose evaluation wrapper does not touch training), without the wrapper."""
    spec = dict(record.get("spec") or {})
    for name in ("seed", "device", "suite"):
        spec.pop(name, None)
    if record.get("paradigm", "offline") == "offline":
        spec.pop("wrapper", None)
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    return f"{record['algorithm']}:{digest}"


Row = tuple[str, str, str, str]  # (suite, dataset, wrapper, algorithm variant)


def row_of(record: dict) -> Row:
    from offrl_bench.records.leaderboard import NO_WRAPPER, variant_name

    return record["suite"], record["dataset"], record["wrapper"] or NO_WRAPPER, variant_name(record)


def rows(records: Iterable[dict]) -> dict[Row, list[dict]]:
    found: dict[Row, list[dict]] = {}
    for record in records:
        found.setdefault(row_of(record), []).append(record)
    return found


def read_lines(directory: Path) -> list[dict]:
    from offrl_bench.records.run_store import read_jsonl

    path = Path(directory) / FILE_NAME
    return list(read_jsonl(path)) if path.exists() else []


def write_lines(directory: Path, lines: list[dict]) -> None:
    from offrl_bench.records.run_store import write_atomic

    ordered = sorted(lines, key=lambda line: line["key"])
    write_atomic(Path(directory) / FILE_NAME, "".join(json.dumps(line, sort_keys=True) + "\n" for line in ordered))


# ---------------------------------------------------------------------------------------------
# Status at HEAD


@dataclass
class RowStatus:
    row: Row
    revisions: tuple[str, ...]
    reasons: list[str] = field(default_factory=list)

    @property
    def fresh(self) -> bool:
        return not self.reasons

    @property
    def label(self) -> str:
        """``""`` for a fresh row; else ``stale since abc1234: why`` (the CSV's ``stale`` column)."""
        if self.fresh:
            return ""
        shown = "; ".join(self.reasons[:3]) + (f"; +{len(self.reasons) - 3} more" if len(self.reasons) > 3 else "")
        return f"stale since {'/'.join(rev[:7] for rev in self.revisions)}: {shown}"


class HeadState:
    """What status compares recorded provenance with: the sources at ``root`` and the configs,
    suites and policy files this package resolves. Cached, so that checking every reference reads
    each source file, dataset and policy once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tree = SourceTree(root)
        self._content: dict[str, str | None] = {}

    @cache  # noqa: B019 (one HeadState per status call)
    def resolved_config(self, algo: str, overrides: tuple) -> tuple[dict | None, str | None]:
        from offrl_bench.core.errors import OffrlBenchError
        from offrl_bench.execution.runner import RunSpec
        from offrl_bench.trust.replay import resolved_config

        try:
            return resolved_config(RunSpec(algo=algo, dataset="", seed=0, overrides=overrides)), None
        except (OffrlBenchError, ValueError, TypeError) as exc:
            return None, f"config no longer resolves ({exc})"

    @cache  # noqa: B019
    def dataset_request(self, suite: str, dataset_id: str) -> dict | str:
        """The suite's request for ``dataset_id`` as the replay records it, or why there is none."""
        from offrl_bench.core import registry
        from offrl_bench.core.errors import OffrlBenchError

        try:
            requests = {request.dataset_id: request for request in registry.suite(suite).datasets}
        except (OffrlBenchError, AttributeError) as exc:
            return f"suite {suite} is no longer defined ({exc})"
        if dataset_id not in requests:
            return f"suite {suite} no longer makes dataset {dataset_id}"
        return request_fields(requests[dataset_id])

    @cache  # noqa: B019
    def policies(self, env_id: str) -> dict:
        from offrl_bench.trust.replay import policy_files

        return policy_files(self.root, env_id)

    def local_content(self, dataset_id: str) -> str | None:
        """The content hash of the dataset as it exists here, or None when it does not."""
        if dataset_id not in self._content:
            from offrl_bench.data.datasets import dataset_exists
            from offrl_bench.trust.replay import dataset_content_digest

            self._content[dataset_id] = dataset_content_digest(dataset_id) if dataset_exists(dataset_id) else None
        return self._content[dataset_id]


def request_fields(request) -> dict:
    """A dataset request as provenance stores it: its fields, leaving out those at ``None`` (fields
    added later with a neutral default)."""
    return {key: value for key, value in dataclasses.asdict(request).items() if value is not None}


def differing_keys(a: dict, b: dict) -> list[str]:
    """Keys whose values differ, as JSON has them (so that NaN, a DT default, equals NaN)."""
    same = lambda key: json.dumps(a.get(key), sort_keys=True) == json.dumps(b.get(key), sort_keys=True)  # noqa: E731
    return sorted(key for key in {*a, *b} if key not in a or key not in b or not same(key))


def line_reasons(line: dict, wrapper: str, head: HeadState) -> list[str]:
    """Why a provenance line no longer describes HEAD for its runs under ``wrapper`` (empty: fresh)."""
    code = joined_code(line["code"], (line.get("wrapper_code") or {}).get(wrapper, {}))
    reasons = code_changes(code, head.tree)
    spec = line["spec"]
    config, problem = head.resolved_config(spec["algo"], tuple(tuple(pair) for pair in spec.get("overrides", ())))
    if problem:
        reasons.append(problem)
    elif keys := differing_keys(config, line["config"]):
        reasons.append(f"config {', '.join(keys)} changed")
    data = line.get("data")
    if data:
        request = head.dataset_request(line["suite"], data["dataset"])
        if isinstance(request, str):
            reasons.append(request)
        elif keys := differing_keys(request, data["request"]):
            reasons.append(f"dataset {data['dataset']} request {', '.join(keys)} changed")
        if head.policies(data["request"]["env_id"]) != data["policies"]:
            reasons.append(f"behaviour policies of {data['request']['env_id']} changed")
        reasons += [f"dataset collection: {reason}" for reason in code_changes(data["code"], head.tree)]
    return reasons


def status(directory: Path, records: list[dict] | None = None, head: HeadState | None = None) -> list[RowStatus]:
    """Every row of the reference in ``directory``, fresh or stale (with why)."""
    from offrl_bench.records.run_store import RunStore

    if records is None:
        records = list(RunStore(directory).records().values())
    root = repository_root()
    head = head or (HeadState(root) if root else None)
    lines = read_lines(directory)
    by_run: dict[str, dict] = {}
    for line in lines:
        for run_ids in line["runs"].values():
            by_run.update(dict.fromkeys(run_ids, line))
    statuses = []
    memo: dict[tuple[str, str], list[str]] = {}
    for row, runs in sorted(rows(records).items()):
        reasons: list[str] = []
        missing = [run["run_id"] for run in runs if run["run_id"] not in by_run]
        if missing:
            reasons.append(f"no provenance recorded for {len(missing)} of {len(runs)} runs")
        elif head is None:
            reasons.append("not a git checkout: sources cannot be compared")
        for line in {id(by_run[run["run_id"]]): by_run[run["run_id"]] for run in runs
                     if run["run_id"] in by_run}.values():
            if line["revision"] != (runs[0].get("versions") or {}).get("git_revision"):
                reasons.append(f"provenance was recorded at {line['revision'][:7]}, the runs ran at another revision")
            elif head is not None:
                key = (line["key"], row[2])
                if key not in memo:
                    memo[key] = line_reasons(line, runs[0]["wrapper"], head)
                reasons += [reason for reason in memo[key] if reason not in reasons]
        revisions = tuple(sorted({(run.get("versions") or {}).get("git_revision") or "unknown" for run in runs}))
        statuses.append(RowStatus(row, revisions, reasons))
    return statuses


def dataset_warnings(directory: Path, head: HeadState) -> list[str]:
    """Local datasets whose content differs from what the reference's replay built: not a stale row
    (the floats of a continuous behaviour policy move with the CPU), but a reason its numbers may
    not reproduce here."""
    warnings, seen = [], set()
    for line in read_lines(directory):
        data = line.get("data")
        if not data or data["dataset"] in seen:
            continue
        seen.add(data["dataset"])
        local = head.local_content(data["dataset"])
        if local is not None and local != data["content"]:
            warnings.append(f"local dataset {data['dataset']} differs from the one the reference was built from")
    return warnings


def stale_labels(directory: Path, records: list[dict]) -> dict[Row, str] | None:
    """Row -> its stale label, for the rows of a published reference that are stale (empty when all
    are fresh); None for a directory that is not a reference with provenance, or outside a git
    checkout, where nothing can be said."""
    if not (Path(directory) / FILE_NAME).exists() or repository_root() is None:
        return None
    return {row.row: row.label for row in status(directory, records) if not row.fresh}


def warning(records: list[dict]) -> str | None:
    """One line saying why these records may not describe one clean revision of the code, or None:
    records made on uncommitted changes, or from several revisions. (Whether the code they executed
    is still the code here is :func:`status`'s question, for published references.)"""
    if not records:
        return None
    found = provenance(records)
    problems = []
    if found.dirty:
        problems.append(f"{found.dirty} of {found.total} records ran on uncommitted changes (git_dirty)")
    if len(found.revisions) > 1:
        shown = ", ".join(f"{(rev or 'unknown')[:7]} x{n}" for rev, n in found.revisions.most_common(4))
        problems.append(f"records mix {len(found.revisions)} revisions ({shown})")
    return "; ".join(problems) or None
