"""Verdicts as text: the claims table (CLI, report, the claims tables in docs/), and for claims
with no data in a directory, what would produce their data."""

from __future__ import annotations

import hashlib

import pandas as pd

from offrl_bench.records.run_store import RunStore
from offrl_bench.trust.claims import RUNS, Claim, Verdict, evaluate_claim
from offrl_bench.trust.reference import reference_roots

COLUMNS = ("paper", "claim", "asserts", "verdict", "numbers")
RULE = ("A-B: difference of per-seed means with its 95% t-interval, paired or Welch's as the records' design "
        "says; the primary comparisons decide under Holm's correction, the secondary ones decide nothing")


def fingerprint(claims: list[Claim]) -> str:
    """What a report's verdicts were computed with: the claims (their every field) and the rule. A
    report whose fingerprint differs from the installed claims' is older than its claims."""
    text = RULE + "".join(sorted(repr(claim) for claim in claims))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def verdict_table(verdicts: list[Verdict]) -> pd.DataFrame:
    """One row per claim: paper, claim, verdict, and the numbers behind it."""
    rows = []
    for v in verdicts:
        numbers = "; ".join(f"{c.label}: {c.numbers(v.claim.metric)}" + (f" -> {c.verdict}" if len(v.comparisons) > 1
                                                                         else "")
                            for c in v.comparisons) or no_data_reason(v.claim)
        rows.append({"paper": v.claim.paper, "claim": v.claim.name, "asserts": f"{v.claim.statement} "
                     f"({v.claim.assertion})", "verdict": v.text(), "numbers": numbers})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def no_data_reason(claim: Claim) -> str:
    if claim.source != RUNS:
        return f"no measurements: {claim.source} is not in this directory"
    return "no runs here match both sides"


def markdown(verdicts: list[Verdict]) -> str:
    """The verdict table as Markdown (the claims tables in docs/ are this text)."""
    lines = ["| paper | claim | verdict | numbers (A-B: difference of means, 95% t-interval) |", "|---|---|---|---|"]
    for row in verdict_table(verdicts).to_dict("records"):
        cells = [row["paper"], f"**{row['claim']}**: {row['asserts']}", row["verdict"], row["numbers"]]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def producers(claims: list[Claim]) -> dict[str, str]:
    """For each claim, what produces its data: the suites whose published reference has runs on
    both of its sides (``offrl-bench run --suite X``), and for a CSV source the command that writes
    it. Read off the references, so a claim added by a plugin finds its suite there too."""
    references = {}
    for root in reversed(reference_roots()):  # the repository's copy wins over the installed one
        for path in sorted(root.glob("*/runs.jsonl")) if root.is_dir() else ():
            references[path.parent.name] = path.parent
    records = {suite: list(RunStore(path).records().values()) for suite, path in references.items()}
    found = {}
    for claim in claims:
        if claim.source != RUNS:
            found[claim.name] = claim.produced_by or f"a benchmark writing {claim.source}"
            continue
        suites = [suite for suite, runs in records.items() if evaluate_claim(claim, runs).comparisons]
        found[claim.name] = " or ".join(f"offrl-bench run --suite {suite}" for suite in suites) or "no published suite"
    return found


def no_data_line(claims: list[Claim]) -> str:
    """One line naming the claims without data and what produces each."""
    made_by = producers(claims)
    return "no data here for: " + "; ".join(f"{claim.name} ({made_by[claim.name]})" for claim in claims)
