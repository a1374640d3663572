"""What a notebook shows for an analysis and a run folder: key numbers, small tables and one cheap figure.

``Analysis._repr_html_`` and ``Run._repr_html_`` call these. The figure is the one that says most for the least
drawing (the pruning accuracy by layer for an analysis, the training curves for a run), embedded as a PNG, so the
block displays in any kernel and in a saved notebook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
from matplotlib.figure import Figure

from netdyn._html import block, png_img
from netdyn.errors import NetdynError
from netdyn.plots import figure_bytes, plot_layer_accuracy, plot_training

if TYPE_CHECKING:
    from netdyn.orchestration.analyses import Analysis
    from netdyn.store import RunFolder

_DPI = 72  # notebook images: readable, and a few tens of kB each


def last_step(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of a table's last checkpoint (the table itself when it has no ``step`` column)."""
    if "step" not in table.columns or table.empty:
        return table
    return table[table["step"] == table["step"].max()].drop(columns="step")


def layer_accuracy_table(tables: dict[str, pd.DataFrame], split: str = "test") -> pd.DataFrame | None:
    """One row per layer: the L-map's and the LP's accuracy on ``split`` (None without either table)."""
    columns = {}
    for name in ("lmap", "lp"):
        if name in tables and not tables[name].empty:
            rows = last_step(tables[name])
            columns[name] = rows[rows["split"] == split].groupby("layer")["accuracy"].first()
    if not columns:
        return None
    return pd.DataFrame(columns).rename_axis("layer").reset_index()


def scalar_items(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary's numbers and words (nested records and lists left out)."""
    return {k: v for k, v in summary.items() if not isinstance(v, (dict, list))}


def _image(fig: Figure, alt: str) -> str:
    return png_img(figure_bytes(fig, "png", dpi=_DPI), alt)


def _network_accuracy(tables: dict[str, pd.DataFrame]) -> dict[str, float] | None:
    if "network" not in tables:
        return None
    rows = last_step(tables["network"])
    return {str(split): float(acc) for split, acc in rows.groupby("split")["accuracy"].first().items()}


def analysis_html(analysis: Analysis, title: str = "netdyn analysis") -> str:
    """An analysis as a notebook block: its summary, the pruning table, the first rows of the RPD summary, the
    tables it holds, and the pruning accuracy by layer as a figure."""
    tables = analysis.tables
    meta = scalar_items(analysis.summary)
    if analysis.skipped:
        meta["skipped"] = ", ".join(analysis.skipped)
    shown: list[tuple[str, pd.DataFrame]] = []
    layers = layer_accuracy_table(tables)
    if layers is not None:
        shown.append(("test accuracy by layer (L-map, LP)", layers))
    if "rpd_summary" in tables and not tables["rpd_summary"].empty:
        shown.append(("RPD summary", last_step(tables["rpd_summary"])))
    shown.append(("tables (analysis[name])", pd.DataFrame(
        [{"name": name, "rows": len(t), "columns": ", ".join(map(str, t.columns))} for name, t in tables.items()]
    )))
    images = []
    if layers is not None:
        fig = plot_layer_accuracy(_last(tables, "lmap"), _last(tables, "lp"), _network_accuracy(tables))
        images.append(_image(fig, "LP and L-map test accuracy by layer"))
    return block(title, meta, shown, images, max_rows=12)


def _last(tables: dict[str, pd.DataFrame], name: str) -> pd.DataFrame | None:
    return last_step(tables[name]) if name in tables and not tables[name].empty else None


def run_html(run: RunFolder) -> str:
    """A run folder as a notebook block: what it trained and how it ended, its last evaluations, its tables, and
    the training curves as a figure."""
    config = run.config
    model, train = config.get("model") or {}, config.get("train") or {}
    meta: dict[str, Any] = {"run folder": str(run.path), "dataset": (config.get("data") or {}).get("name", "?")}
    if "model_class" in config:
        meta["model"] = config["model_class"]
    else:
        meta["model"] = ", ".join(f"{k}={model[k]}" for k in ("width", "depth", "activation", "residual",
                                                                "batchnorm") if k in model)
    training = ", ".join(f"{k}={v}" for k, v in train.items()
                         if k in ("optimizer", "lr", "batch_size", "epochs", "steps", "loss"))
    if training:  # a monitored loop records no training settings
        meta["training"] = training
    try:
        meta.update(scalar_items(run.summary))
    except NetdynError:
        meta["summary"] = "none yet (the run has not finished)"
    meta["checkpoints"] = len(run.checkpoints())
    names = run.table_names()
    shown: list[tuple[str, pd.DataFrame]] = []
    images = []
    if "history" in names:
        history = run.history
        shown.append(("last evaluations (history)", history.tail(4)))
        images.append(_image(plot_training(history), "training curves"))
    if names:
        shown.append(("tables (run.tables[name])", pd.DataFrame({"name": names})))
    return block(f"netdyn run {run.path.name}", meta, shown, images)

