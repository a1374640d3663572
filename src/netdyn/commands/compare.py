"""``netdyn compare RUN... --out DIR``: one HTML report that overlays two or more runs' quantities."""

from __future__ import annotations

import argparse

from netdyn.commands._options import Folder


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="overlay two or more runs in one HTML report",
        description="Write DIR/report.html, one self-contained page that overlays the runs' training curves, "
        "LP and L-map pruning accuracy by layer, RPD gradient by layer and basin curves (each where the runs "
        "recorded it), with a table of the config.json settings that differ between them.",
    )
    p.add_argument("runs", metavar="RUN_FOLDER", nargs="+", type=Folder("read"),
                   help="two or more run folders (netdyn train, a sweep's or an experiment's members, a monitor's)")
    p.add_argument("--out", required=True, type=Folder("write"), metavar="DIR",
                   help="the folder that receives report.html (created when missing)")
    p.set_defaults(handler=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    from netdyn.comparison import compare

    print(f"report: {compare(args.runs, args.out)}")
    return 0
