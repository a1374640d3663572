"""The report's sections, registered by quantity name, and the pages built from an analysis's tables.

Each quantity of ``netdyn.analysis.QUANTITIES`` names here the section it belongs to (quantities sharing a
title share a section), the words that explain it and the tables the report shows; its figures come from
``netdyn.plots.registry``. A quantity registered in analysis but not here gets a section titled by its name.
This only routes tables and words; it computes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from netdyn.plots.registry import evolution_figures, last_step, present_quantities, quantity_figures
from netdyn.plots.training import plot_training
from netdyn.report.html import ReportSection

Tables = dict[str, pd.DataFrame]
Captioned = list[tuple[str, pd.DataFrame]]

TRAINING_TEXT = (
    "Loss and accuracy on the training and test sets at log-spaced points of training. A late jump of "
    "test accuracy long after training accuracy saturates is grokking; a bump in test loss is double "
    "descent. With batch norm evaluated both ways, a gap between running-statistics and batch-statistics "
    "curves is the paper's BN-induced grokking."
)
EVOLUTION_TEXT = "The same quantities at every checkpoint: how the structure forms during training, layer by layer."
BASIN_TEXT = (
    "Attraction basins: accuracy (classified as the true label) of training samples when the input "
    "(sample space) or every weight matrix (weight space) gets Gaussian noise of relative amplitude eps, "
    "with 95% intervals. size_half is the eps where accuracy halves. Sample-space basins grow with depth "
    "and width (better generalisation); weight-space basins shrink (less structural stability)."
)

SKIPPED_TEXT = (
    "These quantities do not read this kind of model yet (see docs/any-network.md for what netdyn reads); the "
    "analysis left them out rather than fail. The reason is each quantity's own message."
)


def _no_tables(tables: Tables, summary: dict) -> Captioned:
    return []


@dataclass(frozen=True)
class QuantitySection:
    """Where one quantity appears in the report and how it is explained."""

    section: str
    """Title of the report section it belongs to (quantities sharing a title share a section)."""
    explanation: str = ""
    """What it is and how to read it (the section's text; the first quantity of a section gives it)."""
    tables: Callable[[Tables, dict], Captioned] = _no_tables
    """(tables of one network, summary) -> (caption, table) pairs shown in the report."""


def _basin_sizes(kind: str) -> Callable[[Tables, dict], Captioned]:
    name = f"{kind}_basin"

    def tables(t: Tables, summary: dict) -> Captioned:
        row = {"space": kind, **{key: summary.get(f"{name}_{key}") for key in ("size_mid", "size_half")}}
        return [("basin sizes", pd.DataFrame([row]))]

    return tables


#: The report section of each quantity, by the quantity's name in ``netdyn.analysis.QUANTITIES``.
SECTIONS: dict[str, QuantitySection] = {
    "network": QuantitySection(
        "LP and L-map pruning by layer",
        (
            "Linear perceptron (LP): a ridge least-squares map fitted from layer l's outputs to the network's own "
            "output local fields; its accuracy says how linearly separable the classes already are at l. L-map: the "
            "network after layer l with every transfer function replaced by the identity (batch norm folded into "
            "its running-statistics affine map, skips kept); its accuracy says whether the rest of the network "
            "already acts linearly. Where the L-map reaches the network's accuracy (within 0.5 points) the later "
            "layers can be pruned into one linear map: the paper's 'standard structure' has nonlinear early "
            "layers and linear late ones."
        ),
        lambda t, s: [("network accuracy", t["network"])],
    ),
    "lmap": QuantitySection(
        "LP and L-map pruning by layer",
        tables=lambda t, s: [("L-map accuracy", t["lmap"])],
    ),
    "lp": QuantitySection(
        "LP and L-map pruning by layer",
        tables=lambda t, s: [("LP accuracy", t["lp"])],
    ),
    "rpd": QuantitySection(
        "Rank position distribution",
        (
            "Rank position distribution: each sample's rank within each neuron's sequence of contributions "
            "M_l[k, i] x_i (M_l = the L-map of layer l, k the sample's class), normalised to (0, 1). Order-preserving "
            "(OPM) neurons rank their own class high, piling density at small q; a flat RPD means no order. The "
            "gradient (minus the slope of density against q) is the paper's indicator of the share of OPM neurons; "
            "it should grow with depth in a trained deep net. The order index is 0 for random order."
        ),
        lambda t, s: [("RPD summary", t["rpd_summary"])],
    ),
    "neuron_modes": QuantitySection(
        "Neuron modes",
        (
            "Per neuron, netdyn measures the paper's definition directly: order preservation is |gamma| "
            "(Goodman-Kruskal) between the neuron's output and its linear reference (transfer functions of this "
            "and the previous layer replaced by the identity); a neuron with class information >= 0.01 is OPM if "
            "it keeps the order (gamma >= 0.9) and NPM if it reorders; the rest are inactive. This estimator is "
            "netdyn's reading of the paper's definition, not the paper's code: compare it with the RPD gradient. "
            "rho sits near the threshold in trained nets, so the figure shows its distribution beside the shares: "
            "compare layers and steps rather than absolute shares. With a monotone transfer function every "
            "first-layer neuron has rho = 1 by construction."
        ),
        lambda t, s: [("census by layer", t["neuron_mode_census"])],
    ),
    "class_geometry": QuantitySection(
        "Class geometry",
        (
            "Cosine distance of each training sample's representation to its class centre, by layer (median and "
            "quartiles; thin lines: the first 100 samples of one class, as the paper's Fig. 3e-f), and the mean "
            "cosine similarity between class centres. Samples should cluster towards their centre and the centres "
            "become orthogonal with depth. NC1 (table) is the neural-collapse index trace(S_W S_B^+)/C."
        ),
        lambda t, s: [("by layer", t["class_geometry"])],
    ),
    "sample_basin": QuantitySection("Attraction basins", BASIN_TEXT, _basin_sizes("sample")),
    "weight_basin": QuantitySection("Attraction basins", tables=_basin_sizes("weight")),
    "local_fields": QuantitySection(
        "Output local fields",
        (
            "Output local fields of two output neurons for three classes, training samples as dots and test "
            "samples as crosses. test_in_train_fraction is the share of test samples whose nearest training "
            "projection has their label: test samples inside the training samples' basins are classified right."
        ),
        lambda t, s: [("per class", t["local_fields_summary"])],
    ),
    "bn_perturbation": QuantitySection(
        "Batch-norm perturbation",
        (
            "Per batch-norm layer, how far evaluating with the running statistics moves the layer's folded affine "
            "map from the one a training batch's own statistics give, relative to its norm: the weight "
            "perturbation that running-statistics evaluation amounts to, to set beside the weight basin's size "
            "(the paper's account of batch-norm grokking)."
        ),
        lambda t, s: [("equivalent eps by layer", t["bn_perturbation"])],
    ),
    "nearest_train_distance": QuantitySection(
        "Test samples against the training set",
        (
            "Each test sample's distance to its nearest training sample, relative to its own norm: where test "
            "samples sit against the sample-space basin size (the paper's account of grokking)."
        ),
    ),
}


def register_section(
    name: str, section: str, explanation: str = "", tables: Callable[[Tables, dict], Captioned] = _no_tables
) -> None:
    """Register (or replace) the report section of the quantity ``name``."""
    SECTIONS[name] = QuantitySection(section, explanation, tables)


def report_sections(tables: Tables, summary: dict, history: pd.DataFrame | None = None) -> list[ReportSection]:
    """The report's sections: training curves, one per section title, then the evolution over checkpoints."""
    last = {name: last_step(table) for name, table in tables.items()}
    sections: dict[str, ReportSection] = {}
    if history is not None and len(history):
        sections["Training"] = ReportSection("Training", TRAINING_TEXT, [plot_training(history)])
    names = present_quantities(tables)
    for name in names:
        entry = SECTIONS.get(name, QuantitySection(name.replace("_", " ").capitalize()))
        section = sections.setdefault(entry.section, ReportSection(entry.section, entry.explanation))
        section.text = section.text or entry.explanation
        section.figures += list(quantity_figures(name, tables, summary).values())
        for caption, table in entry.tables(last, summary):
            _add_table(section, caption, table)
    evolution = [f for name in names for f in evolution_figures(name, tables).values()]
    if evolution:
        sections["evolution"] = ReportSection("Evolution during training", EVOLUTION_TEXT, evolution)
    skipped = summary.get("skipped_quantities") or {}
    if skipped:
        table = pd.DataFrame({"quantity": list(skipped), "reason": list(skipped.values())})
        sections["skipped"] = ReportSection("Not computed for this model", SKIPPED_TEXT,
                                            tables=[("quantities left out", table)])
    return [s for s in sections.values() if s.figures or s.tables]


def _add_table(section: ReportSection, caption: str, table: pd.DataFrame) -> None:
    """Tables of one caption from several quantities (the two basins' sizes) join into one."""
    for i, (existing, frame) in enumerate(section.tables):
        if existing == caption:
            section.tables[i] = (caption, pd.concat([frame, table], ignore_index=True))
            return
    section.tables.append((caption, table))
