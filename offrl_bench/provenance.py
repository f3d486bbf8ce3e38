"""Which code produced a set of run records, and whether that code is still the code here.

Every record names the git revision it ran at and whether the tree had uncommitted changes
(``versions.git_revision``, ``versions.git_dirty``). A published leaderboard is only trustworthy
when all its records come from one clean, committed revision, and its numbers only describe the
code here when the files that computed them have not changed since. :func:`warning` says in one
line when either fails; :func:`reference_problems` is the strict form a published reference must pass.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

#: Files that shape every run's numbers, besides the algorithm's and the environment's modules
#: (paths in the repository; see :func:`algorithm_sources` and :func:`environment_sources`).
SHARED_SOURCES = ("algorithms/nn.py", "offrl_bench/runner.py")


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


def provenance(records: Iterable[dict]) -> Provenance:
    records = list(records)
    versions = [record.get("versions") or {} for record in records]
    return Provenance(revisions=Counter(v.get("git_revision") for v in versions),
                      dirty=sum(v.get("git_dirty") is True for v in versions),
                      unknown_dirty=sum(v.get("git_dirty") is None for v in versions), total=len(records))


def repository_root() -> Path | None:
    """The git checkout this package runs from; None for an installed copy."""
    here = Path(__file__).resolve().parent
    try:
        result = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, timeout=10,
                                cwd=here)
    except (OSError, subprocess.SubprocessError):
        return None
    root = Path(result.stdout.strip()) if result.returncode == 0 else None
    return root if root and (root / "offrl_bench" / "provenance.py").resolve() == Path(__file__).resolve() else None


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], capture_output=True, text=True, timeout=30, cwd=root)


def algorithm_sources(records: Iterable[dict], root: Path) -> list[str]:
    """The repository paths of the modules that compute the records' algorithms: each algorithm's
    module, the ``offrl_bench.algorithms`` modules it imports (transitively: MOPO's dynamics model
    and MOREC's dynamics reward, SS-ORL's inverse dynamics model), and those of a wrapper's base
    algorithm named in the record's config (SS-ORL's ``base``)."""
    from offrl_bench import registry

    available = registry.available(registry.ALGORITHMS)
    modules: list[str] = []
    for record in records:
        for name in (record["algorithm"], (record.get("config") or {}).get("base")):
            entry_point = available.get(name) if isinstance(name, str) else None
            if entry_point is not None and entry_point.module not in modules:
                modules.append(entry_point.module)
    return _module_paths(modules, root, follow=_ALGORITHMS_PACKAGE)


def environment_sources(records: Iterable[dict], root: Path) -> list[str]:
    """The repository paths of the environment modules that shaped the records: the environment
    factory (``envs/__init__.py``), the module of every wrapper a record is evaluated under or its
    dataset was collected under, the adapter module of its environment family (Procgen), and the
    ``offrl_bench.envs`` modules that these and the records' algorithm modules import (transitively:
    MOPO's termination functions). A Pendulum run without wrappers therefore does not depend on the
    level-split wrapper.

    A dataset's collection wrapper is read from its id, where ``data make`` puts the wrapper spec
    (``offrl/minigrid-doorkey-6x6/expert-levels-train-v0``): a dataset renamed with ``--name`` and no
    wrapper in its name is not followed to its wrapper's module."""
    from offrl_bench import envs, registry

    records = list(records)  # read twice: here and by algorithm_sources
    wrappers = registry.available(registry.WRAPPERS)
    modules = [_ENVS_PACKAGE]
    for record in records:
        named: set[str] = set()
        for text in (record.get("wrapper"), (record.get("spec") or {}).get("wrapper")):
            named |= _wrapper_names(text or "")
        tokens = set(re.split(r"[^a-z0-9_]+", str(record.get("dataset", "")).lower()))
        named |= tokens & set(wrappers)
        modules += [wrappers[name].module for name in sorted(named) if name in wrappers]
        env_id = str(record.get("env_id") or "")
        modules += [module for prefix, (module, _) in envs._ENV_PACKAGES.items()
                    if env_id.startswith(prefix) and module.startswith(f"{_ENVS_PACKAGE}.")]
    for path in algorithm_sources(records, root):
        modules += [module for module in _imported_modules(root / path) if module.startswith(f"{_ENVS_PACKAGE}.")]
    return _module_paths(modules, root, follow=_ENVS_PACKAGE)


def pinned_sources(records: Iterable[dict], root: Path) -> list[str]:
    """Every repository file whose change can change the records' numbers: their algorithm and
    environment modules (see :func:`algorithm_sources`, :func:`environment_sources`) and
    :data:`SHARED_SOURCES`."""
    records = list(records)
    return sorted({*algorithm_sources(records, root), *environment_sources(records, root), *SHARED_SOURCES})


def _wrapper_names(spec: str) -> set[str]:
    from offrl_bench.envs import parse_wrapper_spec

    names = set()
    for call in parse_wrapper_spec(spec):
        names |= {call.name, *_wrapper_names(str(call.params.get("to", "")))}
    return names


def _module_paths(modules: list[str], root: Path, follow: str) -> list[str]:
    """The repository paths of ``modules`` and, transitively, of the modules under the ``follow``
    package that they import; modules installed outside the repository are left out."""
    modules = list(modules)
    paths: set[str] = set()
    while modules:
        spec = importlib.util.find_spec(modules.pop())
        if not (spec and spec.origin):
            continue
        try:
            path = str(Path(spec.origin).resolve().relative_to(root))
        except ValueError:  # installed elsewhere (a third-party plugin): not this repository's history
            continue
        if path in paths:
            continue
        paths.add(path)
        modules += [module for module in _imported_modules(Path(spec.origin)) if module.startswith(f"{follow}.")]
    return sorted(paths)


_ALGORITHMS_PACKAGE = "offrl_bench.algorithms"
_ENVS_PACKAGE = "offrl_bench.envs"


def _imported_modules(path: Path) -> list[str]:
    """Absolute module names a source file imports (``import a.b``, ``from a.b import c``)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
    return names


def changed_since(revision: str, paths: Iterable[str], root: Path) -> list[str] | None:
    """Files among ``paths`` that differ between ``revision`` and the working tree; None when the
    revision is not in this checkout's history."""
    if _git(root, "cat-file", "-e", f"{revision}^{{commit}}").returncode != 0:
        return None
    diff = _git(root, "diff", "--name-only", revision, "--", *paths)
    return sorted(line for line in diff.stdout.splitlines() if line)


def warning(records: list[dict]) -> str | None:
    """One line saying why these records may not describe this code, or None when they do (or when
    this is not a git checkout, where nothing can be checked beyond what the records say)."""
    if not records:
        return None
    found = provenance(records)
    problems = []
    if found.dirty:
        problems.append(f"{found.dirty} of {found.total} records ran on uncommitted changes (git_dirty)")
    if len(found.revisions) > 1:
        shown = ", ".join(f"{(rev or 'unknown')[:7]} x{n}" for rev, n in found.revisions.most_common(4))
        problems.append(f"records mix {len(found.revisions)} revisions ({shown})")
    root = repository_root()
    if root is not None:
        sources = pinned_sources(records, root)
        for revision in sorted(rev for rev in found.revisions if rev):
            changed = changed_since(revision, sources, root)
            if changed is None:
                problems.append(f"revision {revision[:7]} is not in this checkout's history")
            elif changed:
                problems.append(f"since {revision[:7]} these files changed: {', '.join(changed)}")
    return "; ".join(problems) or None


def reference_problems(records: list[dict], root: Path) -> list[str]:
    """What keeps ``records`` from being a publishable reference: they must all come from one clean,
    committed revision that is an ancestor of HEAD."""
    found = provenance(records)
    problems = []
    if not records:
        problems.append("no records")
    if found.dirty or found.unknown_dirty:
        problems.append(f"{found.dirty + found.unknown_dirty} of {found.total} records are not from a clean tree "
                        "(git_dirty true or missing)")
    if found.revision is None:
        problems.append(f"records mix revisions: {dict(found.revisions)}")
    elif _git(root, "merge-base", "--is-ancestor", found.revision, "HEAD").returncode != 0:
        problems.append(f"revision {found.revision} is not an ancestor of HEAD")
    return problems
