"""Shared plumbing of the figure functions: axes creation, table checks, per-layer colours, log step axes.

Figures are built on ``matplotlib.figure.Figure`` with an Agg canvas, never through pyplot, so nothing here
touches pyplot's global state or needs a display.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure

from netdyn.errors import ConfigError
from netdyn.plots.display import DisplayFigure

# Viridis is cut short of its pale-yellow end, which is hard to see on white.
_SEQUENTIAL_CMAP = "viridis"
_SEQUENTIAL_RANGE = (0.0, 0.88)
# Up to this many curves get a legend entry each; beyond it, a colour bar.
MAX_LEGEND_ENTRIES = 8

RGBA = tuple[float, float, float, float]
"""A colour as red, green, blue and alpha in [0, 1] (what a colormap gives)."""


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A constrained-layout Figure with an Agg canvas, outside pyplot, that a notebook shows as an image."""
    fig = DisplayFigure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def root_figure(ax: Axes) -> Figure:
    """The top-level Figure that holds ``ax`` (an Axes may sit in a SubFigure)."""
    fig: object
    try:
        fig = ax.get_figure(root=True)
    except TypeError:  # matplotlib < 3.10: no ``root``; a SubFigure's ``figure`` is the root there
        parent = ax.figure
        fig = getattr(parent, "figure", parent) or parent
    if not isinstance(fig, Figure):
        raise ValueError("the Axes belongs to no figure")
    return fig


def single_axes(ax: Axes | None, figsize: tuple[float, float] = (6.4, 4.2)) -> tuple[Figure, Axes]:
    """``ax`` and its figure, or a new figure with one Axes when ``ax`` is None."""
    if ax is None:
        fig = new_figure(figsize)
        return fig, fig.add_subplot()
    return root_figure(ax), ax


def stacked_axes(
    axes: Axes | Sequence[Axes] | None, n: int, figsize: tuple[float, float], func: str
) -> tuple[Figure, list[Axes]]:
    """``n`` Axes stacked vertically with a shared x axis, or the ``n`` Axes the caller gave."""
    if axes is None:
        fig = new_figure(figsize)
        return fig, list(fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0])
    given = [axes] if isinstance(axes, Axes) else list(axes)
    if len(given) != n:
        raise ConfigError(f"{func}: needs {n} Axes here, got {len(given)}")
    return root_figure(given[0]), given


def require_columns(table: pd.DataFrame, columns: Iterable[str], func: str, what: str = "table") -> None:
    """Raise ConfigError naming the missing columns, or an empty table."""
    if not isinstance(table, pd.DataFrame):
        raise ConfigError(f"{func}: {what} must be a pandas DataFrame, got {type(table).__name__}")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        have = ", ".join(map(str, table.columns))
        raise ConfigError(f"{func}: {what} lacks column(s) {', '.join(missing)} (has: {have})")
    if table.empty:
        raise ConfigError(f"{func}: {what} has no rows")


def require_unique(table: pd.DataFrame, keys: list[str], func: str, hint: str) -> None:
    """Raise ConfigError if several rows share ``keys`` (the table mixes runs, splits, ...)."""
    if table.duplicated(subset=keys).any():
        raise ConfigError(f"{func}: several rows per ({', '.join(keys)}); {hint}")


def filter_values(table: pd.DataFrame, column: str, values: Iterable | None, func: str) -> pd.DataFrame:
    """Rows whose ``column`` is in ``values`` (all rows when None); ConfigError if none is left."""
    if values is None:
        return table
    wanted = list(values)
    out = table[table[column].isin(wanted)]
    if out.empty:
        raise ConfigError(f"{func}: no rows with {column} in {wanted}")
    return out


def format_value(value: object) -> str:
    """A short label for a layer, step or sweep value: 3 not 3.0, 0.001 not 0.0010000."""
    if isinstance(value, float | np.floating):
        return str(int(value)) if float(value).is_integer() else f"{float(value):.4g}"
    return str(value)


class SequentialPalette:
    """Colours for an ordered set of values (layers, steps, depths) along a sequential colormap.

    Values are spaced evenly along the colormap in sorted order, so layers 0..11 and steps 10..10^5 read
    alike. With few values the lines carry legend entries; with many, ``finish`` draws a colour bar.
    """

    def __init__(self, values: Iterable[Hashable], name: str) -> None:
        self.values = sorted(pd.unique(pd.Series(list(values))).tolist())
        self.name = name
        n = len(self.values)
        lo, hi = _SEQUENTIAL_RANGE
        positions = np.linspace(lo, hi, n) if n > 1 else np.array([0.4])
        from matplotlib import colormaps

        self.colors = colormaps[_SEQUENTIAL_CMAP](positions)
        self._index = {v: i for i, v in enumerate(self.values)}

    @property
    def uses_colorbar(self) -> bool:
        return len(self.values) > MAX_LEGEND_ENTRIES

    def color(self, value: Hashable) -> RGBA:
        red, green, blue, alpha = self.colors[self._index[value]]
        return float(red), float(green), float(blue), float(alpha)

    def label(self, value: Hashable) -> str:
        return f"{self.name} {format_value(value)}"

    def finish(self, fig: Figure, ax: Axes) -> None:
        """Add the colour bar when there are too many values for a legend."""
        if not self.uses_colorbar:
            return
        n = len(self.values)
        mappable = ScalarMappable(
            norm=BoundaryNorm(np.arange(n + 1) - 0.5, n), cmap=ListedColormap(self.colors)
        )
        bar = fig.colorbar(mappable, ax=ax, label=self.name, pad=0.02, fraction=0.05)
        ticks = list(range(0, n, 1 if n <= 16 else math.ceil(n / 10)))
        bar.set_ticks(ticks, labels=[format_value(self.values[i]) for i in ticks])
        bar.minorticks_off()


def set_step_scale(ax: Axes, steps: np.ndarray) -> None:
    """Log x axis for log-spaced evaluation points; symlog (linear below 1) when step 0 is among them."""
    if (np.asarray(steps, dtype=float) <= 0).any():
        ax.set_xscale("symlog", linthresh=1.0, linscale=0.5)
    else:
        ax.set_xscale("log")


def integer_layer_axis(ax: Axes, layers: Iterable[int]) -> None:
    """Integer ticks on a layer axis (at most ~16 of them)."""
    from matplotlib.ticker import MaxNLocator

    values = sorted({int(v) for v in layers})
    if len(values) <= 16:
        ax.set_xticks(values)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=16, integer=True))
