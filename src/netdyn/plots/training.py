"""Figures over training time: the training history and any per-layer quantity's evolution."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from netdyn.errors import ConfigError
from netdyn.plots._base import (
    RGBA,
    SequentialPalette,
    filter_values,
    require_columns,
    require_unique,
    set_step_scale,
    single_axes,
    stacked_axes,
)

_SPLIT_COLORS = {"train": "C0", "test": "C1"}
_LINESTYLES = ["-", "--", ":", "-."]
_X_LABELS = {"step": "training step", "epoch": "epoch", "wall_time": "wall time (s)"}
_METRIC_LABELS = {"accuracy": "accuracy (fraction)", "loss": "loss"}


def _x_label(x: str, log: bool) -> str:
    label = _X_LABELS.get(x, x.replace("_", " "))
    return f"{label} (log scale)" if log else label


def _ordered(values: Iterable, first: Sequence[str]) -> list:
    """Unique values, the ones named in ``first`` leading in that order, the rest sorted."""
    unique = pd.unique(pd.Series(list(values))).tolist()
    return [v for v in first if v in unique] + sorted(v for v in unique if v not in first)


class _CurveStyles:
    """How :func:`plot_training` tells its curves apart: colour by split and line style by BN mode, or, with a
    palette (``by``), colour by run and line style by split."""

    def __init__(self, splits: list, bn_modes: list, palette: SequentialPalette | None) -> None:
        self.splits, self.bn_modes, self.palette = splits, bn_modes, palette
        self.color_of: dict[str, str] = {}
        if palette is None:
            self.color_of = {s: _SPLIT_COLORS.get(s, f"C{i + 2}") for i, s in enumerate(splits)}
            self.style_of = {m: _LINESTYLES[i % len(_LINESTYLES)] for i, m in enumerate(bn_modes)}
        else:
            self.style_of = {s: ("-" if s == "test" else "--" if s == "train" else ":") for s in splits}

    def line(self, group: tuple) -> tuple[RGBA | str, str, str]:
        """(colour, line style, label) of the curve of one group: ``(split, bn_mode)`` or ``(value, split,
        bn_mode)`` with a palette."""
        if self.palette is None:
            split, bn_mode = group
            label = split if len(self.bn_modes) == 1 else f"{split}, BN {bn_mode}"
            return self.color_of[split], self.style_of[bn_mode], label
        value, split, _ = group
        return self.palette.color(value), self.style_of[split], f"{self.palette.label(value)}, {split}"

    def handles(self) -> list[Line2D]:
        """The legend's entries."""
        if self.palette is None:
            handles = [Line2D([], [], color=self.color_of[s], lw=2, label=s) for s in self.splits]
            if len(self.bn_modes) > 1:
                handles += [
                    Line2D([], [], color="0.3", ls=self.style_of[m], lw=1.5, label=f"BN {m} statistics")
                    for m in self.bn_modes
                ]
            return handles
        handles = [Line2D([], [], color="0.3", ls=self.style_of[s], lw=1.5, label=s) for s in self.splits]
        if not self.palette.uses_colorbar:
            palette = self.palette
            handles += [Line2D([], [], color=palette.color(v), lw=2, label=palette.label(v)) for v in palette.values]
        return handles


def plot_training(
    history: pd.DataFrame,
    ax: Axes | Sequence[Axes] | None = None,
    x: str = "step",
    metrics: Sequence[str] = ("accuracy", "loss"),
    by: str | None = None,
) -> Figure:
    """Training curves: one panel per metric (accuracy, loss) against the step on a log axis.

    ``history`` is the training history table (``step, epoch, wall_time, split, bn_mode, loss, accuracy``, one
    row per evaluation of a split). Colour tells train from test and the line style the BN evaluation mode
    (``running`` solid, ``batch`` dashed). With ``by`` (a column such as ``depth`` on a concatenation of
    runs), colour tells the runs apart instead, along a sequential colormap, and the line style tells train
    from test. ``x`` may be ``step``, ``epoch`` or ``wall_time``. ``ax`` is an Axes or a sequence of one per
    metric. The loss panel has a log y axis when every loss is positive.
    """
    func = "plot_training"
    metrics = list(metrics)
    if not metrics:
        raise ConfigError(f"{func}: metrics is empty")
    require_columns(history, [x, "split", *metrics, *([by] if by else [])], func, "history")
    table = history.copy()
    if "bn_mode" not in table.columns:
        table["bn_mode"] = "none"
    table["bn_mode"] = table["bn_mode"].astype(object).where(table["bn_mode"].notna(), "none")
    splits = _ordered(table["split"], ["train", "test"])
    bn_modes = _ordered(table["bn_mode"], ["none", "running", "batch"])
    if by is not None and len(bn_modes) > 1:
        raise ConfigError(f"{func}: with by={by!r}, keep one bn_mode (the table has {', '.join(bn_modes)})")
    keys = [*([by] if by else []), "split", "bn_mode", x]
    require_unique(table, keys, func, f"one row per ({', '.join(keys[:-1])}) and {x} is expected")
    fig, axes = stacked_axes(ax, len(metrics), (6.8, 3.0 * len(metrics) + 0.6), func)

    palette = SequentialPalette(table[by], by) if by else None
    styles = _CurveStyles(splits, bn_modes, palette)
    for metric, axis in zip(metrics, axes, strict=True):
        for group, rows in table.groupby([*([by] if by else []), "split", "bn_mode"], sort=False):
            rows = rows.sort_values(x)
            color, style, label = styles.line(group)
            axis.plot(
                rows[x].to_numpy(),
                rows[metric].to_numpy(),
                color=color,
                ls=style,
                lw=1.5,
                marker=".",
                ms=3,
                label=label,
            )
        set_step_scale(axis, table[x].to_numpy())
        if metric == "loss" and (table[metric].dropna() > 0).all():
            axis.set_yscale("log")
        axis.set_ylabel(_METRIC_LABELS.get(metric, metric.replace("_", " ")))
        axis.grid(alpha=0.3, which="major")
    axes[-1].set_xlabel(_x_label(x, log=True))
    axes[0].set_title("Training curves")

    if palette is not None:
        for axis in axes:
            palette.finish(fig, axis)
    axes[0].legend(handles=styles.handles(), fontsize="small", loc="best")
    return fig


def plot_evolution(
    table: pd.DataFrame,
    value: str,
    ax: Axes | None = None,
    layers: Iterable[int] | None = None,
    x: str = "step",
    ylabel: str | None = None,
    logx: bool = True,
) -> Figure:
    """A per-layer quantity over training: one line per layer against the step (log axis).

    ``table`` has the columns ``step, layer, <value>`` (e.g. RPD summaries or L-map accuracies recorded at
    several checkpoints, concatenated with a ``step`` column); filter it to one split or run first. ``layers``
    keeps those layers only; ``x`` names the time column; ``ylabel`` overrides the y label (default:
    ``value``).
    """
    func = "plot_evolution"
    require_columns(table, [x, "layer", value], func)
    rows = filter_values(table, "layer", layers, func)
    require_unique(rows, [x, "layer"], func, "filter the table to one split / run first")
    fig, ax = single_axes(ax, figsize=(6.8, 4.2))
    palette = SequentialPalette(rows["layer"], "layer")
    handles = []
    for layer, curve in rows.groupby("layer", sort=True):
        curve = curve.sort_values(x)
        handles.append(
            ax.plot(
                curve[x].to_numpy(),
                curve[value].to_numpy(),
                color=palette.color(layer),
                lw=1.5,
                marker=".",
                ms=3,
                label=palette.label(layer),
            )[0]
        )
    if logx:
        set_step_scale(ax, rows[x].to_numpy(dtype=float))
    ax.set_xlabel(_x_label(x, log=logx))
    label = ylabel or value.replace("_", " ")
    ax.set_ylabel(label)
    ax.set_title(f"{label[:1].upper()}{label[1:]} during training, by layer")
    ax.grid(alpha=0.3)
    if palette.uses_colorbar:
        palette.finish(fig, ax)
    else:
        ax.legend(handles=handles, fontsize="small", loc="best", ncols=2 if len(handles) > 4 else 1)
    return fig
