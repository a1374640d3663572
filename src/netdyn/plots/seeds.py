"""Seed spread on a drawn figure (docs/verdicts.md: a figure draws the median over seeds with the min-max band, or says
in its title that it draws one seed).

The experiments draw the median over seeds with the ordinary plotting functions, then hand the drawn line and
the per-x minimum and maximum to :func:`seed_band`, which shades the band (or draws min-max bars for points) in
the line's colour.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from netdyn.errors import ConfigError


def lines_labelled(fig: Figure, label: str, prefix: bool = False) -> list[Line2D]:
    """The lines of ``fig`` (every axes, drawing order) whose label is ``label`` (or starts with it)."""
    return [line for ax in fig.axes for line in ax.get_lines()
            if (str(line.get_label()).startswith(label) if prefix else line.get_label() == label)]  # fmt: skip


def seed_band(
    line: Line2D,
    low: pd.Series | Sequence[float] | np.ndarray,
    high: pd.Series | Sequence[float] | np.ndarray,
    style: str = "band",
) -> Artist:
    """Shade the min-max band over seeds around ``line`` in its colour (``style="band"``) or draw it as a
    vertical bar at each point (``"bars"``). ``low`` and ``high`` are Series indexed by the line's x values, or
    arrays in the line's point order."""
    axes = line.axes
    if not isinstance(axes, Axes):
        raise ConfigError("seed_band: the line is not drawn on any axes")
    x = np.asarray(line.get_xdata(), dtype=float)
    lo, hi = (np.asarray(v.reindex(x).to_numpy(float) if isinstance(v, pd.Series) else v, dtype=float)
              for v in (low, high))  # fmt: skip
    if lo.shape != x.shape or hi.shape != x.shape:
        raise ConfigError(f"seed_band: {len(x)} points drawn, {lo.size} lows and {hi.size} highs given")
    color = line.get_color()
    if style == "bars":
        return axes.vlines(x, lo, hi, colors=color, lw=1.2, alpha=0.6, zorder=line.get_zorder() - 0.1)
    if style != "band":
        raise ConfigError(f"seed_band: style must be 'band' or 'bars', got {style!r}")
    return axes.fill_between(x, lo, hi, color=color, alpha=0.18, lw=0, zorder=line.get_zorder() - 0.1)


def seed_note(n_seeds: int, first: int = 0) -> str:
    """What a title says about the seeds drawn: the median with its band, or one seed."""
    if n_seeds <= 1:
        return f"seed {first}"
    return f"median of {n_seeds} seeds, band min to max"


def one_seed_note(n_seeds: int, seed: int) -> str:
    """A title's note for a figure that draws one seed only."""
    return f"seed {seed} only" + (f" of {n_seeds}" if n_seeds > 1 else "")
