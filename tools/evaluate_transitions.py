"""Score ``netdyn.detect_transitions`` on reproduction runs with known events and on ordinary runs without.

    python tools/evaluate_transitions.py EXPERIMENTS_DIR ORDINARY_SWEEP_DIR

EXPERIMENTS_DIR holds the experiment folders of ``netdyn reproduce all --scale small --out EXPERIMENTS_DIR``
(``NAME`` or ``NAME-small``); ORDINARY_SWEEP_DIR is the sweep of ordinary runs docs/TRANSITIONS.md gives the
command of (BN and plain MLPs trained with ``netdyn train``'s defaults). Prints markdown: one table per kind of
event (hits, misses, false alarms), one per group of runs, and every event found with its evidence.

Expected events (fixed on 2026-12-06, before this scoring was run on the reruns):

* ``grokking``'s runs (plain MLPs, Omnigrok's setting): ``grokking``.
* the deep BN nets of ``bn-grokking`` and ``double-descent`` (the same nets, depths 2, 6 and 10) and of
  ``lmap-training`` (depth 21): ``bn_lag``, the running-statistics test jump that the batch-statistics test curve
  does not show (what ``bn-grokking`` measures under both evaluations); at depths 6 and 10 also the paper's early
  test-loss bump, ``double_descent``, with the RPD gradient's fastest change beside it, ``rpd_rate_max``.
* ordinary runs, expected to show no event: ``shallow`` (one tanh or linear hidden layer, no BN), the no-BN
  members of ``basins-depth-width`` and every ok point of the ordinary sweep. Any event found on an ordinary run
  is a false alarm, ``bn_lag`` included.

``bn_lag`` is its own kind, never counted as ``grokking`` or ``double_descent`` (its evidence says which it looked
like). ``rpd_rate_max`` is scored only where the run's RPD summary was analysed at several checkpoints.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from netdyn import load_run
from netdyn.experiments.verdicts import markdown_table
from netdyn.transitions import detect_transitions

KINDS = ("grokking", "double_descent", "bn_lag", "rpd_rate_max")
HISTORY_KINDS = {"grokking", "double_descent", "bn_lag"}


def _deep_bn(member: str) -> set[str]:
    depth = re.search(r"depth(\d+)", member)
    bump = depth is not None and int(depth.group(1)) >= 6 and int(depth.group(1)) <= 10
    return {"bn_lag"} | ({"double_descent", "rpd_rate_max"} if bump else set())


EXPECTED: dict[str, Callable[[str], set[str]]] = {
    "grokking": lambda m: {"grokking"},
    "bn-grokking": _deep_bn,
    "double-descent": _deep_bn,
    "lmap-training": lambda m: {"bn_lag"},
    "shallow": lambda m: set(),
    "basins-depth-width": lambda m: set(),
}
ORDINARY = {"shallow", "basins-depth-width", "ordinary sweep"}


def member_tables(run_dir: Path) -> dict[str, pd.DataFrame]:
    """The run's history plus the per-step tables of its cached analyses (the rpd_summary over the most
    checkpoints, and the lmap / network tables), as the detector takes them."""
    run = load_run(run_dir)
    tables = {"history": run.history}
    for meta in sorted((run_dir / "analyses").glob("*/analysis.json")):
        for path in (meta.parent / "metrics").glob("*.parquet"):
            table = pd.read_parquet(path)
            if "step" in table.columns and (path.stem not in tables or table["step"].nunique() > 1):
                tables.setdefault(path.stem, table)
                if path.stem == "rpd_summary" and table["step"].nunique() > tables[path.stem]["step"].nunique():
                    tables[path.stem] = table
    return tables


def _experiment_folder(root: Path, name: str) -> Path | None:
    for candidate in (root / name, root / f"{name}-small"):
        if (candidate / "runs").is_dir():
            return candidate
    return None


def _runs(experiments: Path, sweep: Path) -> list[tuple[str, Path, set[str]]]:
    """``(group, run folder, expected events)`` of every scored run."""
    found = []
    for name, expected_of in EXPECTED.items():
        folder = _experiment_folder(experiments, name)
        if folder is None:
            continue
        for run_dir in sorted((folder / "runs").iterdir()):
            if name == "basins-depth-width" and "batchnormFalse" not in run_dir.name:
                continue  # only the plain members are ordinary runs
            found.append((name, run_dir, expected_of(run_dir.name)))
    points = pd.read_parquet(sweep / "sweep.parquet")
    for point in points[points["status"] == "ok"].itertuples():
        found.append(("ordinary sweep", sweep / str(point.run_dir), set()))
    return found


def score(experiments: Path, sweep: Path) -> pd.DataFrame:
    """One row per (run, kind of event): expected, detected, and the hit / miss / false alarm it makes."""
    rows = []
    for group, run_dir, expected in _runs(experiments, sweep):
        tables = member_tables(run_dir)
        multi_step_rpd = "rpd_summary" in tables and tables["rpd_summary"]["step"].nunique() > 1
        scored = HISTORY_KINDS | ({"rpd_rate_max"} if multi_step_rpd else set())
        events = detect_transitions(tables)
        for kind in KINDS:
            found = events[events["event"] == kind]
            detected = not found.empty
            if kind not in scored and not detected:
                continue
            is_expected = kind in expected and kind in scored
            evidence = [json.loads(e) for e in found["evidence"]]
            rows.append({
                "group": group, "run": run_dir.name, "kind": kind, "expected": is_expected, "detected": detected,
                "hit": is_expected and detected, "miss": is_expected and not detected,
                "false_alarm": detected and (group in ORDINARY or not is_expected),
                "steps": ", ".join(str(s) for s in found["step"]),
                "confidence": ", ".join(f"{c:.2f}" for c in found["confidence"]),
                "seen_as": ", ".join(e.get("seen_as", "") for e in evidence if e.get("seen_as")),
                "evidence": "; ".join(e["what"] for e in evidence),
            })
    return pd.DataFrame(rows)


def _counts(table: pd.DataFrame, by: str) -> pd.DataFrame:
    table = table.assign(key=table["group"] + "/" + table["run"])  # member names repeat across experiments
    counts = table.groupby(by, sort=False).agg(
        runs=("key", "nunique"), expected=("expected", "sum"), hits=("hit", "sum"), misses=("miss", "sum"),
        false_alarms=("false_alarm", "sum"),
    )
    runs = table[["group", "run"]].drop_duplicates().shape[0]
    counts.loc["total"] = [runs, *counts[["expected", "hits", "misses", "false_alarms"]].sum()]
    return counts.reset_index()


def _markdown(table: pd.DataFrame) -> str:
    return "\n".join(markdown_table(list(table.columns), table.itertuples(index=False)))


def main(experiments: Path, sweep: Path) -> None:
    table = score(experiments, sweep)
    print("## By kind of event\n")
    print(_markdown(_counts(table, "kind")))
    print("\n## By group of runs\n")
    print(_markdown(_counts(table, "group")))
    print("\n## Every event found, and every miss\n")
    shown = table[table["detected"] | table["miss"]]
    for row in shown.itertuples():
        label = "miss" if row.miss else ("false alarm" if row.false_alarm else "hit")
        seen = f", seen as {row.seen_as}" if row.seen_as else ""
        what = f" at step {row.steps} (confidence {row.confidence}{seen}): {row.evidence}" if row.detected else ""
        print(f"- {label}: {row.group}/{row.run} {row.kind}{what}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python tools/evaluate_transitions.py EXPERIMENTS_DIR ORDINARY_SWEEP_DIR")
    main(Path(sys.argv[1]), Path(sys.argv[2]))
