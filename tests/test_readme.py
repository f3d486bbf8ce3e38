"""The README is a contract too: its set-up commands are what CI runs, its numbers are the CSV's."""

import csv
import re

from conftest import REPO

README = (REPO / "README.md").read_text()


def test_readme_opens_with_exactly_two_setup_commands():
    first_block = re.search(r"```bash\n(.*?)```", README, re.S)
    assert README.index(first_block.group(0)) < README.index("\n## ")  # before any section
    install_and_run, install_and_test = first_block.group(1).strip().splitlines()
    assert "-c constraints.txt" in install_and_run and install_and_run.endswith("offrl-bench run --suite quick")
    assert "-c constraints.txt" in install_and_test and "pytest" in install_and_test
    assert "torch==2.13.0" in (REPO / "constraints.txt").read_text()
    assert "block[1]" in (REPO / ".ci" / "run").read_text()  # CI runs the second command, taken from here


def test_results_table_matches_committed_leaderboard():
    rows = {(r["dataset"], r["algorithm"]): r for r in csv.DictReader((REPO / "results/quick/leaderboard.csv").open())}
    table = README.split("## Results")[1].split("## ")[0]
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
