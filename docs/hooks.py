"""MkDocs hooks: the published references go into the site as they are committed, so no page copies
a number or a figure that could drift from ``results/reference/``.

- Every reference's figures (``results/reference/SUITE/plots/*.png``) and HTML report are served
  under ``figures/SUITE/``.
- ``<!-- leaderboard: SUITE -->`` in a page becomes that reference's leaderboard as a table.
- ``<!-- figures: SUITE NAME... -->`` becomes those figures (``NAME`` without ``.png``).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from mkdocs.structure.files import File

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference"
CAPTIONS = {
    "aggregates": "IQM, mean, median and optimality gap per algorithm, with 95% stratified-bootstrap intervals",
    "performance_profiles": "fraction of runs above each normalised score",
    "probability_of_improvement": "P(X > Y) for every pair of algorithms, with intervals",
    "learning_curves": "normalised score against updates, per task (band: bootstrap over seeds)",
    "sample_efficiency": "normalised score against environment steps (online and offline-to-online runs)",
    "generalization_gap": "train-level against test-level score",
    "stori_drops": "score drop under each STORI wrapper",
    "stori_settings": "each STORI type: agents trained where tested beside agents trained on clean data",
    "morec_refrigerator": "MOREC's refrigerator example (seed 0): where each controller keeps the fridge, the true "
                          "one-step error of the filter's pick, a random candidate and the MLE prediction, and the "
                          "dynamics reward around the true next temperature",
}


def on_files(files, config):
    for suite in sorted(p for p in REFERENCE.iterdir() if p.is_dir()):
        for source in sorted((suite / "plots").glob("*.png")) + [suite / "report.html"]:
            if source.is_file():
                files.append(File.generated(config, f"figures/{suite.name}/{source.name}", abs_src_path=str(source)))
    return files


def _number(text: str, digits: int = 1) -> str:
    return f"{float(text):.{digits}f}".replace("-", "\u2212") if text not in ("", "nan") else "–"


def leaderboard_table(suite: str) -> str:
    """The reference's leaderboard, one line per row: what a reader needs to compare algorithms."""
    path = REFERENCE / suite / "leaderboard.csv"
    rows = list(csv.DictReader(path.open()))
    variants = [c for c in ("demonstrations", "label_fraction") if any(r.get(c) for r in rows)]
    warned = ["warning"] if any(r.get("warning") for r in rows) else []
    collected = ["data_wrapper"] if any(r.get("data_wrapper") for r in rows) else []
    header = ["dataset", "wrapper", *(["data collected under"] if collected else []), "algorithm", *variants, "seeds",
              "normalised IQM [95% CI]", "mean", "budget", *warned, "stale"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [f"`{r['dataset']}`", f"`{r['wrapper']}`", *(f"`{r[c]}`" if r[c] else "" for c in collected),
                 r["algorithm"], *(r[c] for c in variants), r["n_seeds"],
                 f"{_number(r['normalized_iqm'])} [{_number(r['ci_low'])}, {_number(r['ci_high'])}]",
                 _number(r["normalized_mean"]), r.get("budget", ""), *(r.get("warning", "") for _ in warned),
                 r.get("stale", "") or "fresh"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return (f"From `results/reference/{suite}/leaderboard.csv` ({len(rows)} rows; `ALL` rows average a suite's "
            "tasks per level split).\n\n" + "\n".join(lines))


def figures(suite: str, names: list[str], page_url: str) -> str:
    prefix = "../" * page_url.count("/")  # page URLs are files (use_directory_urls: false), e.g. results/x.html
    out = []
    for name in names:
        if not (REFERENCE / suite / "plots" / f"{name}.png").is_file():
            raise FileNotFoundError(f"results/reference/{suite}/plots/{name}.png (named in a page)")
        out.append(f"![{CAPTIONS.get(name, name)}]({prefix}figures/{suite}/{name}.png)\n\n"
                   f"*{CAPTIONS.get(name, name)} ({suite} reference).*")
    return "\n\n".join(out)


def on_page_markdown(markdown, page, config, files):
    markdown = re.sub(r"<!-- leaderboard: (\S+) -->", lambda m: leaderboard_table(m.group(1)), markdown)
    return re.sub(r"<!-- figures: (\S+) ([^>]+?) -->",
                  lambda m: figures(m.group(1), m.group(2).split(), page.url), markdown)
