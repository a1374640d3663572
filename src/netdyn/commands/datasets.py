"""``netdyn datasets``: every data set, whether it loads here and how to get it; ``--download NAME`` fetches one."""

from __future__ import annotations

import argparse

from netdyn import _io
from netdyn.commands._options import Folder, UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser(
        "datasets",
        help="list the datasets and whether each is available here; --download NAME fetches one",
        description="List every dataset, whether it loads on this machine, and how to get it; "
        "with --download NAME, fetch the MNIST-format files of NAME (MD5-checked) first.",
    )
    d.add_argument(
        "--download", metavar="NAME", default=None, choices=["mnist", "fashion-mnist"],
        help="download mnist or fashion-mnist (into --data-root, else ~/.cache/netdyn/NAME)",
    )
    d.add_argument(
        "--data-root", default=None, type=Folder("write"), metavar="DIR",
        help="with --download: the folder to download into",
    )
    d.set_defaults(handler=cmd_datasets)


def cmd_datasets(args: argparse.Namespace) -> int:
    from netdyn.data import list_datasets, load_dataset
    from netdyn.data._mnist import cache_folder

    if args.data_root is not None and not args.download:
        raise UsageError(
            "netdyn datasets: error: argument --data-root: it names the folder --download saves into; "
            "give --download NAME too"
        )
    if args.download:
        _io.check_writable_folder(args.data_root or cache_folder(args.download), "download folder")
        data = load_dataset(args.download, root=args.data_root, download=True)
        print(f"{args.download}: {data.n_train} training and {data.n_test} test samples are here")
    table = list_datasets()
    name_w = max(len(n) for n in table["name"])
    size_w = max(len(str(s)) for s in table["size"])
    print(f"{'name':<{name_w}}  here  {'train / test':<{size_w}}  source")
    for row in table.itertuples():
        mark = "yes " if row.available else "no  "
        line = f"{row.name:<{name_w}}  {mark}  {row.size!s:<{size_w}}  {row.source}"
        if not row.available:
            line += f"\n{'':<{name_w}}        how to get it: {row.how_to_get}"
        print(line)
    return 0
