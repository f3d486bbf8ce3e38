"""The README is a contract too: its set-up commands are what CI runs, its numbers are the CSV's."""

import csv
import re

from conftest import REPO

README = (REPO / "README.md").read_text()


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


def _table_cells(section: str) -> tuple[list[str], list[list[str]]]:
    lines = [line for line in README.split(section)[1].split("\n#")[0].splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return header, [[c.strip() for c in line.strip("|").split("|")] for line in lines[1:]]


def test_default_results_match_the_published_reference():
    """Every 'IQM [low, high]' cell of the README's data-quality table is that row of the reference CSV."""
    reference = REPO / "results" / "reference" / "default"
    rows = {(r["dataset"], r["algorithm"]): r for r in csv.DictReader((reference / "leaderboard.csv").open())
            if r["wrapper"] == "none"}
    datasets = {"Pendulum medium": "offrl/pendulum/medium-v0", "Pendulum mixed": "offrl/pendulum/mixed-v0",
                "CartPole medium": "offrl/cartpole/medium-v0"}
    header, table = _table_cells("### Default suite")
    algorithms = [name.lower().replace("+", "_") for name in header[1:]]
    checked = 0
    for name, *cells in table:
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
    assert (reference / "report.html").exists()
