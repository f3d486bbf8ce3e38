"""The run store: one output directory's records, on disk, safe under concurrent writers and kills.

``runs.jsonl`` in an output directory holds one JSON line per finished run and is the source of
truth; ``leaderboard.csv`` is derived from it and can always be rebuilt (``offrl-bench leaderboard``).
``failures.jsonl`` holds one line per failed attempt (reason and traceback); a run that later
finishes is no longer counted as failed. ``commands.jsonl`` holds every ``offrl-bench run`` command
that wrote into the directory, with its start time (the report shows them).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path


class RunStore:
    """The on-disk layout of one output directory."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.records_path = self.out_dir / "runs.jsonl"
        self.failures_path = self.out_dir / "failures.jsonl"
        self.lock_path = self.out_dir / "runs.jsonl.lock"
        self.commands_path = self.out_dir / "commands.jsonl"

    def run_dir(self, run_id: str) -> Path:
        return self.out_dir / "runs" / run_id

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive lock shared by every process appending to this directory."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def claim(self, run_id: str, wait: bool) -> Iterator[bool]:
        """The exclusive right to execute ``run_id``, across every process using this directory.

        Yields False (without waiting) when another live process holds it and ``wait`` is False. The
        lock is an ``flock`` on ``runs/<run_id>/claim``: the kernel drops it when its holder dies, even
        by SIGKILL, so a claim never goes stale. The file names the holder (host and pid).
        """
        run_dir = self.run_dir(run_id)
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(run_dir / "claim", "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                f.truncate(0)
                f.write(f"{socket.gethostname()} {os.getpid()}\n")
                f.flush()
                yield True
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def records(self) -> dict[str, dict]:
        """Finished runs by id. A torn last line (process killed mid-write) is ignored; the first
        record of a run id wins, so a record is never counted twice."""
        found: dict[str, dict] = {}
        for record in read_jsonl(self.records_path):
            found.setdefault(record["run_id"], record)
        return found

    def failures(self) -> dict[str, dict]:
        """The latest failed attempt of every run that has not finished since."""
        latest = {failure["run_id"]: failure for failure in read_jsonl(self.failures_path)}
        finished = self.records()
        return {run_id: failure for run_id, failure in latest.items() if run_id not in finished}

    def append(self, record: dict) -> bool:
        """Append ``record`` unless its run id is already recorded; True if it was written."""
        with self.locked():
            if record["run_id"] in self.records():
                return False
            append_jsonl(self.records_path, record)
            return True

    def append_failure(self, failure: dict) -> None:
        with self.locked():
            append_jsonl(self.failures_path, failure)

    def append_command(self, command: str, started_at: str) -> None:
        with self.locked():
            append_jsonl(self.commands_path, {"command": command, "started_at": started_at})

    def commands(self) -> list[dict]:
        return list(read_jsonl(self.commands_path))


def read_jsonl(path: Path) -> Iterator[dict]:
    """The entries of a JSONL file; a line torn by a kill is skipped."""
    if not path.exists():
        return
    for line in path.read_text().splitlines():
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            continue


def append_jsonl(path: Path, entry: dict) -> None:
    """Append one entry durably (fsync), on its own line even after a torn last line."""
    line = json.dumps(entry, sort_keys=True) + "\n"
    with open(path, "a+b") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() > 0:  # repair a torn last line so this entry starts on its own line
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
        f.write(line.encode())
        f.flush()
        os.fsync(f.fileno())


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(f.fileno(), 0o666 & ~umask)  # as open() would make it; temporary files start private
    os.replace(f.name, path)
