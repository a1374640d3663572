"""``basins-depth-width`` (paper Fig. 5): how the attraction basins of the training samples depend on depth and
width, in sample space and in weight space, with batch norm (the paper's nets) and without it.

Every member is a ReLU MLP trained to (near) 100% training accuracy; its last checkpoint gets a sample-space
and a weight-space basin curve (docs/quantities.md#attraction-basins, through ``runs.tables``), and ``size_half`` (where
the accuracy has halved) is read from each curve with :func:`~netdyn.analysis.basins.curve_sizes`. Panels (a, b): the
curves of several depths at the widest width; panels (c, d): ``size_half`` against width, a line per depth.

The helpers :func:`basin_tables`, :func:`rank_trend` and :func:`converged_at` are shared with
``basins-hparams`` (Fig. 6).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
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
from netdyn.experiments.criteria import CannotEvaluate, Criterion
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
    """With batch norm (the paper's nets) and without it (the experiment runs both)."""
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
    baseline_depth: int | None = 1
    """Control (see docs/verdicts.md): the shallow baseline, nets of this depth at the widest width, with and without
    batch norm (None: none; a depth of the grid is not trained twice)."""
    same_init_control: bool = True
    """Control (see docs/verdicts.md): BN nets from the plain nets' initial rule (``init_plain``) at the widest width
    over the grid's depths, so that BN and plain nets are compared from the same initial rule as well as each from its
    own."""
    eval_every: str = "log:6"
    """Evaluation points of the training history (each reads the whole train and test sets)."""
    checkpoint_every: str = "log:2"
    """Checkpoints: the first and the last (only the last is analysed)."""
    basin_samples: int | None = 500
    """Training samples the basin curves use (a seeded subset; the basins' CPU default is 2,000; None: all)."""
    repeats: int = 3
    """Noise draws per sample (sample space) or perturbed networks (weight space) per amplitude."""
    eps: tuple[float, ...] | None = None
    """Noise amplitudes (None: the basins' default grid, 0..3 by 0.1, extended up to 12 until accuracy halves)."""


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


def own_init(config: BasinsDepthWidthConfig, batchnorm: bool) -> str:
    """The initial rule of a variant's own nets (``init_bn`` or ``init_plain``)."""
    return config.init_bn if batchnorm else config.init_plain


def member_nets(config: BasinsDepthWidthConfig) -> list[tuple[bool, str, int, int]]:
    """``(batchnorm, init, depth, width)`` of every net: the grid (each variant from its own initial rule), the
    shallow baseline at the widest width and the BN nets from the plain nets' rule at the widest width."""
    widest = max(config.widths)
    nets = [(bn, own_init(config, bn), d, w) for bn in config.batchnorms for d in config.depths for w in config.widths]
    if config.baseline_depth is not None:
        nets += [(bn, own_init(config, bn), config.baseline_depth, widest) for bn in config.batchnorms]
    if config.same_init_control and True in config.batchnorms and config.init_plain != config.init_bn:
        depths = (*config.depths, *(() if config.baseline_depth is None else (config.baseline_depth,)))
        nets += [(True, config.init_plain, d, widest) for d in depths]
    return list(dict.fromkeys(nets))  # a baseline depth of the grid is not trained twice


def own_rows(table: pd.DataFrame, config: BasinsDepthWidthConfig) -> pd.DataFrame:
    """The rows of nets from their variant's own initial rule (the controls from another rule left out)."""
    if "init" not in table.columns:
        return table
    own = table["batchnorm"].map(lambda bn: own_init(config, bool(bn)))
    return table[table["init"] == own]


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
        "basin_curves": ("member", "batchnorm", "init", "depth", "width", "seed", *CURVE_COLUMNS),
        "basin_sizes": ("member", "batchnorm", "init", "depth", "width", "seed", *SIZE_COLUMNS),
        "members": ("member", "batchnorm", "init", "depth", "width", "seed", *MEMBER_COLUMNS),
    }
    nullable = {"basin_sizes": ("size_mid", "size_half"), "members": ("train_accuracy", "test_accuracy")}
    measured = {
        "smoke": "13 s (2 CPU cores shared with other jobs, load average 6; 2026-11-30)",
        "small": "11.0 min (660.0 s; 3 seeds, 1 torch thread, --jobs 2 on an idle 2-core CPU, 2026-12-06)",
    }
    scales = {
        "smoke": BasinsDepthWidthConfig(
            seeds=2,
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
        return [self._member(config, *net, seed) for net in member_nets(config) for seed in seeded(config)]

    def _member(self, config: BasinsDepthWidthConfig, batchnorm: bool, init: str, depth: int, width: int,
                seed: int) -> Member:
        spec = RunSpec(
            model=ModelSpec(width=width, depth=depth, batchnorm=batchnorm, init=init, seed=seed),
            data=config.data,
            train=config.train_config(seed),
        )
        params = {"batchnorm": batchnorm, "init": init, "depth": depth, "width": width, "seed": seed}
        return Member(member_name(**params), spec, params)

    def tables(self, runs: ExperimentRuns, config: BasinsDepthWidthConfig) -> dict[str, pd.DataFrame]:
        return basin_tables(runs, config)

    def figures(self, tables: dict[str, pd.DataFrame], config: BasinsDepthWidthConfig) -> dict[str, Figure]:
        from netdyn.plots._base import new_figure
        from netdyn.plots.basin_sweeps import plot_sweep
        from netdyn.plots.seeds import one_seed_note

        curves, sizes = tables["basin_curves"], tables["basin_sizes"]
        width = max(config.widths)
        seeds = sorted(set(sizes["seed"]))
        n_seeds = len(seeds)
        spread = f"median of {n_seeds} seeds, bars min to max" if n_seeds > 1 else f"seed {seeds[0]}"
        variants = [v for v in config.batchnorms if v in set(sizes["batchnorm"])]
        nets = _curve_panels(sizes, config)
        figs: dict[str, Figure] = {}
        for panel, space in (("fig5a_sample_basin", "sample"), ("fig5b_weight_basin", "weight")):
            fig = new_figure((6.0 * len(nets), 4.6))
            axes = fig.subplots(1, len(nets), squeeze=False)[0]
            for ax, (batchnorm, init) in zip(axes, nets, strict=True):
                _depth_curves(curves, sizes, space, (batchnorm, init), width, ax, seeds[0])
            fig.suptitle(f"Attraction basins in {space} space by depth, width {width} "
                         f"({one_seed_note(n_seeds, seeds[0])}; paper layers = depth + 2)")
            figs[panel] = fig
        own = own_rows(sizes, config)
        for panel, space in (("fig5c_sample_size_width", "sample"), ("fig5d_weight_size_width", "weight")):
            fig = new_figure((6.0 * len(variants), 4.6))
            axes = fig.subplots(1, len(variants), squeeze=False)[0]
            for ax, batchnorm in zip(axes, variants, strict=True):
                rows = own[(own["space"] == space) & (own["batchnorm"] == batchnorm)]
                plot_sweep(rows, "width", "size_half", by="depth", ax=ax,
                           ylabel=f"{space}-space size_half (ε where accuracy halves)",
                           title=f"{_net_label(config, batchnorm, own_init(config, batchnorm))}: {space}-space "
                           "basin size against width")
                ax.get_legend().set_title("depth (layers = depth + 2)")
            fig.suptitle(f"Attraction-basin size in {space} space against width, a line per depth ({spread})")
            figs[panel] = fig
        members = own_rows(tables["members"], config)
        fig = new_figure((6.0 * len(variants), 4.2))
        axes = fig.subplots(1, len(variants), squeeze=False)[0]
        for ax, batchnorm in zip(axes, variants, strict=True):
            rows = members[members["batchnorm"] == batchnorm]
            plot_sweep(rows, "width", "test_accuracy", by="depth", ax=ax, ylabel="test accuracy",
                       title=f"{_net_label(config, batchnorm, own_init(config, batchnorm))}: test accuracy")
        fig.suptitle(f"Test accuracy against width, a line per depth (context for the basins; {spread})")
        figs["fig5_test_accuracy"] = fig
        return figs

    def criteria(self, config: BasinsDepthWidthConfig) -> list[Criterion]:
        return basins_depth_width_criteria(config)

    def summary(self, tables: dict[str, pd.DataFrame], config: BasinsDepthWidthConfig) -> dict[str, Any]:
        sizes, members = own_rows(tables["basin_sizes"], config), own_rows(tables["members"], config)
        sizes = sizes[sizes["depth"].isin(config.depths)]
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


def _net_label(config: BasinsDepthWidthConfig, batchnorm: bool, init: str) -> str:
    """``BN`` / ``no BN``, with the initial rule where the experiment trains a variant from more than one."""
    label = VARIANT_LABELS[batchnorm]
    controlled = config.same_init_control and config.init_plain != config.init_bn
    return f"{label}, {init} init" if controlled else label


def _curve_panels(sizes: pd.DataFrame, config: BasinsDepthWidthConfig) -> list[tuple[bool, str]]:
    """The (batchnorm, init) nets of panels (a, b): each variant from its own rule, then the same-init control."""
    have = set(zip(sizes["batchnorm"], sizes["init"], strict=True)) if "init" in sizes.columns else set()
    nets = [(bn, own_init(config, bn)) for bn in config.batchnorms]
    nets += [(True, config.init_plain)] if config.init_plain != config.init_bn else []
    return [n for n in nets if n in have] if have else [(bn, "") for bn in config.batchnorms]


def _depth_curves(
    curves: pd.DataFrame, sizes: pd.DataFrame, space: str, net: tuple[bool, str], width: int, ax: Axes, seed: int
) -> None:
    """Panel (a) or (b): one basin curve per depth (one seed) at ``width`` of the nets ``(batchnorm, init)``, its
    size_half marked."""
    from netdyn.plots import plot_basin

    batchnorm, init = net

    def chosen(table: pd.DataFrame) -> pd.DataFrame:
        keep = ((table["space"] == space) & (table["batchnorm"] == batchnorm) & (table["width"] == width)
                & (table["seed"] == seed))  # fmt: skip
        if init and "init" in table.columns:
            keep &= table["init"] == init
        return table[keep]

    rows, marks = chosen(curves), chosen(sizes)
    by_depth = {f"{d} ({d + 2} layers)": t for d, t in rows.groupby(rows["depth"], sort=True)}
    half = {f"{int(r['depth'])} ({int(r['depth']) + 2} layers)": r["size_half"] for r in marks.to_dict("records")}
    plot_basin(by_depth, ax=ax, kind=space, sizes=half, legend_title="depth")
    legend = ax.get_legend()
    if legend is not None:
        # the empty corner: sample-space curves fall late (below the fall, left of the tail), weight-space curves
        # early (above their tails, right of the fall)
        legend.set_loc("lower left" if space == "sample" else "upper right")
    label = VARIANT_LABELS[batchnorm] + (f", {init} init" if init else "")
    ax.set_title(f"{label}, width {width}: {space}-space basins")


# ------------------------------------------------------------------------------------------ criteria
# Written from the paper's text on Fig. 5 (section V, "The depth and width dependence of attraction basins") and on
# Fig. 7 vs 5(a) (section VI, grokking: the deep net's sample-space basin is far larger than a shallow net's) before
# any run used them (see docs/verdicts.md). The paper's nets have batch norm; the nets without it and the BN nets
# started from the plain nets' initial rule are controls (see docs/verdicts.md) whose criteria count like the others: a
# depth or width dependence the paper ascribes to DNNs should not hinge on batch norm or on the initial rule. Depth 1 is
# the shallow baseline. One value per seed, from that seed's nets.

MIN_TREND = 0.5
"""A Spearman correlation that counts as a trend with depth or width (|rho| >= 0.5)."""
PAPER_CONVERGED_DEPTH = 6
"""'converge after the DNNs exceed about 8 layers': depth 6 in netdyn's counting (layers = depth + 2)."""
PAPER_CONVERGED_WIDTH = 400
"""'The converged width is around 400'."""
CONVERGED_SHARE = 2 / 3
"""Share of the depths whose size must have converged against width."""
DEEP_OVER_SHALLOW = 1.25
"""How much larger (ratio) the deepest net's sample-space basin must be than the depth-1 net's."""


def _sizes(tables: Mapping[str, pd.DataFrame], config: Any, seed: int, space: str, batchnorm: bool,
           init: str | None = None) -> pd.DataFrame:
    """One seed's ``size_half`` rows of one space and variant, from the initial rule ``init`` (default: the
    variant's own), depth 1 included."""
    table = tables.get("basin_sizes")
    rows = None if table is None else table[(table["seed"] == seed) & (table["space"] == space)
                                            & (table["batchnorm"] == batchnorm)]  # fmt: skip
    if rows is not None and "init" in rows.columns:
        own = config.init_bn if batchnorm else config.init_plain
        rows = rows[rows["init"] == (own if init is None else init)]
    elif init is not None and init != (config.init_bn if batchnorm else config.init_plain):
        rows = None
    if rows is None or rows.empty:
        what = VARIANT_LABELS[batchnorm] + (f", {init} initial weights" if init else "")
        raise CannotEvaluate(f"no {space}-space basin of a {what} net of seed {seed} (diverged or not run)")
    return rows


def _trend(x: pd.Series, y: pd.Series, what: str) -> float:
    value = rank_trend(x, y)
    if math.isnan(value):
        raise CannotEvaluate(f"no rank correlation over {what} (fewer than two sizes reached, or all equal)")
    return value


def mean_trend(tables: Mapping[str, pd.DataFrame], config: Any, seed: int, *, space: str, batchnorm: bool,
               against: str) -> float:
    """Mean over the other axis of Spearman's correlation of ``size_half`` with ``against`` (depth or width),
    over the grid's depths (depth 1, the shallow baseline, left out)."""
    rows = _sizes(tables, config, seed, space, batchnorm)
    rows = rows[rows["depth"].isin(config.depths)]
    other = "width" if against == "depth" else "depth"
    trends = [rank_trend(group[against], group["size_half"]) for _, group in rows.groupby(other)]
    finite = [t for t in trends if math.isfinite(t)]
    if not finite:
        raise CannotEvaluate(f"no {other} with a rank correlation against {against}")
    return float(np.mean(finite))


def widest_depth_trend(tables: Mapping[str, pd.DataFrame], config: Any, seed: int, *, space: str, batchnorm: bool,
                       init: str) -> float:
    """Spearman's correlation of ``size_half`` with depth at the widest width, nets from initial rule ``init``."""
    rows = _sizes(tables, config, seed, space, batchnorm, init)
    rows = rows[(rows["width"] == max(config.widths)) & rows["depth"].isin(config.depths)]
    return _trend(rows["depth"], rows["size_half"], "depths")


def _no_plateau(rows: pd.DataFrame, axis: str, space: str) -> CannotEvaluate:
    """Why :func:`converged_at` found no plateau of ``size_half`` against ``axis``: too few points, a size not
    reached among the last ``MIN_PLATEAU`` (where every plateau has to start), or sizes that keep changing."""
    if len(rows) < MIN_PLATEAU:
        return CannotEvaluate(f"fewer than {MIN_PLATEAU} {axis}s on the grid: no plateau to find")
    last = rows.sort_values(axis).tail(MIN_PLATEAU)
    missing = last.loc[~np.isfinite(last["size_half"].astype(float)), axis].tolist()
    if missing:
        return CannotEvaluate(f"the {space}-space size_half was not reached on the noise grid at {axis} "
                              f"{', '.join(str(int(v)) for v in missing)}")
    return CannotEvaluate(f"the {space}-space size does not level off over the grid's {axis}s (its last "
                          f"{MIN_PLATEAU} are not within {CONVERGENCE_TOLERANCE:g} of their median)")


def converged_depth(tables: Mapping[str, pd.DataFrame], config: Any, seed: int, *, space: str) -> float:
    """BN nets at the widest width: the depth from which ``size_half`` stays within 10% (:func:`converged_at`)."""
    rows = _sizes(tables, config, seed, space, True)
    rows = rows[(rows["width"] == max(config.widths)) & rows["depth"].isin(config.depths)]
    value = converged_at(rows["depth"], rows["size_half"])
    if math.isnan(value):
        raise _no_plateau(rows, "depth", space)
    return value


def converged_width_share(tables: Mapping[str, pd.DataFrame], config: Any, seed: int, *, space: str) -> float:
    """BN nets: share of the grid's depths whose ``size_half`` levels off against width by twice the paper's
    converged width."""
    if max(config.widths) < PAPER_CONVERGED_WIDTH:
        raise CannotEvaluate(f"the widest net ({max(config.widths)}) is narrower than the paper's converged width "
                             f"({PAPER_CONVERGED_WIDTH})")
    rows = _sizes(tables, config, seed, space, True)
    rows = rows[rows["depth"].isin(config.depths)]
    if rows["width"].nunique() < MIN_PLATEAU:  # no depth could level off: the grid, not the nets, says so
        raise CannotEvaluate(f"fewer than {MIN_PLATEAU} widths on the grid: no plateau to find")
    at = [converged_at(group["width"], group["size_half"]) for _, group in rows.groupby("depth")]
    return float(np.mean([math.isfinite(w) and w <= 2 * PAPER_CONVERGED_WIDTH for w in at]))


def deep_over_shallow(tables: Mapping[str, pd.DataFrame], config: Any, seed: int, *, space: str,
                      batchnorm: bool) -> float:
    """At the widest width: ``size_half`` of the deepest net over that of the depth-1 net."""
    rows = _sizes(tables, config, seed, space, batchnorm)
    rows = rows[rows["width"] == max(config.widths)].set_index("depth")["size_half"]
    deepest = max(config.depths)
    if 1 not in rows.index or deepest not in rows.index:
        raise CannotEvaluate("no depth-1 baseline or no deepest net at the widest width")
    if not (math.isfinite(rows[1]) and math.isfinite(rows[deepest])) or rows[1] <= 0:
        raise CannotEvaluate("a size_half was not reached on the noise grid")
    return float(rows[deepest] / rows[1])


def _trend_criteria(batchnorm: bool, statement_nets: str) -> list[Criterion]:
    v = "bn" if batchnorm else "plain"
    nets = f"{VARIANT_LABELS[batchnorm]} nets from their own initial rule, the grid's depths (not depth 1)"
    claims = (
        ("sample", "depth", ">=", "grows", "the attraction basin on the sample vector space ... increases with the "
         "increase of depth' (Fig. 5(a); 'for a fixed width', Fig. 5(c)"),
        ("weight", "depth", "<=", "shrinks", "the attraction basin on the weight vector space decreases with the "
         "increase of depth' (Fig. 5(b); 'for a fixed width', Fig. 5(d)"),
        ("sample", "width", ">=", "grows", "for a fixed depth, the attraction basin on the sample vector space ... "
         "increases ... with the increase of width' (Fig. 5(c)"),
        ("weight", "width", "<=", "shrinks", "for a fixed depth, the attraction basin ... on the weight vector "
         "space ... decreases ... with the increase of width' (Fig. 5(d)"),
    )
    out = []
    for space, against, rule, verb, quote in claims:
        other = "width" if against == "depth" else "depth"
        out.append(Criterion(
            f"{space}_basin_{verb}_with_{against}_{v}",
            f"'{quote}){statement_nets}",
            f"mean over {other}s of Spearman's correlation of the {space}-space size_half with {against}; {nets}",
            rule, MIN_TREND if rule == ">=" else -MIN_TREND,
            partial(mean_trend, space=space, batchnorm=batchnorm, against=against),
        ))
    return out


def basins_depth_width_criteria(config: BasinsDepthWidthConfig) -> list[Criterion]:
    """The criteria of ``basins-depth-width`` (see docs/verdicts.md) for the variants ``config`` trains."""
    out: list[Criterion] = []
    if True in config.batchnorms:
        out += _trend_criteria(True, "")
        for space, paper in (("sample", "the attraction basins on the sample vector space increase with the "
                              "increase of depth initially but converge after the DNNs exceed about 8 layers"),
                             ("weight", "the attraction basins on the wight-vector space decreases with the "
                              "increase of depth initially but converge after also the DNNs exceed 8 layers")):
            out.append(Criterion(
                f"{space}_basin_converges_in_depth_bn",
                f"Fig. 5({'a' if space == 'sample' else 'b'}): '{paper}'",
                f"BN nets at the widest width: the depth from which the {space}-space size_half stays within "
                f"{CONVERGENCE_TOLERANCE:g} of its median (at least {MIN_PLATEAU} depths), at most depth "
                f"{PAPER_CONVERGED_DEPTH} (8 layers)",
                "<=", PAPER_CONVERGED_DEPTH, partial(converged_depth, space=space),
            ))
            out.append(Criterion(
                f"{space}_basin_converges_in_width_bn",
                f"Fig. 5({'c' if space == 'sample' else 'd'}): the size "
                f"'{'increases' if space == 'sample' else 'decreases'} firstly with the increase of width and then "
                "tends to converge. The converged width is around 400'",
                f"BN nets: share of the depths whose {space}-space size_half levels off against width (as in the "
                f"depth criterion) from a width of at most {2 * PAPER_CONVERGED_WIDTH}; needs a grid reaching "
                f"width {PAPER_CONVERGED_WIDTH}",
                ">=", CONVERGED_SHARE, partial(converged_width_share, space=space),
            ))
        out.append(Criterion(
            "sample_basin_deep_exceeds_shallow_bn",
            "Section VI on Fig. 5(a) vs the shallow net of Fig. 7(b): 'the noise level required to observe such a "
            "transition is significantly higher in the DNN than in the shallow network ... the depth leads to a "
            "huge basin of attraction in sample vector space'",
            "BN nets at the widest width: sample-space size_half of the deepest net over that of the depth-1 net "
            f"(the shallow baseline), at least {DEEP_OVER_SHALLOW:g}",
            ">=", DEEP_OVER_SHALLOW, partial(deep_over_shallow, space="sample", batchnorm=True),
        ))
    if False in config.batchnorms:
        out += _trend_criteria(False, "; control: the same claims on nets without batch norm")
    if True in config.batchnorms and config.init_plain != config.init_bn:
        for space, rule, verb in (("sample", ">=", "grows"), ("weight", "<=", "shrinks")):
            out.append(Criterion(
                f"{space}_basin_{verb}_with_depth_bn_same_init",
                f"Fig. 5({'a' if space == 'sample' else 'b'}): the {space}-space basin {verb} with depth; control: "
                "BN nets from the plain nets' initial rule, so that BN and plain nets differ in batch norm only",
                f"BN nets from the '{config.init_plain}' initial rule at the widest width: Spearman's correlation "
                f"of the {space}-space size_half with depth",
                rule, MIN_TREND if rule == ">=" else -MIN_TREND,
                partial(widest_depth_trend, space=space, batchnorm=True, init=config.init_plain),
            ))
    return out


EXPERIMENT = BasinsDepthWidth
