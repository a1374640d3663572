"""L-map, the linear substitution map (see docs/quantities.md#l-map).

The L-map is the network after layer l with every transfer function replaced by the identity. Batch norm after the cut
becomes the affine map of its running statistics; skips stay.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import pandas as pd
import torch
from torch import nn

from netdyn.analysis._common import (
    SPLITS,
    accuracy,
    check_network,
    chunk_rows,
    cut_layers,
    is_own_network,
    iter_chunks,
    resolve_layers,
    samples_for,
    split_tensors,
    walk,
    with_cuts,
)
from netdyn.data.samples import DataLike
from netdyn.errors import ConfigError, ModelError
from netdyn.models import MLP, fold_block
from netdyn.models.adapter import LMAP_VARIANTS, Network, fit_affine


def lmap_matrix(
    net: MLP | nn.Module,
    l: int,
    with_skip: bool = False,
    *,
    data: DataLike | None = None,
    input_shape: Sequence[int] | None = None,
    cuts: Sequence[str] | None = None,
    lmap_variant: str = "keep",
) -> tuple[torch.Tensor, ...]:
    """The L-map of layer l: h^L = M_l x^l + c_l (+ S_l x^{l-1} where a skip crosses the cut).

    Returns ``(M_l, c_l)``, or ``(M_l, c_l, S_l)`` with ``with_skip=True`` (S_l zero where no skip crosses).
    Computed backwards from the output in float64, returned in the network's dtype.

    Any other ``nn.Module`` than a netdyn :class:`MLP` is read through the network adapter (see docs/any-network.md) and
    needs ``data``: M_l is the tail's Jacobian (vector-Jacobian products, float64) at the training mean of the cut's
    activations (flattened), c_l = tail(mean) - M_l mean, and the tail must be affine on the training samples
    (:class:`~netdyn.errors.ModelError` naming its kind otherwise). With ``with_skip=True`` the matrices of the
    other tensors the tail reads (skips crossing the cut) follow, one each. ``lmap_variant`` is as for
    :func:`lmap_accuracy`: ``"constant"`` makes a LayerNorm / attention tail affine, so that it has a matrix.
    """
    _check_variant(lmap_variant)
    if not is_own_network(net, input_shape, cuts):
        return _any_lmap_matrix(net, l, with_skip, data, input_shape, cuts, lmap_variant)
    if data is not None:  # not needed for netdyn's own MLP, but data that does not fit it is still an error
        samples_for(net, data)
    L = check_network(net).n_layers
    if isinstance(l, bool) or not isinstance(l, numbers.Integral) or not 0 <= l < L:
        raise ConfigError(f"lmap_matrix takes a layer in 0..{L - 1}, got {l!r}")
    ref = net.block(1).linear.weight
    widths = net.widths
    with torch.no_grad():
        # coefficient of h^L on each v_j, j = l-1..L-1, where v_j is the linearised x^j
        coef: dict[int, torch.Tensor] = {}
        w_out, b_out = fold_block(net.block(L), torch.float64)
        coef[L - 1] = w_out
        const = b_out.clone()
        for j in range(L - 1, l, -1):
            g = coef.pop(j)
            w_j, b_j = fold_block(net.block(j), torch.float64)
            const = const + g @ b_j
            coef[j - 1] = coef.get(j - 1, 0) + g @ w_j
            if net.block(j).skip is not None:  # pre or post: identical once f is the identity
                coef[j - 2] = coef.get(j - 2, 0) + g
        m = coef.get(l)
        if m is None:  # pragma: no cover - every layer feeds the next
            m = torch.zeros(widths[-1], widths[l], dtype=torch.float64, device=ref.device)
        s = coef.get(l - 1)
        if s is None:
            s = torch.zeros(
                widths[-1], widths[l - 1] if l >= 1 else 0, dtype=torch.float64, device=ref.device
            )
    # copies, never views of the network's parameters (a float64 net's output weight would be one)
    m, const, s = (t.to(ref.dtype).clone() for t in (m, const, s))
    return (m, const, s) if with_skip else (m, const)


def _any_lmap_matrix(
    model: nn.Module,
    l: int,
    with_skip: bool,
    data: DataLike | None,
    input_shape: Sequence[int] | None,
    cuts: Sequence[str] | None,
    lmap_variant: str,
) -> tuple[torch.Tensor, ...]:
    """:func:`lmap_matrix` of any model, from the float64 affine fit of its tail on the training samples."""
    if data is None:
        raise ConfigError("lmap_matrix of a model that is not a netdyn MLP needs data= (the tail is linearised there)")
    reader, samples, chosen = cut_layers(model, data, [l], input_shape, cuts)
    x_train, _ = split_tensors(samples, "train")
    network = _variant(reader.network, lmap_variant, x_train)
    fit = fit_affine(network, l, x_train)
    kind = network.kind_of_fit(l, fit)
    if kind != "affine":
        raise ModelError(
            f"lmap_matrix: the tail of layer {l} ({network.cut(l).name}) is {kind}, not affine (the affine map misses "
            f"it by {fit.error:.2g} relative); a matrix exists for affine tails only"
        )
    matrices = [m.to(reader.dtype).clone() for m in fit.matrices]
    constant = fit.constant.to(reader.dtype).clone()
    return (matrices[0], constant, *matrices[1:]) if with_skip else (matrices[0], constant)


def lmap_accuracy(
    net: MLP | nn.Module,
    data: DataLike,
    layers: Sequence[int] | None = None,
    *,
    input_shape: Sequence[int] | None = None,
    cuts: Sequence[str] | None = None,
    lmap_variant: str = "keep",
) -> pd.DataFrame:
    """Accuracy of the L-map at each layer l = 0..L-1 on train and test: columns ``layer, split, accuracy``.

    Any other ``nn.Module`` than a netdyn :class:`MLP` is read through the network adapter (docs/any-network.md: layers
    are its cuts, ``cuts`` names them, ``input_shape`` is how a sample is fed); its table adds ``cut`` (the cut's
    name), ``tail`` (``affine``, ``piecewise_linear`` or ``nonlinear``, checked on the training set) and
    ``variant``. ``lmap_variant="keep"`` (default) leaves LayerNorm and softmax attention in the tail, which is
    then nonlinear; ``"constant"`` holds each LayerNorm's scale and each explicit softmax's attention pattern at
    their training-set means, as batch norm's running statistics are (:meth:`~netdyn.models.Network.constant_variant`),
    so that the tail is affine; a tail through fused attention (``nn.MultiheadAttention``,
    ``scaled_dot_product_attention``) is then a :class:`~netdyn.errors.ModelError` naming it. A netdyn MLP has
    neither, so both variants give its one table.
    """
    _check_variant(lmap_variant)
    if not is_own_network(net, input_shape, cuts):
        return _any_lmap_accuracy(net, data, layers, input_shape, cuts, lmap_variant)
    data = samples_for(net, data)
    chosen = resolve_layers(net, layers)
    maps = {l: lmap_matrix(net, l, with_skip=True) for l in chosen}
    rows = []
    for split in SPLITS:
        x, y = split_tensors(data, split)
        prev = None
        for l, x_l, _ in walk(net, x):
            if l in maps:
                m, c, s = maps[l]
                logits = x_l @ m.T + c
                if l >= 1 and prev is not None and s.abs().max() > 0:
                    logits = logits + prev @ s.T
                rows.append({"layer": l, "split": split, "accuracy": accuracy(logits, y)})
            prev = x_l
            if l >= max(chosen):
                break
    return pd.DataFrame(rows, columns=["layer", "split", "accuracy"]).sort_values(
        ["split", "layer"], ignore_index=True
    )


def _any_lmap_accuracy(
    model: nn.Module,
    data: DataLike,
    layers: Sequence[int] | None,
    input_shape: Sequence[int] | None,
    cuts: Sequence[str] | None,
    lmap_variant: str,
) -> pd.DataFrame:
    """The L-map of any model: per chunk one pass captures every chosen cut's tail inputs, then each tail runs."""
    reader, samples, chosen = cut_layers(model, data, layers, input_shape, cuts)
    x_train, _ = split_tensors(samples, "train")
    network = _variant(reader.network, lmap_variant, x_train)
    wanted = {l: network.tail_inputs(l) for l in chosen}
    per_row = reader.dtype.itemsize * (sum(reader.widths[l] for l in chosen) * 2 + max(reader.widths))
    rows = []
    for split in SPLITS:
        x, y = split_tensors(samples, split)
        correct = dict.fromkeys(chosen, 0)
        for part in iter_chunks(x.shape[0], chunk_rows(x.shape[0], per_row)):
            values = network.capture(x[part], {n for names in wanted.values() for n in names}, logits=False)
            labels = y[part].to(reader.device)
            for l in chosen:
                logits = network.run_tail(l, [values[n] for n in wanted[l]])
                correct[l] += int((logits.argmax(1) == labels).sum())
        for l in chosen:
            rows.append({"layer": l, "split": split, "accuracy": correct[l] / x.shape[0] if x.shape[0] else math.nan})
    table = pd.DataFrame(rows, columns=["layer", "split", "accuracy"]).sort_values(["split", "layer"],
                                                                                  ignore_index=True)
    kinds = {l: network.tail_kind(l, x_train) for l in chosen}
    table["tail"] = [kinds[int(l)] for l in table["layer"]]
    table["variant"] = network.variant
    return with_cuts(table, reader)


def _check_variant(lmap_variant: str) -> None:
    if lmap_variant not in LMAP_VARIANTS:
        raise ConfigError(f"lmap_variant must be one of {', '.join(map(repr, LMAP_VARIANTS))}, got {lmap_variant!r}")


def _variant(network: Network, lmap_variant: str, x_train: torch.Tensor) -> Network:
    """The network whose tails the L-map runs: as read, or with LayerNorm and attention held constant."""
    return network.constant_variant(x_train) if lmap_variant == "constant" else network
