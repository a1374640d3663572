"""Basin sizes and accuracies against a swept parameter (the paper's Figs. 5(c, d) and the sizes behind its
Fig. 6): one line per depth (or any other group), the swept parameter on a log axis."""

from __future__ import annotations

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from netdyn.plots._base import RGBA, SequentialPalette, format_value, require_columns, single_axes

_NOT_REACHED = "not reached on the grid"


def plot_sweep(
    table: pd.DataFrame,
    x: str,
    y: str,
    by: str | None = None,
    ax: Axes | None = None,
    ylabel: str | None = None,
    xlabel: str | None = None,
    title: str | None = None,
    log_x: bool = True,
) -> Figure:
    """``y`` against the swept parameter ``x`` (width, batch size, learning rate), a line per value of ``by``
    (e.g. depth) along a sequential palette.

    ``table`` is tidy: one row per run (``x``, ``y`` and ``by``). Several rows at one point (seeds) are drawn
    as their median with a bar from the lowest to the highest (see docs/verdicts.md). A NaN ``y`` (a basin size never
    reached on the noise grid) is not a value: it is marked by a hollow triangle at the top edge (stacked by group), so
    a missing point is seen rather than silently dropped. The legend names the groups and the missing points.
    """
    func = "plot_sweep"
    require_columns(table, [x, y, *([by] if by is not None else [])], func)
    fig, ax = single_axes(ax)
    groups = sorted(table[by].unique().tolist()) if by is not None else [None]
    palette = SequentialPalette(groups, by) if by is not None else None
    missing: list[tuple[float, float, RGBA | str]] = []
    for g, group in enumerate(groups):
        rows = table if by is None else table[table[by] == group]
        color: RGBA | str = palette.color(group) if palette is not None else "C0"
        stats = rows.groupby(x)[y].agg(["median", "min", "max", "size"]).sort_index()
        seeds = int(stats["size"].max()) if len(stats) else 0  # rows per point, a size not reached included
        stats = stats.dropna(subset=["median"])
        label = (palette.label(group) if palette is not None
                 else f"median of {seeds} seeds (bars: min to max)" if seeds > 1 else "one seed")  # fmt: skip
        ax.plot(stats.index.to_numpy(float), stats["median"].to_numpy(float), color=color, marker="o", ms=5,
                lw=1.8, label=label)
        spread = stats[stats["max"] > stats["min"]]
        if len(spread):
            middle = spread["median"].to_numpy(float)
            ax.errorbar(spread.index.to_numpy(float), middle,
                        yerr=[middle - spread["min"].to_numpy(float), spread["max"].to_numpy(float) - middle],
                        fmt="none", ecolor=color, elinewidth=1, capsize=3)
        height = 0.97 - 0.045 * g  # stacked, so that groups missing at one x stay apart
        missing += [(float(v), height, color) for v in rows.loc[rows[y].isna(), x].unique()]
    transform = ax.get_xaxis_transform()  # x in data, y in axes coordinates
    for value, height, color in missing:
        ax.plot([value], [height], transform=transform, ls="none", marker="^", ms=9, mfc="none", mec=color,
                mew=1.5, label=f"_{_NOT_REACHED}", clip_on=False)
    if log_x:
        ax.set_xscale("log")
        ticks = sorted(table[x].unique().tolist())
        if len(ticks) <= 10:
            ax.set_xticks(ticks, labels=[format_value(t) for t in ticks])
            ax.minorticks_off()
    ax.set_xlabel(xlabel or x.replace("_", " "))
    ax.set_ylabel(ylabel or y.replace("_", " "))
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    handles, _ = ax.get_legend_handles_labels()
    if missing:
        handles.append(Line2D([], [], ls="none", marker="^", ms=8, mfc="none", mec="0.3", label=_NOT_REACHED))
    ax.legend(handles=handles, title=by, fontsize="small", title_fontsize="small", loc="best",
              ncols=2 if len(handles) > 8 else 1)
    return fig


__all__ = ["plot_sweep"]
