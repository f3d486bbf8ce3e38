"""A busy machine: the contention watch's warnings, and thread counts that do not stall."""

import functools
import io
import json
import os
import subprocess
import sys
import threading

import pytest
import torch
from rich.console import Console

from offrl_bench.execution import attempts, contention, scheduler
from offrl_bench.execution.contention import ContentionWatch
from offrl_bench.execution.local_workers import LocalWorkers
from offrl_bench.execution.runner import RunSpec
from offrl_bench.records.run_store import RunStore

RUN = "bc__some-run"


class FakeMachine:
    """A clock the test moves and a probe that returns what the test sets."""

    def __init__(self) -> None:
        self.now, self.rate = 0.0, 100.0

    def clock(self) -> float:
        return self.now

    def probe(self, repeats: int) -> float:
        return self.rate


def watch_on(machine: FakeMachine, **options) -> ContentionWatch:
    return ContentionWatch(window=10.0, clock=machine.clock, probe=machine.probe, **options)


def windows(watch: ContentionWatch, machine: FakeMachine, rates: list[float], done: int = 0,
            total: int = 10**9) -> tuple[list[str | None], int]:
    """Report progress at the end of one 10-second window per rate; the messages of those reports."""
    messages = []
    for rate in rates:
        machine.now += 10.0
        done += int(rate * 10)
        messages.append(watch.observe(RUN, done, total))
    return messages, done


def test_a_slowdown_the_probe_confirms_is_reported_once_then_its_end(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    machine = FakeMachine()
    watch = watch_on(machine)
    assert watch.observe(RUN, 0, 10**9) is None  # the first report starts the run's first window
    quiet, done = windows(watch, machine, [300, 320, 310])
    assert quiet == [None, None, None]
    machine.rate = 5.0  # the matmul probe 20x below start-up
    slowed, done = windows(watch, machine, [20, 15], done)
    assert slowed[0] == (f"{RUN}: 16x fewer updates/s than earlier in this run and the matmul rate is 20x below "
                         "start-up: another process is using the CPU. Several threads per run stall when a core is "
                         "taken; one thread per run keeps its share (e.g. --workers "
                         f"{contention.usable_cpus()} --cpus-per-run 1).")
    assert slowed[1] is None  # said once, not every window
    machine.rate = 100.0
    back, _ = windows(watch, machine, [290], done)
    assert back == [f"{RUN}: back to 290 updates/s"]


def test_a_slowdown_of_the_run_itself_is_not_blamed_on_the_cpu():
    """A costlier phase of the run (long evaluations, model rollouts): the probe runs as fast as at
    start-up, so there is nothing to say."""
    machine = FakeMachine()
    watch = watch_on(machine)
    watch.observe(RUN, 0, 10**9)
    messages, _ = windows(watch, machine, [300, 300, 10, 10])
    assert messages == [None] * 4


def test_a_finished_or_resumed_run_starts_over():
    machine = FakeMachine()
    watch = watch_on(machine)
    watch.observe(RUN, 0, 100_000)
    _, done = windows(watch, machine, [300, 300], total=100_000)
    assert watch.observe(RUN, 100_000, 100_000) is None and RUN not in watch.runs
    assert watch.observe(RUN, 4000, 100_000) is None  # resumed from a checkpoint: a new first window
    machine.rate = 5.0
    assert windows(watch, machine, [10], done=4000, total=100_000)[0] == [None]  # no best rate yet to fall from


def test_threads_slower_than_one_at_start_up_are_reported_once_per_process(monkeypatch):
    monkeypatch.setattr(contention, "_STALL_REPORTED", set())
    monkeypatch.setattr(contention, "start_up_rates", lambda threads: (10, 40e9, 100e9))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    first = ContentionWatch()
    assert first.observe(RUN, 0, 100) == (
        "torch's 2 threads per run multiply matrices 2.5x slower than 1 thread: another process is using the CPU. "
        "Several threads per run stall when a core is taken; one thread per run keeps its share (e.g. --workers "
        f"{contention.usable_cpus()} --cpus-per-run 1).")
    assert first.observe(RUN, 50, 100) is None
    assert ContentionWatch().observe(RUN, 0, 100) is None
    monkeypatch.setattr(contention, "start_up_rates", lambda threads: (10, 90e9, 100e9))  # within the margin
    monkeypatch.setattr(contention, "_STALL_REPORTED", set())
    assert ContentionWatch().observe(RUN, 0, 100) is None


def test_probe_uses_no_random_numbers():
    state = torch.get_rng_state()
    assert contention.matmul_rate(3) > 0
    assert torch.equal(state, torch.get_rng_state())


class CoTenantCue(ContentionWatch):
    """The watch, telling the test when the run has set its best rate (co-tenants may start) and
    when it has reported the slowdown (they may go), so that the test does not depend on how fast
    this machine happens to be."""

    settled = threading.Event()
    slowed = threading.Event()

    def observe(self, run_id: str, done: int, total: int) -> str | None:
        message = super().observe(run_id, done, total)
        window = self.runs.get(run_id)
        if window is not None and window.best > 0:
            CoTenantCue.settled.set()
        if message and "fewer updates/s" in message:
            CoTenantCue.slowed.set()
        return message


@pytest.mark.slow  # 20 s of real time with the machine deliberately made busy
@pytest.mark.skipif(contention.usable_cpus() < 2, reason="needs 2 CPU cores: one run's 2 threads against co-tenants")
def test_a_real_co_tenant_is_reported_while_the_run_goes_on(pendulum_expert, tmp_path, monkeypatch):
    """A 2-thread run; once it has measured its own rate, busy-loop processes are pinned to its cores
    until the watch reports the slowdown: the progress display says that another process is using
    the CPU, then that the run is back to speed."""
    CoTenantCue.settled.clear()
    CoTenantCue.slowed.clear()
    monkeypatch.setattr(attempts, "ContentionWatch", functools.partial(CoTenantCue, window=1.0))
    output = io.StringIO()
    co_tenants: list[subprocess.Popen] = []

    def occupy_both_cores_for_a_while() -> None:
        if not CoTenantCue.settled.wait(timeout=120):
            return
        for cpu in 2 * sorted(os.sched_getaffinity(0))[:2]:
            co_tenants.append(subprocess.Popen(
                [sys.executable, "-c", f"import os\nos.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"]))
        CoTenantCue.slowed.wait(timeout=60)
        for process in co_tenants:
            process.kill()
            process.wait()

    # Long enough that the run outlasts a best-rate window, the slowed windows and a recovered one
    # on a fast machine too; the co-tenants' timing follows the run, not the clock.
    spec = RunSpec("bc", pendulum_expert, 0, updates=16_000, eval_every=16_000, eval_episodes=2)
    threading.Thread(target=occupy_both_cores_for_a_while, daemon=True).start()
    try:
        outcome = scheduler.execute([spec], tmp_path, console=Console(file=output, width=400), cpus_per_run=2)
    finally:
        for process in co_tenants:
            process.kill()
    text = output.getvalue()
    assert f"{spec.run_id}: " in text and "fewer updates/s than earlier in this run" in text, text[-2000:]
    assert "another process is using the CPU" in text and f"{spec.run_id}: back to " in text, text[-2000:]
    assert len(outcome.completed) == 1
    assert outcome.completed[0]["executor"]["torch_threads"] == 2


def test_warnings_from_workers_and_ray_tasks_reach_the_display(tmp_path):
    from offrl_bench.execution.ray_backend import _progress_path, _ProgressFiles

    output = io.StringIO()
    view = attempts.ProgressView(2, Console(file=output, width=400), quiet=False)
    sink = attempts.Sink(attempts.Outcome(), view, RunStore(tmp_path))
    spec = RunSpec("bc", "x/y-v0", 0)
    workers = LocalWorkers(1, 1, RunStore(tmp_path), sink, 0)
    workers._handle(("warning", 0, "[bc] 20x fewer updates/s"), None)
    path = _progress_path(tmp_path, spec.run_id)
    path.parent.mkdir(parents=True)
    path.write_text("100 1000\nfirst warning\n")
    files = _ProgressFiles(tmp_path, sink)
    files.look([spec])
    path.write_text("300 1000\nfirst warning\nsecond warning\n")
    files.next_look = 0.0
    files.look([spec])
    text = output.getvalue()
    assert "[bc] 20x fewer updates/s" in text  # brackets in run ids are text, not markup
    assert text.count("first warning") == 1 and text.count("second warning") == 1


def test_default_workers_follow_cores_runs_and_memory(monkeypatch):
    monkeypatch.setattr(scheduler, "usable_cpus", lambda: 8)
    monkeypatch.setattr(scheduler, "_available_memory", lambda: 20 * scheduler.WORKER_MEMORY_BYTES)
    assert [scheduler.default_workers(runs) for runs in (1, 3, 100)] == [1, 3, 8]
    monkeypatch.setattr(scheduler, "_available_memory", lambda: 3 * scheduler.WORKER_MEMORY_BYTES + 5)
    assert scheduler.default_workers(100) == 3
    monkeypatch.setattr(scheduler, "_available_memory", lambda: 0)
    assert scheduler.default_workers(100) == 1


def test_several_runs_default_to_one_thread_each_and_one_run_to_all(cli, cartpole_expert, tmp_path):
    common = ("--updates", "100", "--eval-every", "100", "--eval-episodes", "2", "--quiet")
    assert cli("run", "--algo", "bc", "--dataset", cartpole_expert, "--seeds", "0,1,2", "--out",
               str(tmp_path / "many"), *common).code == 0
    assert cli("run", "--algo", "bc", "--dataset", cartpole_expert, "--seeds", "0", "--out", str(tmp_path / "one"),
               *common).code == 0
    many = [json.loads(line)["executor"] for line in (tmp_path / "many" / "runs.jsonl").read_text().splitlines()]
    one = json.loads((tmp_path / "one" / "runs.jsonl").read_text())["executor"]
    workers = min(3, scheduler.default_workers(3))
    assert {e["torch_threads"] for e in many} == {1}
    assert len({e["pid"] for e in many}) == workers and (workers == 1 or "worker" in many[0]["process"])
    assert one["process"] == "coordinator" and one["torch_threads"] == torch.get_num_threads()
    # every record names the CPU model: a seed's floats reproduce bit for bit on one model only
    from offrl_bench.core.machine import cpu_model

    assert {e["cpu"] for e in [*many, one]} == {cpu_model()} and cpu_model()
