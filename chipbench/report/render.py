"""A built table to files: Markdown (title, table, notes), CSV (the table), a provenance
file (JSON: title, notes and details) and the HTML view the report shows (from the CSV and
the provenance file). No timestamps: identical inputs give byte-identical files."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from chipbench.files import write_atomic as write_text
from chipbench.report.context import CANNOT_RUN, FAILED, NOT_RUN, Table


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub pipe table: first column left-aligned, the others right-aligned, padded."""
    escape = lambda value: str(value).replace("|", "\\|")  # noqa: E731
    return tabulate(
        [[escape(v) for v in row] for row in df.itertuples(index=False)],
        headers=[escape(c) for c in df.columns], tablefmt="pipe", disable_numparse=True,
        colalign=("left",) + ("right",) * (df.shape[1] - 1),
    )


def write_table(table: Table, title: str, md, csv, provenance, notes: Sequence[str] = ()) -> None:
    """``# title``, the table and its notes as a bullet list (Markdown); the table alone
    (CSV); title, notes and details (the provenance file, JSON). `notes` are extra details
    (e.g. how records were merged), kept in the provenance file."""
    markdown = f"# {title}\n\n{to_markdown(table.frame)}\n"
    if table.notes:
        markdown += "\n" + "".join(f"- {note}\n" for note in table.notes)
    write_text(md, markdown)
    write_text(csv, table.frame.to_csv(index=False, lineterminator="\n"))
    details = list(table.details) + list(notes)
    write_text(provenance, json.dumps({"title": title, "notes": table.notes, "details": details},
                                      indent=1, ensure_ascii=False) + "\n")


_HTML_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.2em;
       color: #1f2937; }
h1 { font-size: 1.25em; margin: 0 0 .8em 0; }
h2 { font-size: 1em; margin: 1.2em 0 .4em 0; }
table { border-collapse: collapse; font-size: .86em; margin-bottom: 1.2em; }
th, td { border: 1px solid #d1d5db; padding: .3em .55em; vertical-align: top; }
th { background: #f3f4f6; text-align: center; }
td { text-align: right; white-space: nowrap; }
td.left { text-align: left; }
td.text { text-align: left; white-space: normal; min-width: 26em; }
td:first-child { text-align: left; }
tr:nth-child(even) td { background: #f9fafb; }
td.missing { color: #9ca3af; }
td.failed { color: #b91c1c; }
ul { font-size: .86em; line-height: 1.45; max-width: 75em; }
details ul { color: #4b5563; }
"""

_NUMBER = re.compile(r"^[+-]?\d")


def html_page(title: str, df: pd.DataFrame, notes: Sequence[str], details: Sequence[str] = ()) -> str:
    """A small self-contained HTML page: the table, its notes, and its provenance details."""

    def numeric(column) -> bool:
        figures = [str(v) for v in column if str(v) not in (CANNOT_RUN, NOT_RUN, FAILED, "")]
        return bool(figures) and sum(bool(_NUMBER.match(v)) for v in figures) * 2 >= len(figures)

    long_columns = {i for i in range(df.shape[1]) if any(len(str(v)) > 40 for v in df.iloc[:, i])}
    left_columns = {i for i in range(1, df.shape[1]) if not numeric(df.iloc[:, i])}
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = []
    for values in df.itertuples(index=False):
        cells = []
        for i, value in enumerate(values):
            classes = [c for c, on in (("text", i in long_columns), ("left", i in left_columns),
                                       ("missing", value in (CANNOT_RUN, NOT_RUN)),
                                       ("failed", value == FAILED)) if on]
            attribute = f' class="{" ".join(classes)}"' if classes else ""
            cells.append(f"<td{attribute}>{html.escape(str(value))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    body = "\n".join(rows) if rows else f'<tr><td colspan="{len(df.columns)}">no rows</td></tr>'
    items = "".join(f"<li>{html.escape(note)}</li>\n" for note in notes)
    more = "".join(f"<li>{html.escape(line)}</li>\n" for line in details)
    provenance = (f"<details><summary>Settings and provenance</summary>\n<ul>\n{more}</ul>\n</details>\n"
                  if details else "")
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_HTML_STYLE}</style></head><body>\n"
        f"<h1>{html.escape(title)}</h1>\n<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n"
        f"</tbody></table>\n<ul>\n{items}</ul>\n{provenance}</body></html>\n"
    )


def write_html_view(csv_path, provenance_path, html_path) -> None:
    """The HTML view of a table written by :func:`write_table` (its CSV and provenance file)."""
    info = json.loads(Path(provenance_path).read_text(encoding="utf-8"))
    df = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    write_text(html_path, html_page(info["title"], df, info["notes"], info["details"]))
