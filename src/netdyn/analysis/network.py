"""The network's own accuracy, and where a linear replacement of its tail reaches it (SPEC 5.1, 5.2)."""

from __future__ import annotations

import pandas as pd

from netdyn.analysis._common import SPLITS, accuracy, samples_for, split_tensors, walk
from netdyn.analysis.config import EFFECTIVE_TOLERANCE
from netdyn.data.samples import DataLike
from netdyn.models import MLP


def network_accuracy(net: MLP, data: DataLike) -> pd.DataFrame:
    """The network's own accuracy on each split (BN running statistics): columns ``split, accuracy``."""
    data = samples_for(net, data)
    rows = []
    for split in SPLITS:
        x, y = split_tensors(data, split)
        logits = None
        for l, x_l, _ in walk(net, x):
            if l == net.n_layers:
                logits = x_l
        rows.append({"split": split, "accuracy": accuracy(logits, y)})
    return pd.DataFrame(rows, columns=["split", "accuracy"])


def effective_layer(
    table: pd.DataFrame, network_accuracy: float, tolerance: float = EFFECTIVE_TOLERANCE
) -> int | None:
    """The earliest layer whose test accuracy is within ``tolerance`` of the network's; None if none is.

    The accuracies come from an ``lmap_accuracy`` / ``lp_accuracy`` table.
    """
    test = table[table["split"] == "test"].sort_values("layer")
    ok = test[test["accuracy"] >= network_accuracy - tolerance]
    return int(ok["layer"].iloc[0]) if len(ok) else None
