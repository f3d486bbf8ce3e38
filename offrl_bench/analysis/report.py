"""``offrl-bench report DIR``: the results of an output directory as one self-contained HTML page.

The page needs no network: styles and scripts are inline, figures are PNG data URIs. Its first
screen answers "what did this run find?": the verdict counts and one line per claim with data
(verdict, effect and interval), the comparison with the published reference, and the aggregate IQM
chart. Below them:

- the claims table with the numbers behind every verdict;
- the leaderboard, every column sortable (click its header) and rows filterable by suite, dataset,
  wrapper, level split and algorithm; each cell carries the exact text of ``leaderboard.csv`` in
  ``data-value`` and shows it rounded;
- the aggregate IQM of every algorithm with its 95% interval, drawn as bars (SVG);
- the figures of ``offrl-bench plot`` (made first when ``DIR/plots`` does not exist);
- for each row, when clicked: its runs with their seeds, configs, run settings and package versions;
- collapsed at the end: the claims with no data here, the commands that produced the directory
  (``commands.jsonl``) and the package versions;
- a provenance warning at the top when the records are dirty, mix revisions or predate changes to
  the code that computed them.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from offrl_bench.core.errors import UsageError
from offrl_bench.execution import ope
from offrl_bench.records.leaderboard import (
    ALL,
    DERIVED_COLUMNS,
    LEADERBOARD_COLUMNS,
    leaderboard,
    leaderboard_csv,
)
from offrl_bench.records.run_store import RunStore, write_atomic
from offrl_bench.trust import budget, claim_tables, claims, provenance
from offrl_bench.trust.reference import compare_with_reference

#: Leaderboard columns with a dropdown filter, when present.
FILTERS = ("suite", "dataset", "wrapper", "split", "algorithm")

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #1b1f24; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 32px; }
code, pre { font: 12px ui-monospace, monospace; background: #f3f4f6; }
pre { padding: 8px; overflow-x: auto; }
#filters label { margin-right: 14px; }
table { border-collapse: collapse; font-size: 12.5px; }
th, td { border-bottom: 1px solid #e5e7eb; padding: 3px 7px; text-align: left; white-space: nowrap; }
th { cursor: pointer; background: #f9fafb; position: sticky; top: 0; user-select: none; }
th[aria-sort=ascending]::after { content: " \\25B2"; } th[aria-sort=descending]::after { content: " \\25BC"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr { cursor: pointer; } tbody tr:hover { background: #eef2ff; } tr.selected { background: #e0e7ff; }
tr.aggregate td { font-weight: 600; }
p.warning { background: #fff7ed; border-left: 4px solid #f97316; padding: 6px 10px; }
#claims td { white-space: normal; max-width: 640px; vertical-align: top; }
#first-screen { display: flex; flex-wrap: wrap; gap: 8px 32px; align-items: flex-start; }
#summary { flex: 1 1 480px; } #overview { flex: 0 0 auto; } #summary table { font-size: 12.5px; }
#summary td { white-space: normal; } #summary td:nth-child(3) { white-space: nowrap; }
#summary h2, #overview h2 { margin-top: 8px; }
.verdict-reproduced { color: #15803d; } .verdict-contradicted { color: #b91c1c; }
.verdict-inconclusive { color: #92400e; } .verdict-stale { color: #6b7280; }
details { margin-top: 24px; } summary { cursor: pointer; font-weight: 600; }
figure { display: inline-block; margin: 0 16px 16px 0; vertical-align: top; }
figure img { max-width: 900px; border: 1px solid #e5e7eb; } figcaption { font-size: 12px; color: #555; }
"""

_SCRIPT = """
const table = document.getElementById('leaderboard');
const body = table.tBodies[0];
const details = JSON.parse(document.getElementById('row-details').textContent);
function compare(a, b) {
  const x = parseFloat(a), y = parseFloat(b);
  if (!isNaN(x) && !isNaN(y)) return x - y;
  if (!isNaN(x)) return -1;
  if (!isNaN(y)) return 1;
  return a.localeCompare(b);
}
table.querySelectorAll('th').forEach((header, column) => header.addEventListener('click', () => {
  const ascending = header.getAttribute('aria-sort') !== 'ascending';
  table.querySelectorAll('th').forEach(h => h.removeAttribute('aria-sort'));
  header.setAttribute('aria-sort', ascending ? 'ascending' : 'descending');
  const rows = Array.from(body.rows);
  rows.sort((r, s) => {
    const a = r.cells[column].dataset.value, b = s.cells[column].dataset.value;
    if (a === '' && b !== '') return 1;   // empty cells last in both directions
    if (b === '' && a !== '') return -1;
    return ascending ? compare(a, b) : compare(b, a);
  });
  rows.forEach(r => body.appendChild(r));
}));
const filters = Array.from(document.querySelectorAll('#filters select'));
function applyFilters() {
  let shown = 0;
  for (const row of body.rows) {
    const visible = filters.every(f => f.value === '' || row.dataset[f.name] === f.value);
    row.hidden = !visible;
    shown += visible;
  }
  document.getElementById('shown').textContent = shown + ' of ' + body.rows.length + ' rows';
}
filters.forEach(f => f.addEventListener('change', applyFilters));
applyFilters();
for (const row of body.rows) row.addEventListener('click', () => {
  body.querySelectorAll('tr.selected').forEach(r => r.classList.remove('selected'));
  row.classList.add('selected');
  const info = details[row.dataset.row];
  document.getElementById('details-title').textContent = info.title;
  document.getElementById('details').textContent = JSON.stringify(info.runs, null, 1);
});
"""


def _display(column: str, text: str) -> str:
    """A CSV cell as shown: numbers rounded (counts as integers), everything else as it is."""
    if text == "":
        return "-"
    try:
        value = float(text)
    except ValueError:
        return text
    if not math.isfinite(value):
        return text
    if column in ("n_seeds", "updates", "updates_per_second"):
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 0.1 or value == 0 else f"{value:.3g}"


def _run_details(record: dict) -> dict:
    spec = record.get("spec", {})
    return {
        "run_id": record["run_id"], "seed": record["seed"], "normalized_score": record["normalized_score"],
        "return_mean": record["return_mean"], "updates": record["updates"],
        "settings": {key: spec.get(key) for key in ("updates", "eval_every", "eval_episodes", "overrides",
                                                    "precision", "device") if key in spec},
        "config": record.get("config", {}), "versions": record.get("versions", {}),
        "finished_at": record.get("finished_at"),
    }


def _aggregate_svg(rows: list[dict]) -> str:
    """Horizontal IQM bars with 95% interval whiskers for the ``ALL`` rows of one suite and split."""
    values = [float(row[key]) for row in rows for key in ("normalized_iqm", "ci_low", "ci_high")
              if row[key] not in ("", "nan")]
    if not values:
        return ""
    low, high = min(0.0, min(values)), max(100.0, max(values))
    label_width, plot_width, row_height = 250, 330, 20  # 650 px: beside the summary at 1400 px
    x = lambda v: label_width + (v - low) / (high - low) * plot_width  # noqa: E731
    height = row_height * len(rows) + 24
    parts = [f'<svg width="{label_width + plot_width + 70}" height="{height}" role="img" '
             f'xmlns="http://www.w3.org/2000/svg" font-size="11">']
    for tick in (0, 25, 50, 75, 100):
        if low <= tick <= high:
            parts.append(f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="0" y2="{height - 16}" stroke="#ddd"/>'
                         f'<text x="{x(tick):.1f}" y="{height - 4}" text-anchor="middle">{tick}</text>')
    for i, row in enumerate(rows):
        y = i * row_height + 4
        name = html.escape(row["variant"])
        short = html.escape(row["variant"] if len(row["variant"]) <= 42 else row["variant"][:41] + "\u2026")
        parts.append(f'<text x="{label_width - 6}" y="{y + 12}" text-anchor="end"><title>{name}</title>{short}</text>')
        if row["normalized_iqm"] in ("", "nan"):
            continue
        iqm, ci_low, ci_high = (float(row[k]) for k in ("normalized_iqm", "ci_low", "ci_high"))
        parts.append(f'<rect x="{x(min(0.0, iqm)):.1f}" y="{y + 2}" width="{abs(x(iqm) - x(0.0)):.1f}" '
                     f'height="{row_height - 8}" fill="#6366f1"><title>{name}: IQM {iqm:.1f} '
                     f'[{ci_low:.1f}, {ci_high:.1f}]</title></rect>'
                     f'<line x1="{x(ci_low):.1f}" x2="{x(ci_high):.1f}" y1="{y + 8}" y2="{y + 8}" stroke="#111" '
                     f'stroke-width="1.5"/><text x="{x(max(iqm, ci_high)) + 4:.1f}" y="{y + 12}">{iqm:.1f}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _variant_label(row: dict, variant_columns: list[str]) -> str:
    extra = [f"{c}={row[c]}" for c in variant_columns if row.get(c, "") != ""]
    return row["algorithm"] + (f" [{', '.join(extra)}]" if extra else "")


def build_report(directory: Path, output: Path | None = None) -> Path:
    """Write the report of ``directory`` (default ``DIRECTORY/report.html``); returns its path."""
    from offrl_bench.analysis.plots import plot_directory

    directory = Path(directory)
    store = RunStore(directory)
    records = store.records()
    if not records:
        raise UsageError(f"no run records in '{directory}' (expected {store.records_path})")
    frame = leaderboard(list(records.values()), with_run_ids=True,
                        budget=budget.for_directory(directory, list(records.values())),
                        selection=ope.load_selections(directory),
                        stale=provenance.stale_labels(directory, list(records.values())))
    run_ids = frame.pop("run_ids").tolist()
    rows = list(csv.DictReader(io.StringIO(leaderboard_csv(frame))))
    columns = list(frame.columns)
    variant_columns = [c for c in columns if c not in LEADERBOARD_COLUMNS and c not in DERIVED_COLUMNS]
    plots = directory / "plots"
    if not plots.is_dir():
        plot_directory(directory)

    filters = [name for name in FILTERS if name in columns]
    header = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body, details = [], {}
    for i, (row, ids) in enumerate(zip(rows, run_ids)):
        attributes = " ".join(f'data-{name}="{html.escape(row[name])}"' for name in filters)
        cells = "".join(
            f'<td class="{"num" if _is_number(row[c]) else "text"}" data-value="{html.escape(row[c])}">'
            f"{html.escape(_display(c, row[c]))}</td>" for c in columns)
        css = ' class="aggregate"' if row["dataset"] == ALL else ""
        body.append(f'<tr data-row="{i}" {attributes}{css}>{cells}</tr>')
        title = " / ".join([*(row[c] for c in ("suite", "dataset", "wrapper")), _variant_label(row, variant_columns)])
        details[str(i)] = {"title": f"{title}: {len(ids)} runs",
                           "runs": [_run_details(records[run_id]) for run_id in ids]}

    selects = []
    for name in filters:
        options = "".join(f'<option value="{html.escape(v)}">{html.escape(v)}</option>'
                          for v in sorted({row[name] for row in rows}))
        selects.append(f'<label>{name} <select name="{name}"><option value="">all</option>{options}</select></label>')

    aggregates = []
    for row in rows:
        row["variant"] = _variant_label(row, variant_columns)
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        if row["dataset"] == ALL:
            groups.setdefault((row["suite"], row["wrapper"]), []).append(row)
    for (suite, wrapper), members in sorted(groups.items(), key=lambda item: item[0][1] != ALL):
        scope = "" if wrapper == ALL else f", {wrapper}"
        aggregates.append(f"<h3>{html.escape(suite)}{html.escape(scope)}</h3>{_aggregate_svg(members)}")

    figures = []
    for png in sorted(plots.glob("*.png")) if plots.is_dir() else []:
        data = base64.b64encode(png.read_bytes()).decode()
        figures.append(f'<figure><img alt="{png.stem}" src="data:image/png;base64,{data}">'
                       f"<figcaption>{png.name}</figcaption></figure>")

    commands = store.commands()
    command_text = "\n".join(f"{c['started_at']}  {c['command']}" for c in commands) or (
        "not recorded (these runs predate commands.jsonl); the suites in it: "
        + ", ".join(f"offrl-bench run --suite {s}" for s in sorted({r["suite"] for r in records.values()})))
    versions = next(iter(records.values())).get("versions", {})
    verdicts = claims.evaluate_directory(directory)
    decided = [v for v in verdicts if v.verdict != claims.NO_DATA]
    fingerprint = claim_tables.fingerprint([v.claim for v in verdicts])
    payload = json.dumps(details).replace("</", "<\\/")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="offrl-bench-claims" content="{fingerprint}"><title>offrl-bench report: {html.escape(directory.name)}</title>
<style>{_STYLE}</style></head><body>
<h1>offrl-bench report: {html.escape(str(directory))}</h1>
{_provenance_warning(list(records.values()))}
<div id="first-screen">
<section id="summary"><h2>What this run found</h2>
{_summary(verdicts, directory, list(records.values()), frame.assign(run_ids=run_ids))}
</section>
<section id="overview"><h2>Aggregate IQM with 95% intervals</h2>{aggregates[0] if aggregates else ""}</section>
</div>
<p>{len(records)} runs; report generated {datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}.
Normalised scores: 0 = random policy, 100 = expert policy of the dataset. IQM and 95% intervals are
stratified-bootstrap estimates over seeds (rliable); <code>ALL</code> rows aggregate a suite's tasks.</p>
<h2>Claims</h2><p>Each paper's finding, decided on its primary comparisons under Holm's correction:
{html.escape(claim_tables.RULE)}. See <code>offrl-bench claims</code> and the statistics page of the
documentation.</p>
{_claims_table(decided, "claims") if decided else "<p>None has data here.</p>"}
<h2>Leaderboard</h2>
<div id="filters">{"".join(selects)} <span id="shown"></span></div>
<p>Click a column header to sort, a row to see the runs behind it.</p>
<table id="leaderboard"><thead><tr>{header}</tr></thead><tbody>
{chr(10).join(body)}
</tbody></table>
<h3 id="details-title">Runs of the selected row</h3><pre id="details">(click a row)</pre>
{"<h2>More aggregates</h2>" + "".join(aggregates[1:]) if len(aggregates) > 1 else ""}
<h2>Figures</h2>
{"".join(figures) or "<p>no figures</p>"}
<details id="no-data"><summary>Claims with no data here ({len(verdicts) - len(decided)})</summary>
{_claims_table([v for v in verdicts if v.verdict == claims.NO_DATA], "claims-no-data")}</details>
<details id="commands-section"><summary>Commands and package versions</summary>
<pre id="commands">{html.escape(command_text)}</pre>
<p>Package versions of the first run: <code>{html.escape(json.dumps(versions))}</code></p></details>
<script type="application/json" id="row-details">{payload}</script>
<script>{_SCRIPT}</script>
</body></html>
"""
    path = Path(output) if output else directory / "report.html"
    try:
        write_atomic(path, page)
    except OSError as exc:
        raise UsageError(f"cannot write report to '{path}' ({exc.strerror or exc})") from exc
    return path


def _provenance_warning(records: list[dict]) -> str:
    warning = provenance.warning(records)
    return (f'<p id="provenance" class="warning"><strong>Provenance warning:</strong> {html.escape(warning)}</p>'
            if warning else "")


def _deciding(verdict: claims.Verdict) -> claims.Comparison:
    """The comparison that gives the claim its verdict: the first primary one with the claim's
    verdict, or for a reproduced claim the one closest to failing (the largest Holm p-value)."""
    candidates = verdict.primary or verdict.comparisons
    same = [c for c in candidates if c.verdict == verdict.verdict]
    if verdict.verdict == claims.REPRODUCED:
        return max(same, key=lambda c: c.p_value)
    return same[0] if same else candidates[0]


def _summary(verdicts: list[claims.Verdict], directory: Path, records: list[dict], frame) -> str:
    """Verdict counts, one line per claim with data, and the reference comparison."""
    counts = Counter(v.verdict for v in verdicts)
    order = (claims.REPRODUCED, claims.CONTRADICTED, claims.INCONCLUSIVE, claims.AT_CEILING, claims.UNTRAINED,
             claims.STALE)
    decided = [v for v in verdicts if v.verdict != claims.NO_DATA]
    text = ", ".join(f"{counts[name]} {name}" for name in order if counts.get(name)) or "none decided"
    rows = []
    for v in decided:
        c = _deciding(v)
        effect = c.effect(v.claim.metric)
        more = f" (1 of {len(v.comparisons)})" if len(v.comparisons) > 1 else ""
        shown = "stale: its rows' code changed" if v.verdict == claims.STALE else v.text()  # why: in the table
        rows.append(f'<tr><td class="verdict-{v.verdict}" title="{html.escape(v.text())}">{html.escape(shown)}</td>'
                    f"<td>{html.escape(v.claim.name)}</td><td>{html.escape(effect + more)}</td></tr>")
    table = ('<table id="summary-claims"><thead><tr><th>verdict</th><th>claim</th><th>A-B [95% CI]</th></tr></thead>'
             f'<tbody>{"".join(rows)}</tbody></table>' if rows else "")
    counts_line = (f"<strong>{len(decided)} claims with data: {html.escape(text)}.</strong> "
                   f"{len(verdicts) - len(decided)} more have no data here (listed at the end).") if decided else (
        f"<strong>No claim has data here.</strong> The {len(verdicts)} installed claims need runs these "
        "records do not hold (listed at the end).")
    parts = [f'<p id="verdict-counts">{counts_line}</p>', table]
    comparison = compare_with_reference(records, directory, frame)
    if comparison is not None:
        lines = "".join(f"<li>{html.escape(line)}</li>" for line in comparison.disagreements())
        stale = "".join(f"<li>{html.escape(line)}</li>" for line in comparison.stale_rows())
        parts.append(f'<p id="reference">{html.escape(comparison.summary())}</p>'
                     + (f"<details><summary>Rows that disagree</summary><ul>{lines}</ul></details>" if lines else "")
                     + (f'<details><summary>Published rows that are stale at HEAD</summary><ul id="stale">{stale}</ul>'
                        "</details>" if stale else ""))
    return "\n".join(parts)


def _claims_table(verdicts: list[claims.Verdict], table_id: str) -> str:
    table = claim_tables.verdict_table(verdicts)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(row[c]))}</td>" for c in table.columns) + "</tr>"
                   for row in table.to_dict("records"))
    header = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    return f'<table id="{table_id}"><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table>'


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
