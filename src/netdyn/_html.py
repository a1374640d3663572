"""HTML fragments shared by the report and the notebook displays: tables, key/value tables, images.

Everything the caller provides (captions, cells, keys, values) is HTML-escaped. Numbers are shown short: 4
significant digits, one format per column so that they align. Nothing here knows netdyn's quantities; the report
(``netdyn.report``) builds pages from these pieces, and ``_repr_html_`` of the data set, a training result, an
analysis and a run build the blocks a notebook shows.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import TypeGuard

import numpy as np
import pandas as pd


def format_cell(value: object) -> str:
    """A table cell as short text: integers whole, floats to 4 significant digits, large ones grouped."""
    if value is None or value is pd.NA or value is pd.NaT:
        return "–"
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        x = float(value)
        if math.isnan(x):
            return "–"
        if math.isinf(x):
            return "∞" if x > 0 else "−∞"
        if x == 0:
            return "0"
        if abs(x) >= 1e4:
            return f"{x:,.0f}"
        if abs(x) >= 1e-3:
            return f"{x:.4g}"
        return f"{x:.3e}"
    return str(value)


def _column_formatter(values: pd.Series) -> Callable[[object], str]:
    """One formatter for a whole column, so that its numbers align.

    Float columns get fixed decimals, about 4 significant digits of the column's largest value, or integers
    when every value is whole; ``format_cell`` serves the rest, and columns where fixed decimals would hide
    small values.
    """
    if not pd.api.types.is_float_dtype(values.dtype):
        return format_cell
    x = values.to_numpy(dtype=float, na_value=np.nan)
    finite = np.abs(x[np.isfinite(x)])
    if finite.size == 0:
        return format_cell
    if np.all(finite == np.round(finite)) and finite.max() < 1e15:
        return lambda v: format_cell(int(float(v)) if _is_finite_float(v) else v)
    largest = finite.max()
    decimals = 4 - math.ceil(math.log10(largest))
    smallest = finite[finite > 0].min()
    if not 0 <= decimals <= 6 or smallest < 10.0 ** (1 - decimals):
        return format_cell
    return lambda v: f"{float(v):.{decimals}f}" if _is_finite_float(v) else format_cell(v)


def _is_finite_float(value: object) -> TypeGuard[numbers.Real]:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))


def paragraphs(text: str) -> str:
    blocks = [" ".join(block.split()) for block in text.strip().split("\n\n")]
    return "\n".join(f"<p>{html.escape(block)}</p>" for block in blocks if block)


def _meta_value(value: object) -> str:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, Mapping | list | tuple):
        text = json.dumps(value, indent=2, default=str, ensure_ascii=False)
        return f"<pre>{html.escape(text)}</pre>"
    return html.escape(format_cell(value))


def meta_table(meta: Mapping[str, object]) -> str:
    rows = "\n".join(
        f'<tr><th scope="row">{html.escape(str(key))}</th><td>{_meta_value(value)}</td></tr>'
        for key, value in meta.items()
    )
    return f'<div class="table-wrap"><table class="meta">\n{rows}\n</table></div>'


_NUM_TD = '<td class="num">'


def html_table(caption: str, table: pd.DataFrame, max_rows: int = 100) -> str:
    """``table`` as an HTML table (its first ``max_rows`` rows, numbers aligned per column), with a note
    saying how many rows were left out."""
    if not isinstance(table, pd.DataFrame):
        raise TypeError(
            f"table {caption!r} must be a pandas DataFrame, got {type(table).__name__}"
        )
    shown = table.head(max_rows)
    numeric = [
        pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
        for dtype in shown.dtypes
    ]
    formatters = [_column_formatter(shown[c]) for c in shown.columns]
    head = "".join(f'<th scope="col">{html.escape(str(c))}</th>' for c in shown.columns)
    body = "\n".join(
        "<tr>"
        + "".join(
            (_NUM_TD if is_num else "<td>") + f"{html.escape(fmt(v))}</td>"
            for v, is_num, fmt in zip(row, numeric, formatters, strict=True)
        )
        + "</tr>"
        for row in shown.itertuples(index=False, name=None)
    )
    note = ""
    if len(table) > max_rows:
        note = f'<p class="note">First {max_rows} of {len(table)} rows.</p>'
    return (
        f'<div class="table-wrap"><table>\n<caption>{html.escape(caption)}</caption>\n'
        f"<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table></div>{note}"
    )


def png_img(png: bytes, alt: str, width: int | None = None) -> str:
    """An ``<img>`` holding ``png`` (PNG bytes) as a base64 data address, so that the page needs no file;
    ``width`` (pixels) scales it up without smoothing (small images such as digits)."""
    encoded = base64.b64encode(png).decode("ascii")
    size = "" if width is None else f' width="{int(width)}" style="image-rendering: pixelated"'
    return f'<img src="data:image/png;base64,{encoded}" alt="{html.escape(alt, quote=True)}"{size}>'


def grayscale_strip(images: np.ndarray) -> bytes:
    """Images [n, H, W] side by side as one grayscale PNG, each scaled to its own range, 1 pixel apart."""
    import matplotlib.image  # an image file, not a figure: no pyplot, no backend

    n, height, width = images.shape
    strip = np.ones((height, n * (width + 1) - 1))
    for i, image in enumerate(np.asarray(images, dtype=float)):
        low, high = float(np.min(image)), float(np.max(image))
        strip[:, i * (width + 1):i * (width + 1) + width] = (image - low) / (high - low) if high > low else 0.0
    buffer = io.BytesIO()
    matplotlib.image.imsave(buffer, strip, cmap="gray_r", vmin=0.0, vmax=1.0, format="png")
    return buffer.getvalue()


def block(
    title: str,
    meta: Mapping[str, object] | None = None,
    tables: Sequence[tuple[str, pd.DataFrame]] = (),
    images: Sequence[str] = (),
    max_rows: int = 10,
) -> str:
    """One object shown in a notebook: a bold title, its key numbers, small tables (``max_rows`` rows) and
    images (``<img>`` tags, e.g. from :func:`png_img`), in one ``<div>`` with no style sheet of its own."""
    parts = [f"<div><p><strong>{html.escape(title)}</strong></p>"]
    if meta:
        parts.append(meta_table(meta))
    parts += [html_table(caption, table, max_rows) for caption, table in tables]
    parts += [f"<div>{image}</div>" for image in images]
    parts.append("</div>")
    return "\n".join(parts)
