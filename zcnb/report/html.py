"""HTML building blocks of the incident report: sections with a status, tables, notes, the report's CSS.

A :class:`Section` knows whether it shows data, and if not, why (``no data``: the stage ran and found
nothing; ``skipped``: the run left the stage out; ``failed``; ``not run``: nothing in the folder says the
stage ran), so the report words each case differently and tests can check that a full run has data.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

__all__ = ["REPORT_CSS", "SECTION_STATES", "Section", "details", "esc", "kv_table", "table"]

SECTION_STATES = ("data", "no data", "skipped", "failed", "not run")

# Text columns left-aligned (JupyterLab's default right-aligns every cell), numbers right-aligned; long
# cells (commands, paths, messages) wrap anywhere so that no column is cut off, on screen or in the PDF.
REPORT_CSS = """<style>
table.zcnb { border-collapse: collapse; margin: 0.3em 0 1em 0 !important; table-layout: auto; }
.jp-RenderedHTMLCommon table.zcnb th, .jp-RenderedHTMLCommon table.zcnb td, table.zcnb th, table.zcnb td {
  text-align: left; vertical-align: top; padding: 3px 9px; border-bottom: 1px solid #ddd; white-space: normal;
  overflow-wrap: break-word; }
.jp-RenderedHTMLCommon table.zcnb th, table.zcnb th { background: #f3f3f3; }
.jp-RenderedHTMLCommon table.zcnb .num, table.zcnb .num { text-align: right; font-variant-numeric: tabular-nums;
  white-space: nowrap; }
.jp-RenderedHTMLCommon table.zcnb td.time, table.zcnb td.time { white-space: nowrap; }
.jp-RenderedHTMLCommon table.zcnb td.long, table.zcnb td.long { overflow-wrap: anywhere; }
.jp-RenderedHTMLCommon table.zcnb.kv th, table.zcnb.kv th { width: 13em; font-weight: 600; background: none; }
pre.zcnb-cmd { white-space: pre-wrap !important; overflow-wrap: anywhere; word-break: break-all; background: #f6f6f6;
  padding: 4px 8px !important; margin: 2px 0 10px 0 !important; font-size: 85%; }
details.zcnb-notes summary { cursor: pointer; color: #555; }
p.zcnb-skipped, p.zcnb-notrun, p.zcnb-nodata { color: #555; font-style: italic; }
p.zcnb-failed { color: #b00020; font-weight: 600; }
div.zcnb-summary { border-left: 4px solid #b00020; padding: 2px 12px; margin: 0.5em 0 1em 0; font-size: 105%; }
div.zcnb-summary.ok { border-left-color: #1b5e20; }
@media print {
  @page { size: A4; margin: 12mm; }
  .jp-OutputArea-output, .jp-RenderedHTMLCommon, .jp-Cell-outputWrapper, .jp-OutputArea { overflow: visible !important; }
  .jp-OutputArea-output { display: block !important; max-width: 100% !important; }
  table.zcnb { width: 100%; }
  img.zcnb-figure { max-width: 100%; height: auto; }
  h2, h3 { break-after: avoid; }
  tr, pre.zcnb-cmd, img.zcnb-figure { break-inside: avoid; }
}
</style>"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


class Section:
    """One report section: its HTML and whether it shows data (see the module docstring)."""

    def __init__(self, body: str, status: str = "data", title: str = "") -> None:
        if status not in SECTION_STATES:
            raise ValueError(f"unknown section status {status!r}")
        self.body, self.status, self.title = body, status, title

    def _repr_html_(self) -> str:
        return self.body

    def __repr__(self) -> str:
        return f"Section({self.title!r}, {self.status})"


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, numeric: Sequence[str] = (),
          time: Sequence[str] = (), long: Sequence[str] = (), cls: str = "zcnb",
          headers: dict[str, str] | None = None) -> str:
    """A table of ``rows`` (dicts) in ``columns``: text left-aligned, ``numeric`` columns right-aligned, ``time``
    columns unbroken, ``long`` columns (paths, commands, messages) wrapped anywhere so that none is cut off."""
    def klass(col: str) -> str:
        name = "num" if col in numeric else "time" if col in time else "long" if col in long else ""
        return f" class='{name}'" if name else ""

    names = headers or {}
    head = "".join(f"<th{klass(c) if c in numeric else ''}>{esc(names.get(c, c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td{klass(c)}>{esc(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table class='{esc(cls)}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def kv_table(rows: Sequence[tuple[str, Any]], *, cls: str = "zcnb kv") -> str:
    """A two-column label/value table."""
    body = "".join(f"<tr><th>{esc(k)}</th><td class='long'>{esc(v)}</td></tr>" for k, v in rows)
    return f"<table class='{esc(cls)}'><tbody>{body}</tbody></table>"


def details(summary: str, items: Sequence[str]) -> str:
    """A collapsed block (``<details>``) of notes; empty string when there are none."""
    if not items:
        return ""
    lis = "".join(f"<li>{esc(i)}</li>" for i in items)
    return f"<details class='zcnb-notes'><summary>{esc(summary)} ({len(items)})</summary><ul>{lis}</ul></details>"
