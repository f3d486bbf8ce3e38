"""Past revisions of this repository, installed to run: a git worktree and a small venv each.

Entry points resolve to the *installed* package, so replaying a revision's runs needs that
revision installed, not only checked out. A full install takes minutes; instead each revision gets
a venv without packages of its own whose ``.pth`` file adds this environment's site-packages (torch,
gymnasium, minari...: the dependencies are this machine's, as for every run here), and an editable
install of the worktree with ``--no-deps``, which takes about a second.

Worktrees, venvs and the datasets their replays build live under the cache directory
(``$OFFRL_BENCH_CACHE``, default ``~/.cache/offrl-bench``), one folder per revision.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from offrl_bench.core.errors import OffrlBenchError, UsageError
from offrl_bench.core.machine import cpu_model


def cache_root() -> Path:
    return Path(os.environ.get("OFFRL_BENCH_CACHE") or Path.home() / ".cache" / "offrl-bench")


def _git(root: Path, *args: str, check: bool = True) -> str:
    result = subprocess.run(["git", *args], capture_output=True, text=True, cwd=root)
    if check and result.returncode != 0:
        raise OffrlBenchError(f"git {' '.join(args)} failed: {result.stderr.strip().splitlines()[-1:]}")
    return result.stdout.strip()


def full_revision(root: Path, revision: str) -> str:
    result = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"],
                            capture_output=True, text=True, cwd=root)
    if result.returncode != 0:
        raise UsageError(f"revision '{revision}' is not in this checkout's history")
    return result.stdout.strip()


def head_is_clean(root: Path) -> bool:
    """Whether the code is HEAD's: no uncommitted change to tracked files outside ``results/`` (the
    published records that record, attest and regenerate write are data, not code)."""
    from offrl_bench.execution.runner import CODE_PATHSPEC

    return not _git(root, "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHSPEC)


@dataclass(frozen=True)
class RevisionEnvironment:
    """Where a revision's code runs: ``root`` (its source tree) and ``python`` (an interpreter whose
    ``offrl_bench`` is that tree's); ``datasets``: the Minari root its replays build datasets in."""

    revision: str
    root: Path
    python: Path
    datasets: Path

    def env(self, threads: int = 1) -> dict[str, str]:
        """Process environment for a replay: this revision's datasets, ``threads`` torch threads."""
        return {**os.environ, "MINARI_DATASETS_PATH": str(self.datasets), "OMP_NUM_THREADS": str(threads),
                "MKL_NUM_THREADS": str(threads), "OFFRL_BENCH_REPLAY_THREADS": str(threads),
                "PYTHONHASHSEED": "0"}


def installed(repository: Path, revision: str) -> RevisionEnvironment:
    """``revision`` of ``repository``, checked out and installed (reused when already there)."""
    revision = full_revision(repository, revision)
    home = cache_root() / "revisions" / revision
    tree, venv = home / "tree", home / "venv"
    python = venv / "bin" / "python"
    ready = home / "installed"
    if not ready.exists():  # (a folder of replays made from the working tree at HEAD keeps them)
        for partial in (tree, venv):
            if partial.exists():
                shutil.rmtree(partial)
        _git(repository, "worktree", "prune")
        home.mkdir(parents=True, exist_ok=True)
        _git(repository, "worktree", "add", "--detach", "--force", str(tree), revision)
        install_tree(tree, venv)
        ready.write_text(revision + "\n")
    return RevisionEnvironment(revision, tree, python, home / "datasets")


def install_tree(tree: Path, venv: Path) -> Path:
    """An editable install of the source tree ``tree`` into a new venv at ``venv`` that borrows this
    environment's packages; returns its interpreter."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # every site-packages folder this interpreter sees (a venv that borrows another's lists both)
    borrowed = [entry for entry in sys.path if Path(entry).name == "site-packages" and Path(entry).is_dir()]
    Path(purelib, "_offrl_bench_dependencies.pth").write_text("".join(f"{entry}\n" for entry in borrowed))
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                              "--no-index", "-e", str(tree)], capture_output=True, text=True)
    if install.returncode != 0:
        last = (install.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise OffrlBenchError(f"could not install {tree}: {last}")
    return python


def working_tree(root: Path, datasets: Path) -> RevisionEnvironment:
    """This checkout as it is, run by this interpreter (the HEAD side of a replay)."""
    return RevisionEnvironment(_git(root, "rev-parse", "HEAD"), root, Path(sys.executable), datasets)


def machine() -> str:
    """This machine as far as bit-identical numbers go: CPU model, Python and torch versions."""
    import platform

    import torch

    return f"{cpu_model()}; python {platform.python_version()}; torch {torch.__version__}"


def run_job(environment: RevisionEnvironment, job: dict, result: Path, workers: int = 1,
            progress: Callable[[dict], None] | None = None) -> dict:
    """Run a replay job (see :mod:`offrl_bench.trust.replay`) in ``environment``, its datasets first and
    then its replays, each split over ``workers`` processes of one torch thread. Resumable: items in
    ``result`` are not run again. Returns ``{"datasets": {...}, "replays": {...}}``."""
    from offrl_bench.trust import replay

    result.parent.mkdir(parents=True, exist_ok=True)
    environment.datasets.mkdir(parents=True, exist_ok=True)
    merged = json.loads(result.read_text()) if result.exists() else {}
    if merged.get("machine") != machine():  # outcomes compare bit for bit on one machine only
        merged = {"machine": machine(), "datasets": {}, "replays": {}}
    base = {"root": str(environment.root), "suite": job["suite"]}
    for kind in ("datasets", "replays"):
        key_of = (lambda item: item) if kind == "datasets" else (lambda item: item["key"])
        todo = [item for item in job.get(kind, []) if key_of(item) not in merged[kind]]
        if not todo:
            continue
        parts = [todo[i::workers] for i in range(min(workers, len(todo)))]
        processes = []
        for index, part in enumerate(parts):
            job_file = result.with_name(f"{result.stem}.{kind}.{index}.job.json")
            part_result = result.with_name(f"{result.stem}.{kind}.{index}.json")
            job_file.write_text(json.dumps({**base, kind: part}))
            log = result.with_name(f"{result.stem}.{kind}.{index}.log")
            with open(log, "w") as stderr:  # a file: a full pipe would block the replay
                processes.append((subprocess.Popen([str(environment.python), replay.__file__, str(job_file),
                                                    str(part_result)], env=environment.env(), cwd=environment.root,
                                                   stdout=subprocess.PIPE, stderr=stderr, text=True),
                                  part_result, log))
        failures = []
        for process, part_result, log in processes:
            for line in process.stdout:
                if progress and line.startswith("{"):
                    progress(json.loads(line))
            if process.wait() != 0:
                failures.append((log.read_text().strip().splitlines() or [f"exit {process.returncode}"])[-1])
            if part_result.exists():
                merged[kind].update(json.loads(part_result.read_text())[kind])
                part_result.unlink()
        tmp = result.with_name(f".{result.name}.tmp")
        tmp.write_text(json.dumps(merged, sort_keys=True))
        os.replace(tmp, result)
        if failures:
            raise OffrlBenchError(f"replay at {environment.revision[:7]} failed: {failures[0]} (log: "
                                  f"{result.parent})")
    return merged
