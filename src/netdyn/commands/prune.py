"""``netdyn prune RUN``: replace a run's linear tail by one affine map and save the smaller model as a run."""

from __future__ import annotations

import argparse

from netdyn.analysis.network import EFFECTIVE_TOLERANCE
from netdyn.commands._options import Amount, Folder


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prune",
        help="replace the layers after the earliest effective L-map / LP layer by that affine map",
        description="Find the earliest layer l whose linear replacement (lmap: the network's own tail with the "
        "identity for every later transfer function; lp: the ridge map from x^l to the logits) keeps the test "
        "accuracy within --tolerance, replace layers l+1..L by it, and save the smaller MLP as a run folder of its "
        "own. A user's model (a Monitor's run folder, rebuilt by its recorded model_factory) is cut at the earliest "
        "effective cut whose L-map tail is affine and saved as its trunk followed by one Linear. Prints parameters, "
        "accuracy and measured inference time before and after.",
    )
    p.add_argument("run", metavar="RUN_FOLDER", type=Folder("read"),
                   help="a run folder written by netdyn train (read only: the pruned model goes to --out)")
    p.add_argument("--method", default="lmap", choices=["lmap", "lp"],
                   help="lmap (default: nothing fitted; cuts crossed by a residual skip are skipped) or lp (fitted "
                   "on the training set; effective earlier)")
    p.add_argument("--tolerance", type=Amount(0.0, 1.0), default=EFFECTIVE_TOLERANCE,
                   help=f"largest test-accuracy loss allowed, as a fraction (default: {EFFECTIVE_TOLERANCE})")
    p.add_argument("--checkpoint", default="last", help="which checkpoint to prune: a step, or last (default)")
    p.add_argument("--out", default=None, type=Folder("write"), metavar="DIR",
                   help="the pruned run folder, new or empty (default: RUN-pruned-METHOD)")
    p.add_argument("--data-root", default=None, type=Folder("read"), metavar="DIR",
                   help="folder holding the run's data set files on this machine")
    p.set_defaults(handler=cmd_prune)


def cmd_prune(args: argparse.Namespace) -> int:
    from netdyn.prune import prune_run

    result = prune_run(args.run, args.out, method=args.method, tolerance=args.tolerance, step=args.checkpoint,
                       root=args.data_root)
    width = max(len(m) for m in result.table["model"])
    print(f"{'':<{width}}  depth  parameters  train acc  test acc  inference (ms, test set)")
    for row in result.table.itertuples():
        print(f"{row.model:<{width}}  {row.depth:>5}  {row.parameters:>10,}  {row.train_accuracy:>9.4f}  "
              f"{row.test_accuracy:>8.4f}  {row.inference_ms:>8.3f}")
    before, after = result.table.iloc[0], result.table.iloc[1]
    speed = after["inference_ms"] / before["inference_ms"]
    print(f"parameters {after['parameters'] / before['parameters']:.1%} of the original; test accuracy "
          f"{after['test_accuracy'] - before['test_accuracy']:+.4f}; inference time {speed:.2f}x")
    print(f"pruned run folder: {result.folder}")
    return 0
