"""The verdict table (see docs/verdicts.md): read from the ``summary.json`` of every experiment folder under a
directory, so the tables of README, REPRODUCTION.md and the ``all`` index report cannot drift from their evidence
(``netdyn reproduce --table DIR``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from netdyn.errors import ConfigError
from netdyn.experiments.registry import EXPERIMENTS

VERDICT_COLUMNS = ("experiment", "figure", "scale", "verdict", "holds", "fails", "folder")
"""Columns of :func:`verdict_table`."""


def experiment_summaries(directory: str | Path) -> list[tuple[Path, dict[str, Any]]]:
    """``(folder, summary)`` of every experiment folder under ``directory`` (itself included): a folder whose
    ``summary.json`` names an experiment and its scale. Member runs inside an experiment folder are not read."""
    root = Path(directory)
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder")
    found = []
    for current, dirs, files in os.walk(root):
        dirs.sort()
        if "summary.json" not in files:
            continue
        try:
            summary = json.loads((Path(current) / "summary.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(summary, dict) and "experiment" in summary and "scale" in summary:
            found.append((Path(current), summary))
            dirs.clear()  # its runs/ are member run folders
    return found


def _criterion_cell(entry: dict[str, Any]) -> str:
    text = f"{entry.get('label', entry['name'])} ({entry['seeds_passing']}/{entry['n_seeds']})"
    if not entry.get("decides", True):
        text += f" [changed {entry.get('since')}, does not decide]"
    return text


def verdict_row(folder: Path, summary: dict[str, Any], root: Path) -> dict[str, Any]:
    """One experiment's row: its verdict and the criteria that hold and fail, each with its seeds passing."""
    criteria = summary.get("criteria") or []
    verdict = summary.get("verdict")
    return {
        "experiment": summary["experiment"],
        "figure": summary.get("figure", ""),
        "scale": summary["scale"],
        "verdict": verdict if verdict is not None else "no criteria",
        "holds": "; ".join(_criterion_cell(c) for c in criteria if c["holds"]),
        "fails": "; ".join(_criterion_cell(c) for c in criteria if not c["holds"]),
        "folder": str(folder.relative_to(root)) if folder != root else ".",
    }


def verdict_table(directory: str | Path) -> pd.DataFrame:
    """One row per experiment folder under ``directory`` (the paper's order, then the folder), with
    :data:`VERDICT_COLUMNS`."""
    root = Path(directory)
    order = {name: i for i, name in enumerate(EXPERIMENTS)}
    rows = [verdict_row(folder, summary, root) for folder, summary in experiment_summaries(root)]
    rows.sort(key=lambda r: (order.get(r["experiment"], len(order)), r["folder"]))
    return pd.DataFrame(rows, columns=list(VERDICT_COLUMNS))


def verdict_markdown(table: pd.DataFrame) -> str:
    """A verdict table as a markdown table (the form README and REPRODUCTION.md paste)."""
    header = ["experiment", "paper", "scale", "verdict", "criteria that hold (seeds passing)",
              "criteria that fail (seeds passing)"]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in table.to_dict("records"):
        cells = [f"`{row['experiment']}`", row["figure"], row["scale"], f"**{row['verdict']}**",
                 row["holds"] or "–", row["fails"] or "–"]  # fmt: skip
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)
