"""Which figures and report sections an :class:`~netdyn.analysis.analyze.Analysis` gets: one pass over
``netdyn.analysis.QUANTITIES``, whose records name their figures, tables, section and explanation.

This only routes tables to ``netdyn.plots`` and words to ``netdyn.report``; it computes nothing.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

TRAINING_TEXT = (
    "Loss and accuracy on the training and test sets at log-spaced points of training. A late jump of "
    "test accuracy long after training accuracy saturates is grokking; a bump in test loss is double "
    "descent. With batch norm evaluated both ways, a gap between running-statistics and batch-statistics "
    "curves is the paper's BN-induced grokking."
)
EVOLUTION_TEXT = "The same quantities at every checkpoint: how the structure forms during training, layer by layer."


def _last_step(table: pd.DataFrame) -> pd.DataFrame:
    if "step" not in table.columns or table.empty:
        return table
    return table[table["step"] == table["step"].max()].drop(columns="step")


def _present(analysis: Any) -> list[Any]:
    """The registry's records whose tables this analysis holds, in registry order."""
    from netdyn.analysis.quantities import QUANTITIES

    return [r for r in QUANTITIES.values() if all(name in analysis.tables for name in r.tables)]


def _by_step(tables: dict[str, pd.DataFrame]) -> bool:
    network = tables.get("network")
    return network is not None and "step" in network.columns and network["step"].nunique() > 1


def analysis_figures(analysis: Any) -> dict[str, Any]:
    """Every figure of an analysis by file name: each quantity's own, then its evolution over checkpoints."""
    last = {name: _last_step(table) for name, table in analysis.tables.items()}
    figs: dict[str, Any] = {}
    records = _present(analysis)
    for record in records:
        figs.update(record.figures(last, analysis.summary))
    if _by_step(analysis.tables):
        for record in records:
            figs.update(record.evolution(analysis.tables))
    return figs


def report_sections(analysis: Any, history: pd.DataFrame | None = None) -> list[Any]:
    """The report's sections: training curves, one per section title of the registry, then the evolution."""
    from netdyn import plots
    from netdyn.report import ReportSection

    last = {name: _last_step(table) for name, table in analysis.tables.items()}
    sections: dict[str, ReportSection] = {}
    if history is not None and len(history):
        sections["Training"] = ReportSection("Training", TRAINING_TEXT, [plots.plot_training(history)])
    records = _present(analysis)
    for record in records:
        section = sections.setdefault(record.section, ReportSection(record.section, record.explanation))
        section.text = section.text or record.explanation
        section.figures += list(record.figures(last, analysis.summary).values())
        for caption, table in record.report_tables(last, analysis.summary):
            _add_table(section, caption, table)
    if _by_step(analysis.tables):
        evolution = [f for record in records for f in record.evolution(analysis.tables).values()]
        if evolution:
            sections["evolution"] = ReportSection("Evolution during training", EVOLUTION_TEXT, evolution)
    return [s for s in sections.values() if s.figures or s.tables]


def _add_table(section: Any, caption: str, table: pd.DataFrame) -> None:
    """Tables of one caption from several records (the two basins' sizes) join into one."""
    for i, (existing, frame) in enumerate(section.tables):
        if existing == caption:
            section.tables[i] = (caption, pd.concat([frame, table], ignore_index=True))
            return
    section.tables.append((caption, table))
