"""The README and the documentation site are contracts too: the README's set-up commands are what CI
runs, the site builds without a warning, and every number or verdict a page quotes is what the
committed records give."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

README = (REPO / "README.md").read_text()
DOCS = REPO / "docs"
sys.path.insert(0, str(DOCS))
from claims_tables import blocks, table  # noqa: E402 (the docs' own tool, beside the pages)


def test_readme_opens_with_exactly_two_setup_commands():
    first_block = re.search(r"```bash\n(.*?)```", README, re.S)
    assert README.index(first_block.group(0)) < README.index("\n## ")  # before any section
    install_and_run, install_and_test = first_block.group(1).strip().splitlines()
    assert "-c constraints.txt" in install_and_run
    assert install_and_run.endswith("offrl-bench run --suite default --workers 2 && .venv/bin/offrl-bench report "
                                    "results/default")
    assert "-c constraints.txt" in install_and_test and "pytest" in install_and_test
    assert "torch==2.13.0" in (REPO / "constraints.txt").read_text()
    assert "block[1]" in (REPO / ".ci" / "run").read_text()  # CI runs the second command, taken from here


def test_readme_fits_on_a_screen_and_links_into_the_site():
    assert len(README.splitlines()) <= 150
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    local = [link for link in links if not link.startswith("http")]
    assert sum(link.startswith("docs/") for link in local) >= 10
    missing = [link for link in local if not (REPO / link).exists()]
    assert not missing, missing


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site as ``mkdocs build --strict`` makes it: any warning (a broken link, a missing figure, a
    docstring mkdocstrings cannot read) fails the build."""
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=REPO,
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "WARNING" not in result.stderr, result.stderr[-3000:]
    return out


def test_site_has_a_page_per_paper_and_per_reference(site):
    references = sorted(p.name for p in (REPO / "results" / "reference").iterdir() if (p / "runs.jsonl").is_file())
    for suite in references:
        page = (site / "results" / f"{suite}.html").read_text()
        assert f"results/reference/{suite}/leaderboard.csv" in page  # the table the hook made from the CSV
        assert f"figures/{suite}/" in page
    for paper in ("stori", "generalization", "ssorl", "morec"):
        assert "<table>" in (site / "papers" / f"{paper}.html").read_text()  # its verdicts


def test_cli_reference_is_generated_from_the_commands(site):
    from offrl_bench.cli.main import app

    page = (site / "cli.html").read_text()
    for name, command in app.commands.items():
        assert f"offrl-bench {name}" in page
        for parameter in getattr(command, "params", []):
            for option in parameter.opts:
                if option.startswith("--"):
                    assert option in page, (name, option)


def test_plugin_api_reference_is_generated_from_the_docstrings(site):
    page = (site / "plugins.html").read_text()
    for anchor in ("offrl_bench.core.api.OfflineAlgorithm.update", "offrl_bench.core.api.Algorithm.act",
                   "offrl_bench.execution.loggers.RunLogger", "offrl_bench.trust.claims.Claim",
                   "offrl_bench.suites.Suite"):
        assert f'id="{anchor}"' in page, anchor


def test_claims_tables_are_what_the_claims_command_prints():
    """Each table sits between ``<!-- claims: offrl-bench claims DIR [--claim PATTERN]... --markdown -->``
    and ``<!-- end claims -->``: the command that prints it (``python docs/claims_tables.py`` rewrites them)."""
    found = [(page, *block) for page in sorted(DOCS.rglob("*.md")) for block in blocks(page.read_text())]
    assert {"results/reference/default", "results/reference/ssorl", "results/reference/generalization",
            "results/reference/morec-halfcheetah"} <= {directory for _, directory, _, _ in found}
    for page, directory, patterns, written in found:
        assert written == table(directory, patterns), f"{page.relative_to(REPO)}: {directory} {patterns}"


def test_each_results_page_shows_every_claim_its_reference_has_data_for():
    """A results page's claims table leaves out no claim that its reference decides (the default
    page once left out offline-below-online-ppo although the default suite has its rows)."""
    from offrl_bench.trust.claims import NO_DATA, evaluate_directory, named

    for page in sorted((DOCS / "results").glob("*.md")):
        for directory, patterns, _ in blocks(page.read_text()):
            shown = {claim.name for claim in named(patterns)}
            with_data = {v.claim.name for v in evaluate_directory(REPO / directory) if v.verdict != NO_DATA}
            assert with_data <= shown, f"{page.name}: {sorted(with_data - shown)}"


def test_default_results_match_the_published_reference():
    """Every 'IQM [low, high]' cell of the default page's data-quality table is that row of the CSV."""
    reference = REPO / "results" / "reference" / "default"
    rows = {(r["dataset"], r["algorithm"]): r for r in csv.DictReader((reference / "leaderboard.csv").open())
            if r["wrapper"] == "none"}
    datasets = {"Pendulum medium": "offrl/pendulum/medium-v0", "Pendulum mixed": "offrl/pendulum/mixed-v0",
                "CartPole medium": "offrl/cartpole/medium-v0"}
    text = (DOCS / "results" / "default.md").read_text()
    lines = [line for line in text.split("| dataset | BC |", 1)[1].split("\n\n")[0].splitlines()
             if line.startswith("| ")]
    algorithms = ["bc", "td3_bc", "iql", "cql", "bcq"]
    checked = 0
    for line in lines:
        name, *cells = [c.strip() for c in line.strip("|").split("|")]
        for algorithm, cell in zip(algorithms, cells):
            if cell == "–":
                assert (datasets[name], algorithm) not in rows
                continue
            row = rows[(datasets[name], algorithm)]
            expected = (f"{float(row['normalized_iqm']):.1f} [{float(row['ci_low']):.1f}, "
                        f"{float(row['ci_high']):.1f}]").replace("-", "\u2212")
            assert cell == expected, (name, algorithm, cell, expected)
            assert row["n_seeds"] == "5"
            checked += 1
    assert checked == 12


def _images(browser) -> list[tuple[str, bool]]:
    from selenium.webdriver.common.by import By

    return [(image.get_attribute("src"), browser.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth > 0", image))
        for image in browser.find_elements(By.CSS_SELECTOR, "article img")]


def test_site_pages_and_their_figures_load_in_headless_chromium(browser, site):
    browser.get((site / "index.html").as_uri())
    assert browser.title.startswith("offrl-bench")
    home = _images(browser)
    assert home and all(loaded for _, loaded in home), home
    browser.get((site / "results" / "default.html").as_uri())
    figures = _images(browser)
    assert len(figures) >= 5 and all(loaded for _, loaded in figures), figures
    assert "leaderboard.csv" in browser.page_source
