"""Per-layer figures: pruning accuracy, RPD curves and summaries, neuron modes, class geometry.

Each function takes the table an analysis function returned (see docs/quantities.md), draws it, and returns the Figure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from netdyn.analysis.network import EFFECTIVE_TOLERANCE, is_effective
from netdyn.errors import ConfigError
from netdyn.plots._base import (
    SequentialPalette,
    filter_values,
    integer_layer_axis,
    new_figure,
    require_columns,
    require_unique,
    single_axes,
    stacked_axes,
)

_ACCURACY_COLUMNS = ["layer", "split", "accuracy"]
# Fixed colours so that the modes read the same in every figure.
MODE_COLORS = {"opm": "#3b75af", "npm": "#ef8636", "inactive": "#c7c7c7"}
_MODE_LABELS = {"opm": "OPM (order-preserving)", "npm": "NPM (non-order-preserving)", "inactive": "inactive"}


def _network_accuracy(value: float | Mapping | pd.DataFrame | None, split: str, func: str) -> float | None:
    """The network's accuracy on ``split``, from a number, a {split: accuracy} dict or a split table."""
    if value is None:
        return None
    if isinstance(value, pd.DataFrame):
        require_columns(value, ["split", "accuracy"], func, "network_accuracy")
        rows = value.loc[value["split"] == split, "accuracy"]
        if len(rows) != 1:
            raise ConfigError(
                f"{func}: network_accuracy needs exactly one row with split={split!r}, has {len(rows)}"
            )
        return float(rows.iloc[0])
    if isinstance(value, Mapping):
        if split not in value:
            raise ConfigError(
                f"{func}: network_accuracy has no {split!r} entry (keys: {', '.join(map(str, value))})"
            )
        return float(value[split])
    return float(value)


def plot_layer_accuracy(
    lmap: pd.DataFrame | None,
    lp: pd.DataFrame | None,
    network_accuracy: float | Mapping[str, float] | pd.DataFrame | None = None,
    split: str = "test",
    ax: Axes | None = None,
    tolerance: float = EFFECTIVE_TOLERANCE,
) -> Figure:
    """Accuracy of L-map and LP pruning by layer beside the network's: the paper's "standard structure".

    ``lmap`` and ``lp`` are ``lmap_accuracy`` / ``lp_accuracy`` tables (``layer, split, accuracy``; either may
    be None); ``network_accuracy`` is a number, a ``{split: accuracy}`` dict or a table with ``split,
    accuracy``. Layer 0 is the input. A filled marker shows a layer where pruning is effective: accuracy at
    least the network's minus ``tolerance`` (see docs/quantities.md#l-map), the shaded band below the network's line.
    """
    func = "plot_layer_accuracy"
    if lmap is None and lp is None:
        raise ConfigError(f"{func}: give at least one of lmap and lp")
    fig, ax = single_axes(ax)
    network = _network_accuracy(network_accuracy, split, func)
    handles: list = []
    if network is not None:
        handles.append(ax.axhline(network, color="black", ls="--", lw=1.2, label=f"network ({network:.4f})"))
        handles.append(
            ax.axhspan(
                network - tolerance, network, color="0.85", lw=0, zorder=0, label=f"tolerance ({tolerance:g})"
            )
        )
    layers: list[int] = []
    for name, table, marker, color in (("L-map", lmap, "o", "C0"), ("LP", lp, "s", "C1")):
        if table is None:
            continue
        require_columns(table, _ACCURACY_COLUMNS, func, name)
        rows = table[table["split"] == split].sort_values("layer")
        if rows.empty:
            raise ConfigError(f"{func}: the {name} table has no rows with split={split!r}")
        require_unique(rows, ["layer"], func, f"pass one run's {name} table")
        size = 6 if len(rows) <= 25 else 3.5  # deep nets: small markers keep the curve readable
        handles.append(
            ax.plot(
                rows["layer"].to_numpy(),
                rows["accuracy"].to_numpy(),
                marker=marker,
                color=color,
                mfc="white",
                ms=size,
                lw=1.5,
                label=f"{name} pruning",
            )[0]
        )
        if network is not None:
            effective = rows[is_effective(rows["accuracy"], network, tolerance)]
            ax.plot(
                effective["layer"].to_numpy(),
                effective["accuracy"].to_numpy(),
                ls="none",
                marker=marker,
                color=color,
                ms=size + 1,
                label=f"_{name} effective",
            )
        layers.extend(rows["layer"].tolist())
    if network is not None:
        handles.append(
            Line2D([], [], ls="none", marker="o", color="0.3", ms=7, label="filled: pruning effective")
        )
    integer_layer_axis(ax, layers)
    ax.set_xlabel("layer l after which the network is replaced (0 = input)")
    ax.set_ylabel(f"{split} accuracy (fraction)")
    ax.set_title(f"Pruning accuracy by layer ({split} set)")
    ax.grid(alpha=0.3)
    ax.legend(handles=handles, loc="lower right", fontsize="small")
    return fig


def plot_rpd(
    rpd: pd.DataFrame,
    layers: Iterable[int] | None = None,
    ax: Axes | None = None,
    by: str = "layer",
) -> Figure:
    """Rank position distributions: density against normalised rank q, one curve per layer.

    ``rpd`` is an ``rpd`` table (``layer, q, density``). ``layers`` keeps those layers only. ``by`` names the
    column that tells the curves apart (default ``layer``; e.g. ``step`` for an RPD's evolution over training,
    or ``depth`` for one layer across networks, on a table holding those columns). Density piled at small q
    means neurons rank the samples of their own class high; the dashed line is the flat RPD of random order.
    """
    func = "plot_rpd"
    require_columns(rpd, [by, "q", "density"], func, "rpd")
    if layers is not None:
        require_columns(rpd, ["layer"], func, "rpd")
    rows = filter_values(rpd, "layer", layers, func)
    require_unique(rows, [by, "q"], func, f"keep one curve per {by} (filter by run, layer or step first)")
    fig, ax = single_axes(ax)
    palette = SequentialPalette(rows[by], by)
    handles = []
    for value, curve in rows.groupby(by, sort=True):
        curve = curve.sort_values("q")
        (line,) = ax.plot(
            curve["q"].to_numpy(),
            curve["density"].to_numpy(),
            color=palette.color(value),
            lw=1.6,
            label=palette.label(value),
        )
        handles.append(line)
    reference = ax.axhline(1.0, color="0.4", ls="--", lw=1, label="flat (random order)")
    if palette.uses_colorbar:
        handles = []
    palette.finish(fig, ax)
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("normalised rank position q (0 = ranked first)")
    ax.set_ylabel("density of (neuron, sample) pairs")
    ax.set_title("Rank position distribution (RPD)")
    ax.grid(alpha=0.3)
    ax.legend(handles=[*handles, reference], fontsize="small", loc="upper right")
    return fig


def plot_rpd_summary(summary: pd.DataFrame, ax: Axes | Sequence[Axes] | None = None) -> Figure:
    """The RPD gradient (the paper's indicator) and the order index by layer.

    ``summary`` is an ``rpd_summary`` table (``layer, gradient, order_index``). With ``ax`` None the two
    quantities get stacked panels; with one Axes, the order index goes on a twin y axis; with two Axes, one
    each.
    """
    func = "plot_rpd_summary"
    require_columns(summary, ["layer", "gradient", "order_index"], func, "summary")
    require_unique(summary, ["layer"], func, "pass one run's summary")
    rows = summary.sort_values("layer")
    layer = rows["layer"].to_numpy()
    if isinstance(ax, Axes):
        fig, grad_ax = single_axes(ax)
        order_ax, twin = grad_ax.twinx(), True
    else:
        fig, (grad_ax, order_ax) = stacked_axes(ax, 2, (6.4, 5.6), func)
        twin = False
    grad_line = grad_ax.plot(
        layer, rows["gradient"].to_numpy(), marker="o", color="C0", label="RPD gradient"
    )[0]
    order_line = order_ax.plot(
        layer,
        rows["order_index"].to_numpy(),
        marker="s",
        color="C2",
        ls="--" if twin else "-",
        label="order index",
    )[0]
    grad_ax.set_ylabel("RPD gradient\n(−slope of density vs q)")
    order_ax.set_ylabel("order index O\n(0 = random order)")
    grad_ax.set_title("RPD summary by layer")
    for axis in (grad_ax, order_ax):
        integer_layer_axis(axis, layer)
    if twin:
        grad_ax.set_xlabel("layer l")
        grad_ax.axhline(0, color="0.6", lw=0.8)
        grad_ax.grid(alpha=0.3)
        grad_ax.legend(handles=[grad_line, order_line], fontsize="small", loc="best")
    else:
        order_ax.set_xlabel("layer l")
        for axis, line in ((grad_ax, grad_line), (order_ax, order_line)):
            axis.axhline(0, color="0.6", lw=0.8)
            axis.grid(alpha=0.3)
            axis.legend(handles=[line], fontsize="small", loc="best")
    return fig


def plot_neuron_modes(census: pd.DataFrame, ax: Axes | None = None) -> Figure:
    """Stacked bars of the fractions of OPM, NPM and inactive neurons in each layer, and beside them the
    distribution of the order preservation rho that decides them (docs/quantities.md#neuron-modes: rho sits near the
    threshold in trained nets, so the shares move with it; compare distributions across layers).

    ``census`` is a ``neuron_mode_census`` table (``layer, opm, npm, inactive``, and ``rho_mean, rho_q10,
    rho_q25, rho_median, rho_q75`` for the second panel). With ``ax`` given, only the bars are drawn into it.
    """
    func = "plot_neuron_modes"
    modes = list(MODE_COLORS)
    require_columns(census, ["layer", *modes], func, "census")
    require_unique(census, ["layer"], func, "pass one run's census")
    rows = census.sort_values("layer")
    rho_panel = ax is None and all(c in census.columns for c in RHO_COLUMNS)
    if rho_panel:
        fig = new_figure((11.5, 4.2))
        ax, rho_ax = fig.subplots(1, 2, width_ratios=[1.25, 1])
        plot_rho_distribution(rows, ax=rho_ax)
    else:
        fig, ax = single_axes(ax, figsize=(7.2, 4.2))
    layer = rows["layer"].to_numpy()
    bottom = np.zeros(len(rows))
    for mode in modes:
        height = rows[mode].to_numpy(dtype=float)
        ax.bar(
            layer,
            height,
            bottom=bottom,
            width=0.8,
            color=MODE_COLORS[mode],
            edgecolor="white",
            lw=0.5 if len(rows) <= 40 else 0,
            label=_MODE_LABELS[mode],
        )
        bottom = bottom + height
    integer_layer_axis(ax, layer)
    ax.set_ylim(0, 1)
    ax.set_xlabel("layer l")
    ax.set_ylabel("fraction of the layer's neurons")
    ax.set_title("Neuron modes by layer")
    ax.legend(
        loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", title="mode", title_fontsize="small"
    )
    return fig


RHO_COLUMNS = ["rho_mean", "rho_q10", "rho_q25", "rho_median", "rho_q75"]


def plot_rho_distribution(census: pd.DataFrame, ax: Axes | None = None, threshold: float = 0.9) -> Figure:
    """The distribution of the order preservation rho over each layer's neurons: the 10-75 % and 25-75 %
    quantile bands, the median and the mean, with the OPM threshold; from a ``neuron_mode_census`` table."""
    func = "plot_rho_distribution"
    require_columns(census, ["layer", *RHO_COLUMNS], func, "census")
    require_unique(census, ["layer"], func, "pass one run's census")
    rows = census.sort_values("layer")
    fig, ax = single_axes(ax, figsize=(6.2, 4.2))
    layer = rows["layer"].to_numpy()
    ax.fill_between(layer, rows["rho_q10"], rows["rho_q75"], color="C0", alpha=0.15, lw=0, label="10-75 %")
    ax.fill_between(layer, rows["rho_q25"], rows["rho_q75"], color="C0", alpha=0.3, lw=0, label="25-75 %")
    ax.plot(layer, rows["rho_median"], color="C0", lw=1.8, marker="o", ms=3, label="median")
    ax.plot(layer, rows["rho_mean"], color="C1", lw=1.2, ls="--", label="mean")
    ax.axhline(threshold, color="0.3", ls=":", lw=1.2, label=f"OPM threshold ({threshold:g})")
    integer_layer_axis(ax, layer)
    ax.set_ylim(min(0.0, float(np.nanmin(rows["rho_q10"])) - 0.02), 1.02)
    ax.set_xlabel("layer l")
    ax.set_ylabel("order preservation rho = |gamma|")
    ax.set_title("Order preservation by layer")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="lower right")
    return fig


def plot_class_geometry(
    geometry: pd.DataFrame, per_sample: pd.DataFrame | None = None, ax: Axes | None = None
) -> Figure:
    """Cosine distance of samples to their class centre, and similarity between class centres, by layer.

    ``geometry`` is a ``class_geometry`` table (``layer, cos_dist_mean, cos_dist_q25, cos_dist_q75,
    centre_similarity``): the mean distance with its interquartile band, and the mean pairwise cosine
    similarity of the centres. ``per_sample`` (``layer, sample, label, cos_dist``) adds one thin grey line per
    sample, as in the paper's Fig. 3(e, f).
    """
    func = "plot_class_geometry"
    require_columns(
        geometry,
        ["layer", "cos_dist_mean", "cos_dist_q25", "cos_dist_q75", "centre_similarity"],
        func,
        "geometry",
    )
    require_unique(geometry, ["layer"], func, "pass one run's geometry table")
    rows = geometry.sort_values("layer")
    fig, ax = single_axes(ax)
    handles: list[Artist] = []
    layers = rows["layer"].tolist()
    if per_sample is not None:
        require_columns(per_sample, ["layer", "sample", "label", "cos_dist"], func, "per_sample")
        require_unique(per_sample, ["sample", "layer"], func, "pass one run's per-sample table")
        segments = [
            np.column_stack([g["layer"].to_numpy(float), g["cos_dist"].to_numpy(float)])
            for _, g in per_sample.sort_values(["sample", "layer"]).groupby("sample", sort=True)
        ]
        classes = ", ".join(str(c) for c in sorted(per_sample["label"].unique().tolist()))
        noun = "class" if per_sample["label"].nunique() == 1 else "classes"
        lines = LineCollection(
            segments,
            colors="0.55",
            linewidths=0.6,
            alpha=0.5,
            zorder=1,
            label=f"single samples ({noun} {classes}, n = {len(segments)})",
        )
        ax.add_collection(lines)
        handles.append(lines)
        layers.extend(per_sample["layer"].tolist())
    layer = rows["layer"].to_numpy()
    band = ax.fill_between(
        layer,
        rows["cos_dist_q25"].to_numpy(float),
        rows["cos_dist_q75"].to_numpy(float),
        color="C0",
        alpha=0.25,
        lw=0,
        zorder=2,
        label="distance: interquartile range",
    )
    mean = ax.plot(
        layer,
        rows["cos_dist_mean"].to_numpy(),
        marker="o",
        color="C0",
        lw=2,
        zorder=3,
        label="distance to own class centre (mean)",
    )[0]
    centre = ax.plot(
        layer,
        rows["centre_similarity"].to_numpy(),
        marker="s",
        color="C3",
        ls="--",
        lw=1.6,
        zorder=3,
        label="similarity between class centres (mean)",
    )[0]
    handles = [mean, band, *handles, centre]
    ax.autoscale_view()
    integer_layer_axis(ax, layers)
    ax.set_xlabel("layer l")
    ax.set_ylabel("cosine distance (1 − cos) / cosine similarity")
    ax.set_title("Class geometry by layer")
    ax.grid(alpha=0.3)
    ax.legend(handles=handles, fontsize="small", loc="best")
    return fig
