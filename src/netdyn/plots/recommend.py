"""The figure of ``netdyn recommend``: the evidence table of a depth x width sweep in four panels.

(a) test accuracy against depth, one line per width; (b) the L-map's effective layer against depth (below the
diagonal, a linear tail could be pruned); (c) the sample-basin size against depth; (d) the sample- and
weight-basin sizes against width, one line per depth. Error bars are one seed standard deviation; the criteria
of the summary, where given, are marked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from netdyn.plots._base import RGBA, SequentialPalette, new_figure, require_columns

_COLUMNS = ["depth", "width", "test_accuracy_mean", "test_accuracy_std", "lmap_effective_earliest_median",
            "sample_basin_mean", "sample_basin_std", "weight_basin_mean", "weight_basin_std"]


def _errorbar(
    ax: Axes,
    x: pd.Series,
    mean: pd.Series,
    std: pd.Series,
    color: RGBA,
    label: str,
    linestyle: str = "-",
    marker: str = "o",
) -> None:
    spread = np.where(np.isnan(std), 0.0, std)
    ax.errorbar(x, mean, yerr=spread, color=color, label=label, linestyle=linestyle, marker=marker, markersize=4,
                capsize=2, linewidth=1.3)


def plot_recommendation(evidence: pd.DataFrame, summary: Mapping[str, Any] | None = None) -> Figure:
    """Four panels of the evidence (``netdyn.recommendation.evidence_table``), criteria marked from ``summary``."""
    func = "plot_recommendation"
    require_columns(evidence, _COLUMNS, func, "evidence")
    summary = dict(summary or {})
    table = evidence.sort_values(["width", "depth"])
    widths = SequentialPalette(table["width"], "width")
    depths = SequentialPalette(table["depth"], "depth")
    fig = new_figure((11, 8))
    (acc_ax, lmap_ax), (basin_ax, width_ax) = fig.subplots(2, 2)
    for width, part in table.groupby("width", sort=True):
        color, label = widths.color(width), widths.label(width)
        _errorbar(acc_ax, part["depth"], part["test_accuracy_mean"], part["test_accuracy_std"], color, label)
        lmap_ax.plot(part["depth"], part["lmap_effective_earliest_median"], color=color, marker="o", markersize=4,
                     label=label)
        _errorbar(basin_ax, part["depth"], part["sample_basin_mean"], part["sample_basin_std"], color, label)
    grid_depths = sorted(table["depth"].unique())
    lmap_ax.plot(grid_depths, grid_depths, color="#999999", linestyle=":", label="no pruning (l* = depth)")
    for depth, part in table.groupby("depth", sort=True):
        color = depths.color(depth)
        _errorbar(width_ax, part["width"], part["sample_basin_mean"], part["sample_basin_std"], color,
                  f"{depths.label(depth)} sample")
        _errorbar(width_ax, part["width"], part["weight_basin_mean"], part["weight_basin_std"], color,
                  f"{depths.label(depth)} weight", linestyle="--", marker="s")
    width_ax.set_xscale("log", base=2)
    width_ax.set_xticks(sorted(table["width"].unique()), labels=[str(w) for w in sorted(table["width"].unique())])
    width_ax.minorticks_off()

    def mark(ax: Axes, value: float | None, text: str) -> None:
        if value is not None:
            ax.axvline(value, color="#d62728", linestyle="--", linewidth=1)
            ax.annotate(text, (value, 1), xycoords=("data", "axes fraction"), xytext=(3, -12),
                        textcoords="offset points", color="#d62728", fontsize=8)

    reference = summary.get("reference_width")
    at = f" (width {reference})" if reference is not None else ""
    mark(acc_ax, summary.get("depth_accuracy"), "best-accuracy depth" + at)
    mark(lmap_ax, summary.get("depth_lmap"), "L-map critical depth" + at)
    mark(basin_ax, summary.get("depth_basin"), "basin saturation" + at)
    mark(width_ax, summary.get("width_basins"), "basins converge")
    basin = summary.get("basin_size", "size_half")
    for ax, title, ylabel in (
        (acc_ax, "(a) test accuracy", "test accuracy"),
        (lmap_ax, "(b) L-map effective layer (median over seeds)", "layer l*"),
        (basin_ax, f"(c) sample-space basin ({basin})", "eps"),
        (width_ax, f"(d) basins vs width ({basin}; dashed: weight space)", "eps"),
    ):
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    for ax in (acc_ax, lmap_ax, basin_ax):
        ax.set_xlabel("depth (hidden layers)")
        ax.set_xticks(grid_depths)
    width_ax.set_xlabel("width")
    acc_ax.legend(fontsize=8)
    lmap_ax.legend(fontsize=8)
    width_ax.legend(fontsize=7, ncol=2)
    return fig
