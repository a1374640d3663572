"""LP, the linear perceptron: a layer's linear replacement, fitted on the training set, and its accuracy.

See docs/quantities.md#lp.

The LP is ridge least squares from a layer's outputs x^l to the network's own output local fields h^L on the training
set; its accuracy is that of the linear replacement on both splits.

The fit streams: one pass over chunks of the training set accumulates, for every chosen layer at once, the
float64 moments sum(x), sum(h), X^T X and X^T H (shifted by the first chunk's means, so that centring does not
cancel digits); the normal equations are solved per layer; a second pass scores the probes on train and test.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from contextlib import closing
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from netdyn.analysis._common import (
    SPLITS,
    CutLayers,
    LayerReader,
    MLPLayers,
    chunk_rows,
    cut_layers,
    is_own_network,
    iter_chunks,
    net_dtype,
    numerically_guarded,
    resolve_layers,
    samples_for,
    split_tensors,
    walk,
    with_cuts,
)
from netdyn.analysis._pooling import MEMORY_BUDGET, PooledLayers, check_budget, features_label, pool_to_fit
from netdyn.data.samples import DataLike, SampleSet
from netdyn.errors import ConfigError
from netdyn.models import MLP

Probe = tuple[torch.Tensor, torch.Tensor]

#: Eigenvalues of an unregularised (singular) system below this fraction of the largest are dropped.
PINV_RCOND = 1e-10
#: Up to this many features a layer's LP is the primal ridge; beyond, the same ridge in dual form (see
#: docs/any-network.md).
PRIMAL_MAX_FEATURES = 8192


@dataclass
class _Moments:
    """Running float64 sums of one layer's training outputs x against the logits h, both shifted."""

    shift_x: torch.Tensor
    shift_h: torch.Tensor
    n: int
    sum_x: torch.Tensor
    sum_h: torch.Tensor
    xx: torch.Tensor
    xh: torch.Tensor

    @classmethod
    def start(cls, x: torch.Tensor, h: torch.Tensor) -> _Moments:
        n_x, n_h = x.shape[1], h.shape[1]

        def zeros(*shape: int) -> torch.Tensor:
            return torch.zeros(*shape, dtype=torch.float64, device=x.device)

        return cls(x.mean(0), h.mean(0), 0, zeros(n_x), zeros(n_h), zeros(n_x, n_x), zeros(n_x, n_h))

    def add(self, x: torch.Tensor, h: torch.Tensor) -> None:
        x = x - self.shift_x
        h = h - self.shift_h
        self.n += x.shape[0]
        self.sum_x += x.sum(0)
        self.sum_h += h.sum(0)
        self.xx.addmm_(x.T, x)
        self.xh.addmm_(x.T, h)


def _check_ridge(ridge: float) -> float:
    ridge = float(ridge)
    if not math.isfinite(ridge) or ridge < 0:
        raise ConfigError(f"ridge must be a finite number >= 0, got {ridge!r}")
    return ridge


def _accumulate(reader: LayerReader, x: torch.Tensor, layers: Sequence[int]) -> dict[int, _Moments]:
    """One pass over the training inputs: the moments of every chosen layer against the logits."""
    L = reader.n_layers
    chosen = set(layers)
    widths = reader.widths
    # per sample: the kept layers of the chunk, the walk's own one or two layers, one float64 copy, the logits
    per_row = reader.dtype.itemsize * (sum(widths[l] for l in chosen) + 2 * max(widths)) + 8 * (
        max(widths) + widths[L]
    )
    moments: dict[int, _Moments] = {}
    for rows in iter_chunks(x.shape[0], chunk_rows(x.shape[0], per_row)):
        kept: dict[int, torch.Tensor] = {}
        for l, x_l in reader.walk(x[rows]):
            if l in chosen:
                kept[l] = x_l
        h = x_l.double()  # the walk ends at layer L: its output is the logits
        for l, x_l in kept.items():
            xd = x_l.double()
            if l not in moments:
                moments[l] = _Moments.start(xd, h)
            moments[l].add(xd, h)
        del kept
    return moments


def _solve(m: _Moments, ridge: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The ridge solution (A, a) in float64 from a layer's moments: h ~ x @ A + a."""
    n = m.n
    mean_x, mean_h = m.sum_x / n, m.sum_h / n
    gram = m.xx - n * torch.outer(mean_x, mean_x)
    gram = (gram + gram.T) / 2
    cross = m.xh - n * torch.outer(mean_x, mean_h)
    lam = ridge * torch.trace(gram).item() / gram.shape[0]
    system = gram + lam * torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
    a_mat = None
    if lam > 0:
        chol, info = torch.linalg.cholesky_ex(system)
        if info.item() == 0:
            a_mat = torch.cholesky_solve(cross, chol)
    if a_mat is None:  # no ridge, or an all-zero layer: minimum-norm least squares on the eigenbasis
        a_mat = _pinv_solve(system, cross)
    intercept = (m.shift_h + mean_h) - (m.shift_x + mean_x) @ a_mat
    return a_mat, intercept


def _pinv_solve(system: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Minimum-norm solution of a symmetric positive semi-definite system.

    It is what ``lstsq``'s gelsd gives, and it runs on CUDA too, where ``lstsq`` assumes full rank.
    """
    evals, evecs = torch.linalg.eigh(system)
    top = evals.max().clamp_min(0)
    keep = evals > top * PINV_RCOND
    inv = torch.where(keep, 1 / torch.where(keep, evals, 1), 0)
    return evecs @ (inv[:, None] * (evecs.T @ rhs))


def _fit(reader: LayerReader, data: SampleSet, layers: Sequence[int], ridge: float) -> dict[int, Probe]:
    """The LP of each layer: the primal ridge up to ``PRIMAL_MAX_FEATURES`` features, the dual one beyond."""
    x, _ = split_tensors(data, "train")
    if x.shape[0] == 0:
        raise ConfigError("the LP is fitted on the training set, which is empty")
    primal = [l for l in layers if not _dual(reader, l)]
    probes = {}
    if primal:
        moments = _accumulate(reader, x, primal)
        probes = {l: _solve(moments[l], ridge) for l in primal}
    for l in layers:
        if l not in probes:
            probes[l] = _solve_dual(*_gather(reader, x, l), ridge)
    return probes


def _dual(reader: LayerReader, l: int) -> bool:
    """Whether layer l's LP is solved in dual form.

    Yes for a cut of any model wider than ``PRIMAL_MAX_FEATURES``; a netdyn MLP keeps the primal form at every width.
    """
    return reader.names is not None and reader.widths[l] > PRIMAL_MAX_FEATURES


def _dual_bytes(n: int, d: int, itemsize: int) -> int:
    """Working memory of the dual LP of n samples of d features.

    The activations, and about three n x n float64 matrices (the kernel, the system, its Cholesky factor).
    """
    return itemsize * n * d + 3 * 8 * n * n


def _primal_bytes(d: int) -> int:
    """Working memory of the primal LP of d features: about two d x d float64 matrices (the moments, the system)."""
    return 2 * 8 * d * d


def _pools(reader: CutLayers, n: int, layers: Sequence[int], memory_budget: int) -> dict[int, int]:
    """The k of each layer whose LP is fitted on k x k pooled activations.

    Those are the layers beyond ``PRIMAL_MAX_FEATURES`` whose dual form does not fit ``memory_budget``, pooled to
    the smallest k whose primal form does.
    """
    pools = {}
    for l in layers:
        d = reader.widths[l]
        if d > PRIMAL_MAX_FEATURES and _dual_bytes(n, d, reader.dtype.itemsize) > memory_budget:
            pools[l] = pool_to_fit(
                reader.shapes[l], lambda w: w <= PRIMAL_MAX_FEATURES and _primal_bytes(w) <= memory_budget,
                f"lp at {reader.names[l] if reader.names else l}",
            )
    return pools


def _gather(reader: LayerReader, x: torch.Tensor, l: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Layer l's training outputs [n, D] (the network's dtype) and the logits [n, C] (float64), whole."""
    outputs, logits = [], []
    per_row = reader.dtype.itemsize * 2 * max(reader.widths) + 8 * reader.widths[-1]
    for rows in iter_chunks(x.shape[0], chunk_rows(x.shape[0], per_row)):
        for j, x_j in reader.walk(x[rows]):
            if j == l:
                outputs.append(x_j)
        logits.append(x_j.double())  # the walk ends at layer L: its output is the logits
    return torch.cat(outputs), torch.cat(logits)


def _solve_dual(x: torch.Tensor, h: torch.Tensor, ridge: float) -> Probe:
    """:func:`_solve`'s ridge in its dual form: exact, and cheaper where a layer has more features than samples.

    With X, H centred, A = X^T (X X^T + lambda I)^-1 H with the same lambda = ridge * trace(X^T X) / D
    (trace(X X^T) is the same number). The n x n kernel is built in float64 from chunks of rows.
    """
    n, d = x.shape
    mean_x = x.double().mean(0)
    mean_h = h.mean(0)
    hc = h - mean_h
    step = chunk_rows(n, 8 * d)
    kernel = torch.empty(n, n, dtype=torch.float64, device=x.device)
    for i in iter_chunks(n, step):
        xi = x[i].double() - mean_x
        for j in iter_chunks(n, step):
            kernel[i, j] = xi @ (x[j].double() - mean_x).T
    kernel = (kernel + kernel.T) / 2
    lam = ridge * torch.trace(kernel).item() / d
    system = kernel + lam * torch.eye(n, dtype=torch.float64, device=x.device)
    alpha = None
    if lam > 0:
        chol, info = torch.linalg.cholesky_ex(system)
        if info.item() == 0:
            alpha = torch.cholesky_solve(hc, chol)
    if alpha is None:  # no ridge, or an all-zero layer: the minimum-norm solution, as in the primal form
        alpha = _pinv_solve(system, hc)
    a_mat = torch.zeros(d, h.shape[1], dtype=torch.float64, device=x.device)
    for i in iter_chunks(n, step):
        a_mat += (x[i].double() - mean_x).T @ alpha[i]
    return a_mat, mean_h - mean_x @ a_mat


@numerically_guarded("fit_probe")
@torch.no_grad()
def fit_probe(net: MLP, data: DataLike, l: int, ridge: float = 1e-6) -> Probe:
    """The LP of layer l (see docs/quantities.md#lp): ``(A, a)`` with h^L ~ x^l @ A + a, A of shape [N_l, C].

    Fitted on ``data``'s training set by ridge least squares to the network's own logits, X and H centred,
    lambda = ridge * trace(Xc^T Xc) / N_l (the intercept is not penalised); ``ridge=0`` gives the minimum-norm
    least-squares fit (directions with eigenvalue below ``PINV_RCOND`` of the largest dropped). Solved in
    float64, returned in the network's dtype.
    """
    data = samples_for(net, data)
    (layer,) = resolve_layers(net, [l])
    a_mat, intercept = _fit(MLPLayers(net), data, [layer], _check_ridge(ridge))[layer]
    dtype = net_dtype(net)
    return a_mat.to(dtype), intercept.to(dtype)


def _score(reader: LayerReader, x: torch.Tensor, y: torch.Tensor, probes: dict[int, Probe]) -> dict[int, float]:
    """Accuracy of each layer's probe on (x, y), streaming chunks of samples."""
    if x.shape[0] == 0:
        return {l: float("nan") for l in probes}
    device = reader.device
    last = max(probes)
    widths = reader.widths
    per_row = reader.dtype.itemsize * 2 * max(widths) + 8 * (max(widths) + widths[-1])
    correct = {l: torch.zeros((), dtype=torch.int64, device=device) for l in probes}
    for rows in iter_chunks(x.shape[0], chunk_rows(x.shape[0], per_row)):
        labels = y[rows].to(device)
        with closing(reader.walk(x[rows])) as layers:
            for l, x_l in layers:
                if l in probes:
                    a_mat, intercept = probes[l]
                    logits = torch.addmm(intercept, x_l.double(), a_mat)
                    correct[l] += (logits.argmax(1) == labels).sum()
                if l >= last:
                    break
    return {l: correct[l].item() / x.shape[0] for l in probes}


def _skip_crossings(net: MLP) -> frozenset[int]:
    """The cuts l of a netdyn MLP that a skip crosses: layer l+1 (a hidden layer) receives x^{l-1}.

    There the L-map reads x^{l-1} as well as x^l (``lmap_matrix(net, l, with_skip=True)``'s S_l is not zero).
    """
    return frozenset(l for l in range(1, net.n_layers - 1) if net.block(l + 1).skip is not None)


@dataclass
class _SkipLayers(MLPLayers):
    """A netdyn MLP's layers as :class:`MLPLayers` reads them, with x^{l-1} joined after x^l at the cuts ``crossed``.

    The LP of those cuts is fitted on [x^l, x^{l-1}], the inputs of the L-map there.
    """

    crossed: frozenset[int] = frozenset()

    @property
    def widths(self) -> list[int]:
        """Features per layer: a crossed cut's width plus that of the layer before it."""
        widths = self.net.widths
        return [w + widths[l - 1] if l in self.crossed else w for l, w in enumerate(widths)]

    def walk(self, x: torch.Tensor) -> Generator[tuple[int, torch.Tensor], None, None]:
        """Every layer 0..L, crossed cuts as [x^l, x^{l-1}], the logits last."""
        previous = None
        with closing(walk(self.net, x)) as layers:
            for l, x_l, _ in layers:
                yield l, torch.cat([x_l, previous], 1) if l in self.crossed and previous is not None else x_l
                previous = x_l


def _own_reader(net: MLP, with_skip: bool) -> tuple[LayerReader, frozenset[int]]:
    """How the LP reads a netdyn MLP, and the cuts where it reads x^{l-1} too (none without ``with_skip``)."""
    crossed = _skip_crossings(net) if with_skip else frozenset()
    return (_SkipLayers(net, crossed) if crossed else MLPLayers(net)), crossed


@numerically_guarded("lp")
@torch.no_grad()
def lp_accuracy(
    net: MLP | nn.Module,
    data: DataLike,
    layers: Sequence[int] | None = None,
    ridge: float = 1e-6,
    *,
    input_shape: Sequence[int] | None = None,
    cuts: Sequence[str] | None = None,
    memory_budget: int = MEMORY_BUDGET,
    with_skip: bool = False,
) -> pd.DataFrame:
    """Accuracy of the LP at each layer l = 0..L-1 on train and test: ``layer, split, accuracy``.

    See docs/quantities.md#lp.

    The LP of layer l is the ridge map of :func:`fit_probe` from x^l to the network's logits; its accuracy is
    the argmax of its output against the labels. Any other ``nn.Module`` than a netdyn :class:`MLP` is read
    through the network adapter (see docs/any-network.md) on its cuts' flattened activations; its table adds ``cut`` and
    ``features``: ``full`` (the primal ridge, up to ``PRIMAL_MAX_FEATURES`` features), ``dual`` (the same
    ridge in dual form, on the kernel of the training samples, beyond, while it fits ``memory_budget`` bytes)
    or ``pooled:k x k`` (a conv cut's activations average-pooled over k x k windows, the smallest k whose primal
    ridge fits, where the dual does not). A netdyn MLP's LP is always the primal ridge.

    ``with_skip=True`` (netdyn MLPs only) gives the LP the inputs of the L-map: at a cut that a skip crosses (layer
    l+1 receives x^{l-1}, see docs/quantities.md#l-map) the ridge is fitted on [x^l, x^{l-1}], elsewhere on x^l as
    before; the table then adds ``skip`` (whether x^{l-1} was read). A net without skips gives the same table.
    """
    ridge = _check_ridge(ridge)
    memory_budget = check_budget(memory_budget)
    pools: dict[int, int] = {}
    crossed: frozenset[int] = frozenset()
    if is_own_network(net, input_shape, cuts):
        data = samples_for(net, data)
        chosen = resolve_layers(net, layers)
        reader, crossed = _own_reader(net, bool(with_skip))
    elif with_skip:
        raise ConfigError("lp_accuracy: with_skip is for netdyn's residual MLPs (their skips are known); "
                          f"{type(net).__name__} is read through the network adapter, whose LP reads the cut only")
    else:
        cut_reader, data, chosen = cut_layers(net, data, layers, input_shape, cuts)
        pools = _pools(cut_reader, data.x_train.shape[0], chosen, memory_budget)
        reader = PooledLayers(cut_reader, pools) if pools else cut_reader
    probes = _fit(reader, data, chosen, ridge)
    rows = []
    for split in SPLITS:
        x, y = split_tensors(data, split)
        for l, acc in _score(reader, x, y, probes).items():
            rows.append({"layer": l, "split": split, "accuracy": acc})
    table = pd.DataFrame(rows, columns=["layer", "split", "accuracy"])
    table = table.sort_values(["split", "layer"], ignore_index=True)
    if with_skip:
        table["skip"] = table["layer"].isin(crossed)
    if reader.names is None:
        return table
    table["features"] = [features_label(pools[int(l)]) if int(l) in pools else "dual" if _dual(reader, int(l))
                         else "full" for l in table["layer"]]
    return with_cuts(table, reader)
