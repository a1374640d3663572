"""Figures that overlay several runs: one colour per run, a legend naming each (``netdyn.compare``'s figures).

Each takes a tidy table with a ``run`` column (the runs' labels, drawn in order of first appearance) and returns a
Figure; nothing is computed here.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.lines import Line2D

from netdyn.plots._base import (
    integer_layer_axis,
    require_columns,
    root_figure,
    set_step_scale,
    single_axes,
    stacked_axes,
)

_SPLIT_STYLES = {"test": "-", "train": "--"}
_KIND_STYLES = ["-", "--", ":", "-."]


def _run_colors(runs: Sequence[object]) -> dict[object, str]:
    """A categorical colour per run (matplotlib's cycle; it repeats after ten runs)."""
    return {run: f"C{i % 10}" for i, run in enumerate(runs)}


def _legend(ax: Axes, colors: dict[object, str], styles: dict[str, str]) -> None:
    """The runs' colours and the line styles' meaning, below the axes on a figure netdyn made (labels that say
    what differs get long, and would hide the curves), else inside the caller's axes."""
    handles = [Line2D([], [], color=c, lw=2, label=str(run)) for run, c in colors.items()]
    if len(styles) > 1:
        handles += [Line2D([], [], color="0.3", ls=ls, lw=1.5, label=name) for name, ls in styles.items()]
    fig = root_figure(ax)
    if isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine):
        fig.legend(handles=handles, fontsize="small", loc="outside lower center", ncols=1 if len(colors) > 2 else 2)
    else:
        ax.legend(handles=handles, fontsize="small", loc="best")


def plot_runs_training(history: pd.DataFrame, axes: Sequence[Axes] | None = None) -> Figure:
    """Training curves of several runs: accuracy and loss against the step (log axis), colour by run, test
    solid and train dashed.

    ``history`` is the runs' training histories concatenated with a ``run`` column (``run, step, split, loss,
    accuracy``); where a history holds both BN evaluations, pass the rows of one (``bn_mode``).
    """
    func = "plot_runs_training"
    require_columns(history, ["run", "step", "split", "loss", "accuracy"], func, "history")
    fig, panels = stacked_axes(axes, 2, (6.8, 6.6), func)
    runs = list(pd.unique(history["run"]))
    colors = _run_colors(runs)
    splits = [s for s in ("test", "train") if s in set(history["split"])]
    for metric, ax in zip(("accuracy", "loss"), panels, strict=True):
        for (run, split), rows in history.groupby(["run", "split"], sort=False):
            if split not in _SPLIT_STYLES:
                continue
            rows = rows.sort_values("step")
            ax.plot(rows["step"].to_numpy(), rows[metric].to_numpy(), color=colors[run], ls=_SPLIT_STYLES[split],
                    lw=1.5)
        set_step_scale(ax, history["step"].to_numpy())
        if metric == "loss" and (history["loss"].dropna() > 0).all():
            ax.set_yscale("log")
        ax.set_ylabel("accuracy (fraction)" if metric == "accuracy" else "loss")
        ax.grid(alpha=0.3)
    panels[-1].set_xlabel("training step (log scale)")
    panels[0].set_title("Training curves")
    _legend(panels[0], colors, {s: _SPLIT_STYLES[s] for s in splits})
    return fig


def plot_runs_by_layer(
    table: pd.DataFrame, value: str, ylabel: str, title: str, kind: str | None = None, ax: Axes | None = None
) -> Figure:
    """One quantity by layer for several runs: colour by run, line style by ``kind`` (a column such as
    ``method``: L-map solid, LP dashed) when given.

    ``table`` holds ``run, layer, <value>`` (and ``kind``), one row per run, layer (and kind).
    """
    require_columns(table, ["run", "layer", value, *([kind] if kind else [])], "plot_runs_by_layer")
    fig, ax = single_axes(ax, (6.8, 4.2))
    colors = _run_colors(list(pd.unique(table["run"])))
    kinds = list(pd.unique(table[kind])) if kind else [None]
    styles = {str(k): _KIND_STYLES[i % len(_KIND_STYLES)] for i, k in enumerate(kinds)}
    for keys, rows in table.groupby(["run", *([kind] if kind else [])], sort=False):
        run = keys[0]
        style = styles[str(keys[1])] if kind else "-"
        rows = rows.sort_values("layer")
        ax.plot(rows["layer"].to_numpy(), rows[value].to_numpy(), color=colors[run], ls=style, lw=1.5, marker="o",
                ms=3)
    integer_layer_axis(ax, table["layer"])
    ax.set_xlabel("layer")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    _legend(ax, colors, styles if kind else {})
    return fig
