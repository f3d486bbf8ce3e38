from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: The published reference directories, one per suite (results/reference/<suite>/).
PUBLISHED_REFERENCES = sorted(path.parent for path in (REPO / "results" / "reference").glob("*/runs.jsonl"))


@functools.cache
def published_leaderboard(directory: Path):
    """The leaderboard a published reference's records give, as ``offrl-bench leaderboard`` writes it
    (sanity-floor, FQE and stale columns): computed once per session, since its bootstraps take
    seconds and several tests compare against it."""
    from offrl_bench.execution import ope
    from offrl_bench.records.leaderboard import leaderboard
    from offrl_bench.records.run_store import RunStore
    from offrl_bench.trust import budget, provenance

    records = list(RunStore(directory).records().values())
    return leaderboard(records, budget=budget.for_directory(directory, records),
                       selection=ope.load_selections(directory), stale=provenance.stale_labels(directory, records))


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", help="also run tests marked slow")
    parser.addoption("--thorough", action="store_true",
                     help="also run tests marked thorough (minutes each), and 2,000 cases per file format")
    parser.addoption("--format-cases", type=int, default=None, metavar="N",
                     help="cases per file format in the property-based tests (default: 60, --slow 300, --thorough "
                          "2,000)")


#: Cases per file format in the property-based tests (tests/test_file_formats.py).
FORMAT_CASES = {"fast": 60, "slow": 300, "thorough": 2000}


def pytest_configure(config):
    from hypothesis import HealthCheck, settings

    level = "thorough" if config.getoption("--thorough") else "slow" if config.getoption("--slow") else "fast"
    cases = config.getoption("--format-cases") or FORMAT_CASES[level]
    settings.register_profile(
        "file-formats", max_examples=cases, deadline=None,
        derandomize=True, database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])


def pytest_collection_modifyitems(config, items):
    thorough = config.getoption("--thorough")
    slow = config.getoption("--slow") or thorough
    for item in items:
        if "thorough" in item.keywords and not thorough:
            item.add_marker(pytest.mark.skip(reason="thorough: run with --thorough"))
        elif "slow" in item.keywords and not slow:
            item.add_marker(pytest.mark.skip(reason="slow: run with --slow"))


@pytest.fixture(scope="session", autouse=True)
def isolated_storage(tmp_path_factory):
    """Every test session gets its own Minari root and behaviour-policy cache."""
    root = tmp_path_factory.mktemp("storage")
    saved = {k: os.environ.get(k) for k in ("MINARI_DATASETS_PATH", "OFFRL_BENCH_POLICIES")}
    os.environ["MINARI_DATASETS_PATH"] = str(root / "minari")
    os.environ["OFFRL_BENCH_POLICIES"] = str(root / "policies")
    yield root
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def cartpole_expert(isolated_storage) -> str:
    from offrl_bench.data.make import DatasetRequest, make_dataset

    request = DatasetRequest("CartPole-v1", "expert", episodes=10, name="test/cartpole/expert-v0")
    make_dataset(request, log=lambda m: None)
    return request.dataset_id


@pytest.fixture(scope="session")
def pendulum_expert(isolated_storage) -> str:
    from offrl_bench.data.make import DatasetRequest, make_dataset

    request = DatasetRequest("Pendulum-v1", "expert", episodes=20, name="test/pendulum/expert-v0")
    make_dataset(request, log=lambda m: None)
    return request.dataset_id


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def cli(capsys):
    """Run the CLI in this process (fast: torch is imported once) and capture exit code and output."""
    from offrl_bench.cli.main import main

    def invoke(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke


def install_on_path(site: Path, module: str, source: str, entry_points: str) -> dict:
    """An installed package as Python finds it: ``module`` with ``source`` and a dist-info whose
    ``entry_points.txt`` is ``entry_points``, under ``site``. Returns the env that puts it on the path."""
    (site / module).mkdir(parents=True)
    (site / module / "__init__.py").write_text(source)
    dist = site / f"{module}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(entry_points)
    return {"PYTHONPATH": str(site)}


def run_cli_process(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: int = 300):
    """Run ``offrl-bench`` as a real process (to see exactly what a user sees)."""
    return subprocess.run([sys.executable, "-m", "offrl_bench.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=timeout)


def assert_usage_error(result, *fragments: str) -> None:
    """Exit 2, exactly one line on stderr starting with 'error:', no traceback, naming the problem."""
    err = result.err if hasattr(result, "err") else result.stderr
    code = result.code if hasattr(result, "code") else result.returncode
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def assert_resumes_exactly(spec, tmp_path: Path, interrupt_at: int = 50) -> dict:
    """Interrupt a run when its progress first reaches ``interrupt_at`` (offline runs report every 50
    updates, online runs after every ``learn``), resume it, and check it ends with exactly the
    numbers of an uninterrupted run of the same spec; returns that run's record."""
    from offrl_bench.execution.runner import execute_run
    from offrl_bench.records.run_store import RunStore

    reference = execute_run(spec, RunStore(tmp_path / "uninterrupted"))

    def interrupt(run_id, done, total):
        if done >= interrupt_at:
            raise KeyboardInterrupt

    store = RunStore(tmp_path / "interrupted")
    with pytest.raises(KeyboardInterrupt):
        execute_run(spec, store, interrupt)
    resumed = execute_run(spec, store)
    assert resumed["final_losses"] == reference["final_losses"]
    assert resumed["eval_returns"] == reference["eval_returns"]
    return reference


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium at 1400x1000 (the report's and the documentation site's browser tests)."""
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and chromedriver):
        message = ("headless Chromium not found: install the Debian packages chromium and chromium-driver "
                   "(.ci/run does, as root) to run the browser test")
        if os.environ.get("OFFRL_BENCH_REQUIRE_BROWSER"):  # set by .ci/run: CI must not pass without it
            pytest.fail(f"environment failure, not a code failure: {message}", pytrace=False)
        pytest.skip(message)
    from selenium import webdriver  # in the test extras
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    options.binary_location = chromium
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    yield driver
    driver.quit()
