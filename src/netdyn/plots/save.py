"""Writing figures: PNG and SVG files, atomically, and PNG bytes for the HTML report."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from netdyn._io import write_bytes
from netdyn.errors import ConfigError

_FORMATS = ("png", "svg")


def figure_bytes(fig: Figure, fmt: str = "png", dpi: float | None = None) -> bytes:
    """The figure rendered as ``fmt`` (``png`` or ``svg``); ``dpi`` None keeps the figure's own."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=dpi if dpi is not None else fig.dpi)
    return buffer.getvalue()


def save_figure(
    fig: Figure, path: str | os.PathLike, formats: Sequence[str] = _FORMATS, dpi: float | None = 150
) -> list[Path]:
    """Write ``fig`` as ``path.png`` and ``path.svg`` (``path`` without suffix), atomically; return the paths.

    The suffix is appended, never substituted, so ``figures/rpd_q0.5`` becomes ``figures/rpd_q0.5.png``.
    ``dpi`` applies to the PNG (150 by default: sharp on screens, small on disk).
    """
    unknown = [f for f in formats if f not in _FORMATS]
    if unknown or not formats:
        raise ConfigError(f"save_figure: formats must be among {', '.join(_FORMATS)}, got {list(formats)}")
    base = Path(path)
    written = []
    for fmt in formats:
        target = base.with_name(f"{base.name}.{fmt}")
        write_bytes(target, figure_bytes(fig, fmt, dpi=dpi if fmt == "png" else None))
        written.append(target)
    return written
