"""A run folder's analysis on disk: tables, figures and the self-contained ``report.html``."""

from __future__ import annotations

from pathlib import Path

from netdyn import _io
from netdyn.analysis.quantities import table_columns
from netdyn.orchestration.analyses import Analysis
from netdyn.store import RunFolder


def _remove_stale(run: RunFolder, analysis: Analysis) -> None:
    """A new analysis replaces the previous one whole: tables and figures it does not produce again (basins
    after ``--no-basins``, evolution figures after a single checkpoint) would otherwise mix two analyses.
    Only the registry's tables are touched (the training history lives in ``metrics/`` too)."""
    for name in table_columns():
        if name not in analysis.tables:
            (run.metrics_dir / f"{name}.parquet").unlink(missing_ok=True)
    if run.figures_dir.is_dir():
        for path in run.figures_dir.iterdir():
            if path.suffix in (".png", ".svg"):
                path.unlink()


def check_report_target(run: RunFolder) -> None:
    """Raise before an analysis is computed if it could not be saved into ``run``: the run folder or its
    ``metrics/`` or ``figures/`` read-only or blocked by a file (:class:`~netdyn.errors.StorageError`), or a
    training history the report cannot read (:class:`~netdyn.errors.RunError`)."""
    folders = {"run folder": run.path, "tables folder": run.metrics_dir, "figures folder": run.figures_dir}
    for what, folder in folders.items():
        _io.check_writable_folder(folder, what)
    if "history" in run.table_names():
        run.read_table("history")


def write_run_report(run: RunFolder, analysis: Analysis, title: str | None = None) -> Path:
    """Save ``analysis`` into the run folder (``metrics/``, ``analysis.json``, ``figures/``) and write
    ``report.html`` with the training curves first. Returns the report's path."""
    check_report_target(run)
    _remove_stale(run, analysis)
    analysis.save(run.path)
    analysis.plot(run.path)
    history = run.history if "history" in run.table_names() else None
    config = run.config
    model = config.get("model", {})
    meta = {
        "run folder": str(run.path),
        "dataset": (config.get("data") or {}).get("name", "?"),
        "model": ", ".join(
            f"{k}={model[k]}" for k in ("width", "depth", "activation", "residual", "batchnorm") if k in model
        ),
        "training": ", ".join(
            f"{k}={v}"
            for k, v in (config.get("train") or {}).items()
            if k in ("optimizer", "lr", "batch_size", "epochs", "steps", "loss")
        ),
    }
    steps = analysis.summary.get("steps")
    meta["checkpoints analysed"] = ", ".join(map(str, steps)) if steps else "last"
    return analysis.to_html(
        run.report_path, title=title or f"netdyn analysis of {run.path.name}", meta=meta, history=history
    )
