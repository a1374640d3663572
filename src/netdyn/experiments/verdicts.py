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


def markdown_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    """The lines of a markdown table: ``header``, then one line per row, each cell as text with its pipes escaped
    and its line breaks as spaces."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in rows]
    return lines


def verdict_markdown(table: pd.DataFrame) -> str:
    """A verdict table as a markdown table (the form README and REPRODUCTION.md paste)."""
    header = ["experiment", "paper", "scale", "verdict", "criteria that hold (seeds passing)",
              "criteria that fail (seeds passing)"]  # fmt: skip
    rows = [[f"`{row['experiment']}`", row["figure"], row["scale"], f"**{row['verdict']}**",
             row["holds"] or "–", row["fails"] or "–"] for row in table.to_dict("records")]  # fmt: skip
    return "\n".join(markdown_table(header, rows))


_PAGE_SKIP = {"experiment", "figure", "scale", "criteria", "verdict", "verdict_line"}


def _cell(value: Any) -> str:
    """A summary value as a short markdown cell (floats to 3 significant digits)."""
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "–"}[value]
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_cell(v)}" for k, v in value.items())
    return str(value)


def experiment_page(summary: dict[str, Any], figures: list[str], command: str) -> str:
    """One experiment's markdown page, generated from its ``summary.json``: the paper's claim, the verdict, every
    criterion with its value on each seed, the headline numbers and the ``figures`` (paths relative to the page).
    ``command`` is the command that wrote the experiment folder."""
    name = summary["experiment"]
    cls = EXPERIMENTS.get(name)
    criteria = summary.get("criteria") or []
    n_seeds = max((c["n_seeds"] for c in criteria), default=0)
    lines = [
        f"# {name} ({summary.get('figure', '')})",
        "",
        f"<!-- generated by tools/docs_evidence.py from docs/evidence/{name}/summary.json: do not edit -->",
        "",
        f"**Verdict at {summary['scale']} scale: {summary.get('verdict_line') or 'no criteria'}.** "
        f"Written by `{command}`: {summary.get('dataset', '')}, {n_seeds} seeds, {summary.get('members')} member "
        f"runs, {summary['wall_time'] / 60:.1f} min of wall time with {summary.get('threads')} torch "
        f"{'thread' if summary.get('threads') == 1 else 'threads'}. What the runs show, read against the paper: "
        "[Reproducing the paper](../REPRODUCTION.md).",
        "",
    ]
    if cls is not None:
        lines += ["## The paper's claim", "", cls.claim.strip(), ""]
    if criteria:
        lines += ["## Criteria, per seed", "",
                  "Declared in code before the run. A criterion holds when it passes on at least two thirds of the "
                  "seeds; one changed after a result is marked and does not decide (see [Verdicts](../verdicts.md)).",
                  ""]
        rows = []
        for c in criteria:
            label = c.get("label", c["name"])
            if not c.get("decides", True):
                label += f" [changed {c.get('since')}, does not decide]"
            values = [_cell(v) if v is not None else f"– ({r})" for v, r in zip(c["values"], c["reasons"],
                                                                                 strict=True)]
            rows.append([f"`{label}`", c["statement"], c["quantity"], c["rule_text"], "; ".join(values),
                         f"{c['seeds_passing']}/{c['n_seeds']}", "**holds**" if c["holds"] else "fails"])
        lines += markdown_table(["criterion", "the paper says", "measured", "rule", "value per seed (seeds "
                         + ", ".join(str(s) for s in criteria[0]["seeds"]) + ")", "passing", ""], rows)
        lines.append("")
    headline = [[f"`{k}`", _cell(v)] for k, v in summary.items() if k not in _PAGE_SKIP]
    lines += ["## Headline numbers (summary.json)", "", *markdown_table(["quantity", "value"], headline), ""]
    if figures:
        lines += ["## Figures", ""]
        for path in figures:
            lines += [f"![{Path(path).stem}]({path})", ""]
    return "\n".join(lines)
