"""Figures of the pruning reproductions (paper Figs. 9 and 10): LP and L-map pruning curves over a grid of
network sizes, where pruning becomes effective as depth grows, and L-map pruning accuracy over training.

Like every figure function of ``netdyn.plots``, each takes tidy tables, an optional ``ax`` (here a grid or a
sequence of Axes), and returns the Figure; nothing here computes a quantity. Import them from this module:
``from netdyn.plots.pruning import plot_pruning_grid``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from netdyn.analysis.network import EFFECTIVE_TOLERANCE
from netdyn.errors import ConfigError
from netdyn.plots._base import (
    SequentialPalette,
    filter_values,
    format_value,
    new_figure,
    require_columns,
    require_unique,
    root_figure,
    set_step_scale,
    single_axes,
    stacked_axes,
)
from netdyn.plots.layers import plot_layer_accuracy

_ACCURACY = ["layer", "split", "accuracy"]


def _grid_axes(
    axes: Sequence[Axes] | np.ndarray | None, n_rows: int, n_cols: int, func: str
) -> tuple[Figure, np.ndarray]:
    if axes is None:
        fig = new_figure((2.9 * n_cols + 0.6, 2.3 * n_rows + 0.9))
        return fig, np.asarray(fig.subplots(n_rows, n_cols, squeeze=False, sharex="col"))
    grid = np.asarray(axes, dtype=object).reshape(-1)
    if grid.size != n_rows * n_cols:
        raise ConfigError(f"{func}: needs {n_rows} x {n_cols} Axes here, got {grid.size}")
    return root_figure(grid[0]), grid.reshape(n_rows, n_cols)


def lmap_in_front(ax: Axes) -> None:
    """Draw the L-map curve of a ``plot_layer_accuracy`` Axes above the LP's: where both are effective the LP
    squares would hide the L-map's filled circles."""
    for line in ax.get_lines():
        if line.get_label() in ("L-map pruning", "_L-map effective"):
            line.set_zorder(line.get_zorder() + 1)


def plot_pruning_grid(
    lmap: pd.DataFrame,
    lp: pd.DataFrame | None,
    network: pd.DataFrame,
    rows: str = "width",
    cols: str = "depth",
    split: str = "test",
    axes: Sequence[Axes] | np.ndarray | None = None,
    tolerance: float = EFFECTIVE_TOLERANCE,
) -> Figure:
    """LP and L-map pruning accuracy by layer for a grid of networks: one panel per (``rows``, ``cols``) pair.

    ``lmap`` and ``lp`` are ``lmap_accuracy`` / ``lp_accuracy`` tables of several networks stacked, with the
    columns ``rows`` and ``cols`` (e.g. ``width`` and ``depth``) telling the networks apart; ``network`` holds
    each network's own accuracy (``rows, cols, split, accuracy``). Keep one network per pair (filter by variant
    and seed first). Each panel is :func:`netdyn.plots.plot_layer_accuracy`: filled markers where pruning is
    effective; a pair with no network leaves its panel empty. ``axes`` is a grid of Axes (rows x columns).
    """
    func = "plot_pruning_grid"
    require_columns(lmap, [rows, cols, *_ACCURACY], func, "lmap")
    if lp is not None:
        require_columns(lp, [rows, cols, *_ACCURACY], func, "lp")
    require_columns(network, [rows, cols, "split", "accuracy"], func, "network")
    require_unique(network, [rows, cols, "split"], func, "keep one network per panel (filter variant, seed)")
    row_values = sorted(pd.unique(lmap[rows]).tolist())
    col_values = sorted(pd.unique(lmap[cols]).tolist())
    fig, grid = _grid_axes(axes, len(row_values), len(col_values), func)
    legend = None
    for i, r in enumerate(row_values):
        for j, c in enumerate(col_values):
            ax = grid[i, j]
            pick = (lmap[rows] == r) & (lmap[cols] == c)
            if not pick.any():
                ax.set_axis_off()
                continue
            lp_part = None if lp is None else lp[(lp[rows] == r) & (lp[cols] == c)]
            net = network[(network[rows] == r) & (network[cols] == c)]
            plot_layer_accuracy(
                lmap[pick], lp_part if lp_part is not None and len(lp_part) else None,
                net if len(net) else None, split=split, ax=ax, tolerance=tolerance,
            )
            lmap_in_front(ax)
            if legend is None and ax.get_legend() is not None:
                legend = ax.get_legend()
                handles = legend.legend_handles
                labels = ["network's own accuracy" if t.get_text().startswith("network (") else t.get_text()
                          for t in legend.get_texts()]
            if ax.get_legend() is not None:
                ax.get_legend().remove()
            ax.set_title(f"{cols} {format_value(c)}, {rows} {format_value(r)}", fontsize="medium")
            ax.set_xlabel("layer l" if i == len(row_values) - 1 else "")
            ax.set_ylabel(f"{split} accuracy" if j == 0 else "")
    if legend is not None:
        fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize="small")
    fig.suptitle(f"LP and L-map pruning by layer ({split} set; layer 0 = input)")
    return fig


def plot_effective_layers(
    structure: pd.DataFrame,
    x: str = "depth",
    hue: str = "width",
    by: str = "variant",
    axes: Sequence[Axes] | None = None,
) -> Figure:
    """Where pruning becomes effective, relative to the depth, across network sizes: one panel per ``by``
    value (plain, residual), ``x`` on the horizontal axis (log scale) and one colour per ``hue`` value.

    ``structure`` has the columns ``x, hue, by, depth, lmap_effective_from, lp_effective_from,
    standard_structure``: the first layers from which on L-map and LP pruning are effective (``effective_layer``
    with ``rule="from"``; NaN: never before the output) and whether the network has the standard structure.
    The y axis is layer / depth: 1 is the last hidden layer (no linear tail), smaller values a longer tail. L-map
    points are filled where the standard structure holds. Each ``hue`` is drawn slightly to the side of its
    ``x`` so that coinciding points stay visible.
    """
    func = "plot_effective_layers"
    needed = list(dict.fromkeys([x, hue, by, "depth", "lmap_effective_from", "lp_effective_from",
                                 "standard_structure"]))
    require_columns(structure, needed, func, "structure")
    require_unique(structure, list(dict.fromkeys([x, hue, by])), func, "keep one row per network (filter seed)")
    panels = sorted(pd.unique(structure[by]).tolist())
    if axes is None:
        fig = new_figure((5.0 * len(panels) + 0.8, 4.3))
        axs = list(fig.subplots(1, len(panels), squeeze=False, sharey=True)[0])
    else:
        axs = [axes] if isinstance(axes, Axes) else list(axes)
        if len(axs) != len(panels):
            raise ConfigError(f"{func}: needs {len(panels)} Axes here (one per {by}), got {len(axs)}")
        fig = root_figure(axs[0])
    palette = SequentialPalette(structure[hue], hue)
    n_hues = len(palette.values)
    for ax, panel in zip(axs, panels, strict=True):
        rows = structure[structure[by] == panel]
        for value, part in rows.groupby(hue, sort=True):
            part = part.sort_values(x)
            depth = part["depth"].to_numpy(float)
            color = palette.color(value)
            # each hue a little to the side on the log axis, so coinciding points stay visible
            shift = 2.0 ** (0.06 * (palette.values.index(value) - (n_hues - 1) / 2))
            where = part[x].to_numpy(float) * shift
            lmap = part["lmap_effective_from"].to_numpy(float, na_value=np.nan) / depth
            lp = part["lp_effective_from"].to_numpy(float, na_value=np.nan) / depth
            ax.plot(where, lmap, color=color, lw=1.6, label=f"L-map, {palette.label(value)}")
            ax.plot(where, lp, color=color, lw=1.2, ls="--", marker="s", ms=5, mfc="white",
                    label=f"LP, {palette.label(value)}")
            holds = part["standard_structure"].to_numpy(bool)
            ax.plot(where[holds], lmap[holds], ls="none", marker="o", ms=7, color=color,
                    label=f"_holds {value}")
            ax.plot(where[~holds], lmap[~holds], ls="none", marker="o", ms=7, mfc="white", color=color,
                    label=f"_fails {value}")
        ax.axhline(1.0, color="0.4", ls=":", lw=1)
        ax.set_xscale("log", base=2)
        values = sorted(pd.unique(rows[x]).tolist())
        ax.set_xticks(values, [format_value(v) for v in values])
        ax.minorticks_off()
        ax.set_ylim(-0.03, 1.08)
        ax.set_xlabel(x)
        ax.set_title(f"{by} {panel}" if by != "variant" else str(panel))
        ax.grid(alpha=0.3)
    axs[0].set_ylabel("first effective layer / depth\n(1 = last hidden layer: no linear tail)")
    handles = [
        Line2D([], [], color="0.3", lw=1.6, marker="o", label="L-map pruning effective from"),
        Line2D([], [], color="0.3", lw=1.2, ls="--", marker="s", mfc="white", label="LP pruning effective from"),
        Line2D([], [], color="0.3", ls="none", marker="o", ms=7, label="filled: standard structure holds"),
        Line2D([], [], color="0.3", ls="none", marker="o", ms=7, mfc="white", label="hollow: it does not"),
        *[Line2D([], [], color=palette.color(v), lw=2, label=palette.label(v)) for v in palette.values],
    ]
    fig.legend(handles=handles, fontsize="small", loc="outside right center")
    fig.suptitle("Where LP and L-map pruning become effective (test set)")
    return fig


def plot_lmap_training(
    lmap: pd.DataFrame,
    history: pd.DataFrame,
    layers: Iterable[int] | None = None,
    network: pd.DataFrame | None = None,
    grokking_step: float | None = None,
    split: str = "train",
    tail: pd.DataFrame | None = None,
    chance_until: float | None = None,
    axes: Sequence[Axes] | None = None,
    bn_mode: str = "running",
) -> Figure:
    """L-map pruning accuracy of chosen layers over training beside the training accuracy (top) and the
    network's accuracy (middle), with the grokking point marked (paper Fig. 10); with ``tail``, a third panel
    shows where the linear tail starts at each checkpoint.

    ``lmap`` is an ``lmap_accuracy`` table over checkpoints (``step, layer, split, accuracy``) of one run;
    ``history`` its training history (``step, split, bn_mode, accuracy``); ``network`` optionally the
    network's own accuracy at the same checkpoints (``step, split, accuracy``: running statistics, the ones
    the L-map folds in); ``tail`` optionally ``step, lmap_effective_from`` (the first layer from which on L-map
    pruning is effective). ``chance_until`` shades the steps before it: before the network's accuracy has
    risen, near chance, where every L-map agrees with it trivially; the tail is drawn from it on only (where it
    is defined; ``inf``: the network never rises). ``layers`` keeps those layers; ``split`` is the set the L-map
    is scored on. ``axes``: two Axes, three with ``tail``. ``bn_mode`` names the BN statistics the L-map and
    ``network`` were computed with ("running", or "batch": the training set's own, ``AnalysisConfig.bn_mode``).
    """
    func = "plot_lmap_training"
    rows = _lmap_training_rows(lmap, history, layers, split, tail, func)
    n = 2 if tail is None else 3
    fig, panels = stacked_axes(axes, n, (7.6, 3.3 * n + 0.6), func)
    top, bottom = panels[0], panels[1]
    palette = SequentialPalette(rows["layer"], "layer")
    handles: list[Artist] = []
    for layer, curve in rows.groupby("layer", sort=True):
        curve = curve.sort_values("step")
        handles.append(top.plot(curve["step"], curve["accuracy"], color=palette.color(layer), lw=1.4,
                                marker=".", ms=3, label=f"L-map, {palette.label(layer)}")[0])
    hist = history.copy()
    if "bn_mode" not in hist.columns:
        hist["bn_mode"] = "running"
    reference = _accuracy_references(top, network, hist, split, func, bn_mode)
    _history_panel(bottom, hist)
    if tail is not None:
        _tail_panel(panels[2], tail, rows, split, chance_until)
    reference += _mark_training_steps(panels, chance_until, grokking_step, bn_mode)
    steps = np.concatenate([rows["step"].to_numpy(float), hist["step"].to_numpy(float)])
    for ax in panels:
        set_step_scale(ax, steps)
        ax.set_xlim(max(0.0, steps.min()), steps.max() * 1.15)
        ax.grid(alpha=0.3)
    for ax in (top, bottom):
        ax.set_ylim(-0.02, 1.02)
    if palette.uses_colorbar:
        palette.finish(fig, top)
        handles = []
    top.legend(handles=[*handles, *reference], fontsize="x-small", loc="upper left")
    top.set_ylabel(f"{split} accuracy (fraction)")
    top.set_title(f"L-map pruning accuracy on the {split} set during training")
    bottom.legend(fontsize="x-small", loc="upper left")
    bottom.set_ylabel("accuracy (fraction)")
    bottom.set_title("Network accuracy (history)")
    if tail is not None:
        panels[2].legend(fontsize="x-small", loc="upper left")
    panels[-1].set_xlabel("training step (log scale)")
    return fig


_BN_MODE_STYLES = {"running": "-", "batch": "--"}
_BN_MODE_WORDS = {"running": "running statistics", "batch": "batch statistics"}


def _lmap_training_rows(
    lmap: pd.DataFrame,
    history: pd.DataFrame,
    layers: Iterable[int] | None,
    split: str,
    tail: pd.DataFrame | None,
    func: str,
) -> pd.DataFrame:
    """The checked input of :func:`plot_lmap_training`: the L-map rows of ``split`` and ``layers``."""
    require_columns(lmap, ["step", *_ACCURACY], func, "lmap")
    require_columns(history, ["step", "split", "accuracy"], func, "history")
    rows = filter_values(lmap[lmap["split"] == split], "layer", layers, func)
    if rows.empty:
        raise ConfigError(f"{func}: the lmap table has no rows with split={split!r}")
    require_unique(rows, ["step", "layer"], func, "pass one run's table")
    if tail is not None:
        require_columns(tail, ["step", "lmap_effective_from"], func, "tail")
        require_unique(tail, ["step"], func, "pass one run's tail table")
    return rows


def _by_bn_mode(hist: pd.DataFrame, split: str) -> Iterator[tuple[str, pd.DataFrame, str]]:
    """``(line style, rows, words)`` of each BN mode's history rows of ``split`` (sorted by step), modes in
    sorted order."""
    rows = hist[hist["split"] == split]
    for bn_mode, part in rows.groupby("bn_mode", sort=True):
        mode = str(bn_mode)
        yield _BN_MODE_STYLES.get(mode, ":"), part.sort_values("step"), _BN_MODE_WORDS.get(mode, mode)


def _accuracy_references(
    top: Axes, network: pd.DataFrame | None, hist: pd.DataFrame, split: str, func: str, bn_mode: str = "running"
) -> list[Artist]:
    """The network's accuracy on ``split`` over the L-map curves: at the checkpoints (``network``, if given)
    and in the history, one line per BN mode."""
    reference: list[Artist] = []
    if network is not None:
        require_columns(network, ["step", "split", "accuracy"], func, "network")
        net = network[network["split"] == split].sort_values("step")
        require_unique(net, ["step"], func, "pass one run's network table")
        reference.append(top.plot(net["step"], net["accuracy"], color="black", lw=2.2, alpha=0.35,
                                  label=f"network {split} accuracy (checkpoints, {_BN_MODE_WORDS[bn_mode]})")[0])
    for style, part, words in _by_bn_mode(hist, split):
        reference.append(top.plot(part["step"], part["accuracy"], color="black", lw=1.0, ls=style,
                                  label=f"{split} accuracy ({words})")[0])
    return reference


def _history_panel(ax: Axes, hist: pd.DataFrame) -> None:
    """The network's test and training accuracy over training, one line per BN mode."""
    for style, part, words in _by_bn_mode(hist, "test"):
        ax.plot(part["step"], part["accuracy"], color="C1", lw=1.5, ls=style, marker=".", ms=3,
                label=f"test accuracy ({words})")
    for style, part, words in _by_bn_mode(hist, "train"):
        ax.plot(part["step"], part["accuracy"], color="C0", lw=1.0, ls=style, label=f"train accuracy ({words})")


def _tail_panel(ax: Axes, tail: pd.DataFrame, rows: pd.DataFrame, split: str, defined_from: float | None) -> None:
    """Where the linear tail starts at each checkpoint (the first layer from which L-map pruning is
    effective), drawn from ``defined_from`` on: before the network's rise every L-map agrees with a net at chance
    and the tail would read "from layer 0"."""
    part = tail.sort_values("step")
    start = part["lmap_effective_from"].astype(float)
    note = ""
    if defined_from is not None and np.isinf(defined_from):
        start = start.where(part["step"] > np.inf)
        note = "\n(undefined throughout: the network's accuracy never rises from chance)"
    elif defined_from is not None and np.isfinite(defined_from):
        start = start.where(part["step"] >= defined_from)
        note = (f"\n(drawn from the network's half-rise on, step {format_value(defined_from)}: before it the "
                "network has not covered half its rise, and the tail is not read)")
    ax.plot(part["step"], start, color="C2", marker="o", ms=3,
            lw=1.4, drawstyle="steps-post", label=f"first layer of the linear tail ({split} set)")
    top_layer = max(float(rows["layer"].max()), float(np.nanmax(start)) if start.notna().any() else 0.0)
    ax.set_ylim(-0.5, top_layer + 1)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("L-map effective\nfrom layer")
    ax.set_title(f"Where the linear tail starts (L-map within {EFFECTIVE_TOLERANCE:g} of the network){note}",
                 fontsize="medium")


def _mark_training_steps(
    panels: Sequence[Axes], chance_until: float | None, grokking_step: float | None, bn_mode: str = "running"
) -> list[Artist]:
    """Shade the steps before ``chance_until`` and mark the grokking point on every panel; the legend
    entries (one of each)."""
    marks: list[Artist] = []
    if chance_until is not None and not np.isnan(chance_until):
        for ax in panels:
            shade = ax.axvspan(0, min(chance_until, 1e15), color="0.9", lw=0, zorder=0,
                               label=f"before the network's rise ({_BN_MODE_WORDS[bn_mode]})")
        marks.append(shade)
    if grokking_step is not None and np.isfinite(grokking_step):
        for ax in panels:
            line = ax.axvline(grokking_step, color="C3", lw=1.2, ls="-.",
                              label=f"grokking point (step {format_value(grokking_step)})")
        marks.append(line)
    return marks

def plot_by_size(
    table: pd.DataFrame,
    value: str,
    x: str = "depth",
    hue: str = "width",
    by: str = "variant",
    ylabel: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """One number per network against its size: ``value`` against ``x`` (log scale), one colour per ``hue``
    value and one line style per ``by`` value (plain solid, residual dashed), e.g. the test accuracy of a depth
    x width grid. ``table`` has one row per network (``x, hue, by, value``)."""
    func = "plot_by_size"
    keys = list(dict.fromkeys([x, hue, by]))
    require_columns(table, [*keys, value], func)
    require_unique(table, keys, func, "keep one row per network (filter seed)")
    fig, ax = single_axes(ax, figsize=(6.4, 4.3))
    palette = SequentialPalette(table[hue], hue)
    groups = sorted(pd.unique(table[by]).tolist())
    styles = {g: ("-", "--", ":", "-.")[i % 4] for i, g in enumerate(groups)}
    markers = {g: ("o", "s", "^", "D")[i % 4] for i, g in enumerate(groups)}
    for (group, level), rows in table.groupby([by, hue], sort=True):
        rows = rows.sort_values(x)
        ax.plot(rows[x], rows[value], color=palette.color(level), ls=styles[group], marker=markers[group],
                ms=5, lw=1.5, label=f"{group}, {palette.label(level)}")
    ax.set_xscale("log", base=2)
    values = sorted(pd.unique(table[x]).tolist())
    ax.set_xticks(values, [format_value(v) for v in values])
    ax.minorticks_off()
    ax.set_xlabel(x)
    label = ylabel or value.replace("_", " ")
    ax.set_ylabel(label)
    ax.set_title(f"{label[:1].upper()}{label[1:]} by {x} and {hue}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best", ncols=2 if len(ax.get_lines()) > 4 else 1)
    return fig
