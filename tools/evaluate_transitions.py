"""Evaluate ``netdyn.detect_transitions`` on reproduction runs with known events and on ordinary runs without.

    python tools/evaluate_transitions.py REPRODUCTIONS_DIR

REPRODUCTIONS_DIR holds experiment folders written by ``netdyn reproduce NAME --scale small --out DIR/NAME-small``.
The events each run is expected to show are those its experiment establishes (grokking in ``grokking`` and
``bn-grokking``, whose nets are those of ``double-descent``; a test-loss bump there at depths 6 and 10, none at
depth 2); runs of
``shallow`` (no batch norm) and the no-BN members of ``basins-depth-width`` are ordinary runs, expected to show
none. The RPD event is scored where the run's per-checkpoint RPD summary was analysed (``double-descent``),
expected wherever a bump is. Prints one row per run and the totals of hits, misses and false alarms.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from netdyn import load_run
from netdyn.transitions import detect_transitions


def _structure_nets(member: str) -> set[str]:
    """The deep BN nets of ``structure`` (the members of bn-grokking and double-descent): every depth groks
    under running-statistics evaluation (bn-grokking); depths 6 and 10 show the early test-loss bump with the
    RPD gradient's fastest change beside it, depth 2 none (double-descent)."""
    return {"grokking"} | (set() if "depth2-" in member else {"double_descent", "rpd_rate_max"})


EXPECTED = {
    "grokking-small": lambda m: {"grokking"},
    "bn-grokking-small": _structure_nets,
    "double-descent-small": _structure_nets,
    "shallow-small": lambda m: set(),
    "basins-depth-width-small": lambda m: set(),
}


def member_tables(run_dir: Path) -> dict[str, pd.DataFrame]:
    """The run's history plus the per-step tables of its cached analyses (rpd_summary over checkpoints, and
    the lmap / network of the last step), as the detector takes them."""
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


def main(root: Path) -> None:
    rows = []
    for experiment, expected_of in EXPECTED.items():
        folder = root / experiment
        if not folder.is_dir():
            continue
        for run_dir in sorted((folder / "runs").iterdir()):
            if experiment == "basins-depth-width-small" and "batchnormFalse" not in run_dir.name:
                continue  # the BN members have the early loss bump of every BN net trained from scratch
            tables = member_tables(run_dir)
            scored = {"grokking", "double_descent"} | ({"rpd_rate_max"} if "rpd_summary" in tables else set())
            found = detect_transitions(tables)
            detected = set(found["event"])
            expected = expected_of(run_dir.name) & scored
            rows.append({
                "experiment": experiment.removesuffix("-small"), "run": run_dir.name,
                "expected": ", ".join(sorted(expected)) or "-", "detected": ", ".join(
                    f"{e} @{s} ({c:.2f})" for e, s, c in found[["event", "step", "confidence"]].itertuples(index=False)
                ) or "-",
                "hits": len(expected & detected), "misses": len(expected - detected),
                "false_alarms": len((detected - expected) & scored),
                "evidence": "; ".join(json.loads(e)["what"] for e in found["evidence"]),
            })
    table = pd.DataFrame(rows)
    with pd.option_context("display.max_colwidth", 200, "display.width", 250):
        print(table.drop(columns="evidence").to_string(index=False))
    print(f"\nruns {len(table)}, hits {table.hits.sum()}, misses {table.misses.sum()}, "
          f"false alarms {table.false_alarms.sum()}")
    for row in table.itertuples():
        if row.evidence:
            print(f"- {row.experiment}/{row.run}: {row.evidence}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
