"""Rewrite every claims table in the documentation with what ``offrl-bench claims`` prints now.

A table sits between ``<!-- claims: offrl-bench claims DIR [--claim PATTERN]... --markdown -->`` and
``<!-- end claims -->``; ``tests/test_docs.py`` fails when one differs from the command's output. Run
this after a reference is regenerated or attested, or after a claim changes:

    python docs/claims_tables.py
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from offrl_bench.trust.claim_tables import markdown
from offrl_bench.trust.claims import evaluate_directory, named

REPO = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"<!-- claims: offrl-bench claims (\S+)((?: --claim \S+)*) --markdown -->\n(.*?)<!-- end claims -->",
                   re.S)


def blocks(text: str) -> list[tuple[str, list[str], str]]:
    """(directory, claim patterns, the table as written) of every claims block in ``text``."""
    return [(m.group(1), m.group(2).split()[1::2], m.group(3)) for m in BLOCK.finditer(text)]


@functools.cache
def _verdicts(directory: str) -> dict:
    """Every installed claim's verdict on ``directory``, by claim name: each claim is decided on its
    own, so a block's table is these verdicts, selected."""
    return {verdict.claim.name: verdict for verdict in evaluate_directory(REPO / directory)}


def table(directory: str, patterns: list[str]) -> str:
    """What ``offrl-bench claims DIRECTORY --claim PATTERN... --markdown`` prints."""
    return markdown([_verdicts(directory)[claim.name] for claim in named(patterns)])


def refresh(text: str) -> str:
    """``text`` with every claims block's table replaced by what the command prints now."""
    def rewrite(match: re.Match) -> str:
        start, end = match.span(3)
        return match.group(0)[:start - match.start()] + table(match.group(1), match.group(2).split()[1::2]) \
            + match.group(0)[end - match.start():]

    return BLOCK.sub(rewrite, text)


def main() -> None:
    for page in sorted((REPO / "docs").rglob("*.md")):
        text = page.read_text()
        new = refresh(text)
        if new != text:
            page.write_text(new)
            print(f"refreshed {page.relative_to(REPO)}")


if __name__ == "__main__":
    main()
