"""A report as a self-contained HTML page and its CSV twin, written side by side.

The page embeds its charts as base64 PNG (one file to mail or archive, viewable
offline); the CSV holds the same figures in long form, one figure a line:
``section, row, column, value, source``. A section that could not be read or has
no rows is one line with ``column`` = ``unavailable`` / ``no_data`` and the reason
as its value, so a reader of the CSV sees the same gaps as a reader of the page.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import os
from dataclasses import dataclass
from pathlib import Path

from warehouse.reports.model import Report, Section, cell

CSV_HEADER = ("section", "row", "column", "value", "source")
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:62em;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ccc;padding:.25em .5em}
th{background:#f3f3f3;text-align:left}td.n{text-align:right}
.source{color:#666;font-size:.85em}.unavailable{color:#a40000}.nodata{background:#fff4ce;
padding:.8em;border-left:4px solid #d9a400}figure{margin:1em 0}
"""


@dataclass(frozen=True)
class Written:
    """Where one report went, and what it held."""

    report: Report
    html_path: Path
    csv_path: Path


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def csv_rows(report: Report) -> list[tuple[str, str, str, str, str]]:
    """The report's figures in long form (what the CSV holds, header aside)."""
    out: list[tuple[str, str, str, str, str]] = []
    if report.no_data:
        out.append(("report", report.day.isoformat(), "no_data", report.no_data, ""))
    for s in report.sections:
        if s.unavailable is not None:
            out.append((s.key, "", "unavailable", s.unavailable, s.source))
            continue
        if not s.rows:
            out.append((s.key, "", "no_data", s.empty or "no rows", s.source))
            continue
        for row in s.rows:
            label = "|".join(cell(v) for v in row[: s.key_columns])
            for column, value in zip(s.columns[s.key_columns:], row[s.key_columns:],
                                     strict=True):
                out.append((s.key, label, column, cell(value), s.source))
    return out


def to_csv(report: Report) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    writer.writerows(csv_rows(report))
    return buffer.getvalue()


def _numeric(text: str) -> bool:
    return text.replace("-", "", 1).replace(".", "", 1).isdigit()


def _section_html(s: Section) -> str:
    e = html.escape
    parts = [f"<h2>{e(s.title)}</h2>", f'<p class="source">Source: {e(s.source)}</p>']
    if s.unavailable is not None:
        parts.append(f'<p class="unavailable">Not available: {e(s.unavailable)}</p>')
        return "\n".join(parts)
    if not s.rows:
        parts.append(f"<p>No data: {e(s.empty or 'no rows')}</p>")
        return "\n".join(parts)
    if len(s.rows) == 1 and len(s.columns) > 3:  # one row: a figure per line reads better
        body = "".join(
            f'<tr><th>{e(c)}</th><td class="n">{e(cell(v))}</td></tr>'
            for c, v in zip(s.columns, s.rows[0], strict=True))
        parts.append(f"<table>{body}</table>")
        return "\n".join(parts)
    head = "".join(f"<th>{e(c)}</th>" for c in s.columns)
    rows = []
    for row in s.rows[: s.shown]:
        cells = [cell(v) for v in row]
        rows.append("<tr>" + "".join(
            f'<td class="n">{e(c)}</td>' if _numeric(c) else f"<td>{e(c)}</td>"
            for c in cells) + "</tr>")
    parts.append(f"<table><tr>{head}</tr>{''.join(rows)}</table>")
    if len(s.rows) > s.shown:
        parts.append(f"<p>{len(s.rows) - s.shown} more rows in the CSV.</p>")
    return "\n".join(parts)


def to_html(report: Report) -> str:
    e = html.escape
    parts = [
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(report.title)} {report.day.isoformat()}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{e(report.title)}: {report.day.isoformat()} (UTC)</h1>",
        f'<p class="source">Generated {report.generated_at.isoformat(timespec="seconds")}; '
        f"the same figures are in {report.day.isoformat()}.csv beside this page.</p>",
    ]
    if report.no_data:
        parts.append(f'<p class="nodata">No data for {report.day.isoformat()}: '
                     f"{e(report.no_data)}</p>")
    parts.extend(f"<p>{e(note)}</p>" for note in report.notes)
    for chart in report.charts:
        parts.append(f'<figure><img alt="{e(chart.title)}" src="{png_data_uri(chart.png)}">'
                     f'<figcaption class="source">{e(chart.title)}. Source: {e(chart.source)}'
                     f"</figcaption></figure>")
    parts.extend(_section_html(s) for s in report.sections)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _write(path: Path, text: str) -> None:
    """Replace ``path`` atomically: a reader (or the Dagster UI's link) never sees half a page."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write(report: Report, root: Path) -> Written:
    """``<root>/<report>/<date>.html`` and ``<date>.csv``."""
    folder = root / report.name
    html_path = folder / f"{report.day.isoformat()}.html"
    csv_path = folder / f"{report.day.isoformat()}.csv"
    _write(csv_path, to_csv(report))
    _write(html_path, to_html(report))
    return Written(report, html_path, csv_path)
