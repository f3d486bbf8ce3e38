"""``offrl-bench report``: a self-contained HTML page whose numbers equal leaderboard.csv, and whose
sorting and filtering work in a real browser (headless Chromium)."""

from __future__ import annotations

import csv
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_usage_error


class _Page(HTMLParser):
    """The leaderboard table's header, each row's cells (data-value and shown text) and row
    attributes, and every URL the page references."""

    def __init__(self) -> None:
        super().__init__()
        self.header: list[str] = []
        self.rows: list[dict] = []
        self.urls: list[str] = []
        self._in_table = self._in_header = False
        self._cell: dict | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.urls += [attrs[key] for key in ("src", "href") if key in attrs]
        if tag == "table" and attrs.get("id") == "leaderboard":
            self._in_table = True
        elif self._in_table and tag == "th":
            self._in_header = True
            self.header.append("")
        elif self._in_table and tag == "tr" and "data-row" in attrs:
            self.rows.append({"attributes": attrs, "values": [], "shown": []})
        elif self._in_table and tag == "td":
            self._cell = {"value": attrs["data-value"], "text": ""}

    def handle_data(self, data):
        if self._in_header:
            self.header[-1] += data
        elif self._cell is not None:
            self._cell["text"] += data

    def handle_endtag(self, tag):
        if tag == "th":
            self._in_header = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1]["values"].append(self._cell["value"])
            self.rows[-1]["shown"].append(self._cell["text"])
            self._cell = None
        elif tag == "table":
            self._in_table = False


def _command(*args: str) -> None:
    """Run the CLI in this process; ``main`` returns normally on success."""
    from offrl_bench.cli.main import main

    try:
        main(list(args))
    except SystemExit as exc:
        raise AssertionError(f"offrl-bench {' '.join(args)} failed with exit code {exc.code}") from None


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory, cartpole_expert) -> Path:
    """Eight small runs: BC and random, two seeds, default env and STORI action noise."""
    out = tmp_path_factory.mktemp("report") / "results"
    for wrapper in ("", "stori:action:p=0.3"):
        for algo in ("bc", "random"):
            _command("run", "--algo", algo, "--dataset", cartpole_expert, "--seeds", "0,1", "--updates", "100",
                     "--eval-every", "100", "--checkpoint-every", "100", "--eval-episodes", "3",
                     "--wrapper", wrapper, "--out", str(out), "--quiet", "--workers", "1")  # no worker start-up
    _command("report", str(out))
    return out


def _page(results_dir: Path) -> _Page:
    page = _Page()
    page.feed((results_dir / "report.html").read_text())
    return page


def test_report_numbers_equal_the_leaderboard_csv(results_dir):
    page = _page(results_dir)
    with open(results_dir / "leaderboard.csv") as f:
        table = list(csv.reader(f))
    assert page.header == table[0]
    assert [row["values"] for row in page.rows] == table[1:]
    for row in page.rows:  # what is shown is the same number, rounded
        for column, value, shown in zip(page.header, row["values"], row["shown"]):
            if value == "":
                assert shown == "-"
            elif column in ("normalized_mean", "normalized_iqm", "ci_low", "ci_high", "return_mean"):
                assert float(shown.replace(",", "")) == pytest.approx(float(value), abs=0.051), (column, value, shown)


def test_report_numbers_equal_those_computed_from_the_run_records(results_dir):
    """Judged from the records, not from the frame that rendered both the CSV and the page."""
    records = [json.loads(line) for line in (results_dir / "runs.jsonl").read_text().splitlines()]
    page = _page(results_dir)
    assert len(page.rows) == 6  # {bc, random} x {none, stori}, and an ALL row for each algorithm
    for row in page.rows:
        shown = dict(zip(page.header, row["values"]))
        task = shown["dataset"] != "ALL"
        runs = [r for r in records if r["algorithm"] == shown["algorithm"]
                and (not task or (r["wrapper"] or "none") == shown["wrapper"])]
        scores = np.sort([r["normalized_score"] for r in runs])
        assert int(shown["n_seeds"]) == 2 and len(scores) == (2 if task else 4)
        assert float(shown["normalized_mean"]) == pytest.approx(scores.mean(), rel=1e-5, abs=1e-9)
        # IQM: the mean of the middle half (both of 2 runs; the middle 2 of 4)
        middle = scores if task else scores[1:3]
        assert float(shown["normalized_iqm"]) == pytest.approx(middle.mean(), rel=1e-5, abs=1e-9)
        if task:
            assert float(shown["return_mean"]) == pytest.approx(np.mean([r["return_mean"] for r in runs]), rel=1e-5)
            default = [r["normalized_score"] for r in records
                       if r["algorithm"] == shown["algorithm"] and not r["wrapper"]]
            assert float(shown["drop_from_default"]) == pytest.approx(np.mean(default) - scores.mean(), rel=1e-5,
                                                                      abs=1e-6)


def test_report_is_self_contained_and_shows_commands_figures_and_runs(results_dir):
    text = (results_dir / "report.html").read_text()
    page = _page(results_dir)
    assert page.urls and all(url.startswith("data:image/png;base64,") for url in page.urls)  # no network
    assert "<link" not in text and "@import" not in text
    assert "learning_curves.png" in text and "aggregates.png" in text
    assert text.count("offrl-bench run --algo bc --dataset") == 2  # commands.jsonl, one per wrapper
    assert '"seed": 1' in text and '"versions"' in text and '"config"' in text
    assert {row["attributes"]["data-algorithm"] for row in page.rows} == {"bc", "random"}

def test_report_shows_claims_and_warns_about_provenance(results_dir, tmp_path):
    from offrl_bench.trust import provenance
    from offrl_bench.trust.claims import installed as installed_claims

    text = (results_dir / "report.html").read_text()
    assert '<table id="claims">' in text
    for claim in installed_claims():
        assert f"<td>{claim.name}</td>" in text
    # STORI type 1 on the two algorithms, 2 seeds each: decided, but only indicative
    assert "robustness-type-1-lowers-score</td>" in text and "indicative only (2 seeds &lt; 5)" in text
    lines = [json.loads(line) for line in (results_dir / "runs.jsonl").read_text().splitlines()]
    # made by this checkout's code: a warning only if its tree has uncommitted changes (not in CI)
    assert ('id="provenance"' in text) == (provenance.warning(lines) is not None)
    dirty = tmp_path / "dirty"
    dirty.mkdir()
    shutil.copytree(results_dir / "plots", dirty / "plots")
    for record in lines:
        record["versions"]["git_dirty"] = True
    (dirty / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    _command("report", str(dirty))
    assert f"{len(lines)} of {len(lines)} records ran on uncommitted changes" in (dirty / "report.html").read_text()


def test_report_of_an_empty_directory_is_a_usage_error(cli, tmp_path):
    assert_usage_error(cli("report", str(tmp_path)), "no run records in", "runs.jsonl")


def test_sorting_and_filtering_in_headless_chromium(browser, results_dir, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get((results_dir / "report.html").as_uri())
    header = browser.find_elements(By.CSS_SELECTOR, "#leaderboard th")
    column = [h.text for h in header].index("normalized_mean")

    def visible(index: int) -> list[str]:
        return [row.find_elements(By.TAG_NAME, "td")[index].get_attribute("data-value")
                for row in browser.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr") if row.is_displayed()]

    before = visible(column)
    header[column].click()
    ascending = visible(column)
    assert ascending == sorted(before, key=float) and ascending != before
    header[column].click()
    assert visible(column) == sorted(before, key=float, reverse=True)

    algorithm = [h.text for h in header].index("algorithm")
    Select(browser.find_element(By.CSS_SELECTOR, "select[name=algorithm]")).select_by_value("random")
    shown = visible(algorithm)
    assert shown and set(shown) == {"random"} and len(shown) < len(before)
    assert browser.find_element(By.ID, "shown").text == f"{len(shown)} of {len(before)} rows"

    browser.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr:not([hidden])")[0].click()
    assert "random" in browser.find_element(By.ID, "details-title").text
    assert '"seed": 0' in browser.find_element(By.ID, "details").text
    assert browser.save_screenshot(str(tmp_path / "report.png"))


def test_first_screen_answers_what_the_run_found(browser, results_dir):
    """At 1400x1000 the report opens with the verdict summary and the aggregate IQM chart; the
    commands, versions and claims without data are collapsed below."""
    from selenium.webdriver.common.by import By

    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": False})
    try:
        browser.get((results_dir / "report.html").as_uri())

        def box(selector: str) -> dict:
            return browser.execute_script(
                "const r = document.querySelector(arguments[0]).getBoundingClientRect();"
                "return {top: r.top, bottom: r.bottom, height: r.height};", selector)

        for selector in ("#summary", "#overview svg"):
            shown = box(selector)
            assert shown["height"] > 0 and 0 <= shown["top"] and shown["bottom"] <= 1000, (selector, shown)
        counts = browser.find_element(By.ID, "verdict-counts").text
        assert re.match(r"\d+ claims with data: .+\. \d+ more have no data here", counts), counts
        lines = browser.find_elements(By.CSS_SELECTOR, "#summary-claims tbody tr")
        assert lines and all(len(line.find_elements(By.TAG_NAME, "td")) == 3 for line in lines)
        assert all(re.search(r"[+-]\d.* \[[+-]\d.*, [+-]\d.*\]", line.find_elements(By.TAG_NAME, "td")[2].text)
                   for line in lines)
        for collapsed in ("#commands-section", "#no-data"):
            element = browser.find_element(By.CSS_SELECTOR, collapsed)
            assert element.get_attribute("open") is None and box(collapsed)["top"] > box("#leaderboard")["top"]
        assert not browser.find_element(By.ID, "commands").is_displayed()
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
