"""Attraction-basin curves and output local-field projections (the paper's Figs. 5-7)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from netdyn.errors import ConfigError
from netdyn.plots._base import require_columns, single_axes

_CURVE_COLUMNS = ["eps", "accuracy", "ci_low", "ci_high"]
_BASIN_TEXT = {
    "sample": (
        "relative input noise ε  (‖δx‖ / ‖x‖)",
        "accuracy on noised training samples",
        "Attraction basins in sample space",
    ),
    "weight": (
        "relative weight noise ε  (‖δW‖_F / ‖W‖_F per layer)",
        "training accuracy with noised weights",
        "Attraction basins in weight space",
    ),
}
_SPLIT_MARKERS = {"train": "o", "test": "x"}


def _basin_curves(
    curves: Mapping[str, Any] | pd.DataFrame, sizes: Mapping[str, float] | None, func: str
) -> list[tuple[str, pd.DataFrame, float]]:
    """(label, curve table, size_half or NaN) for each curve, from tables or BasinCurve-like objects."""
    items: list[tuple[str, Any]] = list(curves.items()) if isinstance(curves, Mapping) else [("accuracy", curves)]
    if not items:
        raise ConfigError(f"{func}: no curves given")
    out = []
    for label, curve in items:
        if isinstance(curve, pd.DataFrame):
            table, size = curve, math.nan
        else:  # a BasinCurve: duck-typed, so that figures never import the analysis
            table, size = getattr(curve, "curve", curve), getattr(curve, "size_half", math.nan)
        require_columns(table, _CURVE_COLUMNS, func, f"curve {label!r}")
        if sizes is not None:
            size = sizes.get(label, size)
        out.append((str(label), table.sort_values("eps"), float(size)))
    return out


def plot_basin(
    curves: Mapping[str, pd.DataFrame] | pd.DataFrame,
    ax: Axes | None = None,
    kind: str = "sample",
    sizes: Mapping[str, float] | None = None,
    chance: float | None = None,
    legend_title: str | None = None,
) -> Figure:
    """Accuracy against relative noise amplitude eps, with 95% interval bands: attraction-basin curves.

    ``curves`` is one curve table (``eps, accuracy, ci_low, ci_high``, a ``BasinCurve.curve``) or a dict of
    them labelled e.g. by depth or batch size, drawn in the dict's order along a sequential colormap;
    ``BasinCurve`` objects are accepted too (their ``size_half`` is marked). ``kind`` is ``"sample"`` or
    ``"weight"`` (axis labels). ``sizes`` maps labels to ``size_half`` (the eps where accuracy has halved),
    marked with a triangle; ``chance`` draws the chance level; ``legend_title`` names what the labels are
    (``"depth"``).
    """
    func = "plot_basin"
    if kind not in _BASIN_TEXT:
        raise ConfigError(f"{func}: kind must be 'sample' or 'weight', got {kind!r}")
    items = _basin_curves(curves, sizes, func)
    fig, ax = single_axes(ax)
    n = len(items)
    colors = colormaps["viridis"](np.linspace(0.0, 0.88, n)) if n > 1 else ["C0"]
    handles = []
    marked = False
    for (label, table, size), color in zip(items, colors, strict=True):
        eps = table["eps"].to_numpy(float)
        accuracy = table["accuracy"].to_numpy(float)
        ax.fill_between(
            eps,
            table["ci_low"].to_numpy(float),
            table["ci_high"].to_numpy(float),
            color=color,
            alpha=0.2,
            lw=0,
        )
        handles.append(ax.plot(eps, accuracy, color=color, lw=1.8, marker=".", ms=4, label=label)[0])
        if math.isfinite(size):
            ax.plot(
                [size],
                [np.interp(size, eps, accuracy)],
                ls="none",
                marker="v",
                ms=9,
                color=color,
                mec="black",
                zorder=4,
                label=f"_{label} size_half",
            )
            marked = True
    extra = [Line2D([], [], color="0.5", lw=6, alpha=0.3, label="95% interval")]
    if marked:
        extra.append(
            Line2D(
                [],
                [],
                ls="none",
                marker="v",
                ms=8,
                color="0.6",
                mec="black",
                label="size_half (accuracy halved)",
            )
        )
    if chance is not None:
        extra.append(ax.axhline(chance, color="0.4", ls=":", lw=1.2, label=f"chance ({chance:.2f})"))
    xlabel, ylabel, title = _BASIN_TEXT[kind]
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.set_xlim(left=0)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(
        handles=[*handles, *extra],
        title=legend_title,
        fontsize="small",
        title_fontsize="small",
        loc="best",
        ncols=2 if len(handles) > 8 else 1,
    )
    return fig


def plot_local_fields(
    points: pd.DataFrame, ax: Axes | None = None, neurons: tuple[int, int] | None = None
) -> Figure:
    """Output local fields of two neurons, a point per sample: colour by label, dots train, crosses test.

    ``points`` is a ``LocalFields.points`` table (``split, label, h_a, h_b``). ``neurons`` names the two
    output neurons in the axis labels. Test points inside the training clouds have fallen into the training
    samples' attraction basins (the paper's Fig. 7(c-f)).
    """
    func = "plot_local_fields"
    require_columns(points, ["split", "label", "h_a", "h_b"], func, "points")
    fig, ax = single_axes(ax, figsize=(6.0, 5.2))
    labels = sorted(points["label"].unique().tolist())
    palette = colormaps["tab10"] if len(labels) <= 10 else colormaps["tab20"]
    colors = {label: palette(i % palette.N) for i, label in enumerate(labels)}
    splits = sorted(points["split"].unique().tolist(), key=lambda s: (s != "train", s != "test", s))
    markers = {split: _SPLIT_MARKERS.get(split, "^") for split in splits}
    for split in splits:
        for label in labels:
            rows = points[(points["split"] == split) & (points["label"] == label)]
            if rows.empty:
                continue
            dot = markers[split] == "o"
            ax.scatter(
                rows["h_a"].to_numpy(),
                rows["h_b"].to_numpy(),
                marker=markers[split],
                s=10 if dot else 22,
                color=colors[label],
                alpha=0.5 if dot else 0.8,
                linewidths=0 if dot else 1.0,
                label=f"{split}, class {label}",
            )
    handles = [
        Line2D([], [], ls="none", marker="s", ms=8, color=colors[label], label=f"class {label}")
        for label in labels
    ]
    handles += [
        Line2D([], [], ls="none", marker=markers[split], ms=6, color="0.25", label=split) for split in splits
    ]
    names = [f"$h^L_{{{n}}}$ (output neuron {n})" for n in neurons] if neurons else ["$h_a$", "$h_b$"]
    ax.set_xlabel(f"output local field {names[0]}")
    ax.set_ylabel(f"output local field {names[1]}")
    ax.set_title("Output local-field projections")
    ax.grid(alpha=0.3)
    ax.legend(handles=handles, fontsize="small", loc="best", ncols=2 if len(labels) > 5 else 1)
    return fig
