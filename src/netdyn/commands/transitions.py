"""``netdyn transitions RUN``: grokking, double descent and the RPD gradient's fastest change in a run."""

from __future__ import annotations

import argparse
import json

from netdyn.commands._options import Folder, Number


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "transitions",
        help="find grokking, double descent and the RPD gradient's fastest change in a run's dynamics",
        description="Read a run folder's recorded dynamics (its history; the RPD summary over checkpoints when "
        "`netdyn analyze --checkpoint all` or a monitor recorded it) and print each transition found, with "
        "its step, confidence and evidence. A run without such events prints that none was found.",
    )
    p.add_argument("run", metavar="RUN_FOLDER", type=Folder("read"), help="a run folder (train, monitor, member)")
    p.add_argument("--min-delay", type=Number(), default=3.0,
                   help="grokking: the test accuracy's mid-rise at least this many times later than the training "
                   "accuracy's (default 3)")
    p.add_argument("--min-rise", type=Number(), default=0.1,
                   help="grokking: the least rise of the test accuracy (default 0.1)")
    p.add_argument("--min-bump", type=Number(), default=0.1,
                   help="double descent: the least rise of the test loss, relative to its earlier minimum "
                   "(default 0.1)")
    p.set_defaults(handler=cmd_transitions)


def cmd_transitions(args: argparse.Namespace) -> int:
    from netdyn.errors import ConfigError
    from netdyn.transitions import detect_transitions

    for name in ("min_delay", "min_rise", "min_bump"):
        if getattr(args, name) <= 0:
            raise ConfigError(f"argument --{name.replace('_', '-')}: must be > 0, got {getattr(args, name)}")
    events = detect_transitions(
        args.run, min_delay=args.min_delay, min_rise=args.min_rise, min_relative_bump=args.min_bump
    )
    if events.empty:
        print(f"no transition found in {args.run}")
        return 0
    for row in events.itertuples():
        evidence = json.loads(str(row.evidence))
        print(f"{row.event} at step {row.step} (confidence {row.confidence:.2f}): {evidence['what']}")
    return 0
