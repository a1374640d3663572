"""One self-contained HTML page from sections of text, figures and tables.

The page needs nothing beside itself: figures are embedded as base64 PNG, tables as HTML tables, and the style
sheet is inline, so the file can be mailed, archived or opened offline. Everything the caller provides
(titles, text, table cells, metadata) is HTML-escaped.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from netdyn._html import html_table, meta_table, paragraphs, png_img
from netdyn._io import write_bytes
from netdyn.plots.save import figure_bytes

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1d1d1f;
       max-width: 1000px; margin: 2em auto; padding: 0 1em; line-height: 1.5; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { font-size: 1.3em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
.generated { color: #666; margin-top: 0; }
nav ol { padding-left: 1.4em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
.table-wrap { overflow-x: auto; margin: 1em 0; }
table { border-collapse: collapse; font-size: 0.88em; }
caption { text-align: left; font-weight: 600; padding: 0.3em 0; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #e5e5e5; text-align: left; vertical-align: top; }
th { background: #f5f5f7; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.meta th { background: none; color: #444; }
.meta pre { margin: 0; font-size: 0.95em; white-space: pre-wrap; }
.note { color: #666; font-size: 0.85em; }
"""


@dataclass
class ReportSection:
    """One quantity of the report: a heading, a short explanation, its figures and its tables."""

    title: str
    """The section heading (also its entry in the contents)."""
    text: str = ""
    """Plain text explaining what the quantity is and how to read it; blank lines separate paragraphs."""
    figures: list[Figure] = field(default_factory=list)
    """Figures, embedded as PNG in this order."""
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    """(caption, table) pairs, embedded as HTML tables with rounded numbers."""
    links: list[tuple[str, str]] = field(default_factory=list)
    """(text, relative address) pairs, listed as links after the text (an index page's entries)."""


def _figure(fig: Figure, fallback_alt: str, dpi: float) -> str:
    if not isinstance(fig, Figure):
        raise TypeError(f"render_report: expected a matplotlib Figure, got {type(fig).__name__}")
    titles = [ax.get_title() for ax in fig.get_axes() if ax.get_title()]
    alt = "; ".join(titles) or fallback_alt
    return f"<figure>{png_img(figure_bytes(fig, 'png', dpi=dpi), alt)}</figure>"


def render_report(
    title: str,
    sections: Sequence[ReportSection],
    path: str | os.PathLike,
    meta: Mapping[str, object] | None = None,
    max_table_rows: int = 100,
    dpi: float = 100,
) -> Path:
    """Write one self-contained HTML file (atomically) and return its path.

    The header holds ``title``, the date and ``meta`` (key/value pairs such as the configuration; mappings,
    lists and dataclasses are shown as JSON). Each section gets a heading, its text as paragraphs, its figures
    as PNG (``dpi``) and its tables with at most ``max_table_rows`` rows, numbers rounded to 4 significant
    digits.
    """
    from netdyn._version import __version__

    generated = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="generated">Generated {html.escape(generated)} by netdyn {html.escape(__version__)}</p>',
    ]
    if meta:
        parts.append(meta_table(meta))
    parts.append("</header>")
    if len(sections) > 1:
        items = "".join(
            f'<li><a href="#section-{i}">{html.escape(s.title)}</a></li>' for i, s in enumerate(sections, 1)
        )
        parts.append(f"<nav><h2>Contents</h2><ol>{items}</ol></nav>")
    for i, section in enumerate(sections, 1):
        if not isinstance(section, ReportSection):
            raise TypeError(f"render_report: sections must be ReportSection, got {type(section).__name__}")
        parts.append(f'<section id="section-{i}">')
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.text:
            parts.append(paragraphs(section.text))
        if section.links:
            items = "".join(
                f'<li><a href="{html.escape(href, quote=True)}">{html.escape(text)}</a></li>'
                for text, href in section.links
            )
            parts.append(f"<ul>{items}</ul>")
        for j, fig in enumerate(section.figures, 1):
            parts.append(_figure(fig, f"{section.title}, figure {j}", dpi))
        for caption, table in section.tables:
            parts.append(html_table(caption, table, max_table_rows))
        parts.append("</section>")
    parts += ["</body>", "</html>", ""]
    target = Path(path)
    write_bytes(target, "\n".join(parts).encode("utf-8"))
    return target
