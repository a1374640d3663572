"""Figures of learning dynamics: grokking against attraction basins, batch-norm evaluation modes, double
descent against the rate of the RPD gradient (the paper's Figs. 6-8 as its text describes them).

Each function takes tidy tables (a training history, basin curves and sizes, rates) and an optional ``ax`` (or
a sequence of Axes for the multi-panel ones) and returns the Figure; nothing here computes a quantity: the
tables come from ``netdyn.analysis`` and the experiments' definitions (``netdyn.experiments.grokking``,
``netdyn.experiments.double_descent``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from netdyn.errors import ConfigError
from netdyn.plots._base import (
    SequentialPalette,
    format_value,
    new_figure,
    require_columns,
    root_figure,
    set_step_scale,
    single_axes,
)
from netdyn.plots.basins import plot_local_fields

_SPLIT_COLORS = {"train": "C0", "test": "C1"}
_MODE_STYLES = {"running": "-", "batch": "--", "none": "-"}
_STAGE_COLORS = ("0.55", "C3", "C2", "C4", "C5")
_MARK_STYLES = (":", "-.", "--", (0, (1, 3)))
_DISTANCE_COLOR = "C4"
_DISTANCE_LABEL = "test samples' distance to nearest training sample (median, IQR)"
_STEP_LABEL = "training step (log scale)"


def _axes_list(axes: Axes | Sequence[Axes] | None, n: int, figsize: tuple[float, float], func: str,
               sharex: bool = False) -> tuple[Figure, list[Axes]]:
    """``n`` Axes side by side (or stacked with ``sharex``), or the ``n`` the caller gave."""
    if axes is None:
        fig = new_figure(figsize)
        if sharex:
            return fig, list(fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0])
        return fig, list(fig.subplots(1, n, squeeze=False)[0])
    given = [axes] if isinstance(axes, Axes) else list(axes)
    if len(given) != n:
        raise ConfigError(f"{func}: needs {n} Axes here, got {len(given)}")
    return root_figure(given[0]), given


def _one_mode(history: pd.DataFrame) -> pd.DataFrame:
    """The rows of one BN evaluation mode (running when there are several)."""
    if "bn_mode" not in history.columns:
        return history
    modes = set(history["bn_mode"])
    return history[history["bn_mode"] == "running"] if len(modes) > 1 else history


def _step_axis(ax: Axes, steps: np.ndarray) -> None:
    """A log step axis spanning exactly the steps drawn (symlog from 0 when step 0 is among them): vertical
    marks and spans would otherwise stretch a symlog axis into negative steps."""
    steps = np.asarray(steps, dtype=float)
    steps = steps[np.isfinite(steps)]
    set_step_scale(ax, steps)
    if steps.size and steps.min() < steps.max():
        ax.set_xlim(steps.min(), steps.max())


def _mark_steps(ax: Axes, marks: Mapping[str, float] | None) -> list[Line2D]:
    """Vertical lines at named steps; returns their legend handles."""
    handles = []
    for i, (label, step) in enumerate((marks or {}).items()):
        handles.append(ax.axvline(step, color="0.35", ls=_MARK_STYLES[i % len(_MARK_STYLES)], lw=1.1, label=label))
    return handles


def _distance_band(ax: Axes, distance: pd.DataFrame, vertical: bool = True) -> list:
    """The median and interquartile range of the test samples' nearest-training distance as a line and band."""
    d = distance["distance"].dropna()
    if d.empty:
        return []
    q25, median, q75 = (float(d.quantile(q)) for q in (0.25, 0.5, 0.75))
    if vertical:
        ax.axvspan(q25, q75, color=_DISTANCE_COLOR, alpha=0.15, lw=0)
        line = ax.axvline(median, color=_DISTANCE_COLOR, ls="--", lw=1.6, label=f"{_DISTANCE_LABEL}: {median:.2f}")
    else:
        ax.axhspan(q25, q75, color=_DISTANCE_COLOR, alpha=0.15, lw=0)
        line = ax.axhline(median, color=_DISTANCE_COLOR, ls="--", lw=1.6, label=f"{_DISTANCE_LABEL}: {median:.2f}")
    return [line]


# ---------------------------------------------------------------------------------------------- grokking
def plot_noised_accuracy(
    history: pd.DataFrame,
    noised: pd.DataFrame,
    eps: Sequence[float] | None = None,
    marks: Mapping[str, float] | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Train and test accuracy against steps, with the accuracy of noised training samples at several noise
    amplitudes (the paper's Fig. 7a).

    ``history`` is a training history (``step, split, accuracy``; the running BN mode is drawn when it holds
    several); ``noised`` holds sample-basin curves measured at checkpoints (``step, eps, accuracy``); ``eps``
    picks the amplitudes drawn (default: every one but 0, at most 8), each a line along a sequential
    colormap. ``marks`` maps labels to steps drawn as vertical lines (the stages).
    """
    func = "plot_noised_accuracy"
    require_columns(history, ["step", "split", "accuracy"], func, "history")
    require_columns(noised, ["step", "eps", "accuracy"], func, "noised")
    available = sorted(float(e) for e in pd.unique(noised["eps"]))
    if eps is None:
        chosen = [e for e in available if e > 0][:8]
    else:
        chosen = [e for e in available if any(abs(e - float(w)) < 1e-9 for w in eps)]
        if not chosen:
            raise ConfigError(f"{func}: none of eps {list(eps)} is among the measured amplitudes {available}")
    fig, ax = single_axes(ax, figsize=(7.6, 4.8))
    rows = _one_mode(history)
    for split in ("train", "test"):
        line = rows[rows["split"] == split].sort_values("step")
        if len(line):
            ax.plot(line["step"].to_numpy(), line["accuracy"].to_numpy(), color=_SPLIT_COLORS[split], lw=2.2,
                    label=f"{split} accuracy")
    palette = SequentialPalette(chosen, "noised training samples, ε =")
    for e in chosen:
        line = noised[np.isclose(noised["eps"].astype(float), e)].sort_values("step")
        ax.plot(line["step"].to_numpy(), line["accuracy"].to_numpy(), color=palette.color(e), lw=1.3, marker=".",
                ms=4, ls="-", label=f"noised training samples, ε = {format_value(e)}")
    _mark_steps(ax, marks)
    _step_axis(ax, np.concatenate([rows["step"].to_numpy(float), noised["step"].to_numpy(float)]))
    ax.set_xlabel(_STEP_LABEL)
    ax.set_ylabel("accuracy (fraction)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Accuracy of training, test and noised training samples during training")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small", loc="upper left", ncols=1)
    return fig


def plot_size_evolution(
    sizes: pd.DataFrame,
    history: pd.DataFrame | None = None,
    distance: pd.DataFrame | None = None,
    size: str = "size_half",
    marks: Mapping[str, float] | None = None,
    ax: Axes | None = None,
    by: str | None = None,
    ylabel: str = "sample-basin size ε (accuracy halved)",
) -> Figure:
    """A basin size against steps, beside the test samples' distance to the training set and the test
    accuracy: the paper's mechanism of grokking (the jump comes when the basins grow past the test samples).

    ``sizes`` has ``step`` and the ``size`` column (NaN where the size lies beyond the measured grid, drawn as
    a gap); ``by`` draws one line per value of that column. ``distance`` is a ``nearest_train_distance`` table
    (its median and interquartile range are drawn as a horizontal line and band); ``history`` adds the test
    accuracy on a right-hand axis; ``marks`` draws named steps as vertical lines.
    """
    func = "plot_size_evolution"
    require_columns(sizes, ["step", size, *([by] if by else [])], func, "sizes")
    fig, ax = single_axes(ax, figsize=(7.6, 4.6))
    handles = []
    groups = sizes.groupby(by, sort=True) if by else [(None, sizes)]
    palette = SequentialPalette(sizes[by], by) if by else None
    for value, rows in groups:
        rows = rows.sort_values("step")
        color = palette.color(value) if palette else "C2"
        label = f"{ylabel}, {palette.label(value)}" if palette else ylabel
        handles.append(ax.plot(rows["step"].to_numpy(), rows[size].to_numpy(float), color=color, lw=1.8,
                               marker="o", ms=3.5, label=label)[0])
    if distance is not None:
        require_columns(distance, ["distance"], func, "distance")
        handles += _distance_band(ax, distance, vertical=False)
    handles += _mark_steps(ax, marks)
    _step_axis(ax, sizes["step"].to_numpy(float))
    ax.set_xlabel(_STEP_LABEL)
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if history is not None:
        require_columns(history, ["step", "split", "accuracy"], func, "history")
        twin = ax.twinx()
        test = _one_mode(history)
        test = test[test["split"] == "test"].sort_values("step")
        handles.append(twin.plot(test["step"].to_numpy(), test["accuracy"].to_numpy(), color="C1", lw=1.2,
                                 alpha=0.8, label="test accuracy (right axis)")[0])
        twin.set_ylabel("test accuracy (fraction)")
        twin.set_ylim(-0.02, 1.02)
    ax.set_title("Sample-basin size against the test samples' distance to the training set")
    ax.legend(handles=handles, fontsize="x-small", loc="upper left")
    return fig


def plot_stage_basins(
    curves: pd.DataFrame,
    distance: pd.DataFrame | None = None,
    titles: Mapping[str, str] | None = None,
    axes: Sequence[Axes] | None = None,
) -> Figure:
    """Sample- and weight-basin curves at a few training stages, side by side (the paper's Fig. 7b).

    ``curves`` has ``stage, step, kind, eps, accuracy, ci_low, ci_high`` (``kind`` = ``sample`` / ``weight``);
    stages are drawn in their order of appearance, each in its own colour with its 95% band. ``distance`` (a
    ``nearest_train_distance`` table) marks the test samples' relative distance to the training set on the
    sample-space panel, the same axis as the noise amplitude. ``titles`` names the stages in the legend.
    """
    func = "plot_stage_basins"
    require_columns(curves, ["stage", "step", "kind", "eps", "accuracy", "ci_low", "ci_high"], func, "curves")
    kinds = [k for k in ("sample", "weight") if k in set(curves["kind"])]
    fig, axes = _axes_list(axes, len(kinds), (6.0 * len(kinds), 4.6), func)
    stages = pd.unique(curves["stage"]).tolist()
    text = {"sample": ("relative input noise ε  (‖δx‖ / ‖x‖)", "accuracy of noised training samples",
                       "Sample space"),
            "weight": ("relative weight noise ε  (‖δW‖_F / ‖W‖_F per layer)",
                       "training accuracy with noised weights", "Weight space")}
    for kind, ax in zip(kinds, axes, strict=True):
        handles = []
        for i, stage in enumerate(stages):
            rows = curves[(curves["kind"] == kind) & (curves["stage"] == stage)].sort_values("eps")
            if rows.empty:
                continue
            color = _STAGE_COLORS[i % len(_STAGE_COLORS)]
            step = int(rows["step"].iloc[0])
            name = (titles or {}).get(stage, str(stage))
            ax.fill_between(rows["eps"].to_numpy(float), rows["ci_low"].to_numpy(float),
                            rows["ci_high"].to_numpy(float), color=color, alpha=0.2, lw=0)
            handles.append(ax.plot(rows["eps"].to_numpy(float), rows["accuracy"].to_numpy(float), color=color,
                                   lw=1.8, marker=".", ms=4, label=f"{name} (step {step})")[0])
        if kind == "sample" and distance is not None:
            require_columns(distance, ["distance"], func, "distance")
            handles += _distance_band(ax, distance, vertical=True)
        xlabel, ylabel, title = text[kind]
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title}: basins at three stages")
        ax.set_xlim(left=0)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(handles=handles, fontsize="x-small", loc="upper right")
    return fig


def plot_stage_local_fields(
    points: pd.DataFrame,
    stages: Sequence[str] | None = None,
    titles: Mapping[str, str] | None = None,
    neurons: tuple[int, int] | None = None,
    splits: Sequence[str] | None = None,
    axes: Sequence[Axes] | None = None,
) -> Figure:
    """Output local-field projections at several stages, one column each (the paper's Fig. 7c-f and 6a,d).

    ``points`` is a ``LocalFields.points`` table with a ``stage`` column; ``stages`` picks and orders the
    columns (default: every stage in order of appearance); ``titles`` names them; ``neurons`` labels the axes.
    With ``splits`` (e.g. ``("test", "train")``) each split gets its own row, the panels of a column sharing
    their axes (so test points far outside the training clouds show, and a few hundred training points are not
    hidden under thousands of test points); without it both splits share one panel per stage. ``axes`` holds
    one Axes per panel, row by row.
    """
    func = "plot_stage_local_fields"
    require_columns(points, ["stage", "split", "label", "h_a", "h_b"], func, "points")
    chosen = list(stages) if stages is not None else pd.unique(points["stage"]).tolist()
    missing = [s for s in chosen if s not in set(points["stage"])]
    if missing:
        raise ConfigError(f"{func}: no points for stage(s) {missing}")
    rows_of = [None] if splits is None else list(splits)
    n_rows, n_cols = len(rows_of), len(chosen)
    if axes is None:
        fig = new_figure((5.4 * n_cols, 5.0 * n_rows))
        grid = fig.subplots(n_rows, n_cols, squeeze=False, sharex="col", sharey="col")
        panels = [ax for row in grid for ax in row]
    else:
        fig, panels = _axes_list(axes, n_rows * n_cols, (0, 0), func)
    for r, split in enumerate(rows_of):
        for c, stage in enumerate(chosen):
            ax = panels[r * n_cols + c]
            rows = points[points["stage"] == stage].drop(columns="stage")
            if split is not None:
                rows = rows[rows["split"] == split]
                if rows.empty:
                    raise ConfigError(f"{func}: no {split!r} points at stage {stage!r}")
            plot_local_fields(rows, ax=ax, neurons=neurons)
            title = (titles or {}).get(stage, str(stage))
            ax.set_title(title if split is None else f"{split} samples, {title}", fontsize="medium")
    return fig


# ------------------------------------------------------------------------------------- batch-norm modes
_ACCURACY_LINES = (("test", "running", "-", 1.9), ("test", "batch", "--", 1.6), ("train", "batch", ":", 1.3),
                   ("train", "running", "-.", 1.1))
"""The curves of :func:`plot_accuracy_by_mode`: split, BN mode, line style and width."""


def plot_accuracy_by_mode(
    history: pd.DataFrame,
    by: str | None = None,
    marks: Mapping[str, float] | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Test accuracy evaluated with running statistics (solid) and with batch statistics (dashed), and the
    training accuracy under batch statistics (dotted, what the training itself sees) and under running statistics
    (dash-dotted: whether the training samples too wait for the running statistics), against steps.

    ``history`` holds ``step, split, bn_mode, accuracy`` (``bn_eval="both"``); ``by`` (e.g. ``depth``) draws one
    colour per value of that column (a sequential colormap). ``marks`` draws named steps as vertical lines.
    """
    func = "plot_accuracy_by_mode"
    require_columns(history, ["step", "split", "bn_mode", "accuracy", *([by] if by else [])], func, "history")
    fig, ax = single_axes(ax, figsize=(7.6, 4.8))
    palette = SequentialPalette(history[by], by) if by else None
    groups = history.groupby(by, sort=True) if by else [(None, history)]
    for value, rows in groups:
        color = palette.color(value) if palette else "C1"
        for split, mode, style, width in _ACCURACY_LINES:
            line = rows[(rows["split"] == split) & (rows["bn_mode"] == mode)].sort_values("step")
            if line.empty:
                continue
            name = f"{palette.label(value)}, " if palette else ""
            ax.plot(line["step"].to_numpy(), line["accuracy"].to_numpy(), color=color, ls=style, lw=width,
                    label=f"{name}{split}, BN {mode} statistics")
    handles: list[Artist] = [Line2D([], [], color="0.3", ls=style, lw=width, label=f"{split}, {mode} statistics")
                             for split, mode, style, width in _ACCURACY_LINES]
    if palette:
        handles += [Line2D([], [], color=palette.color(v), lw=2, label=palette.label(v)) for v in palette.values]
    handles += _mark_steps(ax, marks)
    _step_axis(ax, history["step"].to_numpy(float))
    ax.set_xlabel(_STEP_LABEL)
    ax.set_ylabel("accuracy (fraction)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Accuracy with running vs batch batch-norm statistics")
    ax.grid(alpha=0.3)
    ax.legend(handles=handles, fontsize="x-small", loc="upper left")
    return fig


def plot_perturbation_vs_basin(
    table: pd.DataFrame,
    by: str | None = None,
    size: str = "size_half",
    marks: Mapping[str, float] | None = None,
    ax: Axes | None = None,
) -> Figure:
    """The weight perturbation that running-statistics evaluation amounts to (``bn_perturbation``, solid)
    beside the weight basin's size (dashed), against steps: where the perturbation exceeds the basin, the
    training samples fall outside their basins under running statistics (the paper's account of BN grokking).

    ``table`` has ``step, eps_equivalent`` (mean over BN layers) and the ``size`` column; ``by`` draws one colour
    per value of that column. ``marks`` draws named steps as vertical lines. Log y axis.
    """
    func = "plot_perturbation_vs_basin"
    require_columns(table, ["step", "eps_equivalent", size, *([by] if by else [])], func)
    fig, ax = single_axes(ax, figsize=(7.6, 4.6))
    palette = SequentialPalette(table[by], by) if by else None
    groups = table.groupby(by, sort=True) if by else [(None, table)]
    for value, rows in groups:
        rows = rows.sort_values("step")
        color = palette.color(value) if palette else "C0"
        name = f", {palette.label(value)}" if palette else ""
        ax.plot(rows["step"].to_numpy(), rows["eps_equivalent"].to_numpy(float), color=color, lw=1.8,
                marker="o", ms=3, label=f"BN perturbation (running vs batch){name}")
        ax.plot(rows["step"].to_numpy(), rows[size].to_numpy(float), color=color, lw=1.6, ls="--", marker="s",
                ms=3, label=f"weight-basin size ({size}){name}")
    handles = [Line2D([], [], color="0.3", lw=1.8, marker="o", ms=3,
                      label="BN perturbation: ‖W̃_batch − W̃_run‖ / ‖W̃_run‖ (mean over layers)"),
               Line2D([], [], color="0.3", lw=1.6, ls="--", marker="s", ms=3,
                      label=f"weight-basin size ε ({size.replace('_', ' ')})")]
    if palette:
        handles += [Line2D([], [], color=palette.color(v), lw=2, label=palette.label(v)) for v in palette.values]
    handles += _mark_steps(ax, marks)
    _step_axis(ax, table["step"].to_numpy(float))
    values = np.concatenate([table["eps_equivalent"].to_numpy(float), table[size].to_numpy(float)])
    if (values[np.isfinite(values)] > 0).all():
        ax.set_yscale("log")
    ax.set_xlabel(_STEP_LABEL)
    ax.set_ylabel("relative weight perturbation ε")
    ax.set_title("Batch-norm perturbation vs weight-basin size")
    ax.grid(alpha=0.3, which="both")
    ax.legend(handles=handles, fontsize="x-small", loc="best")
    return fig


# ---------------------------------------------------------------------------------------- double descent
def plot_loss_and_rate(
    history: pd.DataFrame,
    rates: pd.DataFrame,
    mean_rate: pd.DataFrame | None = None,
    loss_peak: tuple[float, float] | None = None,
    rate_peak: tuple[float, float] | None = None,
    axes: Sequence[Axes] | None = None,
) -> Figure:
    """Test loss against steps (top; running statistics solid, batch statistics dashed) above the rate of
    change per log-step of the RPD gradient (bottom; one thin line per layer, the mean over them thick), with
    the test-loss bump's maximum and the rate's maximum marked (the paper's Fig. 6b as its text describes it).

    ``history`` holds ``step, split, loss`` (and ``bn_mode``); ``rates`` holds ``step, layer, rate`` (``step``
    the log-midpoint of the interval the rate is taken over); ``mean_rate`` holds ``step, rate``.
    ``loss_peak`` and ``rate_peak`` are (step, value) points to mark; a dotted line joins them across panels.
    """
    func = "plot_loss_and_rate"
    require_columns(history, ["step", "split", "loss"], func, "history")
    require_columns(rates, ["step", "layer", "rate"], func, "rates")
    fig, (top, bottom) = _axes_list(axes, 2, (7.6, 6.6), func, sharex=True)
    test = history[history["split"] == "test"]
    modes = pd.unique(test["bn_mode"]).tolist() if "bn_mode" in test.columns else ["none"]
    for mode in modes:
        rows = test[test["bn_mode"] == mode] if "bn_mode" in test.columns else test
        rows = rows.sort_values("step")
        label = "test loss" if mode == "none" else f"test loss, BN {mode} statistics"
        top.plot(rows["step"].to_numpy(), rows["loss"].to_numpy(float), color="C1", ls=_MODE_STYLES.get(mode, ":"),
                 lw=1.7, marker=".", ms=3, label=label)
    if loss_peak is not None:
        top.plot([loss_peak[0]], [loss_peak[1]], ls="none", marker="v", ms=10, color="C3", mec="black", zorder=5,
                 label=f"test-loss bump maximum (step {format_value(loss_peak[0])})")
    top.set_ylabel("test loss")
    top.set_title("Test loss and the rate of change of the later layers' RPD gradient")
    top.grid(alpha=0.3)
    top.legend(fontsize="x-small", loc="best")
    palette = SequentialPalette(rates["layer"], "layer")
    for layer, rows in rates.groupby("layer", sort=True):
        rows = rows.sort_values("step")
        bottom.plot(rows["step"].to_numpy(), rows["rate"].to_numpy(float), color=palette.color(layer), lw=1.0,
                    alpha=0.8, label=palette.label(layer))
    if mean_rate is not None:
        require_columns(mean_rate, ["step", "rate"], func, "mean_rate")
        rows = mean_rate.sort_values("step")
        bottom.plot(rows["step"].to_numpy(), rows["rate"].to_numpy(float), color="black", lw=2.2, marker="o", ms=3,
                    label="mean over these layers")
    if rate_peak is not None:
        bottom.plot([rate_peak[0]], [rate_peak[1]], ls="none", marker="^", ms=10, color="C3", mec="black",
                    zorder=5, label=f"rate maximum (step {format_value(round(rate_peak[0]))})")
    for peak in (loss_peak, rate_peak):
        if peak is not None:
            for ax in (top, bottom):
                ax.axvline(peak[0], color="C3", ls=":", lw=1.0)
    bottom.axhline(0, color="0.5", lw=0.8)
    steps = np.concatenate([test["step"].to_numpy(float), rates["step"].to_numpy(float)])
    _step_axis(bottom, steps)
    bottom.set_xlabel(_STEP_LABEL)
    bottom.set_ylabel("d(RPD gradient) / d log10(step)")
    bottom.grid(alpha=0.3)
    bottom.legend(fontsize="x-small", loc="best", ncols=2 if rates["layer"].nunique() > 4 else 1)
    return fig


__all__ = [
    "plot_accuracy_by_mode",
    "plot_loss_and_rate",
    "plot_noised_accuracy",
    "plot_perturbation_vs_basin",
    "plot_size_evolution",
    "plot_stage_basins",
    "plot_stage_local_fields",
]
