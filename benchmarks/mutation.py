"""Mutation testing: plant one plausible bug at a time in the core modules and see whether the
tests that claim to cover each module notice.

A mutant changes one operator or constant, or deletes one call statement (the operators are listed
in ``_sites``). Each mutant runs the module's tests (``MODULES``) in a fresh process on a private
clone of the repository at HEAD, so the working tree is never touched and two workers never see
each other's mutants. A mutant is *killed* when those tests fail (or time out), and *survives*
when they pass: a bug the tests would let through.

Not mutated: strings (messages and names), docstrings, annotations, decorators, and default values
of settings and arguments (choices, not logic: the reference runs pin them). Mutants that cannot
change behaviour (equivalent mutants) are listed in ``EQUIVALENT`` with the reason, reported, and
left out of the kill rate.

    python benchmarks/mutation.py [--modules runner,results] [--sample 40] [--seed 0] [--workers 2]
    python benchmarks/mutation.py --list --modules morec        # the mutants, without running them
    python benchmarks/mutation.py --show morec:12               # one mutant's diff

Commit first: the clones are made from HEAD.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import math
import os
import queue
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: module name -> (file, the tests that claim to cover it). Slow (--slow) tests are not run.
MODULES: dict[str, tuple[str, list[str]]] = {
    "runner": ("offrl_bench/execution/runner.py", ["tests/test_runner.py", "tests/test_fault_tolerance.py",
                                                   "tests/test_online.py", "tests/test_loggers.py"]),
    "run_store": ("offrl_bench/records/run_store.py", [
        "tests/test_run_store.py",
        "tests/test_runner.py::test_records_are_appended_once",
        "tests/test_runner.py::test_torn_last_line_is_ignored_and_repaired",
        "tests/test_fault_tolerance.py::test_claim_is_exclusive_and_dies_with_its_holder",
        "tests/test_fault_tolerance.py::test_output_locations"]),
    "leaderboard": ("offrl_bench/records/leaderboard.py", [
        "tests/test_run_store.py", "tests/test_leaderboard.py",
        "tests/test_level_splits.py::test_leaderboard_split_and_generalization_gap", "tests/test_references.py"]),
    "statistics": ("offrl_bench/records/statistics.py", [
        "tests/test_leaderboard.py", "tests/test_plots.py::test_statistics_match_rliable_definitions",
        "tests/test_comparison.py", "tests/test_claims.py",
        "tests/test_references.py::test_committed_leaderboards_are_rebuilt_from_their_records",
        "tests/test_docs.py::test_claims_tables_are_what_the_claims_command_prints", "tests/test_statistics.py"]),
    "claims": ("offrl_bench/trust/claims.py", ["tests/test_claims.py"]),
    "claim_statistics": ("offrl_bench/trust/claim_statistics.py", ["tests/test_claims.py"]),
    "claim_sources": ("offrl_bench/trust/claim_sources.py", ["tests/test_claims.py"]),
    "refrigerator": ("envs/refrigerator.py", ["tests/test_refrigerator.py"]),
    "stori": ("envs/stori.py", ["tests/test_stori.py"]),
    "level_splits": ("envs/level_splits.py", ["tests/test_level_splits.py"]),
    "inverse_dynamics": ("algorithms/inverse_dynamics.py", ["tests/test_ssorl.py"]),
    "frames": ("offrl_bench/data/frames.py", ["tests/test_images.py"]),
    "morec": ("algorithms/morec.py", ["tests/test_model_based.py"]),
    "code_identity": ("offrl_bench/trust/code_identity.py", ["tests/test_code_identity.py"]),
    "provenance": ("offrl_bench/trust/provenance.py", ["tests/test_references.py", "tests/test_code_identity.py"]),
}

#: (file, line before, line after the mutation, both as ``--show`` prints them) -> why the mutant
#: cannot change behaviour. Checked by hand; each is listed in the report and left out of the rate.
EQUIVALENT: dict[tuple[str, str, str], str] = {
    ("offrl_bench/execution/runner.py", "environments.add((env_id, spec.wrapper))", "pass"):
        "a cache: without it preflight builds the same environment again and finds the same errors",
    ("offrl_bench/records/statistics.py", "yield np.random.RandomState(0)", "yield np.random.RandomState(1)"):
        "arch ignores the RandomState rliable hands it and draws from the global RNG seeded next to it "
        "(measured: the same intervals with RandomState(1))",
    ("algorithms/inverse_dynamics.py", "nll = nll + torch.log1p(-unit ** 2)", "nll = nll - torch.log1p(-unit ** 2)"):
        "the tanh change-of-variables term depends on the targets only: a constant in the loss, no gradient",
    ("algorithms/inverse_dynamics.py",
     "nll = 0.5 * ((pre_tanh - mean) / log_std.exp()) ** 2 + log_std + 0.5 * np.log(2 * np.pi)",
     "nll = 0.5 * ((pre_tanh - mean) / log_std.exp()) ** 2 + log_std + 1.5 * np.log(2 * np.pi)"):
        "the Gaussian normalising constant: a constant in the loss, no gradient",
    ("offrl_bench/trust/claim_statistics.py", "if distance < 1e-09 or not math.isfinite(half_width):",
     "if distance <= 1e-09 or not math.isfinite(half_width):"):
        "a tolerance for an estimate on the boundary: the two differ only at a distance of exactly 1e-9",
    ("envs/refrigerator.py", "observed = temperature + rng.normal(0.0, OBSERVATION_NOISE)",
     "observed = temperature - rng.normal(0.0, OBSERVATION_NOISE)"):
        "minus a zero-mean Gaussian draw is the same distribution (only the seed's sample path changes)",
    ("envs/refrigerator.py", "next_observed = after + rng.normal(0.0, OBSERVATION_NOISE)",
     "next_observed = after - rng.normal(0.0, OBSERVATION_NOISE)"):
        "minus a zero-mean Gaussian draw is the same distribution (only the seed's sample path changes)",
    ("envs/refrigerator.py",
     "action = self.gain * (observed - (self.target + SETPOINT_OFFSET)) + rng.normal(0.0, ACTION_NOISE)",
     "action = self.gain * (observed - (self.target + SETPOINT_OFFSET)) - rng.normal(0.0, ACTION_NOISE)"):
        "minus a zero-mean Gaussian draw is the same distribution (only the seed's sample path changes)",
    ("envs/refrigerator.py", "if rng.random() < DOOR_PROBABILITY:", "if rng.random() <= DOOR_PROBABILITY:"):
        "a uniform draw equals 0.5 with probability 0",
    ("algorithms/morec.py", "d_optimizer.zero_grad(set_to_none=True)", "d_optimizer.zero_grad(set_to_none=False)"):
        "zeroed gradients instead of none: every parameter gets a gradient each step, so the same update",
    ("algorithms/morec.py", "g_optimizer.zero_grad(set_to_none=True)", "g_optimizer.zero_grad(set_to_none=False)"):
        "zeroed gradients instead of none: every parameter gets a gradient each step, so the same update",
}

_COMPARISONS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
                ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}
_ARITHMETIC = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
               ast.Mod: ast.Mult, ast.Pow: ast.Mult}
_SYMBOLS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.In: "in",
            ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not", ast.Add: "+", ast.Sub: "-", ast.Mult: "*",
            ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**", ast.And: "and", ast.Or: "or"}


@dataclass(frozen=True)
class Mutant:
    module: str
    index: int  # position in the module's list of mutation sites
    line: int
    description: str

    @property
    def name(self) -> str:
        return f"{self.module}:{self.index}"


def _skipped_nodes(tree: ast.Module) -> set[int]:
    """ids of nodes never mutated: annotations, decorators, docstrings, f-strings, and the defaults
    of dataclass fields and function arguments."""
    skipped: set[int] = set()

    def skip(node: ast.AST | None) -> None:
        if node is not None:
            skipped.update(id(child) for child in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign):
            skip(node.annotation)
            if isinstance(getattr(node, "_parent", None), ast.ClassDef):
                skip(node.value)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for argument in node.args.args + node.args.kwonlyargs + node.args.posonlyargs:
                skip(argument.annotation)
            for default in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
                skip(default)
            if not isinstance(node, ast.Lambda):
                skip(node.returns)
                for decorator in node.decorator_list:
                    skip(decorator)
        elif isinstance(node, ast.ClassDef):
            for decorator in node.decorator_list:  # e.g. @dataclass(frozen=True)
                skip(decorator)
        elif isinstance(node, ast.JoinedStr):
            skip(node)
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            skip(node)  # docstrings and bare strings
    return skipped


def _parse(source: str) -> ast.Module:
    tree = ast.parse(source)
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            child._parent = node  # type: ignore[attr-defined]
    return tree


def _sites(tree: ast.Module) -> list[tuple[int, str, callable]]:
    """Every mutation of ``tree`` as (line, description, apply), in a fixed order; ``apply`` changes
    the tree in place."""
    skipped = _skipped_nodes(tree)
    sites = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", None)
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Compare):
            for position, operator in enumerate(node.ops):
                new = _COMPARISONS.get(type(operator))
                if new:
                    def apply(node=node, position=position, new=new):
                        node.ops[position] = new()
                    sites.append((line, f"{_SYMBOLS[type(operator)]} -> {_SYMBOLS[new]}", apply))
        elif isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in _ARITHMETIC:
            new = _ARITHMETIC[type(node.op)]

            def apply(node=node, new=new):
                node.op = new()
            sites.append((line, f"{_SYMBOLS[type(node.op)]} -> {_SYMBOLS[new]}", apply))
        elif isinstance(node, ast.BoolOp):
            new = ast.Or if isinstance(node.op, ast.And) else ast.And

            def apply(node=node, new=new):
                node.op = new()
            sites.append((line, f"{_SYMBOLS[type(node.op)]} -> {_SYMBOLS[new]}", apply))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
            parent = node._parent  # type: ignore[attr-defined]

            def apply(node=node, parent=parent):
                _replace_child(parent, node, node.operand)
            sites.append((line, f"{'not ' if isinstance(node.op, ast.Not) else '-'}x -> x", apply))
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float, bool):
            value = node.value
            new_value = (not value if isinstance(value, bool) else 1 if value == 0 else 0 if value == 1
                         else value + 1)

            def apply(node=node, new_value=new_value):
                node.value = new_value
            sites.append((line, f"{value!r} -> {new_value!r}", apply))
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            def apply(node=node):
                _replace_child(node._parent, node, ast.Pass())  # type: ignore[attr-defined]
            sites.append((line, f"delete call {ast.unparse(node.value)[:50]}", apply))
    return sites


def _replace_child(parent: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for field, value in ast.iter_fields(parent):
        if value is old:
            setattr(parent, field, new)
            return
        if isinstance(value, list) and any(item is old for item in value):
            value[[i for i, item in enumerate(value) if item is old][0]] = new
            return
    raise AssertionError("child not found")


@cache
def mutants(module: str) -> list[Mutant]:
    source = (REPO / MODULES[module][0]).read_text()
    return [Mutant(module, i, line, description)
            for i, (line, description, _) in enumerate(_sites(_parse(source)))]


def mutated_source(mutant: Mutant, source: str) -> str:
    tree = _parse(source)
    _, _, apply = _sites(tree)[mutant.index]
    apply()
    return ast.unparse(ast.fix_missing_locations(tree))


def _clone(directory: Path) -> None:
    """A clone of HEAD laid out as the installed package: offrl_bench.algorithms and offrl_bench.envs
    live in top-level folders that pyproject.toml maps into the package."""
    subprocess.run(["git", "clone", "-q", "--shared", str(REPO), str(directory)], check=True)
    for name, target in (("algorithms", "../algorithms"), ("envs", "../envs"), ("reference", "../results/reference")):
        (directory / "offrl_bench" / name).symlink_to(target)
    with open(directory / ".git" / "info" / "exclude", "a") as f:
        f.write("offrl_bench/algorithms\noffrl_bench/envs\noffrl_bench/reference\n")


def _run_tests(directory: Path, tests: list[str], timeout: float) -> tuple[str, float, str]:
    env = {**os.environ, "PYTHONPATH": str(directory), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    started = time.perf_counter()
    try:
        result = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                                cwd=directory, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - started, ""
    seconds = time.perf_counter() - started
    if result.returncode == 0:
        return "survived", seconds, result.stdout
    if result.returncode in (1, 2):  # failures, or errors while collecting the mutated module
        failed = [line for line in result.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
        return f"killed{' by ' + failed[0].split()[1] if failed else ''}", seconds, result.stdout
    return f"error (pytest exit {result.returncode})", seconds, result.stdout


def _wilson(killed: int, n: int) -> tuple[float, float]:
    """95% Wilson interval of a kill rate estimated from a sample of ``n`` mutants."""
    if n == 0:
        return math.nan, math.nan
    z, p = 1.96, killed / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", default=",".join(MODULES), help=f"comma-separated; of: {', '.join(MODULES)}")
    parser.add_argument("--sample", type=int, default=0, help="mutants per module, drawn at random (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", metavar="MODULE:INDEX,...", help="run just these mutants (e.g. survivors again)")
    parser.add_argument("--list", action="store_true", help="print the mutants and stop")
    parser.add_argument("--show", metavar="MODULE:INDEX", help="print one mutant's diff and stop")
    args = parser.parse_args()
    modules = args.modules.split(",")
    unknown = sorted(set(modules) - set(MODULES))
    if unknown:
        parser.error(f"unknown module {unknown[0]!r}; one of: {', '.join(MODULES)}")
    def named(name: str) -> Mutant:
        """The mutant ``MODULE:INDEX``, or a usage error that says what is accepted."""
        module, _, index = name.partition(":")
        if module not in MODULES or not index.isdigit() or int(index) >= len(mutants(module)):
            parser.error(f"unknown mutant {name!r}; expected MODULE:INDEX with MODULE one of {', '.join(MODULES)} "
                         "and INDEX from --list")
        return mutants(module)[int(index)]

    if args.show:
        mutant = named(args.show)
        module = mutant.module
        source = (REPO / MODULES[module][0]).read_text()
        new = mutated_source(mutant, source).splitlines()
        old = ast.unparse(_parse(source)).splitlines()
        print("\n".join(difflib.unified_diff(old, new, MODULES[module][0], f"{mutant.name}", lineterm="", n=1)))
        return

    chosen: dict[str, list[Mutant]] = {}
    totals = {}
    for module in modules:
        every = mutants(module)
        totals[module] = len(every)
        picked = every if not args.sample or args.sample >= len(every) else sorted(
            random.Random(f"{args.seed}:{module}").sample(every, args.sample), key=lambda m: m.index)
        chosen[module] = picked
    if args.only:
        picked = sorted({named(name) for name in args.only.split(",")}, key=lambda m: (m.module, m.index))
        chosen = {module: [m for m in picked if m.module == module] for module in MODULES}
        chosen = {module: mutants_of for module, mutants_of in chosen.items() if mutants_of}
        totals = {module: len(mutants(module)) for module in chosen}
    if args.list:
        for module, picked in chosen.items():
            for mutant in picked:
                print(f"{mutant.name:22} {MODULES[module][0]}:{mutant.line:<4} {mutant.description}")
        return

    revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout
    print(f"mutation testing at {revision}{' (the working tree has uncommitted changes: not tested)' if dirty else ''}"
          f"; {args.workers} workers, one torch thread each")
    outcomes = _run_all(chosen, args.workers)
    _report(chosen, totals, outcomes)


def changed_line(mutant: Mutant) -> tuple[str, str]:
    """The line a mutant changes, before and after, as ``ast.unparse`` writes them."""
    source = (REPO / MODULES[mutant.module][0]).read_text()
    before = ast.unparse(_parse(source)).splitlines()
    after = mutated_source(mutant, source).splitlines()
    index = next(i for i, (old, new) in enumerate(zip(before, after)) if old != new)
    return before[index].strip(), after[index].strip()


def _equivalence(mutant: Mutant) -> str | None:
    return EQUIVALENT.get((MODULES[mutant.module][0], *changed_line(mutant)))


def _run_all(chosen: dict[str, list[Mutant]], workers: int) -> dict[Mutant, str]:
    """Each module's unmutated tests first (they must pass; their time sets the module's timeout),
    then every mutant, on ``workers`` private clones."""
    outcomes: dict[Mutant, str] = {}
    baseline: dict[str, float] = {}
    jobs: queue.Queue = queue.Queue()
    for module in chosen:
        jobs.put(module)
    lock = threading.Lock()
    count = sum(len(m) for m in chosen.values())
    baselines_running = [len(chosen)]  # a worker may not stop while a baseline can still add mutants

    def worker(clone: Path) -> None:
        while True:
            try:
                job = jobs.get(timeout=1)
            except queue.Empty:
                with lock:
                    if baselines_running[0] == 0:
                        return
                continue
            if isinstance(job, str):  # a module's baseline
                outcome, seconds, output = _run_tests(clone, MODULES[job][1], timeout=1800)
                with lock:
                    if outcome == "survived":
                        baseline[job] = seconds
                        for mutant in chosen[job]:
                            jobs.put(mutant)
                        print(f"baseline {job}: tests pass in {seconds:.0f} s", flush=True)
                    else:
                        print(f"{job}: the tests fail without any mutant ({outcome}); its mutants are not run:\n"
                              + "\n".join(output.splitlines()[-25:]))
                    baselines_running[0] -= 1
                continue
            reason = _equivalence(job)
            if reason:
                outcome, seconds = f"equivalent: {reason}", 0.0
            else:
                path = clone / MODULES[job.module][0]
                original = path.read_text()
                path.write_text(mutated_source(job, original))
                try:
                    outcome, seconds, _ = _run_tests(clone, MODULES[job.module][1],
                                                     timeout=3 * baseline[job.module] + 30)
                finally:
                    path.write_text(original)
            with lock:
                outcomes[job] = outcome
                print(f"[{len(outcomes)}/{count}] {job.name:22} line {job.line:<4} {job.description[:60]:60} "
                      f"{outcome} ({seconds:.0f} s)", flush=True)

    workspace = Path(tempfile.mkdtemp(prefix="offrl-mutation-"))
    try:
        clones = [workspace / f"clone{i}" for i in range(workers)]
        for clone in clones:
            _clone(clone)
        threads = [threading.Thread(target=worker, args=(clone,)) for clone in clones]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    return outcomes


def _report(chosen: dict[str, list[Mutant]], totals: dict[str, int], outcomes: dict[Mutant, str]) -> None:
    print("\n| module | file | mutants run (of all) | killed | survived | equivalent | kill rate [95% CI] |")
    print("|---|---|---|---|---|---|---|")
    for module, picked in chosen.items():
        results = [outcomes[m] for m in picked if m in outcomes]
        if not results:
            print(f"| {module} | `{MODULES[module][0]}` | not run: its tests fail unmutated | | | | |")
            continue
        killed = sum(r.startswith("killed") or r == "timeout" for r in results)
        survived = sum(r == "survived" for r in results)
        equivalent = sum(r.startswith("equivalent") for r in results)
        errors = len(results) - killed - survived - equivalent
        low, high = _wilson(killed, killed + survived)
        print(f"| {module} | `{MODULES[module][0]}` | {len(picked)} ({totals[module]}) | {killed} | {survived} | "
              f"{equivalent} | {killed / max(1, killed + survived):.0%} [{low:.0%}, {high:.0%}]"
              f"{f' ({errors} errors)' if errors else ''} |")
    print("\nequivalent (not counted):")
    for module, picked in chosen.items():
        for mutant in picked:
            if outcomes.get(mutant, "").startswith("equivalent"):
                print(f"  {mutant.name:22} {MODULES[module][0]}:{mutant.line}  {mutant.description}  | "
                      f"{outcomes[mutant].removeprefix('equivalent: ')}")
    print("\nsurvivors:")
    for module, picked in chosen.items():
        source = (REPO / MODULES[module][0]).read_text().splitlines()
        for mutant in picked:
            if outcomes.get(mutant) == "survived":
                print(f"  {mutant.name:22} {MODULES[module][0]}:{mutant.line}  {mutant.description}  | "
                      f"{source[mutant.line - 1].strip()[:80]}")

if __name__ == "__main__":
    main()
