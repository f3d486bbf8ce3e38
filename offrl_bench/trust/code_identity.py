"""What a piece of the project's code *does*, as a hash that formatting, comments and docstrings do not
change, and which of it a process executed.

Behavioural provenance (:mod:`offrl_bench.trust.provenance`) pins a published row to the code its runs
executed, not to whole files. The unit is a **function**: a top-level function or a method
(``module path`` + ``qualname`` such as ``Runner.train``), hashed from its normalised AST, nested
functions, lambdas and comprehensions included. A **module** adds what runs at import: its import
bindings, its constants and its other top-level statements, and the header of each class (bases,
decorators, class attributes, dataclass fields), each hashed the same way.

This module uses only the standard library and is loaded by file path into replays of old revisions
(:mod:`offrl_bench.trust.replay`), whose installed ``offrl_bench`` does not have it.
"""

from __future__ import annotations

import ast
import hashlib
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from types import CodeType

#: The packages whose code provenance follows: their folders in the repository.
PROJECT_FOLDERS = ("offrl_bench", "algorithms", "envs")
#: The replay harness and this module: they run the replay but are not what a run executes.
NOT_RUN_CODE = ("offrl_bench/trust/replay.py", "offrl_bench/trust/code_identity.py")
#: Import roots that name this project; imports from them are normalised to the bound name, so a
#: function or module that moves keeps its callers' modules unchanged.
PROJECT_IMPORT_ROOT = "offrl_bench"
HASH_LENGTH = 16


def _digest(node: ast.AST) -> str:
    return hashlib.sha256(ast.dump(node, annotate_fields=True, include_attributes=False).encode()).hexdigest()[
        :HASH_LENGTH]


def _without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        return body[1:] or [ast.Pass()]
    return body


class _StripDocstrings(ast.NodeTransformer):
    def visit_FunctionDef(self, node):  # noqa: N802 (ast's visitor names)
        self.generic_visit(node)
        node.body = _without_docstring(node.body)
        return node

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_ClassDef = visit_FunctionDef


def _normalised(node: ast.AST) -> ast.AST:
    return _StripDocstrings().visit(node)


def _import_bindings(node: ast.Import | ast.ImportFrom) -> dict[str, str]:
    """Names an import binds, each to what it names; a name from this project is normalised to
    ``project:NAME`` wherever in the project it comes from."""
    bindings = {}
    for alias in node.names:
        if isinstance(node, ast.ImportFrom):
            source = "." * node.level + (node.module or "")
            project = node.level > 0 or source.split(".")[0] == PROJECT_IMPORT_ROOT
            bindings[alias.asname or alias.name] = f"project:{alias.name}" if project else f"{source}:{alias.name}"
        else:
            project = alias.name.split(".")[0] == PROJECT_IMPORT_ROOT
            bound = alias.asname or alias.name.split(".")[0]
            target = alias.name if alias.asname else alias.name.split(".")[0]
            bindings[bound] = f"project:{target.rsplit('.', 1)[-1]}" if project else f"module:{target}"
    return bindings


class ModuleIndex:
    """One source file's units: ``functions`` (qualname -> hash), ``classes`` (qualname -> header hash),
    ``bindings`` (imports and simple assignments at module level: name -> hash) and ``statements``
    (the hashes of every other module-level statement, sorted). ``uses`` holds, per binding, class
    and statement, the names its code refers to."""

    def __init__(self, source: str) -> None:
        tree = _normalised(ast.parse(source))
        self.functions: dict[str, str] = {}
        self.classes: dict[str, str] = {}
        self.bindings: dict[str, str] = {}
        self.uses: dict[str, set[str]] = {}
        self.statement_uses: set[str] = set()
        statements: list[str] = []
        for node in _without_docstring(tree.body):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for name, target in _import_bindings(node).items():
                    self.bindings[name] = hashlib.sha256(target.encode()).hexdigest()[:HASH_LENGTH]
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self._add_definition(node, "")
            elif isinstance(node, (ast.Assign, ast.AnnAssign)) and _simple_target(node) is not None:
                self.bindings[_simple_target(node)] = _digest(node)
                self.uses[_simple_target(node)] = _names(node)
            elif not isinstance(node, ast.Pass):
                statements.append(_digest(node))
                self.statement_uses |= _names(node)
        self.statements = sorted(statements)

    def _add_definition(self, node: ast.AST, prefix: str) -> None:
        qualname = prefix + node.name
        if isinstance(node, ast.ClassDef):
            header = ast.ClassDef(name=node.name, bases=node.bases, keywords=node.keywords,
                                  decorator_list=node.decorator_list, type_params=[],
                                  body=[child for child in node.body if not isinstance(
                                      child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))])
            self.classes[qualname] = _combine(self.classes.get(qualname), _digest(header))
            self.uses[qualname] = self.uses.get(qualname, set()) | _names(header)
            for child in node.body:
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    self._add_definition(child, qualname + ".")
        else:  # a property's getter and setter share a qualname: both count
            self.functions[qualname] = _combine(self.functions.get(qualname), _digest(node))


def _names(node: ast.AST) -> set[str]:
    """The names a piece of code refers to: variables and attributes."""
    return {child.id if isinstance(child, ast.Name) else child.attr for child in ast.walk(node)
            if isinstance(child, (ast.Name, ast.Attribute))}


def _simple_target(node: ast.Assign | ast.AnnAssign) -> str | None:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return targets[0].id if len(targets) == 1 and isinstance(targets[0], ast.Name) else None


def _combine(first: str | None, second: str) -> str:
    return second if first is None else hashlib.sha256(f"{first}{second}".encode()).hexdigest()[:HASH_LENGTH]


def unit_of(code: CodeType) -> str:
    """The unit a code object belongs to: its enclosing top-level function or method
    (``Class.method``), or ``""`` for module-level code (the module body, a module-level lambda)."""
    qualname = code.co_qualname.split(".<locals>")[0]
    return "" if qualname.startswith("<") else qualname


class ExecutionTrace:
    """Records every code object a process calls, in every thread, from :meth:`start` to :meth:`stop`.

    A trace hook sees each new Python frame (not C calls, unlike a profile hook) and only adds its
    code object to a set, asking for no line events; still, a traced run is slower than an untraced
    one: trace a short replay, never a timed run."""

    def __init__(self) -> None:
        self.codes: set[CodeType] = set()

    def _hook(self, frame, event, arg) -> None:
        self.codes.add(frame.f_code)  # called for "call" events only; None: no tracing inside the frame

    def start(self) -> ExecutionTrace:
        threading.settrace(self._hook)
        sys.settrace(self._hook)
        return self

    def stop(self) -> None:
        sys.settrace(None)
        threading.settrace(None)

    def executed(self, root: Path) -> dict[str, set[str]]:
        """Repository path (under :data:`PROJECT_FOLDERS` of ``root``) -> the units executed in it
        (``""``: the module itself, which every executed or imported module has)."""
        root = root.resolve()
        found: dict[str, set[str]] = {}
        for code in list(self.codes):
            path = _repository_path(code.co_filename, root)
            if path is not None:
                found.setdefault(path, {""}).add(unit_of(code))
        return found

    def names(self, root: Path) -> set[str]:
        """Every global or attribute name the project's executed code refers to."""
        root = root.resolve()
        return {name for code in list(self.codes) if _repository_path(code.co_filename, root) is not None
                for name in code.co_names}


def _repository_path(filename: str, root: Path) -> str | None:
    try:
        path = Path(filename).resolve().relative_to(root)
    except (ValueError, OSError):
        return None
    if not (path.parts and path.parts[0] in PROJECT_FOLDERS and path.suffix == ".py") or str(path) in NOT_RUN_CODE:
        return None
    return str(path)


def code_record(executed: dict[str, Iterable[str]], root: Path, names: Iterable[str]) -> dict[str, dict]:
    """What provenance stores of executed code, read from the sources under ``root``: per repository
    path, the hash of each executed function, of the module's other top-level statements, and of
    the module-level bindings (imports, constants) and class headers that executed code refers to.

    ``names`` are the names executed code refers to (:meth:`ExecutionTrace.names`). A binding or
    class counts when its name is among them, or is used by one that counts (a constant that
    another constant is computed from), or the class has an executed method: a constant no run
    reads does not pin the run."""
    indexes = {path: ModuleIndex((root / path).read_text()) for path in sorted(executed)}
    used = set(names)
    for path, units in executed.items():
        used |= {unit.split(".")[0] for unit in units if unit}  # classes whose methods (or bodies) ran
        used |= indexes[path].statement_uses
    while True:
        more = {name for index in indexes.values() for key, uses in index.uses.items()
                if key.split(".")[0] in used for name in uses} - used
        if not more:
            break
        used |= more
    record: dict[str, dict] = {}
    for path, index in indexes.items():
        record[path] = {"bindings": {name: d for name, d in index.bindings.items() if name in used},
                        "statements": index.statements,
                        "classes": {name: d for name, d in index.classes.items() if name.split(".")[0] in used},
                        "functions": {unit: index.functions[unit] for unit in sorted(executed[path])
                                      if unit in index.functions}}
    return record


KINDS = ("bindings", "classes", "functions")


def common_code(records: list[dict[str, dict]]) -> dict[str, dict]:
    """The part of several code records (one run's replays under several evaluation wrappers) that
    all of them hold."""
    common: dict[str, dict] = {}
    for path in sorted(set.intersection(*(set(record) for record in records))):
        modules = [record[path] for record in records]
        common[path] = {"statements": modules[0]["statements"],
                        **{kind: {name: digest for name, digest in modules[0][kind].items()
                                  if all(module[kind].get(name) == digest for module in modules)} for kind in KINDS}}
    return common


def code_beyond(record: dict[str, dict], common: dict[str, dict]) -> dict[str, dict]:
    """What ``record`` holds beyond ``common``."""
    extra = {}
    for path, module in record.items():
        if path not in common:
            extra[path] = module
            continue
        items = {kind: {n: d for n, d in module[kind].items() if n not in common[path][kind]} for kind in KINDS}
        if any(items.values()):
            extra[path] = {"statements": module["statements"], **items}
    return extra


def joined_code(common: dict[str, dict], extra: dict[str, dict]) -> dict[str, dict]:
    """``common`` with ``extra`` added (the inverse of :func:`code_beyond`)."""
    joined = {path: {**module, **{kind: dict(module[kind]) for kind in KINDS}} for path, module in common.items()}
    for path, module in extra.items():
        into = joined.setdefault(path, {"statements": module["statements"], **{kind: {} for kind in KINDS}})
        for kind in KINDS:
            into[kind].update(module[kind])
    return joined


class SourceTree:
    """The project's sources at one place (normally HEAD's working tree), indexed lazily, for
    checking recorded code against them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._indexes: dict[str, ModuleIndex | None] = {}
        self._all: list[str] | None = None

    def index(self, path: str) -> ModuleIndex | None:
        if path not in self._indexes:
            file = self.root / path
            self._indexes[path] = ModuleIndex(file.read_text()) if file.is_file() else None
        return self._indexes[path]

    def paths(self) -> list[str]:
        if self._all is None:
            self._all = sorted(str(file.relative_to(self.root)) for folder in PROJECT_FOLDERS
                               for file in (self.root / folder).rglob("*.py"))
        return self._all

    def find_function(self, qualname: str, digest: str) -> str | None:
        """A module that defines ``qualname`` with this hash (a function that moved), else None."""
        for path in self.paths():
            index = self.index(path)
            if index is not None and index.functions.get(qualname) == digest:
                return path
        return None

    def moved_module(self, path: str) -> str | None:
        """The one module with the same file name elsewhere (a module moved into a folder), else None."""
        name = Path(path).name
        candidates = [other for other in self.paths() if Path(other).name == name and other != path]
        return candidates[0] if len(candidates) == 1 else None


def code_changes(recorded: dict[str, dict], tree: SourceTree) -> list[str]:
    """Why recorded code no longer describes ``tree``: one short reason per changed unit; empty when
    every executed function, and every module's import-time units, are unchanged. New functions and
    classes, and new import bindings, do not count: no recorded run executed them.

    A module that moved into a folder is found by its file name (:meth:`SourceTree.moved_module`),
    also when a re-export of it stays at the old path: a unit then counts as unchanged when either
    file holds it unchanged."""
    reasons = []
    for path, module in recorded.items():
        index, where = tree.index(path), path
        moved = tree.moved_module(path)
        elsewhere = tree.index(moved) if moved is not None else None
        if index is None and elsewhere is not None:
            index, where, elsewhere = elsewhere, moved, None
        if index is None:
            missing = [name for name, digest in module["functions"].items() if tree.find_function(name, digest) is None]
            if missing:
                reasons.append(f"{path} removed ({', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''})")
            continue
        held = [index] + ([elsewhere] if elsewhere is not None else [])
        changed = [name for kind in ("bindings", "classes") for name, digest in module[kind].items()
                   if all(getattr(source, kind).get(name) != digest for source in held)]
        if changed:
            reasons.append(f"{where}: {', '.join(sorted(changed)[:4])}{' ...' if len(changed) > 4 else ''} changed")
        if all(source.statements != module["statements"] for source in held):
            reasons.append(f"{where}: module-level statements changed")
        for name, digest in module["functions"].items():
            if any(source.functions.get(name) == digest for source in held):
                continue
            if name not in index.functions and tree.find_function(name, digest) is not None:
                continue  # moved to another module, body unchanged
            state = "changed" if name in index.functions else "removed"
            reasons.append(f"{where}:{name} {state}")
    return reasons
