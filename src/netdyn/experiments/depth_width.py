"""``depth-width`` (paper Fig. 4): test accuracy of BN ReLU nets against depth for several widths, and the RPD of
the first hidden layer against depth at width 128.

The paper counts layers with the input and the output (its n-layer net is depth n - 2 here): its axis starts at
4 layers (depth 2) and its optimum, "8-9 layers", is depth 6-7. Beside the layer-1 RPD, its summaries (gradient,
order index and the density in the high-rank region, q < 0.1) against depth, and the neuron-mode census of every
layer of the width-128 nets (layer 1 is OPM or inactive by construction: its reference is its own local field).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from netdyn.analysis.config import AnalysisConfig
from netdyn.data.spec import DataSpec
from netdyn.experiments.base import Experiment, ExperimentConfig, ExperimentRuns, Member, member_name, seeded
from netdyn.experiments.criteria import CannotEvaluate, Criterion
from netdyn.models.spec import ModelSpec
from netdyn.orchestration import RunSpec

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: The paper's layer count of a net of ``depth`` hidden layers (input and output included).
PAPER_OFFSET = 2
#: The high-rank region of the RPD whose density the paper compares across depths ("in the high rank region,
#: the probability of the 8-layer DNN is the lowest").
HEAD_Q = 0.1


@dataclass(frozen=True)
class DepthWidthConfig(ExperimentConfig):
    """BN ReLU MLPs over a grid of depths and widths (the paper gives the family and the axes, not the training
    settings: those below are netdyn's choices, the same as ``structure``'s)."""

    widths: tuple[int, ...] = (64, 128, 256)
    """Hidden widths, one accuracy curve each."""
    depths: tuple[int, ...] = (2, 4, 6, 8, 10, 12)
    """Depths (hidden layers; the paper's n-layer net is depth n - 2, so 2..12 = its 4..14 layers)."""
    rpd_width: int = 128
    """Width whose nets get the RPD and neuron-mode analysis (the paper's Fig. 4b: 128)."""
    optimizer: str = "adam"
    """Optimiser (the paper does not say; Adam as in its Fig. 6)."""
    lr: float = 1e-3
    """Learning rate (Adam's default)."""
    batch_size: int = 100
    """Minibatch size."""
    epochs: float = 30
    """Training length in epochs (the same for every net)."""
    eval_every: str = "log:20"
    """Evaluation points of the training history; the accuracy is that of the last (BN running statistics)."""
    max_samples: int = 2000
    """Training samples of the RPD and the neuron modes."""


class DepthWidth(Experiment[DepthWidthConfig]):
    name = "depth-width"
    figure = "Fig. 4"
    shows = "BN ReLU nets: test accuracy vs depth for several widths; layer-1 RPD vs depth at width 128"
    claim = (
        "For a fixed width the test accuracy of a BN ReLU network first rises and then falls with depth, with "
        "its maximum at about 8 layers (depth 6 in netdyn's counting, which leaves out the input and output "
        "layers); for a fixed depth it generally rises with width and the curves converge to a universal one. "
        "The RPD of the first hidden layer at width 128 has its lowest high-rank density at the optimal depth: "
        "the first layer holds the largest share of non-order-preserving neurons there."
    )
    columns = {
        "accuracy": ("width", "depth", "seed", "paper_layers", "step", "split", "accuracy", "loss"),
        "rpd": ("width", "depth", "seed", "layer", "q", "density"),
        "rpd_summary": ("width", "depth", "seed", "layer", "gradient", "top_mass", "order_index", "head_density"),
        "neuron_mode_census": ("width", "depth", "seed", "layer", "opm", "npm", "inactive", "rho_median"),
    }
    nullable = {"neuron_mode_census": ("rho_mean", "rho_q10", "rho_q25", "rho_median", "rho_q75",
                                       "order_index_mean")}
    measured = {
        "smoke": "about 10 s (6-10 s of CPU time; 1.9 min wall on the shared, loaded machine)",
        "small": "10.4 min (625.8 s; 3 seeds, 1 torch thread, --jobs 2 on an idle 2-core CPU, 2026-12-06)",
        "paper": "not run (meant for a GPU; the task that built it had none)",
    }
    scales = {
        "smoke": DepthWidthConfig(
            seeds=2,
            data=DataSpec("mnist5k", train_size=500, test_size=200), widths=(16, 32), depths=(2, 3), rpd_width=32,
            epochs=2, eval_every="log:4", max_samples=200,
        ),
        "small": DepthWidthConfig(),
        "paper": DepthWidthConfig(
            data=DataSpec("mnist"), widths=(128, 256, 512, 1024), depths=(2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16),
            batch_size=300, epochs=20,
        ),
    }

    def members(self, config: DepthWidthConfig) -> list[Member]:
        members = []
        for width in config.widths:
            for depth in config.depths:
                for seed in seeded(config):
                    spec = RunSpec(
                        model=ModelSpec(width=width, depth=depth, batchnorm=True, seed=seed),
                        data=config.data,
                        train=config.train_config(seed, checkpoint_every="log:1"),
                    )
                    params = {"width": width, "depth": depth, "seed": seed}
                    members.append(Member(member_name(**params), spec, params))
        return members

    def _analysis_config(self, config: DepthWidthConfig) -> AnalysisConfig:
        return AnalysisConfig(quantities=("rpd", "neuron_modes"), basins=False, max_samples=config.max_samples,
                              device=config.device)

    def tables(self, runs: ExperimentRuns, config: DepthWidthConfig) -> dict[str, pd.DataFrame]:
        finals = []
        for member in runs:
            history = runs.history(member)
            history = history[history["bn_mode"].isin(["running", "none"]) | history["bn_mode"].isna()]
            last = history[history["step"] == history["step"].max()]
            finals.append(last.assign(paper_layers=member.params["depth"] + PAPER_OFFSET))
        accuracy = pd.concat(finals, ignore_index=True)
        front = ["member", "width", "depth", "seed", "paper_layers", "step", "split", "accuracy", "loss"]
        accuracy = accuracy[[*front, *[c for c in accuracy.columns if c not in front]]]
        analysed = runs.select(width=config.rpd_width)
        tables = runs.tables(("rpd", "rpd_summary", "neuron_mode_census"), self._analysis_config(config),
                             members=analysed)
        tables = {name: table.drop(columns="step", errors="ignore") for name, table in tables.items()}
        tables["accuracy"] = accuracy
        if "rpd_summary" in tables:
            tables["rpd_summary"] = tables["rpd_summary"].merge(
                head_density(tables["rpd"]), on=["member", "layer"], how="left", validate="one_to_one")
        return tables

    def figures(self, tables: dict[str, pd.DataFrame], config: DepthWidthConfig) -> dict[str, Figure]:
        from netdyn.plots import plot_rpd
        from netdyn.plots._base import new_figure
        from netdyn.plots.sizes import plot_against

        figs: dict[str, Figure] = {}
        test = tables["accuracy"][tables["accuracy"]["split"] == "test"]
        fig = plot_against(test, "depth", "accuracy", by="width", xlabel="depth (hidden layers)",
                           ylabel="test accuracy (fraction, last evaluation)")
        ax = fig.axes[0]
        _paper_axis(ax, test["depth"])
        seeds = test["seed"].nunique()
        ax.set_title(f"BN ReLU nets: test accuracy against depth, {config.epochs:g} epochs"
                     + (f"\n(median of {seeds} seeds; band = min to max)" if seeds > 1 else ""))
        figs["fig4a_accuracy_depth"] = fig

        if "rpd" not in tables:
            return figs
        rpd = tables["rpd"]
        first = rpd[(rpd["layer"] == 1) & (rpd["seed"] == 0)]
        fig = plot_rpd(first, by="depth")
        ax = fig.axes[0]
        for line in ax.get_lines():
            label = str(line.get_label())
            if label.startswith("depth "):
                depth = int(label.split()[1])
                line.set_label(f"depth {depth} ({depth + PAPER_OFFSET} layers)")
        handles = [line for line in ax.get_lines() if not str(line.get_label()).startswith("_")]
        ax.legend(handles=handles, fontsize="small", loc="upper right")
        ax.set_title(f"RPD of the first hidden layer by depth (width {config.rpd_width}; "
                     f"seed 0 only{f' of {seeds}' if seeds > 1 else ''})")
        figs["fig4b_rpd_first_layer"] = fig

        summary = tables["rpd_summary"]
        indicators = summary[summary["layer"] == 1].melt(
            id_vars=["depth", "seed"], value_vars=["gradient", "order_index", "head_density"],
            var_name="indicator", value_name="value")
        indicators["indicator"] = indicators["indicator"].map({
            "gradient": "RPD gradient (−slope)", "order_index": "order index O",
            "head_density": f"density at q < {HEAD_Q:g} (high rank)"})
        fig = plot_against(indicators, "depth", "value", panel="indicator", sharey=False,
                           xlabel="depth (hidden layers)")
        for ax in list(fig.axes):
            _paper_axis(ax, indicators["depth"])
            legend = ax.get_legend()
            if legend is not None:
                legend.remove()
        fig.suptitle(f"First hidden layer's RPD summaries against depth, width {config.rpd_width}"
                     + (f" (median of {seeds} seeds; band = min to max)" if seeds > 1 else ""))
        figs["fig4b_rpd_summary"] = fig

        census = tables["neuron_mode_census"]
        census = census[census["seed"] == 0]
        fig = new_figure((12.0, 4.4))
        left, right = fig.subplots(1, 2)
        plot_against(census, "layer", "npm", by="depth", ax=left, xlabel="layer l",
                     ylabel="NPM fraction of the layer's neurons")
        plot_against(census, "layer", "rho_median", by="depth", ax=right, xlabel="layer l",
                     ylabel="median order preservation rho")
        right.axhline(0.9, color="0.3", ls=":", lw=1.2, label="OPM threshold (0.9)")
        left.get_legend().remove()  # one legend for both panels, outside the curves
        right.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), title="depth",
                     title_fontsize="small")
        fig.suptitle(f"Neuron modes by layer, width {config.rpd_width} "
                     f"(seed 0 only{f' of {seeds}' if seeds > 1 else ''})"
                     "\n(layer 1 has rho = 1 by construction: the "
                     "census cannot see its NPM share, which the paper's Fig. 4b reads from the RPD)")
        figs["fig4b_neuron_modes"] = fig
        return figs

    def criteria(self, config: DepthWidthConfig) -> list[Criterion]:
        return depth_width_criteria()

    def summary(self, tables: dict[str, pd.DataFrame], config: DepthWidthConfig) -> dict[str, Any]:
        test = tables["accuracy"][tables["accuracy"]["split"] == "test"]
        mean = test.groupby(["width", "depth"])["accuracy"].mean()
        out: dict[str, Any] = {"epochs": config.epochs, "seeds": int(test["seed"].nunique())}
        out["test_accuracy"] = {f"width{w}": {f"depth{d}": float(mean[(w, d)]) for d in config.depths
                                              if (w, d) in mean.index} for w in config.widths}
        best = best_depths(test)
        out["best_depth_by_width"] = {f"width{w}": d for w, d in best.items()}
        out["best_paper_layers_by_width"] = {f"width{w}": d + PAPER_OFFSET for w, d in best.items()}
        out["interior_optimum_by_width"] = {f"width{w}": min(config.depths) < d < max(config.depths)
                                            for w, d in best.items()}
        out["width_order_fraction"] = width_order_fraction(test)
        if "rpd_summary" in tables:
            first = tables["rpd_summary"][tables["rpd_summary"]["layer"] == 1]
            by_depth = first.groupby("depth")[["gradient", "order_index", "head_density"]].mean()
            out["layer1_rpd_gradient_by_depth"] = {f"depth{d}": float(v) for d, v in by_depth["gradient"].items()}
            out["layer1_head_density_by_depth"] = {f"depth{d}": float(v)
                                                   for d, v in by_depth["head_density"].items()}
            depths = by_depth.index.to_numpy()
            out["layer1_lowest_head_density_depth"] = int(depths[by_depth["head_density"].argmin()])
            out["layer1_lowest_gradient_depth"] = int(depths[by_depth["gradient"].argmin()])
            census = tables["neuron_mode_census"]
            later = census[census["layer"] >= 2].groupby("depth")["npm"].mean()
            out["npm_fraction_layers2plus_by_depth"] = {f"depth{d}": float(v) for d, v in later.items()}
        return out


def head_density(rpd: pd.DataFrame, q: float = HEAD_Q) -> pd.DataFrame:
    """Each curve's mean density over the bins with centre below ``q`` (the RPD's high-rank region): one row
    per (member, layer), column ``head_density``."""
    head = rpd[rpd["q"] < q]
    return head.groupby(["member", "layer"], as_index=False)[["density"]].mean().rename(
        columns={"density": "head_density"})


def best_depths(test: pd.DataFrame) -> dict[int, int]:
    """Per width, the depth of the highest test accuracy averaged over seeds (the shallower one on a tie)."""
    mean = test.groupby(["width", "depth"], as_index=False)[["accuracy"]].mean()
    out = {}
    for width, rows in mean.groupby(mean["width"]):
        rows = rows.sort_values("depth")
        out[int(width)] = int(rows["depth"].iloc[rows["accuracy"].argmax()])
    return out


def width_order_fraction(test: pd.DataFrame) -> float:
    """Share of (depth, adjacent width pair) where the wider net's seed-mean test accuracy is at least the
    narrower one's: 1 when accuracy never falls with width, as the paper reports."""
    mean = test.groupby(["depth", "width"])["accuracy"].mean().unstack("width").sort_index(axis=1)
    if mean.shape[1] < 2:
        return float("nan")
    steps = mean.diff(axis=1).iloc[:, 1:]
    return float((steps >= 0).to_numpy().mean())


def _paper_axis(ax: Axes, depths: pd.Series) -> None:
    """A top axis with the paper's layer count (input and output included) over the depth axis."""
    top = ax.secondary_xaxis(
        "top", functions=(lambda d: np.asarray(d) + PAPER_OFFSET, lambda n: np.asarray(n) - PAPER_OFFSET)
    )
    top.set_xticks(sorted({int(d) + PAPER_OFFSET for d in depths}))
    top.set_xlabel("the paper's layer count n = depth + 2", fontsize="small")


# ------------------------------------------------------------------------------------------ criteria
# Written from the paper's text on Fig. 4 (section V, "The depth and width dependence of test accuracy") before any
# run used them (see docs/verdicts.md); one value per seed, from that seed's nets only.

PEAK_SHARE = 2 / 3
"""Share of the widths whose accuracy must peak at an interior depth ('for a fixed width' read as: most widths)."""
PAPER_OPTIMUM = (7, 9)
"""The paper's optimum, 'approximately 8-layer DNNs', as a range of its layer counts (depth 5 to 7)."""
WIDTH_ORDER = 0.75
"""Share of (depth, adjacent widths) where the wider net is at least as accurate ('generally increases')."""


def _test_accuracy(tables: Mapping[str, pd.DataFrame], seed: int) -> pd.DataFrame:
    table = tables.get("accuracy")
    rows = None if table is None else table[(table["seed"] == seed) & (table["split"] == "test")]
    if rows is None or rows.empty:
        raise CannotEvaluate(f"no test accuracy of seed {seed} (every net diverged)")
    return rows


def interior_peak_share(tables: Mapping[str, pd.DataFrame], config: Any, seed: int) -> float:
    """Share of the widths whose most accurate depth is neither the shallowest nor the deepest of the grid."""
    test = _test_accuracy(tables, seed)
    depths = sorted(set(tables["accuracy"]["depth"]))
    if len(depths) < 3:
        raise CannotEvaluate("fewer than three depths: no interior depth")
    best = best_depths(test)
    return float(np.mean([depths[0] < d < depths[-1] for d in best.values()]))


def optimum_paper_layers(tables: Mapping[str, pd.DataFrame], config: Any, seed: int) -> float:
    """The median over widths of the most accurate depth, in the paper's layer count (depth + 2)."""
    best = best_depths(_test_accuracy(tables, seed))
    return float(np.median(list(best.values()))) + PAPER_OFFSET


def width_order(tables: Mapping[str, pd.DataFrame], config: Any, seed: int) -> float:
    """:func:`width_order_fraction` of one seed's nets."""
    value = width_order_fraction(_test_accuracy(tables, seed))
    if math.isnan(value):
        raise CannotEvaluate("fewer than two widths")
    return value


def width_convergence(tables: Mapping[str, pd.DataFrame], config: Any, seed: int) -> float:
    """Mean |accuracy difference| over depths between the two widest widths, over that between the two narrowest
    (below 1: the curves draw together as the width grows)."""
    wide = _test_accuracy(tables, seed).groupby(["depth", "width"])["accuracy"].mean().unstack("width")
    wide = wide.sort_index(axis=1)
    if wide.shape[1] < 3:
        raise CannotEvaluate("fewer than three widths: no narrow and wide pair to compare")
    narrow = float((wide.iloc[:, 1] - wide.iloc[:, 0]).abs().mean())
    widest = float((wide.iloc[:, -1] - wide.iloc[:, -2]).abs().mean())
    if narrow == 0:
        raise CannotEvaluate("the two narrowest widths have the same accuracy at every depth")
    return widest / narrow


def head_density_at_optimum(tables: Mapping[str, pd.DataFrame], config: Any, seed: int) -> float:
    """At the RPD width: grid steps between the depth whose first hidden layer has the lowest high-rank RPD
    density and the most accurate depth of that width."""
    summary = tables.get("rpd_summary")
    rows = None if summary is None else summary[(summary["seed"] == seed) & (summary["layer"] == 1)]
    if rows is None or rows.empty or rows["head_density"].isna().all():
        raise CannotEvaluate(f"no first-layer RPD of seed {seed}")
    test = _test_accuracy(tables, seed)
    width = int(rows["width"].iloc[0])
    best = best_depths(test[test["width"] == width]).get(width)
    if best is None:
        raise CannotEvaluate(f"no test accuracy at width {width}")
    lowest = int(rows.sort_values("depth")["depth"].to_numpy()[rows.sort_values("depth")["head_density"].argmin()])
    depths = sorted(set(tables["accuracy"]["depth"]))
    return float(abs(depths.index(lowest) - depths.index(best)))


def depth_width_criteria() -> list[Criterion]:
    """The criteria of ``depth-width`` (see docs/verdicts.md)."""
    grid = "one seed's BN ReLU nets, test accuracy at the last evaluation (BN running statistics)"
    return [
        Criterion(
            "accuracy_peaks_inside_depth_range",
            "Fig. 4(a): 'for a fixed width, the accuracy initially increases and then decreases with depth'",
            f"share of the widths whose most accurate depth is neither the shallowest nor the deepest; {grid}",
            ">=", PEAK_SHARE, interior_peak_share,
        ),
        Criterion(
            "optimum_near_8_layers",
            "Fig. 4(a): 'The maximum accuracy occurs for DNNs with approximately for 8-layer DNNs'",
            "median over widths of the most accurate depth in the paper's layer count (depth + 2), between "
            f"{PAPER_OPTIMUM[0]} and {PAPER_OPTIMUM[1]}; {grid}",
            "between", (float(PAPER_OPTIMUM[0]), float(PAPER_OPTIMUM[1])), optimum_paper_layers,
        ),
        Criterion(
            "accuracy_grows_with_width",
            "Fig. 4(a): 'For a fixed depth, the accuracy generally increases with width'",
            f"share of (depth, adjacent widths) where the wider net is at least as accurate; {grid}",
            ">=", WIDTH_ORDER, width_order,
        ),
        Criterion(
            "curves_converge_with_width",
            "Fig. 4(a): the accuracy curves of the widths 'approximately converge to a universal curve'",
            "mean |accuracy difference| over depths between the two widest widths over that between the two "
            f"narrowest (below 1: the curves draw together); {grid}",
            "<", 1.0, width_convergence,
        ),
        Criterion(
            "layer1_npm_richest_at_optimum",
            "Fig. 4(b): 'in the high rank region, the probability of 8-layer DNN is the lowest, meaning that "
            "there achieves the highest ratio of NPM neurons' (the 8-layer net being the most accurate, Fig. 4(a))",
            "at the RPD width: grid steps between the depth of the lowest first-layer RPD density at q < "
            f"{HEAD_Q:g} and the most accurate depth (at most one step: 'approximately'); one seed's nets",
            "<=", 1.0, head_density_at_optimum,
        ),
    ]


EXPERIMENT = DepthWidth
