"""The network's own accuracy, and where a linear replacement of its tail reaches it.

See docs/quantities.md#l-map and docs/quantities.md#lp.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from torch import nn

from netdyn.analysis._common import (
    SPLITS,
    accuracy,
    chunk_rows,
    is_own_network,
    iter_chunks,
    model_logits,
    model_samples,
    samples_for,
    split_tensors,
    walk,
)
from netdyn.data.samples import DataLike
from netdyn.errors import ConfigError
from netdyn.models import MLP

#: "Pruning is effective at l" when the linear replacement's test accuracy is within this of the network's
#: (docs/quantities.md#l-map: accuracies are fractions, so half a point is 0.005).
EFFECTIVE_TOLERANCE = 0.005

EffectiveRule = Literal["earliest", "from"]
#: How a sequence of layers (or checkpoints) that are each effective or not gives one effective layer:
#: "earliest", the first effective one; "from", the first from which on every later one is effective.
EFFECTIVE_RULES: tuple[EffectiveRule, ...] = ("earliest", "from")


def network_accuracy(net: MLP | nn.Module, data: DataLike, *, input_shape: Sequence[int] | None = None) -> pd.DataFrame:
    """The network's own accuracy on each split (BN running statistics): columns ``split, accuracy``.

    ``net`` is a netdyn :class:`MLP` or any ``nn.Module`` returning logits, fed ``x.reshape(-1, *input_shape)``
    (default: the data's own ``input_shape``) in evaluation mode.
    """
    if not is_own_network(net, input_shape):
        return _any_network_accuracy(net, data, input_shape)
    data = samples_for(net, data)
    rows = []
    for split in SPLITS:
        x, y = split_tensors(data, split)
        logits = None
        for l, x_l, _ in walk(net, x):
            if l == net.n_layers:
                logits = x_l
        assert logits is not None, "the walk ends at layer L"
        rows.append({"split": split, "accuracy": accuracy(logits, y)})
    return pd.DataFrame(rows, columns=["split", "accuracy"])


def _any_network_accuracy(model: nn.Module, data: DataLike, input_shape: Sequence[int] | None) -> pd.DataFrame:
    samples, shape = model_samples(model, data, input_shape)
    rows = []
    for split in SPLITS:
        x, y = split_tensors(samples, split)
        correct = 0
        for rows_ in iter_chunks(x.shape[0], chunk_rows(x.shape[0], 8 * x.shape[1] * 4)):
            logits = model_logits(model, x[rows_], shape)
            correct += int((logits.argmax(1) == y[rows_].to(logits.device)).sum())
        rows.append({"split": split, "accuracy": correct / x.shape[0] if x.shape[0] else float("nan")})
    return pd.DataFrame(rows, columns=["split", "accuracy"])


def is_effective(
    accuracy: Sequence[float] | np.ndarray | pd.Series,
    network_accuracy: float | Sequence[float] | np.ndarray,
    tolerance: float = EFFECTIVE_TOLERANCE,
) -> np.ndarray:
    """Element-wise effective-pruning test: ``accuracy >= network_accuracy - tolerance``, as a boolean array.

    See docs/quantities.md#l-map.

    ``network_accuracy`` is one number or an array aligned with ``accuracy``.
    """
    return np.asarray(accuracy, dtype=float) >= np.asarray(network_accuracy, dtype=float) - tolerance


def effective_index(effective: Sequence[bool] | np.ndarray, rule: EffectiveRule) -> int | None:
    """Where ``rule`` puts the start of effective pruning in an ordered sequence of effective / not effective points.

    The points are layers or checkpoints; the result is a position in the sequence. "earliest": the first effective
    point; "from", the first point from which on every later point is effective (a lone effective point followed by
    ineffective ones does not count, and the last point must be effective). None when there is no such point.
    """
    if rule not in EFFECTIVE_RULES:
        raise ConfigError(f"rule must be one of {', '.join(map(repr, EFFECTIVE_RULES))}, got {rule!r}")
    ok = np.asarray(effective, dtype=bool)
    if rule == "earliest":
        hits = np.flatnonzero(ok)
        return int(hits[0]) if len(hits) else None
    if not len(ok) or not ok[-1]:
        return None
    misses = np.flatnonzero(~ok)
    return int(misses[-1]) + 1 if len(misses) else 0


def effective_layer(
    table: pd.DataFrame,
    network_accuracy: float,
    rule: EffectiveRule = "earliest",
    tolerance: float = EFFECTIVE_TOLERANCE,
    split: str = "test",
) -> int | None:
    """Where pruning becomes effective in one network, from an ``lmap_accuracy`` / ``lp_accuracy`` table.

    The table has columns ``layer, split, accuracy``, a layer being effective when its accuracy on ``split`` is within
    ``tolerance`` of the network's (:func:`is_effective`). ``rule="earliest"``: the earliest effective layer;
    ``rule="from"``: the first layer from which on every later layer of the table is effective
    (:func:`effective_index`). None when no layer qualifies.
    """
    rows = table[table["split"] == split].sort_values("layer")
    at = effective_index(is_effective(rows["accuracy"], network_accuracy, tolerance), rule)
    return None if at is None else int(rows["layer"].iloc[at])
