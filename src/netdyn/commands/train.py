"""``netdyn train``: train an MLP, ConvNet, ResNet or ViT and record its dynamics in a run folder (every RunSpec
field is a flag)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from netdyn import _io
from netdyn.commands._options import (
    EXIT_DIVERGED,
    Folder,
    UsageError,
    add_analyze_options,
    add_run_spec_options,
    flag_of,
    print_analysis,
    settings_from_args,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train an MLP (or --arch convnet, resnet, vit), recording its dynamics in a run folder",
        description="Train an MLP, or a ConvNet, ResNet or ViT (--arch), on a dataset and record its learning "
        "dynamics in a run folder.",
    )
    spec_flags = add_run_spec_options(p)
    run = p.add_argument_group("run")
    run.add_argument(
        "--out", default=None, type=Folder("write"), metavar="DIR",
        help="the run folder (default runs/<dataset>-<time>)",
    )
    run.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint"
    )
    spec_flags += add_analyze_options(run)
    p.set_defaults(handler=cmd_train, spec_flags=tuple(spec_flags))


def run_spec_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~netdyn.orchestration.RunSpec` that ``netdyn train``'s flags describe (a value a spec refuses
    is a ConfigError naming its flag)."""
    from netdyn.orchestration.settings import spec_from_settings

    return spec_from_settings(settings_from_args(args, args.spec_flags), blame=flag_of)


def cmd_train(args: argparse.Namespace) -> int:
    from netdyn._device import resolve_device
    from netdyn.orchestration import run
    from netdyn.store import RunFolder

    if args.resume and args.out is None:
        raise UsageError("netdyn train: error: --resume needs --out (the run folder to continue)")
    spec = run_spec_from_args(args)
    resolve_device(spec.train.device)  # a device this machine lacks is refused before the data is loaded
    out = Path(args.out) if args.out else Path("runs") / f"{spec.data.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    RunFolder(out).check_target(args.resume)
    _io.check_writable_folder(out, "run folder")
    result = run(
        spec, out, resume=args.resume, progress=not args.quiet, root=args.data_root, download=args.download
    )
    s = result.train.summary
    if result.train.diverged:
        print(
            f"netdyn train: diverged: the loss became non-finite at step {s['diverged_step']}; "
            f"records up to then are in {out}",
            file=sys.stderr,
        )
        return EXIT_DIVERGED
    print(
        f"train accuracy {s.get('train_accuracy', float('nan')):.4f}, "
        f"test accuracy {s.get('test_accuracy', float('nan')):.4f} after {s['steps']} steps "
        f"({s['wall_time']:.1f} s)"
    )
    if result.analysis is not None:
        print_analysis(result.analysis.summary)
        print(f"report: {out / 'report.html'}")
    print(f"run folder: {out}")
    return 0
