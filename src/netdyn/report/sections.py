"""Which figures and report sections an :class:`~netdyn.analysis.analyze.Analysis` gets.

This only routes tables to ``netdyn.plots`` and words to ``netdyn.report``; it computes nothing.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

EXPLAIN = {
    "training": (
        "Loss and accuracy on the training and test sets at log-spaced points of training. A late jump of "
        "test accuracy long after training accuracy saturates is grokking; a bump in test loss is double "
        "descent. With batch norm evaluated both ways, a gap between running-statistics and batch-statistics "
        "curves is the paper's BN-induced grokking."
    ),
    "layer_accuracy": (
        "Linear perceptron (LP): a ridge least-squares map fitted from layer l's outputs to the network's own "
        "output local fields; its accuracy says how linearly separable the classes already are at l. L-map: the "
        "network after layer l with every transfer function replaced by the identity (batch norm folded into "
        "its running-statistics affine map, skips kept); its accuracy says whether the rest of the network "
        "already acts linearly. Where the L-map reaches the network's accuracy (within 0.5 points) the later "
        "layers can be pruned into one linear map: the paper's 'standard structure' has nonlinear early "
        "layers and linear late ones."
    ),
    "rpd": (
        "Rank position distribution: each sample's rank within each neuron's sequence of contributions "
        "M_l[k, i] x_i (M_l = the L-map of layer l, k the sample's class), normalised to (0, 1). Order-preserving "
        "(OPM) neurons rank their own class high, piling density at small q; a flat RPD means no order. The "
        "gradient (minus the slope of density against q) is the paper's indicator of the share of OPM neurons; "
        "it should grow with depth in a trained deep net. The order index is 0 for random order."
    ),
    "neuron_modes": (
        "Per neuron, netdyn measures the paper's definition directly: order preservation is |gamma| "
        "(Goodman-Kruskal) between the neuron's output and its linear reference (transfer functions of this "
        "and the previous layer replaced by the identity); a neuron with class information >= 0.01 is OPM if "
        "it keeps the order (gamma >= 0.9) and NPM if it reorders; the rest are inactive. This estimator is "
        "netdyn's reading of the paper's definition, not the paper's code: compare it with the RPD gradient."
    ),
    "class_geometry": (
        "Cosine distance of each training sample's representation to its class centre, by layer (median and "
        "quartiles; thin lines: the first 100 samples of one class, as the paper's Fig. 3e-f), and the mean "
        "cosine similarity between class centres. Samples should cluster towards their centre and the centres "
        "become orthogonal with depth. NC1 (table) is the neural-collapse index trace(S_W S_B^+)/C."
    ),
    "basins": (
        "Attraction basins: accuracy (classified as the true label) of training samples when the input "
        "(sample space) or every weight matrix (weight space) gets Gaussian noise of relative amplitude eps, "
        "with 95% intervals. size_half is the eps where accuracy halves. Sample-space basins grow with depth "
        "and width (better generalisation); weight-space basins shrink (less structural stability)."
    ),
    "local_fields": (
        "Output local fields of two output neurons for three classes, training samples as dots and test "
        "samples as crosses. test_in_train_fraction is the share of test samples whose nearest training "
        "projection has their label: test samples inside the training samples' basins are classified right."
    ),
    "evolution": (
        "The same quantities at every checkpoint: how the structure forms during training, layer by layer."
    ),
}


def _last_step(table: pd.DataFrame) -> pd.DataFrame:
    if "step" not in table.columns or table.empty:
        return table
    return table[table["step"] == table["step"].max()].drop(columns="step")


def analysis_figures(analysis: Any) -> dict[str, Any]:
    from netdyn import plots

    t = {name: _last_step(table) for name, table in analysis.tables.items()}
    figs: dict[str, Any] = {}
    network = t["network"].set_index("split")["accuracy"].to_dict() if "network" in t else None
    if "lmap" in t and "lp" in t:
        figs["layer_accuracy"] = plots.plot_layer_accuracy(t["lmap"], t["lp"], network, split="test")
        figs["layer_accuracy_train"] = plots.plot_layer_accuracy(t["lmap"], t["lp"], network, split="train")
    if "rpd" in t and len(t["rpd"]):
        figs["rpd"] = plots.plot_rpd(t["rpd"])
    if "rpd_summary" in t and len(t["rpd_summary"]):
        figs["rpd_summary"] = plots.plot_rpd_summary(t["rpd_summary"])
    if "neuron_mode_census" in t and len(t["neuron_mode_census"]):
        figs["neuron_modes"] = plots.plot_neuron_modes(t["neuron_mode_census"])
    if "class_geometry" in t:
        figs["class_geometry"] = plots.plot_class_geometry(
            t["class_geometry"], t.get("class_geometry_samples")
        )
    for kind in ("sample", "weight"):
        name = f"{kind}_basin"
        if name in t:
            size = analysis.summary.get(f"{name}_size_half")
            sizes = {kind: size} if size is not None else None
            figs[name] = plots.plot_basin({kind: t[name]}, kind=kind, sizes=sizes)
    if "local_fields" in t and len(t["local_fields"]):
        figs["local_fields"] = plots.plot_local_fields(t["local_fields"])
    if analysis.by_step:
        figs.update(_evolution_figures(analysis.tables))
    return figs


def _evolution_figures(tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
    from netdyn import plots

    figs: dict[str, Any] = {}
    if len(set(tables["network"]["step"])) < 2:
        return figs
    for name, label in (("lmap", "L-map test accuracy"), ("lp", "LP test accuracy")):
        test = tables[name][tables[name]["split"] == "test"]
        figs[f"{name}_evolution"] = plots.plot_evolution(test, "accuracy", ylabel=label)
    if "rpd_summary" in tables and len(tables["rpd_summary"]):
        figs["rpd_gradient_evolution"] = plots.plot_evolution(
            tables["rpd_summary"], "gradient", ylabel="RPD gradient"
        )
    if "neuron_mode_census" in tables and len(tables["neuron_mode_census"]):
        figs["npm_evolution"] = plots.plot_evolution(
            tables["neuron_mode_census"], "npm", ylabel="fraction of NPM neurons"
        )
    if "class_geometry" in tables:
        figs["cos_dist_evolution"] = plots.plot_evolution(
            tables["class_geometry"], "cos_dist_mean", ylabel="mean cosine distance to class centre"
        )
    return figs


def report_sections(analysis: Any, history: pd.DataFrame | None = None) -> list[Any]:
    from netdyn import plots
    from netdyn.report import ReportSection

    figs = analysis.figures()
    t = {name: _last_step(table) for name, table in analysis.tables.items()}
    sections = []
    if history is not None and len(history):
        sections.append(ReportSection("Training", EXPLAIN["training"], [plots.plot_training(history)]))
    sections.append(
        ReportSection(
            "LP and L-map pruning by layer",
            EXPLAIN["layer_accuracy"],
            [f for k, f in figs.items() if k.startswith("layer_accuracy")],
            [("network accuracy", t["network"]), ("L-map accuracy", t["lmap"]), ("LP accuracy", t["lp"])],
        )
    )
    if "rpd" in figs:
        sections.append(
            ReportSection(
                "Rank position distribution",
                EXPLAIN["rpd"],
                [figs["rpd"], figs["rpd_summary"]],
                [("RPD summary", t["rpd_summary"])],
            )
        )
    if "neuron_modes" in figs:
        sections.append(
            ReportSection(
                "Neuron modes",
                EXPLAIN["neuron_modes"],
                [figs["neuron_modes"]],
                [("census by layer", t["neuron_mode_census"])],
            )
        )
    sections.append(
        ReportSection(
            "Class geometry",
            EXPLAIN["class_geometry"],
            [figs["class_geometry"]],
            [("by layer", t["class_geometry"])],
        )
    )
    if "sample_basin" in figs:
        sizes = pd.DataFrame(
            [
                {
                    "space": kind,
                    "size_mid": analysis.summary.get(f"{kind}_basin_size_mid"),
                    "size_half": analysis.summary.get(f"{kind}_basin_size_half"),
                }
                for kind in ("sample", "weight")
            ]
        )
        sections.append(
            ReportSection(
                "Attraction basins",
                EXPLAIN["basins"],
                [figs["sample_basin"], figs["weight_basin"]],
                [("basin sizes", sizes)],
            )
        )
    if "local_fields" in figs:
        sections.append(
            ReportSection(
                "Output local fields",
                EXPLAIN["local_fields"],
                [figs["local_fields"]],
                [("per class", t["local_fields_summary"])],
            )
        )
    evolution = [f for k, f in figs.items() if k.endswith("_evolution")]
    if evolution:
        sections.append(ReportSection("Evolution during training", EXPLAIN["evolution"], evolution))
    return sections
