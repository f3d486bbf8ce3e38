"""A short, traced replay of published rows: which code their runs execute, and what it computes.

Behavioural provenance (:mod:`offrl_bench.trust.provenance`) needs, for each trained agent of a reference,
the project functions its run executes. Tracing the timed run would skew ``train_seconds``, so a
separate replay runs the same :class:`~offrl_bench.execution.runner.RunSpec` with a budget just long enough to
pass every periodic event of the algorithm (``Algorithm.replay_budget``) and one evaluation with
the run's own number of episodes, under each evaluation wrapper. Datasets are built by the real
``make_dataset`` under the same trace, so their collection code is recorded too.

The replay runs in a separate process, often in an old revision's worktree and venv: there
``offrl_bench`` is the old package, so this file is run as a script and uses only what every
revision has (``RunSpec``, ``execute_run``, ``RunStore``, ``DatasetRequest``, ``make_dataset``; found at
their old, top-level places in revisions before the layer folders) and
:mod:`offrl_bench.trust.code_identity`, loaded by path from beside this file.

    python replay.py JOB.json RESULT.json

JOB: ``{"root": repository root the code runs from, "suite": the suite that makes the datasets,
"datasets": [dataset ids], "replays": [{"key": ..., "specs": [RunSpec fields, one per wrapper],
"budget": N}, ...]}``.
RESULT: one entry per dataset and per replay with its code record and outcome; written after each
item, so an interrupted replay keeps what it finished (and is re-run for the rest).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path


def _code_identity():
    if __package__:
        from offrl_bench.trust import code_identity
        return code_identity
    spec = importlib.util.spec_from_file_location("_offrl_code_identity", Path(__file__).with_name("code_identity.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _project(path: str, before_layers: str):
    """The module ``offrl_bench.<path>``; in a revision from before the core moved into layer folders
    (1b42b1e and older), the same module at its old place, ``offrl_bench.<before_layers>``."""
    import importlib

    try:
        return importlib.import_module(f"offrl_bench.{path}")
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("offrl_bench."):
            raise
        return importlib.import_module(f"offrl_bench.{before_layers}")


def tensor_digest(value) -> str:
    """A hash of every tensor and number in a nested state (an algorithm's ``state_dict``): equal
    exactly when the states are bit-identical."""
    import numpy as np
    import torch

    digest = hashlib.sha256()

    def visit(item, path: str) -> None:
        if isinstance(item, dict):
            for key in sorted(item, key=str):
                visit(item[key], f"{path}/{key}")
        elif isinstance(item, (list, tuple)):
            for i, element in enumerate(item):
                visit(element, f"{path}/{i}")
        elif isinstance(item, torch.Tensor):
            digest.update(f"{path}:{item.dtype}:{tuple(item.shape)}".encode())
            digest.update(item.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
        elif isinstance(item, bytes) and item.startswith(b"PK\x03\x04"):  # a saved SB3 model (zip)
            with zipfile.ZipFile(io.BytesIO(item)) as archive:  # its tensors; not its timestamps
                for name in sorted(n for n in archive.namelist() if n.endswith(".pth")):
                    visit(torch.load(io.BytesIO(archive.read(name)), map_location="cpu", weights_only=False),
                          f"{path}/{name}")
        elif isinstance(item, np.ndarray):
            digest.update(f"{path}:{item.dtype}:{item.shape}".encode() + np.ascontiguousarray(item).tobytes())
        else:
            digest.update(f"{path}={item!r}".encode())

    visit(value, "")
    return digest.hexdigest()[:32]


def dataset_content_digest(dataset_id: str) -> str:
    """A hash of a local Minari dataset's episodes (observations, actions, rewards, terminations,
    truncations, in order); metadata such as creation times does not count."""
    import minari
    import numpy as np

    digest = hashlib.sha256()
    dataset = minari.load_dataset(dataset_id)

    def add(value) -> None:
        if isinstance(value, dict):
            for key in sorted(value):
                add(value[key])
        else:
            array = np.ascontiguousarray(value)
            digest.update(f"{array.dtype}:{array.shape}".encode() + array.tobytes())

    for episode in dataset.iterate_episodes():
        for field in (episode.observations, episode.actions, episode.rewards, episode.terminations,
                      episode.truncations):
            add(field)
    return digest.hexdigest()[:32]


def policy_files(root: Path, env_id: str) -> dict[str, str]:
    """The shipped behaviour-policy files of ``env_id`` (repository path -> sha256 prefix)."""
    folder = root / "offrl_bench" / "data" / "policies"
    name = env_id.split("/")[-1]
    found = {}
    for file in sorted(folder.rglob(f"{name}-*")):
        if file.suffix in (".zip", ".json") and file.stem.rsplit("-", 1)[0] == name:
            found[str(file.relative_to(root))] = hashlib.sha256(file.read_bytes()).hexdigest()[:32]
    return found


def _traced(identity, root: Path, action):
    """``action()``'s result and what it executed: ``{"units": {path: [units]}, "names": [names]}``."""
    _clear_project_caches()  # a function cached by an earlier item would not run (nor be recorded) again
    trace = identity.ExecutionTrace().start()
    try:
        result = action()
    finally:
        trace.stop()
    executed = {path: sorted(units) for path, units in sorted(trace.executed(root).items())}
    return result, {"units": executed, "names": sorted(trace.names(root))}


def _clear_project_caches() -> None:
    import functools
    import gc

    for item in gc.get_objects():
        if isinstance(item, functools._lru_cache_wrapper) and str(getattr(item, "__module__", "")).startswith(
                "offrl_bench"):
            item.cache_clear()


def replay_dataset(identity, root: Path, suite: str, dataset_id: str) -> dict:
    """Build ``dataset_id`` as ``suite`` makes it (replacing a copy an interrupted replay left)."""
    import dataclasses

    from offrl_bench.data.make import make_dataset

    registry = _project("core.registry", "registry")
    request = {r.dataset_id: r for r in registry.suite(suite).datasets}[dataset_id]
    _, executed = _traced(identity, root, lambda: make_dataset(request, overwrite=True, log=lambda message: None))
    fields = {key: value for key, value in dataclasses.asdict(request).items() if value is not None}
    return {"dataset": dataset_id, "request": fields, "executed": executed,
            "policies": policy_files(root, request.env_id), "content": dataset_content_digest(dataset_id)}


def replay_group(identity, root: Path, item: dict) -> dict:
    """Each spec of a training group (one per evaluation wrapper), replayed at ``item["budget"]``."""

    import torch

    runner = _project("execution.runner", "runner")
    RunSpec, execute_run = runner.RunSpec, runner.execute_run  # noqa: N806 (a class, named as it is)
    RunStore = _project("records.run_store", "results").RunStore  # noqa: N806

    budget = int(item["budget"])
    per_wrapper, outcomes, config = {}, {}, None
    for fields in item["specs"]:
        spec = RunSpec(**{**fields, "overrides": tuple(tuple(pair) for pair in fields.get("overrides", ())),
                          "updates": budget, "eval_every": budget, "checkpoint_every": budget})
        with tempfile.TemporaryDirectory(prefix="offrl-replay-") as out:
            store = RunStore(Path(out))
            record, executed = _traced(identity, root, lambda: execute_run(spec, store))
            checkpoint = store.run_dir(spec.run_id) / "checkpoint.pt"  # none where nothing trains
            state = torch.load(checkpoint, map_location="cpu", weights_only=False) if checkpoint.exists() else None
            outcomes[spec.wrapper] = {"parameters": tensor_digest(state["algorithm"]) if state else None,
                                      "losses": record["final_losses"], "returns": record["eval_returns"]}
        per_wrapper[spec.wrapper] = executed
        if config is None:
            config = resolved_config(spec)
    return {"key": item["key"], "budget": budget, "config": config, "executed": per_wrapper, "outcomes": outcomes,
            "threads": torch.get_num_threads()}


def resolved_config(spec) -> dict:
    """The run's whole config, defaults included, and its base algorithm's (SS-ORL's ``base``)."""
    import dataclasses

    registry = _project("core.registry", "registry")
    build_config = _project("core.config", "config").build_config
    config = build_config(registry.algorithm_class(spec.algo), spec.overrides)
    resolved = dataclasses.asdict(config)
    if callable(getattr(config, "base_config", None)):
        resolved["__base__"] = dataclasses.asdict(config.base_config())
    return json.loads(json.dumps(resolved, default=repr))  # nan and tuples as JSON has them


def main(job_path: str, result_path: str) -> None:
    identity = _code_identity()
    job = json.loads(Path(job_path).read_text())
    root = Path(job["root"]).resolve()
    result_file = Path(result_path)
    done = json.loads(result_file.read_text()) if result_file.exists() else {"datasets": {}, "replays": {}}
    import torch

    torch.set_num_threads(int(os.environ.get("OFFRL_BENCH_REPLAY_THREADS", "1")))

    def save() -> None:
        tmp = result_file.with_name(f".{result_file.name}.tmp")
        tmp.write_text(json.dumps(done, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, result_file)

    items = [("datasets", dataset_id, dataset_id) for dataset_id in job.get("datasets", [])]
    items += [("replays", item["key"], item) for item in job.get("replays", [])]
    for kind, key, item in items:
        if key in done[kind]:
            continue
        started = time.perf_counter()
        entry = (replay_dataset(identity, root, job["suite"], item) if kind == "datasets"
                 else replay_group(identity, root, item))
        entry["seconds"] = round(time.perf_counter() - started, 1)
        done[kind][key] = entry
        save()
        print(json.dumps({"done": kind, "key": key, "seconds": entry["seconds"]}), flush=True)


if __name__ == "__main__":
    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        sys.path.pop(0)  # this folder's statistics.py, config.py... must not shadow the standard library
    main(*sys.argv[1:3])
