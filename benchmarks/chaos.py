"""Kill workers and the CLI itself with SIGKILL, over and over, while a batch of runs executes;
then check that every run is recorded exactly once with the numbers of an undisturbed execution.

A killer picks, every --interval seconds, a worker that is executing a run (its pid is in the run's
claim file) and SIGKILLs it; every --cli-every kills it SIGKILLs the whole ``offrl-bench run``
process instead and starts the same command again. The reference is the same runs executed
without interference in another directory.

    python benchmarks/chaos.py [--runs 16] [--updates 1500] [--interval 1.5] [--cli-every 4]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _busy_workers(out: Path) -> list[int]:
    """Pids of processes holding the claim of an unfinished run that they have checkpointed at least
    once (so that every kill loses some work but the batch still makes progress)."""
    finished = set()
    if (out / "runs.jsonl").exists():
        finished = {json.loads(line)["run_id"] for line in (out / "runs.jsonl").read_text().splitlines() if line}
    pids = []
    for run_dir in (out / "runs").glob("*"):
        claim = run_dir / "claim"
        checkpoint = run_dir / "checkpoint.pt"
        if run_dir.name in finished or not checkpoint.exists() or not claim.exists():
            continue
        if checkpoint.stat().st_mtime <= claim.stat().st_mtime:  # not checkpointed since it was claimed
            continue
        fields = claim.read_text().split()
        if len(fields) == 2:
            pids.append(int(fields[1]))
    return pids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=16)
    parser.add_argument("--updates", type=int, default=1500)
    parser.add_argument("--interval", type=float, default=1.5)
    parser.add_argument("--cli-every", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="offrl-chaos-"))
    env = {**os.environ, "MINARI_DATASETS_PATH": str(root / "minari")}
    dataset = "chaos/cartpole/expert-v0"
    subprocess.run([sys.executable, "-m", "offrl_bench.cli", "data", "make", "CartPole-v1", "--quality", "expert",
                    "--episodes", "10", "--name", dataset], env=env, check=True, capture_output=True)

    def command(out: Path, workers: int) -> list[str]:
        return [sys.executable, "-m", "offrl_bench.cli", "run", "--algo", "bc", "--dataset", dataset, "--seeds",
                ",".join(map(str, range(args.runs))), "--updates", str(args.updates), "--eval-every",
                str(args.updates // 3), "--checkpoint-every", "100", "--eval-episodes", "3", "--workers",
                str(workers), "--max-retries", "100", "--out", str(out), "--quiet"]

    rng = random.Random(args.seed)
    out = root / "chaos"
    worker_kills = cli_kills = 0
    started = time.perf_counter()
    start = lambda: subprocess.Popen(command(out, 2), env=env, stdout=subprocess.DEVNULL,  # noqa: E731
                                     stderr=subprocess.PIPE, text=True)
    cli = start()
    while True:
        time.sleep(args.interval)
        if cli.poll() is not None:
            if cli.returncode != -signal.SIGKILL:
                break
            cli = start()  # the last run executes in the CLI process itself, and it was the victim
            continue
        victims = _busy_workers(out)
        if not victims:
            continue
        if (worker_kills + cli_kills + 1) % args.cli_every == 0:
            cli.send_signal(signal.SIGKILL)
            cli.wait()
            cli_kills += 1
            cli = start()
            continue
        victim = rng.choice(victims)
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            continue
        if victim == cli.pid:
            cli_kills += 1
        else:
            worker_kills += 1
    stderr = cli.stderr.read()
    chaos_seconds = time.perf_counter() - started
    assert cli.returncode == 0, stderr

    reference = root / "reference"
    started = time.perf_counter()
    subprocess.run(command(reference, 2), env=env, check=True, capture_output=True)
    reference_seconds = time.perf_counter() - started

    lines = (out / "runs.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    expected = {json.loads(line)["run_id"]: json.loads(line) for line in (reference / "runs.jsonl").open()}
    duplicates = len(records) - len({r["run_id"] for r in records})
    same = sum(r["eval_returns"] == expected[r["run_id"]]["eval_returns"]
               and r["final_losses"] == expected[r["run_id"]]["final_losses"] for r in records)
    print(f"{args.runs} runs, {worker_kills} workers and {cli_kills} whole CLIs killed with SIGKILL "
          f"({chaos_seconds:.0f} s; undisturbed: {reference_seconds:.0f} s)")
    print(f"recorded: {len({r['run_id'] for r in records})}/{args.runs}, duplicates: {duplicates}, "
          f"identical to the undisturbed runs: {same}/{len(expected)}")
    if duplicates or same != args.runs or len(records) != args.runs:
        sys.exit(1)


if __name__ == "__main__":
    main()
