"""Runs side by side: ``netdyn.compare(runs, out)`` and ``netdyn compare RUN... --out DIR``.

(The module is ``comparison``, not ``compare``: a submodule named like the function it exports would replace that
function as the package's attribute once anything imports the submodule.)

One self-contained HTML page overlays each quantity across the runs (training curves, LP and L-map pruning
accuracy by layer, the RPD summary, the basins where they were measured) and opens with a legend of what differs
between the runs: every setting of their ``config.json`` that is not the same in all of them.

Layer: above orchestration (it reads run folders and their analyses, draws with ``netdyn.plots`` and writes with
``netdyn.report``), below the sweeps and the experiments, whose folders write a comparison of their members.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from netdyn import _io
from netdyn.errors import ConfigError
from netdyn.orchestration.analyses import ANALYSIS_FILE
from netdyn.orchestration.display import last_step, scalar_items
from netdyn.plots import plot_basin
from netdyn.plots.runs import plot_runs_by_layer, plot_runs_training
from netdyn.report import ReportSection, render_report
from netdyn.store import RunFolder

REPORT_NAME = "report.html"
_HEADLINE = ("steps", "train_accuracy", "test_accuracy", "train_loss", "test_loss", "wall_time", "diverged")
_LABEL_LIMIT = 40  # a legend entry names the differing settings' values while it stays this short


@dataclass
class _Member:
    """One run as the comparison reads it."""

    label: str
    folder: RunFolder
    settings: dict[str, Any]
    summary: dict[str, Any]
    analysis_summary: dict[str, Any]
    tables: dict[str, pd.DataFrame]


def compare(runs: Sequence[str | Path | RunFolder], out: str | Path, *, title: str | None = None) -> Path:
    """Write one HTML report under ``out`` that overlays the quantities of two or more run folders.

    Args:
        runs: Two or more run folders (paths, or folders from ``load_run``): ``netdyn train`` runs, a sweep's or an
            experiment's members, monitored loops.
        out: The folder that receives ``report.html`` (created when missing; an earlier comparison there is
            replaced).
        title: The report's title (default: the runs' names).

    Returns:
        The report's path, ``out/report.html``.

    Raises:
        ConfigError: Fewer than two runs, or a path that is not a run folder.
        StorageError: ``out`` cannot be written.

    Each section draws the runs that hold its tables and names those that do not: training curves (the history;
    the running-statistics evaluation where both were recorded), the L-map and LP test accuracy by layer, the RPD
    gradient by layer, the sample- and weight-space basin curves. A run analysed at several checkpoints is compared
    at its last one. The first section lists the settings that differ between the runs.
    """
    folders = [_open(run) for run in runs]
    if len(folders) < 2:
        raise ConfigError(f"compare needs at least two run folders, got {len(folders)}")
    target = _io.check_writable_folder(Path(out), "comparison folder")
    members = _read_members(folders)
    sections = [
        _differences_section(members),
        _headline_section(members),
        *(s for s in (_training_section(members), _pruning_section(members), _rpd_section(members),
                      *(_basin_section(members, kind) for kind in ("sample", "weight"))) if s is not None),
    ]
    meta = {"runs": [str(m.folder.path) for m in members]}
    names = ", ".join(m.folder.path.name for m in members)
    name = title or f"netdyn comparison of {names if len(members) <= 3 else f'{len(members)} runs'}"
    return render_report(name, sections, target / REPORT_NAME, meta=meta)


def _open(run: str | Path | RunFolder) -> RunFolder:
    folder = run if isinstance(run, RunFolder) else RunFolder(Path(run))
    if not folder.path.is_dir():
        raise ConfigError(f"no run folder at {folder.path}")
    if not folder.exists():
        raise ConfigError(f"{folder.path} is not a netdyn run folder: config.json is missing")
    return folder


def _labels(folders: list[RunFolder]) -> list[str]:
    """The folders' names, with their parent's where two share a name (and a number where that is not enough)."""
    names = [f.path.name for f in folders]
    if len(set(names)) < len(names):
        names = [f"{f.path.parent.name}/{f.path.name}" for f in folders]
    if len(set(names)) < len(names):
        names = [f"{i + 1}: {n}" for i, n in enumerate(names)]
    return names


def _read_members(folders: list[RunFolder]) -> list[_Member]:
    members = []
    for label, folder in zip(_labels(folders), folders, strict=True):
        names = set(folder.table_names())
        wanted = ("history", "network", "lmap", "lp", "rpd_summary", "sample_basin", "weight_basin")
        tables = {name: folder.read_table(name) for name in wanted if name in names}
        summary = folder.summary if (folder.path / "summary.json").is_file() else {}
        analysis = folder.read_json(ANALYSIS_FILE) if (folder.path / ANALYSIS_FILE).is_file() else {}
        members.append(_Member(label, folder, _flatten(folder.config), summary,
                               scalar_items(analysis.get("summary") or {}), tables))
    _name_differences(members)
    return members


def _flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested record as ``{"model.width": 64, ...}``; lists as JSON text, so that they compare and print."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = json.dumps(value) if isinstance(value, list) else value
    return flat


def differing_settings(members: Sequence[dict[str, Any]]) -> list[str]:
    """The keys whose value is not the same in every flattened record (a key some lack counts as differing)."""
    keys = list(dict.fromkeys(k for m in members for k in m))
    return [k for k in keys if len({json.dumps(m.get(k), sort_keys=True, default=str) for m in members}) > 1]


def _name_differences(members: list[_Member]) -> None:
    """Legend entries that say what differs (``a (width=32)``) where that stays short."""
    keys = [k for k in differing_settings([m.settings for m in members]) if k != "netdyn_version"]
    last = [k.rsplit(".", 1)[-1] for k in keys]
    short = [name if last.count(name) == 1 else key for key, name in zip(keys, last, strict=True)]
    for member in members:
        values = ", ".join(f"{name}={member.settings.get(k, '–')}" for k, name in zip(keys, short, strict=True))
        if keys and len(values) <= _LABEL_LIMIT:
            member.label = f"{member.label} ({values})"


def _differences_section(members: list[_Member]) -> ReportSection:
    keys = differing_settings([m.settings for m in members])
    shared = len({k for m in members for k in m.settings}) - len(keys)
    if not keys:
        text = f"The runs' configurations are identical ({shared} settings, seeds included)."
        return ReportSection("What differs", text)
    rows = [{"run": m.label, "folder": str(m.folder.path), **{k: m.settings.get(k) for k in keys}} for m in members]
    text = (f"The settings of config.json that differ between the runs ({len(keys)}); the other {shared} are the "
            "same in every run. The figures below name each run as this table does.")
    table = pd.DataFrame(rows).astype({k: str for k in keys})
    return ReportSection("What differs", text, tables=[("settings that differ", table)])


def _headline_section(members: list[_Member]) -> ReportSection:
    """Training and analysis summary numbers, one column per run."""
    rows: dict[str, dict[str, Any]] = {}
    for m in members:
        for key in _HEADLINE:
            if key in m.summary:
                rows.setdefault(key, {})[m.label] = m.summary[key]
        for key, value in m.analysis_summary.items():
            if isinstance(value, (int, float)) and key not in _HEADLINE:
                rows.setdefault(f"analysis: {key}", {})[m.label] = value
    table = pd.DataFrame.from_dict(rows, orient="index", columns=[m.label for m in members])
    table = table.rename_axis("quantity").reset_index()
    text = "Each run's summary.json and the summary of its analysis (analysis.json), side by side."
    return ReportSection("Headline numbers", text, tables=[("summary numbers by run", table)])


def _stacked(members: list[_Member], name: str) -> tuple[pd.DataFrame | None, list[str]]:
    """The runs' ``name`` tables with a ``run`` column, and the runs that lack one.

    An analysis table is taken at its last checkpoint; the history whole.
    """
    pick = (lambda t: t) if name == "history" else last_step
    parts = [pick(m.tables[name]).assign(run=m.label) for m in members
             if name in m.tables and not m.tables[name].empty]
    lacking = [m.label for m in members if name not in m.tables or m.tables[name].empty]
    return (pd.concat(parts, ignore_index=True) if parts else None), lacking


def _lacking_note(lacking: list[str], what: str) -> str:
    return f"\n\nNot in: {', '.join(lacking)} (no {what} recorded)." if lacking else ""


def _by_run(table: pd.DataFrame, value: str) -> pd.DataFrame:
    """One row per layer, one column per run (in the runs' order)."""
    runs = list(pd.unique(table["run"]))
    wide = table.pivot_table(index="layer", columns="run", values=value, aggfunc="first")
    return wide.reindex(columns=runs).reset_index().rename_axis(columns=None)


def _training_section(members: list[_Member]) -> ReportSection | None:
    history, lacking = _stacked(members, "history")
    if history is None:
        return None
    if "bn_mode" in history.columns:  # one evaluation per run: the running statistics where both were recorded
        keep = history.groupby("run")["bn_mode"].transform(lambda m: m == ("running" if (m == "running").any()
                                                                            else m.iloc[0]))
        history = history[keep]
    text = ("Accuracy and loss against the training step, test solid, train dashed (batch-norm nets: the "
            "running-statistics evaluation)." + _lacking_note(lacking, "training history"))
    return ReportSection("Training curves", text, figures=[plot_runs_training(history)])


def _pruning_section(members: list[_Member]) -> ReportSection | None:
    parts = []
    lacking: set[str] = set()
    for name, method in (("lmap", "L-map"), ("lp", "LP")):
        table, missing = _stacked(members, name)
        lacking.update(missing)
        if table is not None:
            parts.append(table[table["split"] == "test"].assign(method=method))
    if not parts:
        return None
    both = pd.concat(parts, ignore_index=True)
    figure = plot_runs_by_layer(both, "accuracy", "test accuracy", "LP and L-map pruning by layer", kind="method")
    tables = [(f"{method} test accuracy by layer", _by_run(rows, "accuracy"))
              for method, rows in both.groupby("method", sort=False)]
    text = ("Test accuracy when everything after layer l is replaced by the network's own linear tail (L-map, "
            "solid) or by a ridge map fitted from layer l to the output (LP, dashed). Where it reaches the "
            "network's accuracy the rest of the network acts linearly."
            + _lacking_note(sorted(lacking, key=[m.label for m in members].index), "L-map or LP table"))
    return ReportSection("LP and L-map pruning by layer", text, figures=[figure], tables=tables)


def _rpd_section(members: list[_Member]) -> ReportSection | None:
    table, lacking = _stacked(members, "rpd_summary")
    if table is None:
        return None
    figure = plot_runs_by_layer(table, "gradient", "RPD gradient", "RPD gradient by layer")
    text = ("The RPD gradient (minus the slope of the rank-position density; the share of order-preserving "
            "neurons) by layer." + _lacking_note(lacking, "RPD summary"))
    return ReportSection("RPD summary", text, figures=[figure],
                         tables=[("RPD gradient by layer", _by_run(table, "gradient")),
                                 ("RPD order index by layer", _by_run(table, "order_index"))])


def _basin_section(members: list[_Member], kind: str) -> ReportSection | None:
    name = f"{kind}_basin"
    held = [m for m in members if name in m.tables and not m.tables[name].empty]
    if not held:
        return None
    curves = {m.label: last_step(m.tables[name]) for m in held}
    sizes = {m.label: m.analysis_summary[f"{name}_size_half"] for m in held
             if m.analysis_summary.get(f"{name}_size_half") is not None}
    figure = plot_basin(curves, kind=kind, sizes=sizes or None, legend_title="run")
    table = pd.DataFrame({"run": [m.label for m in held],
                          "size_half": [m.analysis_summary.get(f"{name}_size_half") for m in held]})
    held_labels = {m.label for m in held}
    lacking = [m.label for m in members if m.label not in held_labels]
    text = (f"Accuracy of training samples under noise of relative amplitude eps on the "
            f"{'input' if kind == 'sample' else 'weights'}, with 95% intervals; size_half is where it halves."
            + _lacking_note(lacking, f"{kind} basin"))
    return ReportSection(f"{kind.capitalize()}-space basins", text, figures=[figure],
                         tables=[(f"{kind} basin size by run", table)])
