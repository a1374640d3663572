"""``basins-depth-width`` (paper Fig. 5): how the attraction basins of the training samples depend on depth and
width, in sample space and in weight space, with batch norm (the paper's nets) and without it.

Every member is a ReLU MLP trained to (near) 100% training accuracy; its last checkpoint gets a sample-space
and a weight-space basin curve (SPEC 5.6, through ``runs.tables``), and ``size_half`` (where the accuracy has
halved) is read from each curve with :func:`~netdyn.analysis.basins.curve_sizes`. Panels (a, b): the curves of
several depths at the widest width; panels (c, d): ``size_half`` against width, a line per depth.

The helpers :func:`basin_tables`, :func:`rank_trend` and :func:`converged_at` are shared with
``basins-hparams`` (Fig. 6).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from netdyn.analysis.basins import curve_sizes
from netdyn.analysis.config import AnalysisConfig
from netdyn.data.spec import DataSpec
from netdyn.experiments.base import (
    Experiment,
    ExperimentConfig,
    ExperimentRuns,
    Member,
    member_name,
    seeded,
    with_params,
)
from netdyn.models.spec import ModelSpec
from netdyn.orchestration import RunSpec

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

SPACES = ("sample", "weight")
VARIANT_LABELS = {True: "BN", False: "no BN"}
#: A size counts as converged from the first x after which every later size stays within this fraction of
#: their median (see :func:`converged_at`).
CONVERGENCE_TOLERANCE = 0.1
#: ... over at least this many points of the sweep.
MIN_PLATEAU = 3

CURVE_COLUMNS = ("space", "eps", "accuracy", "ci_low", "ci_high")
SIZE_COLUMNS = ("space", "clean_accuracy", "size_mid", "size_half")
MEMBER_COLUMNS = ("steps", "epochs", "train_accuracy", "test_accuracy", "wall_time")


@dataclass(frozen=True)
class BasinsDepthWidthConfig(ExperimentConfig):
    """ReLU MLPs with and without batch norm on every hidden layer, over a depth x width grid (the paper gives
    width 1024 for the curves and no training settings: those below are netdyn's choices)."""

    depths: tuple[int, ...] = (2, 4, 6, 8, 10)
    """Hidden layers (the paper's n-layer net is depth n - 2: depths 2..10 are its 4..12-layer nets; it sees
    the basins converge beyond 8 layers, depth 6)."""
    widths: tuple[int, ...] = (16, 32, 64, 128, 256)
    """Neurons per hidden layer; the curves of panels (a, b) use the widest (the paper's is 1024; it sees the
    sizes converge near width 400, beyond what fits 10 CPU minutes here)."""
    batchnorms: tuple[bool, ...] = (True, False)
    """With batch norm (the paper's nets) and without it (SPEC 6 asks for both)."""
    init_bn: str = "default"
    """Initial weights of the batch-norm nets: torch's default rule, as in the other experiments on the paper's
    BN nets (the paper does not say). It matters more than batch norm suggests: He (kaiming) initial weights,
    about 2.4 times larger, gave sample-space basins about 25% smaller and flat in depth at width 256 (measured;
    docs/reproduction/basins-depth-width.md). A plausible reason, not tested: Adam's fixed-size steps are then
    smaller relative to the weights, a smaller effective learning rate, and basins-hparams measures smaller
    basins at smaller learning rates."""
    init_plain: str = "kaiming"
    """Initial weights of the nets without batch norm: He (kaiming) normal, the usual rule for ReLU. torch's
    default rule shrinks the signal's second moment about six-fold per ReLU layer, and with nothing to restore
    it the plain nets reached only 53-98% training accuracy in 12 epochs at depths 4-10 (measured)."""
    optimizer: str = "adam"
    """Optimiser (the paper does not say; Adam as in its Fig. 6)."""
    lr: float = 1e-3
    """Learning rate (Adam's default)."""
    batch_size: int = 100
    """Minibatch size."""
    epochs: float = 20
    """Training length: the basins are defined after training accuracy reaches 100% (the paper's premise);
    the members table records how close each member came."""
    eval_every: str = "log:6"
    """Evaluation points of the training history (each reads the whole train and test sets)."""
    checkpoint_every: str = "log:2"
    """Checkpoints: the first and the last (only the last is analysed)."""
    basin_samples: int | None = 500
    """Training samples the basin curves use (a seeded subset; SPEC's CPU default is 2,000; None: all)."""
    repeats: int = 3
    """Noise draws per sample (sample space) or perturbed networks (weight space) per amplitude."""
    eps: tuple[float, ...] | None = None
    """Noise amplitudes (None: SPEC's default grid, 0..3 by 0.1, extended up to 12 until accuracy halves)."""


class BasinSettings(Protocol):
    """What the basin analysis reads from a configuration (``basins-depth-width``'s or ``basins-hparams``')."""

    @property
    def basin_samples(self) -> int | None: ...
    @property
    def repeats(self) -> int: ...
    @property
    def eps(self) -> tuple[float, ...] | None: ...
    @property
    def device(self) -> str: ...


def basin_analysis_config(config: BasinSettings) -> AnalysisConfig:
    """The analysis every member gets: its accuracy and both basin curves."""
    return AnalysisConfig(
        quantities=("network", "sample_basin", "weight_basin"),
        basin_samples=config.basin_samples,
        repeats=config.repeats,
        eps=config.eps,
        device=config.device,
    )


def basin_tables(
    runs: ExperimentRuns, config: BasinSettings, members: Sequence[Member] | None = None
) -> dict[str, pd.DataFrame]:
    """The basin curves of the members (``basin_curves``: one row per member x space x eps), their sizes
    (``basin_sizes``: one row per member x space, ``size_mid`` / ``size_half`` NaN where not reached) and one row
    per member with its training length and accuracies (``members``). Diverged members appear in ``members``
    only (their accuracies NaN)."""
    chosen = list(members if members is not None else runs.members)
    analysed = runs.tables(("network", "sample_basin", "weight_basin"), basin_analysis_config(config),
                           members=chosen)
    curves = []
    for space in SPACES:
        table = analysed.get(f"{space}_basin")
        if table is not None:
            table = table.drop(columns="step", errors="ignore")
            table.insert(list(table.columns).index("eps"), "space", space)
            curves.append(table)
    curve_table = pd.concat(curves, ignore_index=True)
    size_rows = []
    for member in chosen:
        if runs.diverged(member):
            continue
        num_classes = runs.data(member).num_classes
        for space in SPACES:
            curve = curve_table[(curve_table["member"] == member.name) & (curve_table["space"] == space)]
            curve = curve.sort_values("eps")
            size_mid, size_half = curve_sizes(curve, num_classes)
            row = pd.DataFrame([{"space": space, "clean_accuracy": float(curve["accuracy"].iloc[0]),
                                 "size_mid": size_mid, "size_half": size_half}])
            size_rows.append(with_params(row, member))
    network = analysed["network"] if "network" in analysed else pd.DataFrame(columns=["member", "split", "accuracy"])
    member_rows = []
    for member in chosen:
        summary = runs.run(member).summary
        acc = network[network["member"] == member.name].set_index("split")["accuracy"]
        row = pd.DataFrame([{
            "steps": int(summary.get("steps", 0)),
            "epochs": float(summary.get("epochs", math.nan)),
            "train_accuracy": float(acc.get("train", math.nan)),
            "test_accuracy": float(acc.get("test", math.nan)),
            "wall_time": float(summary.get("wall_time", math.nan)),
        }])
        member_rows.append(with_params(row, member))
    return {
        "basin_curves": curve_table,
        "basin_sizes": pd.concat(size_rows, ignore_index=True),
        "members": pd.concat(member_rows, ignore_index=True),
    }


# ------------------------------------------------------------------------------------ headline numbers
def rank_trend(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman's rank correlation of y with x over the finite pairs (+1: y grows with x, -1: it shrinks), to
    three decimals; NaN with fewer than two pairs or a constant side."""
    frame = pd.DataFrame({"x": np.asarray(x, float), "y": np.asarray(y, float)}).dropna()
    if len(frame) < 2:
        return math.nan
    ranks = frame.rank()
    if ranks["x"].nunique() < 2 or ranks["y"].nunique() < 2:
        return math.nan
    return round(float(np.corrcoef(ranks["x"], ranks["y"])[0, 1]), 3)


def converged_at(x: ArrayLike, y: ArrayLike, tolerance: float = CONVERGENCE_TOLERANCE) -> float:
    """Where a size stops changing: the smallest x (ascending) from which every later y lies within
    ``tolerance`` (relative) of the median of those later y. The median keeps one noisy last point from deciding
    alone. A plateau needs at least ``MIN_PLATEAU`` points (two points within 20% of each other are no evidence);
    NaN when there is none, or a size in it is not finite."""
    order = np.argsort(np.asarray(x, float))
    xs, ys = np.asarray(x, float)[order], np.asarray(y, float)[order]
    found = math.nan
    for start in range(len(xs) - MIN_PLATEAU, -1, -1):
        tail = ys[start:]
        if not np.all(np.isfinite(tail)):
            break
        centre = float(np.median(tail))
        if np.all(np.abs(tail - centre) <= tolerance * abs(centre)):
            found = float(xs[start])
        else:
            break
    return found


def _mean_sizes(sizes: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Sizes averaged over seeds (a NaN seed makes the mean NaN: the size was not reached for all of them)."""
    return sizes.groupby(list(keys), as_index=False)[["clean_accuracy", "size_mid", "size_half"]].agg(_mean_or_nan)


def _mean_or_nan(values: pd.Series) -> float:
    return float(values.mean(skipna=False))


def _mean_finite(values: Sequence[float]) -> float | None:
    """The mean of the finite values (trends per width or per depth), rounded; None if there is none."""
    finite = [v for v in values if math.isfinite(v)]
    return round(float(np.mean(finite)), 3) if finite else None


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def layers_label(depth: int) -> str:
    """``depth4 (6 layers)``: netdyn's depth with the paper's layer count."""
    return f"depth{depth} ({depth + 2} layers)"


class BasinsDepthWidth(Experiment[BasinsDepthWidthConfig]):
    name = "basins-depth-width"
    figure = "Fig. 5"
    shows = "attraction basins in sample and weight space vs depth and width, BN ReLU nets (and without BN)"
    claim = (
        "The attraction basins of the training samples grow with depth in sample space and shrink with depth "
        "in weight space, and both converge once the net exceeds about 8 layers (depth 6). For a fixed depth, "
        "the sample-space basin (size_half: the noise amplitude where the accuracy of the noised training "
        "samples has halved) grows with width and the weight-space basin shrinks, both converging near width "
        "400; for a fixed width, the sample-space basin grows and the weight-space basin shrinks with depth."
    )
    columns = {
        "basin_curves": ("member", "batchnorm", "depth", "width", "seed", *CURVE_COLUMNS),
        "basin_sizes": ("member", "batchnorm", "depth", "width", "seed", *SIZE_COLUMNS),
        "members": ("member", "batchnorm", "depth", "width", "seed", *MEMBER_COLUMNS),
    }
    nullable = {"basin_sizes": ("size_mid", "size_half"), "members": ("train_accuracy", "test_accuracy")}
    measured = {
        "smoke": "13 s (2 CPU cores shared with other jobs, load average 6; 2026-11-30)",
        "small": "3.7 min (220 s; idle 2-core CPU, 2 torch threads, 2026-11-30)",
    }
    scales = {
        "smoke": BasinsDepthWidthConfig(
            data=DataSpec("mnist5k", train_size=500, test_size=200), depths=(1, 2), widths=(16, 32), epochs=6,
            batch_size=50, eval_every="log:3", basin_samples=100, repeats=2, eps=(0.0, 0.5, 1.0, 2.0, 4.0, 8.0),
        ),
        "small": BasinsDepthWidthConfig(),
        "paper": BasinsDepthWidthConfig(
            data=DataSpec("mnist"), depths=(2, 4, 6, 8, 10), widths=(64, 128, 256, 512, 1024), batch_size=300,
            epochs=20, basin_samples=None, repeats=5, eval_every="log:20",
        ),
    }

    def members(self, config: BasinsDepthWidthConfig) -> list[Member]:
        members = []
        for batchnorm in config.batchnorms:
            for depth in config.depths:
                for width in config.widths:
                    for seed in seeded(config):
                        spec = RunSpec(
                            model=ModelSpec(width=width, depth=depth, batchnorm=batchnorm,
                                            init=config.init_bn if batchnorm else config.init_plain, seed=seed),
                            data=config.data,
                            train=config.train_config(seed),
                        )
                        params = {"batchnorm": batchnorm, "depth": depth, "width": width, "seed": seed}
                        members.append(Member(member_name(**params), spec, params))
        return members

    def tables(self, runs: ExperimentRuns, config: BasinsDepthWidthConfig) -> dict[str, pd.DataFrame]:
        return basin_tables(runs, config)

    def figures(self, tables: dict[str, pd.DataFrame], config: BasinsDepthWidthConfig) -> dict[str, Figure]:
        from netdyn.plots._base import new_figure
        from netdyn.plots.basin_sweeps import plot_sweep

        curves, sizes = tables["basin_curves"], tables["basin_sizes"]
        width = max(config.widths)
        variants = [v for v in config.batchnorms if v in set(sizes["batchnorm"])]
        figs: dict[str, Figure] = {}
        for panel, space in (("fig5a_sample_basin", "sample"), ("fig5b_weight_basin", "weight")):
            fig = new_figure((6.0 * len(variants), 4.6))
            axes = fig.subplots(1, len(variants), squeeze=False)[0]
            for ax, batchnorm in zip(axes, variants, strict=True):
                _depth_curves(curves, sizes, space, batchnorm, width, ax)
            fig.suptitle(f"Attraction basins in {space} space by depth, width {width} (seed 0; "
                         f"paper layers = depth + 2)")
            figs[panel] = fig
        mean = _mean_sizes(sizes, ["batchnorm", "depth", "width", "space"])
        for panel, space in (("fig5c_sample_size_width", "sample"), ("fig5d_weight_size_width", "weight")):
            fig = new_figure((6.0 * len(variants), 4.6))
            axes = fig.subplots(1, len(variants), squeeze=False)[0]
            for ax, batchnorm in zip(axes, variants, strict=True):
                rows = mean[(mean["space"] == space) & (mean["batchnorm"] == batchnorm)]
                plot_sweep(rows, "width", "size_half", by="depth", ax=ax,
                           ylabel=f"{space}-space size_half (ε where accuracy halves)",
                           title=f"{VARIANT_LABELS[batchnorm]}: {space}-space basin size against width")
                ax.get_legend().set_title("depth (layers = depth + 2)")
            fig.suptitle(f"Attraction-basin size in {space} space against width, a line per depth")
            figs[panel] = fig
        members = tables["members"]
        fig = new_figure((6.0 * len(variants), 4.2))
        axes = fig.subplots(1, len(variants), squeeze=False)[0]
        for ax, batchnorm in zip(axes, variants, strict=True):
            rows = members[members["batchnorm"] == batchnorm]
            plot_sweep(rows, "width", "test_accuracy", by="depth", ax=ax, ylabel="test accuracy",
                       title=f"{VARIANT_LABELS[batchnorm]}: test accuracy of the members")
        fig.suptitle("Test accuracy against width, a line per depth (context for the basins)")
        figs["fig5_test_accuracy"] = fig
        return figs

    def summary(self, tables: dict[str, pd.DataFrame], config: BasinsDepthWidthConfig) -> dict[str, Any]:
        sizes, members = tables["basin_sizes"], tables["members"]
        mean = _mean_sizes(sizes, ["batchnorm", "depth", "width", "space"])
        width = max(config.widths)
        out: dict[str, Any] = {"curve_width": width, "depth_counting": "paper layers = depth + 2"}
        for batchnorm in config.batchnorms:
            v = "bn" if batchnorm else "nobn"
            m = members[members["batchnorm"] == batchnorm]
            if m.empty:
                continue
            out[f"{v}_train_accuracy_min"] = _finite(float(m["train_accuracy"].min()))
            accuracy = m[m["width"] == width].groupby("depth", as_index=False)[["test_accuracy"]].mean()
            out[f"{v}_test_accuracy_by_depth_at_width{width}"] = {
                layers_label(int(r["depth"])): _finite(r["test_accuracy"]) for r in accuracy.to_dict("records")
            }
            for space in SPACES:
                rows = mean[(mean["batchnorm"] == batchnorm) & (mean["space"] == space)]
                if rows.empty:
                    continue
                at_width = rows[rows["width"] == width].sort_values("depth")
                out[f"{v}_{space}_size_half_by_depth_at_width{width}"] = {
                    layers_label(int(r["depth"])): _finite(r["size_half"]) for r in at_width.to_dict("records")
                }
                out[f"{v}_{space}_depth_trend"] = _finite(rank_trend(at_width["depth"], at_width["size_half"]))
                out[f"{v}_{space}_converged_depth"] = _finite(converged_at(at_width["depth"], at_width["size_half"]))
                width_trends, converged = [], {}
                for depth, group in rows.groupby(rows["depth"]):
                    group = group.sort_values("width")
                    width_trends.append(rank_trend(group["width"], group["size_half"]))
                    converged[layers_label(int(depth))] = _finite(converged_at(group["width"], group["size_half"]))
                out[f"{v}_{space}_width_trend_mean"] = _mean_finite(width_trends)
                out[f"{v}_{space}_depth_trend_mean"] = _mean_finite(
                    [rank_trend(group["depth"], group["size_half"]) for _, group in rows.groupby("width")]
                )
                out[f"{v}_{space}_converged_width_by_depth"] = converged
                out[f"{v}_{space}_size_half_not_reached"] = int(rows["size_half"].isna().sum())
        return out


def _depth_curves(
    curves: pd.DataFrame, sizes: pd.DataFrame, space: str, batchnorm: bool, width: int, ax: Axes
) -> None:
    """Panel (a) or (b): one basin curve per depth (seed 0) at ``width``, its size_half marked."""
    from netdyn.plots import plot_basin

    rows = curves[(curves["space"] == space) & (curves["batchnorm"] == batchnorm) & (curves["width"] == width)
                  & (curves["seed"] == 0)]
    marks = sizes[(sizes["space"] == space) & (sizes["batchnorm"] == batchnorm) & (sizes["width"] == width)
                  & (sizes["seed"] == 0)]
    by_depth = {f"{d} ({d + 2} layers)": t for d, t in rows.groupby(rows["depth"], sort=True)}
    half = {f"{int(r['depth'])} ({int(r['depth']) + 2} layers)": r["size_half"] for r in marks.to_dict("records")}
    plot_basin(by_depth, ax=ax, kind=space, sizes=half, legend_title="depth")
    legend = ax.get_legend()
    if legend is not None:
        legend.set_loc("lower left")  # below a curve's fall and left of its tail: empty on every panel
    ax.set_title(f"{VARIANT_LABELS[batchnorm]}, width {width}: {space}-space basins")


EXPERIMENT = BasinsDepthWidth
