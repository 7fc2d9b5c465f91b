"""One self-contained HTML page of a run, read top-down: the answer per network, then the
tables (units in the headers, CSV downloads), the figures, the run parameters and a glossary.

``<out>/report/index.html`` links every PNG and CSV under ``<out>/report/`` by a relative path,
so the whole ``report/`` folder can be copied or served as it is.
"""

from __future__ import annotations

import html
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from agileflex_hpc import h5io
from agileflex_hpc.report.plots import Plot

__all__ = ["Table", "NetworkSection", "render_index", "write_index", "table_html",
           "FINGERPRINT_META"]

logger = logging.getLogger(__name__)

#: name of the ``<meta>`` that holds the fingerprint of what the page was drawn from
FINGERPRINT_META = "agileflex-inputs"

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1250px;
       padding: 0 1em; color: #222; line-height: 1.4; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2em;
       margin-top: 1.6em; }
h3 { margin: 1.2em 0 0.3em 0; } p.lead { font-size: 1.05em; color: #444; }
.scroll { overflow-x: auto; max-width: 100%; }
table.tbl { border-collapse: collapse; font-size: 0.88em; margin: 0.3em 0 0.6em 0; }
table.tbl th, table.tbl td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
table.tbl td { white-space: nowrap; }
table.tbl th { background: #f0f0f0; vertical-align: bottom; max-width: 9em; }
table.tbl td:first-child, table.tbl th:first-child { text-align: left; }
.verdict { padding: 0.6em 0.9em; border-radius: 6px; margin: 0.6em 0; font-weight: 600; }
.ok { background: #e5f5e0; border: 1px solid #7bc96f; }
.bad { background: #fdecea; border: 1px solid #e57373; }
.unknown { background: #fff8e1; border: 1px solid #ffca28; }
.keyline { font-size: 1.05em; }
.note { color: #8a5a00; } .muted { color: #666; font-size: 0.9em; }
figure { margin: 0.5em 0 1.8em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { margin-bottom: 0.3em; } figcaption .muted { display: block; }
nav a { margin-right: 1em; } a.csv { font-size: 0.8em; font-weight: normal; margin-left: 0.6em; }
dl.params { display: grid; grid-template-columns: max-content auto; gap: 0.15em 1.2em;
            font-size: 0.92em; }
dl.params dt { font-weight: 600; } dl.params dd { margin: 0; }
dl.terms dt { font-weight: 600; margin-top: 0.5em; } dl.terms dd { margin-left: 1.2em; }
details summary { cursor: pointer; font-weight: 600; margin: 0.8em 0 0.3em 0; }
"""


@dataclass
class Table:
    """A table of the page: title, the display frame, an optional note and CSV download."""

    title: str
    frame: pd.DataFrame | None
    note: str = ""
    csv: Path | None = None  # the machine-readable table, linked beside the title
    missing: str = "not available"
    empty: str = "none"
    folded: bool = False  # long tables: inside <details>


@dataclass
class NetworkSection:
    """What the page shows for one network."""

    name: str
    verdict: str = ""  # the proof sentence
    verdict_class: str = "unknown"  # ok, bad or unknown
    keyline: str = ""  # one line: the answer in numbers
    tables: list[Table] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _fmt(x: object) -> str:
    if isinstance(x, float):
        if pd.isna(x):
            return "-"
        return f"{x:.0f}" if abs(x) >= 1000 else f"{x:.3g}" if abs(x) < 0.01 and x else \
            f"{x:.2f}"
    return str(x)


def table_html(df: pd.DataFrame | None, *, missing: str = "not available",
               empty: str = "none") -> str:
    """A DataFrame as an HTML table, or a note: ``missing`` (no table, e.g. not computed or
    not current) or ``empty`` (a table without rows)."""
    if df is None or df.empty:
        return f'<p class="note">{html.escape(missing if df is None else empty)}</p>'
    body = df.to_html(index=False, border=0, classes="tbl", na_rep="-",
                      formatters={c: _fmt for c in df.columns})
    return f'<div class="scroll">{body}</div>'


def _rel(path: Path, base: Path) -> str:
    return html.escape(Path(os.path.relpath(path, base)).as_posix(), quote=True)


def _table_block(t: Table, base: Path, level: int = 3) -> str:
    link = (f' <a class="csv" href="{_rel(t.csv, base)}" download>CSV</a>'
            if t.csv is not None and t.frame is not None else "")
    note = f'<p class="muted">{html.escape(t.note)}</p>' if t.note else ""
    inner = note + table_html(t.frame, missing=t.missing, empty=t.empty)
    if t.folded and t.frame is not None and not t.frame.empty:
        return (f"<details><summary>{html.escape(t.title)} ({len(t.frame)} rows)</summary>"
                f"{link}{inner}</details>")
    return f"<h{level}>{html.escape(t.title)}{link}</h{level}>{inner}"


def _figure_html(plot: Plot, base: Path) -> str:
    if plot.path is None:
        return (f"<h4>{html.escape(plot.title)}</h4>"
                f'<p class="note">{html.escape(plot.note)}</p>')
    src = _rel(plot.path, base)
    caption = f'<span class="muted">{html.escape(plot.note)}</span>' if plot.note else ""
    return (f'<figure><figcaption><b>{html.escape(plot.title)}</b>{caption}</figcaption>'
            f'<a href="{src}"><img src="{src}" alt="{html.escape(plot.title)}"></a></figure>')


def _section_html(sec: NetworkSection, base: Path) -> str:
    name = html.escape(sec.name)
    parts = [f'<h2 id="net-{name}">Network {name}</h2>']
    if sec.keyline:
        parts.append(f'<p class="keyline">{html.escape(sec.keyline)}</p>')
    if sec.verdict:
        parts.append(f'<div class="verdict {sec.verdict_class}">{html.escape(sec.verdict)}'
                     "</div>")
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in sec.notes]
    parts += [_table_block(t, base) for t in sec.tables]
    parts.append("<h3>Figures</h3>")
    parts += [_figure_html(p, base) for p in sec.plots]
    return "\n".join(parts)


def _params_html(params: dict[str, str]) -> str:
    rows = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>"
                   for k, v in params.items())
    return f'<dl class="params">{rows}</dl>'


def _glossary_html(terms: dict[str, str]) -> str:
    rows = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>"
                   for k, v in terms.items())
    return f'<dl class="terms">{rows}</dl>'


def render_index(*, run: str, base: Path, overview: Table, sections: list[NetworkSection],
                 validation: Sequence[Table] = (), params: dict[str, str] | None = None,
                 glossary: dict[str, str] | None = None, fingerprint: str = "") -> str:
    """The page's HTML text; image and CSV paths are made relative to ``base`` (the page's
    folder). ``fingerprint`` (of the inputs) is stored in a ``<meta>`` for reruns."""
    nav = " ".join(f'<a href="#net-{html.escape(s.name)}">{html.escape(s.name)}</a>'
                   for s in sections)
    body = [f"<h1>Hosting capacity: run {html.escape(run)}</h1>",
            '<p class="lead">How many heat pumps and EVs each zone (feeder x phase) of each '
            "network can host, and whether smart charging of those EVs keeps the network "
            "within its limits, checked by validation power flows against the same network "
            "without EVs.</p>",
            _table_block(overview, base, level=2),
            f"<p>Networks: {nav} &middot; <a href=\"#params\">run parameters</a>"
            " &middot; <a href=\"#terms\">terms</a></p>"]
    if validation:
        body.append("<h2>Validation power flows: all networks</h2>")
        body += [_table_block(t, base) for t in validation]
    body += [_section_html(s, base) for s in sections]
    if params:
        body += ['<h2 id="params">Run parameters</h2>', _params_html(params)]
    if glossary:
        body += ['<h2 id="terms">Terms</h2>', _glossary_html(glossary)]
    meta = (f'<meta name="{FINGERPRINT_META}" content="{html.escape(fingerprint)}">'
            if fingerprint else "")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"{meta}<title>agileflex_hpc: {html.escape(run)}</title><style>{_CSS}</style>"
            "</head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def page_fingerprint(path: Path) -> str:
    """The inputs fingerprint stored in an existing page ("" if none)."""
    try:
        head = Path(path).read_text(encoding="utf-8")[:4000]
    except OSError:
        return ""
    tag = f'<meta name="{FINGERPRINT_META}" content="'
    start = head.find(tag)
    if start < 0:
        return ""
    start += len(tag)
    return html.unescape(head[start:head.find('"', start)])


def write_index(path: Path, *, run: str, overview: Table, sections: list[NetworkSection],
                validation: Sequence[Table] = (), params: dict[str, str] | None = None,
                glossary: dict[str, str] | None = None, fingerprint: str = "") -> Path:
    """Write :func:`render_index` to ``path`` atomically (temporary name, then rename)."""
    path = Path(path)
    h5io.write_text_atomic(render_index(run=run, base=path.parent, overview=overview,
                                        sections=sections, validation=validation,
                                        params=params, glossary=glossary,
                                        fingerprint=fingerprint), path)
    logger.info("report page written: %s", path)
    return path
