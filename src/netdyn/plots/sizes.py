"""Figures against the size of the problem or of the network: a value against training-set size, training
step or depth, one line per curve (width, readout, activation), and the neuron-mode census against such a
parameter. Used by the ``shallow`` (paper Fig. 2) and ``depth-width`` (Fig. 4) reproductions.

Like every figure function of ``netdyn.plots`` these take tidy tables, select and average rows, draw, and
return the Figure; they compute no quantity.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from netdyn.errors import ConfigError
from netdyn.plots._base import (
    SequentialPalette,
    format_value,
    integer_layer_axis,
    new_figure,
    require_columns,
    set_step_scale,
    single_axes,
)
from netdyn.plots.layers import MODE_COLORS, RHO_COLUMNS

# Log x axes with at most this many distinct values tick each value (training-set sizes), not powers of ten.
_MAX_LABELLED = 8
_LINESTYLES = ["-", "--", ":", "-."]
_MARKERS = ["o", "s", "^", "D", "v", "P"]
_MODE_LABELS = {"opm": "OPM (order-preserving)", "npm": "NPM (non-order-preserving)", "inactive": "inactive"}


def _is_numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _curve_styles(values: list, name: str) -> dict:
    """Colour, label, line style, marker and width per curve: a sequential colormap for numbers (widths,
    depths); for names (readouts, activations) the categorical cycle with a line style and marker each, and
    earlier curves drawn wider, so that curves lying on top of each other stay visible."""
    if values and all(isinstance(v, (int, float, np.integer, np.floating)) for v in values):
        palette = SequentialPalette(values, name)
        return {v: {"color": palette.color(v), "label": palette.label(v), "ls": "-", "marker": "o", "lw": 1.6}
                for v in values}
    n = len(values)
    return {
        v: {"color": f"C{i % 10}", "label": str(v), "ls": _LINESTYLES[i % len(_LINESTYLES)],
            "marker": _MARKERS[i % len(_MARKERS)], "lw": 1.4 + 1.4 * (n - 1 - i) / max(n - 1, 1)}
        for i, v in enumerate(values)
    }


def plot_against(
    table: pd.DataFrame,
    x: str,
    y: str,
    by: str | None = None,
    panel: str | None = None,
    ax: Axes | Sequence[Axes] | None = None,
    logx: bool = False,
    xlabel: str | None = None,
    ylabel: str | None = None,
    order: Sequence | None = None,
    legend_title: str | None = None,
    sharey: bool = True,
) -> Figure:
    """``y`` against ``x``, one line per value of ``by``, one panel per value of ``panel``.

    Rows sharing (panel, by, x) — several seeds — are summarised: the line is their median and a band spans
    their minimum to maximum (see docs/verdicts.md).
    ``by`` values that are numbers (widths, depths) get a sequential colormap, names
    (``network``, ``L-map0``) the categorical cycle, in ``order`` when given (else sorted). ``logx`` uses a
    log x axis (symlog when 0 is among the values, as for step 0), ticked at each value when there are few;
    whole-number x values on a linear axis get integer ticks.
    With ``panel``, the panels sit side by side with a shared y axis, each titled with its value (``panel =
    value`` for numbers); ``ax`` is then a sequence of one Axes per panel. ``legend_title`` names the curves
    (default: the ``by`` column's name); ``sharey=False`` gives each panel its own y axis, labelled with its
    panel value (panels of different quantities).
    """
    func = "plot_against"
    require_columns(table, [x, y, *([by] if by else []), *([panel] if panel else [])], func)
    if not _is_numeric(table[x]):
        raise ConfigError(f"{func}: x column {x!r} must hold numbers")
    panels = sorted(pd.unique(table[panel]).tolist()) if panel else [None]
    fig, axes = _panel_axes(ax, panels, panel, sharey, func)
    curves = list(order) if order is not None else sorted(pd.unique(table[by]).tolist()) if by else [None]
    missing = [c for c in curves if by and c not in set(table[by])]
    if missing:
        raise ConfigError(f"{func}: no rows with {by} in {missing}")
    styles = _curve_styles(curves, by or "") if by else {None: {"color": "C0", "label": y, "ls": "-",
                                                                 "marker": "o", "lw": 1.6}}
    for value, axis in zip(panels, axes, strict=True):
        rows = table if panel is None else table[table[panel] == value]
        for curve in curves:
            part = rows if by is None else rows[rows[by] == curve]
            if not part.empty:
                _mean_and_band(axis, part, x, y, styles[curve])
        _x_axis(axis, table[x], rows[x], logx)
        axis.set_xlabel(xlabel or x.replace("_", " "))
        axis.grid(alpha=0.3, which="both" if logx else "major")
        if panel is not None:
            axis.set_title(value if isinstance(value, str) else f"{panel.replace('_', ' ')} = {format_value(value)}")
        if by is not None:
            title = legend_title if legend_title is not None else by.replace("_", " ")
            axis.legend(fontsize="small", loc="best", title=title or None, title_fontsize="small")
    axes[0].set_ylabel(ylabel or y.replace("_", " "))
    if not sharey and panel is not None and ylabel is None:
        for value, axis in zip(panels, axes, strict=True):
            axis.set_ylabel(format_value(value))
    if by is None:
        axes[0].legend(fontsize="small", loc="best")
    return fig


def _panel_axes(
    ax: Axes | Sequence[Axes] | None, panels: list, panel: str | None, sharey: bool, func: str
) -> tuple[Figure, list[Axes]]:
    """The figure and one Axes per panel, side by side: new ones, or those given (as many as panels)."""
    if ax is None:
        fig = new_figure((5.6 * len(panels) + 0.6, 4.4))
        return fig, list(np.atleast_1d(fig.subplots(1, len(panels), sharey=sharey, squeeze=False)[0]))
    axes = [ax] if isinstance(ax, Axes) else list(ax)
    if len(axes) != len(panels):
        raise ConfigError(f"{func}: needs {len(panels)} Axes (one per {panel}), got {len(axes)}")
    return single_axes(axes[0])[0], axes


def _mean_and_band(axis: Axes, part: pd.DataFrame, x: str, y: str, style: dict) -> None:
    """One curve: the median of ``y`` over the rows sharing each ``x`` (seeds), and a band from their minimum to
    their maximum where there are several (see docs/verdicts.md)."""
    stats = part.groupby(x)[y].agg(["median", "min", "max", "count"]).sort_index()
    xs = stats.index.to_numpy(dtype=float)
    axis.plot(xs, stats["median"].to_numpy(), color=style["color"], ls=style["ls"], marker=style["marker"],
              ms=4, lw=style["lw"], label=style["label"])
    if (stats["count"] > 1).any():
        axis.fill_between(xs, stats["min"].to_numpy(), stats["max"].to_numpy(), color=style["color"],
                          alpha=0.18, lw=0, label="_band")


def _x_axis(axis: Axes, values: pd.Series, shown: pd.Series, logx: bool) -> None:
    """A log x axis over the ``shown`` values, ticked at each of ``values`` when there are few; else whole-number
    ticks for whole-number values."""
    if logx:
        set_step_scale(axis, shown.to_numpy(dtype=float))
        ticks = sorted(set(values.tolist()))
        if len(ticks) <= _MAX_LABELLED:  # a few sizes: tick each one, written out
            axis.set_xticks(ticks, [format_value(v) for v in ticks])
            axis.xaxis.set_minor_locator(NullLocator())
    elif pd.api.types.is_integer_dtype(values):
        integer_layer_axis(axis, values)  # depths and layers: whole-number ticks


def plot_census_by(
    census: pd.DataFrame,
    by: str,
    ax: Axes | None = None,
    order: Sequence | None = None,
    threshold: float = 0.9,
) -> Figure:
    """The neuron-mode census of one layer across networks: stacked bars of the OPM, NPM and inactive
    fractions at each value of ``by`` (a training-set size, a depth, a case label), and beside them the
    distribution of the order preservation rho that decides the modes (10-75 % and 25-75 % bands, median,
    mean, the OPM threshold).

    ``census`` is a ``neuron_mode_census`` table with a ``by`` column and one row per value of it (filter it to
    one layer, one seed). Values are shown in ``order`` when given, else sorted, evenly spaced. With ``ax``
    given, only the bars are drawn into it.
    """
    func = "plot_census_by"
    modes = list(MODE_COLORS)
    require_columns(census, [by, *modes], func, "census")
    if census[by].duplicated().any():
        raise ConfigError(f"{func}: several rows per {by}; filter the census to one layer and one seed")
    values = list(order) if order is not None else sorted(census[by].tolist())
    missing = [v for v in values if v not in set(census[by])]
    if missing:
        raise ConfigError(f"{func}: no rows with {by} in {missing}")
    rows = census.set_index(by).loc[values].reset_index()
    rho_panel = ax is None and all(c in census.columns for c in RHO_COLUMNS)
    if rho_panel:
        fig = new_figure((11.5, 4.4))
        ax, rho_ax = fig.subplots(1, 2, width_ratios=[1.25, 1])
    else:
        fig, ax = single_axes(ax, figsize=(7.2, 4.4))
    position = np.arange(len(rows))
    names = [format_value(v) for v in values]
    bottom = np.zeros(len(rows))
    for mode in modes:
        height = rows[mode].to_numpy(dtype=float)
        ax.bar(position, height, bottom=bottom, width=0.7, color=MODE_COLORS[mode], edgecolor="white", lw=0.5,
               label=_MODE_LABELS[mode])
        bottom = bottom + height
    rotate = max(len(n) for n in names) > 6
    for axis in [ax, *([rho_ax] if rho_panel else [])]:
        axis.set_xticks(position, names, rotation=30 if rotate else 0, ha="right" if rotate else "center")
        axis.set_xlabel(by.replace("_", " "))
    ax.set_ylim(0, 1.2)  # the legend sits in the band above the bars
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("fraction of the layer's neurons")
    ax.set_title("Neuron modes")
    ax.legend(loc="upper center", ncols=3, fontsize="small", handlelength=1.2, columnspacing=1.0)
    if rho_panel:
        rho_ax.fill_between(position, rows["rho_q10"], rows["rho_q75"], color="C0", alpha=0.15, lw=0,
                            label="10-75 %")
        rho_ax.fill_between(position, rows["rho_q25"], rows["rho_q75"], color="C0", alpha=0.3, lw=0,
                            label="25-75 %")
        rho_ax.plot(position, rows["rho_median"], color="C0", lw=1.8, marker="o", ms=3, label="median")
        rho_ax.plot(position, rows["rho_mean"], color="C1", lw=1.2, ls="--", label="mean")
        rho_ax.axhline(threshold, color="0.3", ls=":", lw=1.2, label=f"OPM threshold ({threshold:g})")
        rho_ax.set_ylim(min(0.0, float(np.nanmin(rows["rho_q10"])) - 0.02), 1.05)
        rho_ax.set_ylabel("order preservation rho = |gamma|")
        rho_ax.set_title("Order preservation")
        rho_ax.grid(alpha=0.3)
        rho_ax.legend(fontsize="small", loc="lower right")
    return fig
