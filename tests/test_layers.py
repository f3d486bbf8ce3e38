"""The core's folders are layers: each imports only the layers below it, no module imports itself
back through others, and no module outgrows a read (DESIGN.md §1)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "offrl_bench"
#: Bottom to top. A folder may import the folders before it (and the plugin packages ``envs`` and
#: ``algorithms``, which sit beside the core); the package's top-level modules are the public facade
#: (``api``) and deprecated re-exports, which may import anything.
LAYERS = ("core", "data", "records", "execution", "suites", "trust", "analysis", "cli")
#: What a layer may import beyond the layers below it.
PLUGINS = {"core": set(), "data": {"envs"}, "records": {"envs"}}
MAX_LINES = 450


def _modules() -> dict[str, Path]:
    found = {}
    for file in sorted(PACKAGE.rglob("*.py")):
        parts = file.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = file
    return found


def _imports(file: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """Every offrl_bench module that ``file`` imports, at module level or inside a function; imports
    under ``if TYPE_CHECKING:`` are for annotations only and are left out."""
    tree = ast.parse(file.read_text())
    type_only = {id(node) for guard in ast.walk(tree) if isinstance(guard, ast.If)
                 and ast.unparse(guard.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
                 for statement in guard.body for node in ast.walk(statement)}
    package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "offrl_bench"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            if base.split(".")[0] != "offrl_bench":
                continue
            submodules = {f"{base}.{alias.name}" for alias in node.names} & set(modules)
            found |= submodules  # `from offrl_bench.x import module`
            if len(submodules) < len(node.names):
                found.add(base)  # a name defined in base itself
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {target for target in _imports(file, name, modules) if target in modules and target != name}
            for name, file in modules.items()}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else None


def test_each_layer_imports_only_the_layers_below_it():
    modules = _modules()
    wrong = []
    for name, file in modules.items():
        layer = _layer(name)
        if layer is None:
            continue  # the facade and the deprecated re-exports at the package's top level
        allowed = set(LAYERS[:LAYERS.index(layer) + 1]) | PLUGINS.get(layer, {"envs", "algorithms"})
        for target in _imports(file, name, modules):
            parts = target.split(".")
            if len(parts) < 2:
                continue
            top = parts[1]
            if top not in allowed and (top in LAYERS or top in ("envs", "algorithms") or target in modules):
                wrong.append(f"{name} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(cycles)


def test_every_folder_says_what_it_holds_and_may_import():
    for layer in LAYERS:
        docstring = ast.get_docstring(ast.parse((PACKAGE / layer / "__init__.py").read_text())) or ""
        assert "May import" in docstring, layer


@pytest.mark.parametrize("file", sorted(PACKAGE.rglob("*.py")), ids=lambda f: str(f.relative_to(PACKAGE)))
def test_no_module_is_too_long_to_read(file):
    lines = len(file.read_text().splitlines())
    assert lines <= MAX_LINES, f"{file.name} has {lines} lines; split it (at most {MAX_LINES})"


def test_the_checker_sees_a_cycle_and_an_upward_import(tmp_path, monkeypatch):
    """The checks above must be able to fail: a planted upward import is both."""
    fake = tmp_path / "offrl_bench"
    for layer in ("core", "trust"):
        (fake / layer).mkdir(parents=True)
        (fake / layer / "__init__.py").write_text('"""May import: below."""\n')
    (fake / "core" / "registry.py").write_text("def f():\n    from offrl_bench.trust.claims import Claim\n")
    (fake / "trust" / "claims.py").write_text("from offrl_bench.core import registry\nclass Claim: ...\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    with pytest.raises(AssertionError, match="core.registry imports offrl_bench.trust.claims"):
        test_each_layer_imports_only_the_layers_below_it()
    with pytest.raises(AssertionError, match="offrl_bench.core.registry -> offrl_bench.trust.claims"):
        test_no_import_cycles()
