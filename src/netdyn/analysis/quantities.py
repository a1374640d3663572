"""The one registry of the framework's quantities: ``QUANTITIES``, a mapping from name to :class:`Quantity`.

Each record says everything the rest of netdyn needs to know about a quantity: how to compute its tables from
a network and a sample set, the columns of each table, the numbers it adds to the summary, its figures (for
one network and over training), the report section it belongs to and the words that explain it, and whether it
is cheap enough for a monitor inside a training loop. ``analyze``, ``analyze_checkpoints``, the figures, the
report and the contract test iterate it; adding a quantity is one record here plus its tests.

Figures are built by ``netdyn.plots``, imported inside the figure functions: computing a quantity never
imports matplotlib.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from netdyn.analysis.basins import (
    CPU_SAMPLES,
    CURVE_COLUMNS,
    bn_perturbation,
    curve_sizes,
    nearest_train_distance,
    sample_basin,
    weight_basin,
)
from netdyn.analysis.config import AnalysisConfig
from netdyn.analysis.fields import local_fields
from netdyn.analysis.geometry import class_geometry
from netdyn.analysis.lmap import lmap_accuracy
from netdyn.analysis.modes import CENSUS_COLUMNS, NEURON_COLUMNS, neuron_mode_census, neuron_modes
from netdyn.analysis.network import effective_layer, network_accuracy
from netdyn.analysis.probes import lp_accuracy
from netdyn.analysis.ranks import rpd_tables
from netdyn.data.samples import SampleSet
from netdyn.models import MLP

Tables = dict[str, pd.DataFrame]
Figures = dict[str, Any]


@dataclass(frozen=True)
class AnalysisContext:
    """What every quantity's computation needs beyond (net, data): the config and choices derived from it."""

    config: AnalysisConfig
    num_classes: int
    layers: list[int] | None
    """Layers 0..L-1 asked for (None: all)."""
    hidden: list[int] | None
    """Hidden layers 1..L-1 asked for (None: all)."""
    classes: tuple[int, ...]
    """Classes of the local-field projection (those of the config that exist)."""
    geometry_class: int
    """The class whose first samples the per-sample class geometry follows (digit 5, as the paper's Fig. 3e-f)."""
    basin_samples: int | None
    eps: list[float] | None

    @classmethod
    def build(cls, net: MLP, data: SampleSet, config: AnalysisConfig) -> AnalysisContext:
        L = net.n_layers
        chosen = tuple(c for c in config.classes if 0 <= c < data.num_classes)
        on_gpu = next(net.parameters()).device.type == "cuda"
        basin_samples = config.basin_samples
        if basin_samples is None and not on_gpu:
            basin_samples = CPU_SAMPLES
        return cls(
            config=config,
            num_classes=int(data.num_classes),
            layers=None if config.layers is None else [l for l in config.layers if 0 <= l < L],
            hidden=None if config.layers is None else [l for l in config.layers if 1 <= l < L],
            classes=chosen if len(chosen) >= 2 else tuple(range(min(3, data.num_classes))),
            geometry_class=5 if data.num_classes > 5 else 0,
            basin_samples=basin_samples,
            eps=None if config.eps is None else list(config.eps),
        )


def _nothing(*_: Any) -> dict:
    return {}


def _always(net: MLP) -> bool:
    return True


def _has_batchnorm(net: MLP) -> bool:
    return net.has_batchnorm


@dataclass(frozen=True)
class Quantity:
    """One quantity of the framework, as the registry records it."""

    name: str
    """Its name in ``QUANTITIES`` and in ``AnalysisConfig.quantities``."""
    compute: Callable[[MLP, SampleSet, AnalysisContext], Tables]
    """(net, data, context) -> its tables, by name."""
    tables: Mapping[str, tuple[str, ...]]
    """Each table it writes and that table's columns (before a ``step`` column is added over checkpoints)."""
    section: str
    """Title of the report section it belongs to (records sharing a title share a section)."""
    explanation: str = ""
    """What it is and how to read it (the section's text; the first record of a section gives it)."""
    summarize: Callable[[Tables, AnalysisContext], dict[str, Any]] = _nothing
    """(all tables of one analysis, context) -> its numbers in the summary (the ``network`` table is always
    there: ``analyze`` computes the network's own accuracy first)."""
    figures: Callable[[Tables, dict[str, Any]], Figures] = _nothing
    """(tables of one network, summary) -> its figures, by file name."""
    evolution: Callable[[Tables], Figures] = _nothing
    """(tables stacked over checkpoints, with a ``step`` column) -> its figures against training step."""
    report_tables: Callable[[Tables, dict[str, Any]], list[tuple[str, pd.DataFrame]]] = _nothing
    """(tables, summary) -> (caption, table) pairs shown in the report."""
    bounded: tuple[str, ...] = ()
    """Columns holding fractions in [0, 1] (accuracies, interval bounds, shares)."""
    cheap: bool = False
    """Cheap enough to record inside a training loop (the monitor's default set)."""
    default: bool = True
    """Computed by ``analyze`` when no quantity list is given."""
    switch: str | None = None
    """A boolean ``AnalysisConfig`` field that turns it off (the basins' ``basins``)."""
    applies: Callable[[MLP], bool] = _always
    """Whether it means anything for a network (batch-norm perturbation needs batch norm); where it does not,
    its tables are empty."""


# ------------------------------------------------------------------------------------------------- records
def _network_summary(t: Tables, ctx: AnalysisContext) -> dict[str, Any]:
    acc = t["network"].set_index("split")["accuracy"]
    return {"train_accuracy": float(acc["train"]), "test_accuracy": float(acc["test"])}


def _network_test_accuracy(t: Tables) -> float:
    return float(t["network"].set_index("split").loc["test", "accuracy"])


def _layer_accuracy_figures(t: Tables, summary: dict[str, Any]) -> Figures:
    from netdyn import plots

    network = t["network"].set_index("split")["accuracy"].to_dict() if "network" in t else None
    return {
        "layer_accuracy": plots.plot_layer_accuracy(t.get("lmap"), t.get("lp"), network, split="test"),
        "layer_accuracy_train": plots.plot_layer_accuracy(t.get("lmap"), t.get("lp"), network, split="train"),
    }


def _evolution(table: str, column: str, ylabel: str, name: str, split: str | None = None):
    def figures(t: Tables) -> Figures:
        from netdyn import plots

        if table not in t or t[table].empty:
            return {}
        rows = t[table] if split is None else t[table][t[table]["split"] == split]
        return {name: plots.plot_evolution(rows, column, ylabel=ylabel)}

    return figures


def _lmap_figures(t: Tables, summary: dict[str, Any]) -> Figures:
    return _layer_accuracy_figures(t, summary)


def _lp_figures(t: Tables, summary: dict[str, Any]) -> Figures:
    # one figure holds both curves: the L-map's record draws it when both were computed
    return {} if "lmap" in t else _layer_accuracy_figures(t, summary)


def _effective(table: str, key: str):
    def summarize(t: Tables, ctx: AnalysisContext) -> dict[str, Any]:
        return {key: effective_layer(t[table], _network_test_accuracy(t))}

    return summarize


def _rpd_tables(net: MLP, data: SampleSet, ctx: AnalysisContext) -> Tables:
    c = ctx.config
    curves, summary = rpd_tables(net, data, ctx.hidden, bins=c.bins, max_samples=c.max_samples, seed=c.seed)
    return {"rpd": curves, "rpd_summary": summary}


def _rpd_summary(t: Tables, ctx: AnalysisContext) -> dict[str, Any]:
    rs = t["rpd_summary"]
    if rs.empty:
        return {}
    return {"rpd_gradient_first": float(rs["gradient"].iloc[0]), "rpd_gradient_last": float(rs["gradient"].iloc[-1])}


def _rpd_figures(t: Tables, summary: dict[str, Any]) -> Figures:
    from netdyn import plots

    if t["rpd"].empty:
        return {}
    return {"rpd": plots.plot_rpd(t["rpd"]), "rpd_summary": plots.plot_rpd_summary(t["rpd_summary"])}


def _modes_tables(net: MLP, data: SampleSet, ctx: AnalysisContext) -> Tables:
    c = ctx.config
    table = neuron_modes(net, data, layers=ctx.hidden, max_samples=c.max_samples, seed=c.seed)
    return {"neuron_modes": table, "neuron_mode_census": neuron_mode_census(table)}


def _modes_summary(t: Tables, ctx: AnalysisContext) -> dict[str, Any]:
    census = t["neuron_mode_census"]
    if census.empty:
        return {}
    return {"npm_fraction_first": float(census["npm"].iloc[0]), "npm_fraction_last": float(census["npm"].iloc[-1])}


def _modes_figures(t: Tables, summary: dict[str, Any]) -> Figures:
    from netdyn import plots

    census = t["neuron_mode_census"]
    return {} if census.empty else {"neuron_modes": plots.plot_neuron_modes(census)}


def _geometry_tables(net: MLP, data: SampleSet, ctx: AnalysisContext) -> Tables:
    return {
        "class_geometry": class_geometry(net, data, ctx.layers),
        "class_geometry_samples": class_geometry(
            net, data, ctx.layers, per_sample=True, classes=[ctx.geometry_class], limit=100
        ),
    }


def _geometry_figures(t: Tables, summary: dict[str, Any]) -> Figures:
    from netdyn import plots

    return {"class_geometry": plots.plot_class_geometry(t["class_geometry"], t.get("class_geometry_samples"))}


def _fields_tables(net: MLP, data: SampleSet, ctx: AnalysisContext) -> Tables:
    lf = local_fields(net, data, classes=ctx.classes)
    return {"local_fields": lf.points, "local_fields_summary": lf.summary}


def _fields_figures(t: Tables, summary: dict[str, Any]) -> Figures:
    from netdyn import plots

    return {} if t["local_fields"].empty else {"local_fields": plots.plot_local_fields(t["local_fields"])}


def _basin_record(kind: str) -> Quantity:
    name = f"{kind}_basin"
    measure = sample_basin if kind == "sample" else weight_basin

    def compute(net: MLP, data: SampleSet, ctx: AnalysisContext) -> Tables:
        c = ctx.config
        curve = measure(net, data, eps=ctx.eps, repeats=c.repeats, n_samples=ctx.basin_samples, seed=c.seed)
        return {name: curve.curve}

    def summarize(t: Tables, ctx: AnalysisContext) -> dict[str, Any]:
        sizes = dict(zip(("size_mid", "size_half"), curve_sizes(t[name], ctx.num_classes), strict=True))
        return {f"{name}_{key}": None if math.isnan(size) else size for key, size in sizes.items()}

    def figures(t: Tables, summary: dict[str, Any]) -> Figures:
        from netdyn import plots

        size = summary.get(f"{name}_size_half")
        return {name: plots.plot_basin({kind: t[name]}, kind=kind, sizes={kind: size} if size is not None else None)}

    def report_tables(t: Tables, summary: dict[str, Any]) -> list[tuple[str, pd.DataFrame]]:
        row = {"space": kind, **{key: summary.get(f"{name}_{key}") for key in ("size_mid", "size_half")}}
        return [("basin sizes", pd.DataFrame([row]))]

    return Quantity(
        name=name,
        compute=compute,
        tables={name: tuple(CURVE_COLUMNS)},
        section="Attraction basins",
        explanation=(
            "Attraction basins: accuracy (classified as the true label) of training samples when the input "
            "(sample space) or every weight matrix (weight space) gets Gaussian noise of relative amplitude eps, "
            "with 95% intervals. size_half is the eps where accuracy halves. Sample-space basins grow with depth "
            "and width (better generalisation); weight-space basins shrink (less structural stability)."
        ),
        summarize=summarize,
        figures=figures,
        report_tables=report_tables,
        bounded=("accuracy", "ci_low", "ci_high"),
        switch="basins",
    )


def _bn_perturbation_tables(net: MLP, data: SampleSet, ctx: AnalysisContext) -> Tables:
    batch = min(ctx.config.bn_batch_size, data.x_train.shape[0])
    return {"bn_perturbation": bn_perturbation(net, data, batch, seed=ctx.config.seed)}


def _bn_perturbation_summary(t: Tables, ctx: AnalysisContext) -> dict[str, Any]:
    table = t["bn_perturbation"]
    return {} if table.empty else {"bn_perturbation_mean": float(table["eps_equivalent"].mean())}


def _distance_summary(t: Tables, ctx: AnalysisContext) -> dict[str, Any]:
    d = t["nearest_train_distance"]["distance"].to_numpy(float)
    d = d[np.isfinite(d)]
    return {"nearest_train_distance_median": float(np.median(d))} if d.size else {}


_RECORDS = [
    Quantity(
        name="network",
        compute=lambda net, data, ctx: {"network": network_accuracy(net, data)},
        tables={"network": ("split", "accuracy")},
        section="LP and L-map pruning by layer",
        explanation=(
            "Linear perceptron (LP): a ridge least-squares map fitted from layer l's outputs to the network's own "
            "output local fields; its accuracy says how linearly separable the classes already are at l. L-map: the "
            "network after layer l with every transfer function replaced by the identity (batch norm folded into "
            "its running-statistics affine map, skips kept); its accuracy says whether the rest of the network "
            "already acts linearly. Where the L-map reaches the network's accuracy (within 0.5 points) the later "
            "layers can be pruned into one linear map: the paper's 'standard structure' has nonlinear early "
            "layers and linear late ones."
        ),
        summarize=_network_summary,
        report_tables=lambda t, s: [("network accuracy", t["network"])],
        bounded=("accuracy",),
        cheap=True,
    ),
    Quantity(
        name="lmap",
        compute=lambda net, data, ctx: {"lmap": lmap_accuracy(net, data, ctx.layers)},
        tables={"lmap": ("layer", "split", "accuracy")},
        section="LP and L-map pruning by layer",
        summarize=_effective("lmap", "lmap_effective_layer"),
        figures=_lmap_figures,
        evolution=_evolution("lmap", "accuracy", "L-map test accuracy", "lmap_evolution", split="test"),
        report_tables=lambda t, s: [("L-map accuracy", t["lmap"])],
        bounded=("accuracy",),
        cheap=True,
    ),
    Quantity(
        name="lp",
        compute=lambda net, data, ctx: {"lp": lp_accuracy(net, data, ctx.layers)},
        tables={"lp": ("layer", "split", "accuracy")},
        section="LP and L-map pruning by layer",
        summarize=_effective("lp", "lp_effective_layer"),
        figures=_lp_figures,
        evolution=_evolution("lp", "accuracy", "LP test accuracy", "lp_evolution", split="test"),
        report_tables=lambda t, s: [("LP accuracy", t["lp"])],
        bounded=("accuracy",),
        cheap=True,
    ),
    Quantity(
        name="rpd",
        compute=_rpd_tables,
        tables={"rpd": ("layer", "q", "density"), "rpd_summary": ("layer", "gradient", "top_mass", "order_index")},
        section="Rank position distribution",
        explanation=(
            "Rank position distribution: each sample's rank within each neuron's sequence of contributions "
            "M_l[k, i] x_i (M_l = the L-map of layer l, k the sample's class), normalised to (0, 1). Order-preserving "
            "(OPM) neurons rank their own class high, piling density at small q; a flat RPD means no order. The "
            "gradient (minus the slope of density against q) is the paper's indicator of the share of OPM neurons; "
            "it should grow with depth in a trained deep net. The order index is 0 for random order."
        ),
        summarize=_rpd_summary,
        figures=_rpd_figures,
        evolution=_evolution("rpd_summary", "gradient", "RPD gradient", "rpd_gradient_evolution"),
        report_tables=lambda t, s: [("RPD summary", t["rpd_summary"])],
        bounded=("top_mass",),
        cheap=True,
    ),
    Quantity(
        name="neuron_modes",
        compute=_modes_tables,
        tables={"neuron_modes": tuple(NEURON_COLUMNS), "neuron_mode_census": tuple(CENSUS_COLUMNS)},
        section="Neuron modes",
        explanation=(
            "Per neuron, netdyn measures the paper's definition directly: order preservation is |gamma| "
            "(Goodman-Kruskal) between the neuron's output and its linear reference (transfer functions of this "
            "and the previous layer replaced by the identity); a neuron with class information >= 0.01 is OPM if "
            "it keeps the order (gamma >= 0.9) and NPM if it reorders; the rest are inactive. This estimator is "
            "netdyn's reading of the paper's definition, not the paper's code: compare it with the RPD gradient. "
            "rho sits near the threshold in trained nets, so the figure shows its distribution beside the shares: "
            "compare layers and steps rather than absolute shares. With a monotone transfer function every "
            "first-layer neuron has rho = 1 by construction."
        ),
        summarize=_modes_summary,
        figures=_modes_figures,
        evolution=_evolution("neuron_mode_census", "npm", "fraction of NPM neurons", "npm_evolution"),
        report_tables=lambda t, s: [("census by layer", t["neuron_mode_census"])],
        bounded=("opm", "npm", "inactive"),
    ),
    Quantity(
        name="class_geometry",
        compute=_geometry_tables,
        tables={
            "class_geometry": (
                "layer", "cos_dist_mean", "cos_dist_q25", "cos_dist_median", "cos_dist_q75", "centre_similarity", "nc1",
            ),
            "class_geometry_samples": ("layer", "sample", "label", "cos_dist"),
        },
        section="Class geometry",
        explanation=(
            "Cosine distance of each training sample's representation to its class centre, by layer (median and "
            "quartiles; thin lines: the first 100 samples of one class, as the paper's Fig. 3e-f), and the mean "
            "cosine similarity between class centres. Samples should cluster towards their centre and the centres "
            "become orthogonal with depth. NC1 (table) is the neural-collapse index trace(S_W S_B^+)/C."
        ),
        figures=_geometry_figures,
        evolution=_evolution(
            "class_geometry", "cos_dist_mean", "mean cosine distance to class centre", "cos_dist_evolution"
        ),
        report_tables=lambda t, s: [("by layer", t["class_geometry"])],
        cheap=True,
    ),
    _basin_record("sample"),
    _basin_record("weight"),
    Quantity(
        name="local_fields",
        compute=_fields_tables,
        tables={
            "local_fields": ("split", "label", "h_a", "h_b"),
            "local_fields_summary": ("label", "test_in_train_fraction"),
        },
        section="Output local fields",
        explanation=(
            "Output local fields of two output neurons for three classes, training samples as dots and test "
            "samples as crosses. test_in_train_fraction is the share of test samples whose nearest training "
            "projection has their label: test samples inside the training samples' basins are classified right."
        ),
        figures=_fields_figures,
        report_tables=lambda t, s: [("per class", t["local_fields_summary"])],
        bounded=("test_in_train_fraction",),
    ),
    Quantity(
        name="bn_perturbation",
        compute=_bn_perturbation_tables,
        tables={"bn_perturbation": ("layer", "eps_equivalent")},
        section="Batch-norm perturbation",
        explanation=(
            "Per batch-norm layer, how far evaluating with the running statistics moves the layer's folded affine "
            "map from the one a training batch's own statistics give, relative to its norm: the weight "
            "perturbation that running-statistics evaluation amounts to, to set beside the weight basin's size "
            "(the paper's account of batch-norm grokking)."
        ),
        summarize=_bn_perturbation_summary,
        applies=_has_batchnorm,
        report_tables=lambda t, s: [("equivalent eps by layer", t["bn_perturbation"])],
        default=False,
    ),
    Quantity(
        name="nearest_train_distance",
        compute=lambda net, data, ctx: {"nearest_train_distance": nearest_train_distance(data)},
        tables={"nearest_train_distance": ("sample", "label", "distance")},
        section="Test samples against the training set",
        explanation=(
            "Each test sample's distance to its nearest training sample, relative to its own norm: where test "
            "samples sit against the sample-space basin size (the paper's account of grokking)."
        ),
        summarize=_distance_summary,
        default=False,
    ),
]

#: Every quantity of the framework, by name, in the order ``analyze`` computes them (the network's own accuracy
#: first: the pruning summaries compare with it).
QUANTITIES: dict[str, Quantity] = {record.name: record for record in _RECORDS}


def table_columns() -> dict[str, tuple[str, ...]]:
    """Every table any quantity writes, with its columns."""
    return {name: columns for record in QUANTITIES.values() for name, columns in record.tables.items()}


def selected(config: AnalysisConfig) -> list[Quantity]:
    """The records ``analyze`` computes under ``config``, in registry order (``network`` always)."""
    names = config.quantities
    chosen = []
    for record in QUANTITIES.values():
        wanted = record.default if names is None else (record.name in names or record.name == "network")
        if wanted and (record.switch is None or getattr(config, record.switch)):
            chosen.append(record)
    return chosen


__all__ = ["QUANTITIES", "AnalysisContext", "Quantity", "selected", "table_columns"]

