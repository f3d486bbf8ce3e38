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


def test_results_table_matches_committed_leaderboard():
    rows = {(r["dataset"], r["algorithm"]): r for r in csv.DictReader((REPO / "results/quick/leaderboard.csv").open())}
    table = README.split("### Quick suite")[1].split("### ")[0]
    checked = 0
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) != 6 or (cells[0], cells[1]) not in rows:
            continue
        row = rows[(cells[0], cells[1])]
        assert cells[3] == f"{float(row['normalized_mean']):.1f}"
        assert cells[4] == (f"{float(row['normalized_iqm']):.1f} [{float(row['ci_low']):.1f}, "
                            f"{float(row['ci_high']):.1f}]")
        checked += 1
    assert checked == 8


def test_default_results_match_committed_leaderboard():
    """Every 'mean [low, high]' cell of the README's default-suite table is that row of the CSV."""
    rows = {(r["dataset"], r["algorithm"]): r for r in csv.DictReader((REPO / "results/default/leaderboard.csv").open())
            if r["wrapper"] == "none"}
    datasets = {"Pendulum medium": "offrl/pendulum/medium-v0", "Pendulum mixed": "offrl/pendulum/mixed-v0",
                "CartPole medium": "offrl/cartpole/medium-v0"}
    table = README.split("### Default suite")[1].split("### ")[0]
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    algorithms = [c.strip().lower().replace("+", "_") for c in lines[0].strip("|").split("|")[1:]]
    checked = 0
    for line in lines[1:]:  # the |---| separator does not start with "| "
        name, *cells = [c.strip() for c in line.strip("|").split("|")]
        for algorithm, cell in zip(algorithms, cells):
            if cell == "–":
                continue
            row = rows[(datasets[name], algorithm)]
            expected = (f"{float(row['normalized_mean']):.1f} [{float(row['ci_low']):.1f}, "
                        f"{float(row['ci_high']):.1f}]").replace("-", "\u2212")
            assert cell == expected, (name, algorithm, cell, expected)
            checked += 1
    assert checked == 15
    assert (REPO / "results/default/report.html").exists()
