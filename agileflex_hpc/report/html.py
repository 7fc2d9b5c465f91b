"""One self-contained HTML page of a run: tables and figures (relative ``<img src>`` links).

``<out>/report/index.html`` links every PNG under ``<out>/report/<network>/`` by a relative
path, so the whole ``report/`` folder can be copied or served as it is.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from agileflex_hpc import h5io
from agileflex_hpc.report.plots import Plot

__all__ = ["NetworkSection", "render_index", "write_index", "table_html"]

logger = logging.getLogger(__name__)

_CSS = """
body { font-family: sans-serif; margin: 1.5em; max-width: 1800px; }
table.tbl { border-collapse: collapse; font-size: 0.85em; margin-bottom: 1em; }
table.tbl th, table.tbl td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
table.tbl th { background: #eee; }
figure { margin: 0.5em 0 1.5em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
.note { color: #a60; }
nav a { margin-right: 1em; }
"""


@dataclass
class NetworkSection:
    """What the page shows for one network."""

    name: str
    tables: dict[str, pd.DataFrame | None] = field(default_factory=dict)  # title -> table
    plots: list[Plot] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def table_html(df: pd.DataFrame | None, *, missing: str = "not available",
               empty: str = "none") -> str:
    """A DataFrame as an HTML table (3 decimals), or a note: ``missing`` (no table, e.g. not
    computed or not current) or ``empty`` (a table without rows)."""
    if df is None or df.empty:
        return f'<p class="note">{html.escape(missing if df is None else empty)}</p>'
    return df.to_html(index=False, border=0, classes="tbl", float_format=lambda x: f"{x:.3f}",
                      na_rep="-")


def _figure_html(plot: Plot, base: Path) -> str:
    if plot.path is None:
        return (f"<h4>{html.escape(plot.title)}</h4>"
                f'<p class="note">{html.escape(plot.note)}</p>')
    rel = Path(os.path.relpath(plot.path, base)).as_posix()
    src = html.escape(rel, quote=True)
    return (f'<figure><figcaption><b>{html.escape(plot.title)}</b></figcaption>'
            f'<a href="{src}"><img src="{src}" alt="{html.escape(plot.key)}"></a></figure>')


def _section_html(sec: NetworkSection, base: Path) -> str:
    parts = [f'<h2 id="net-{html.escape(sec.name)}">Network {html.escape(sec.name)}</h2>']
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in sec.notes]
    for title, df in sec.tables.items():
        parts.append(f"<h3>{html.escape(title)}</h3>{table_html(df)}")
    parts.append("<h3>Figures</h3>")
    parts += [_figure_html(p, base) for p in sec.plots]
    return "\n".join(parts)


def render_index(*, run: str, base: Path, overview: pd.DataFrame | None,
                 sections: list[NetworkSection], definitions: str = "") -> str:
    """The page's HTML text; image paths are made relative to ``base`` (the page's folder)."""
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    nav = " ".join(f'<a href="#net-{html.escape(s.name)}">{html.escape(s.name)}</a>'
                   for s in sections)
    body = [f"<h1>agileflex_hpc report: run {html.escape(run)}</h1>",
            f"<p>Written {now}. Networks: <nav>{nav}</nav></p>",
            "<h2>Validation load flows (stage 8)</h2>",
            table_html(overview, missing="no validation report yet (run the validate stage)"),
            f"<p>{definitions}</p>" if definitions else ""]
    body += [_section_html(s, base) for s in sections]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>agileflex_hpc: {html.escape(run)}</title><style>{_CSS}</style></head>"
            "<body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_index(path: Path, **kwargs) -> Path:
    """Write :func:`render_index` to ``path`` atomically (temporary name, then rename)."""
    path = Path(path)
    h5io.write_text_atomic(render_index(base=path.parent, **kwargs), path)
    logger.info("report page written: %s", path)
    return path
