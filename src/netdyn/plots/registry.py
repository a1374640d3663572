"""Which figures each quantity of ``netdyn.analysis.QUANTITIES`` gets, registered here by the quantity's name.

The analysis registry holds computation, tables and summaries; this one holds drawing: for each quantity, the
figures of one network's tables and the figures of tables stacked over checkpoints (a ``step`` column).
``analysis_figures`` routes an analysis's tables to them; a quantity registered in analysis but not here has
no figures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from netdyn.analysis.quantities import QUANTITIES
from netdyn.plots.basins import plot_basin, plot_local_fields
from netdyn.plots.layers import (
    plot_class_geometry,
    plot_layer_accuracy,
    plot_neuron_modes,
    plot_rpd,
    plot_rpd_summary,
)
from netdyn.plots.training import plot_evolution

Tables = dict[str, pd.DataFrame]
Figures = dict[str, Figure]


def _no_figures(*_: Any) -> Figures:
    return {}


@dataclass(frozen=True)
class QuantityFigures:
    """How one quantity is drawn."""

    figures: Callable[[Tables, dict[str, Any]], Figures] = _no_figures
    """(tables of one network, summary) -> its figures, by file name."""
    evolution: Callable[[Tables], Figures] = _no_figures
    """(tables stacked over checkpoints, with a ``step`` column) -> its figures against training step."""


def _layer_accuracy_figures(t: Tables, summary: dict[str, Any]) -> Figures:
    network = (
        {str(split): float(acc) for split, acc in t["network"].set_index("split")["accuracy"].items()}
        if "network" in t
        else None
    )
    return {
        "layer_accuracy": plot_layer_accuracy(t.get("lmap"), t.get("lp"), network, split="test"),
        "layer_accuracy_train": plot_layer_accuracy(t.get("lmap"), t.get("lp"), network, split="train"),
    }


def _lp_figures(t: Tables, summary: dict[str, Any]) -> Figures:
    # one figure holds both curves: the L-map's entry draws it when both were computed
    return {} if "lmap" in t else _layer_accuracy_figures(t, summary)


def _evolution(
    table: str, column: str, ylabel: str, name: str, split: str | None = None
) -> Callable[[Tables], Figures]:
    def figures(t: Tables) -> Figures:
        if table not in t or t[table].empty:
            return {}
        rows = t[table] if split is None else t[table][t[table]["split"] == split]
        return {name: plot_evolution(rows, column, ylabel=ylabel)}

    return figures


def _rpd_figures(t: Tables, summary: dict[str, Any]) -> Figures:
    if t["rpd"].empty:
        return {}
    return {"rpd": plot_rpd(t["rpd"]), "rpd_summary": plot_rpd_summary(t["rpd_summary"])}


def _modes_figures(t: Tables, summary: dict[str, Any]) -> Figures:
    census = t["neuron_mode_census"]
    return {} if census.empty else {"neuron_modes": plot_neuron_modes(census)}


def _geometry_figures(t: Tables, summary: dict[str, Any]) -> Figures:
    return {"class_geometry": plot_class_geometry(t["class_geometry"], t.get("class_geometry_samples"))}


def _fields_figures(t: Tables, summary: dict[str, Any]) -> Figures:
    return {} if t["local_fields"].empty else {"local_fields": plot_local_fields(t["local_fields"])}


def _basin_figures(kind: str) -> Callable[[Tables, dict[str, Any]], Figures]:
    name = f"{kind}_basin"

    def figures(t: Tables, summary: dict[str, Any]) -> Figures:
        size = summary.get(f"{name}_size_half")
        return {name: plot_basin({kind: t[name]}, kind=kind, sizes={kind: size} if size is not None else None)}

    return figures


#: The figures of each quantity, by the quantity's name in ``netdyn.analysis.QUANTITIES``.
FIGURES: dict[str, QuantityFigures] = {
    "lmap": QuantityFigures(
        _layer_accuracy_figures,
        _evolution("lmap", "accuracy", "L-map test accuracy", "lmap_evolution", split="test"),
    ),
    "lp": QuantityFigures(_lp_figures, _evolution("lp", "accuracy", "LP test accuracy", "lp_evolution", split="test")),
    "rpd": QuantityFigures(
        _rpd_figures, _evolution("rpd_summary", "gradient", "RPD gradient", "rpd_gradient_evolution")
    ),
    "neuron_modes": QuantityFigures(
        _modes_figures, _evolution("neuron_mode_census", "npm", "fraction of NPM neurons", "npm_evolution")
    ),
    "class_geometry": QuantityFigures(
        _geometry_figures,
        _evolution("class_geometry", "cos_dist_mean", "mean cosine distance to class centre", "cos_dist_evolution"),
    ),
    "sample_basin": QuantityFigures(_basin_figures("sample")),
    "weight_basin": QuantityFigures(_basin_figures("weight")),
    "local_fields": QuantityFigures(_fields_figures),
}


def register_figures(
    name: str,
    figures: Callable[[Tables, dict[str, Any]], Figures] = _no_figures,
    evolution: Callable[[Tables], Figures] = _no_figures,
) -> None:
    """Register (or replace) the figures of the quantity ``name``."""
    FIGURES[name] = QuantityFigures(figures, evolution)


def last_step(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of a table stacked over checkpoints that belong to its last step (the table itself otherwise)."""
    if "step" not in table.columns or table.empty:
        return table
    return table[table["step"] == table["step"].max()].drop(columns="step")


def present_quantities(tables: Tables) -> list[str]:
    """The names of the registered quantities whose tables are all in ``tables``, in registry order."""
    return [name for name, record in QUANTITIES.items() if all(t in tables for t in record.tables)]


def over_steps(tables: Tables) -> bool:
    """Whether ``tables`` hold an analysis at more than one checkpoint."""
    network = tables.get("network")
    return network is not None and "step" in network.columns and network["step"].nunique() > 1


def quantity_figures(name: str, tables: Tables, summary: dict[str, Any]) -> Figures:
    """The figures of one quantity at the last (or only) step of ``tables``."""
    entry = FIGURES.get(name)
    if entry is None:
        return {}
    return entry.figures({t: last_step(table) for t, table in tables.items()}, summary)


def evolution_figures(name: str, tables: Tables) -> Figures:
    """The figures of one quantity against training step (none unless ``tables`` span several checkpoints)."""
    entry = FIGURES.get(name)
    return entry.evolution(tables) if entry is not None and over_steps(tables) else {}


def analysis_figures(tables: Tables, summary: dict[str, Any]) -> Figures:
    """Every figure of an analysis by file name: each quantity's own, then its evolution over checkpoints."""
    names = present_quantities(tables)
    figs: Figures = {}
    for name in names:
        figs.update(quantity_figures(name, tables, summary))
    for name in names:
        figs.update(evolution_figures(name, tables))
    return figs
