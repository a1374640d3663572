"""Neuron modes: does the path into a neuron keep the order of the samples (OPM) or alter it (NPM)?

See docs/quantities.md#neuron-modes.

For hidden layer l, the *linear reference* r^l_i is neuron i's value when the transfer functions of layers l-1
and l are replaced by the identity (batch norm kept as the affine map of its running statistics, skips kept;
for layer 1 it is the local field h^1_i): an affine function of layer l-1's local fields (and of the skips).
So rho_i = |gamma(x^l_i, r^l_i)| (Goodman-Kruskal gamma over the training samples) is 1 when the neuron's
output is a monotone function of that linear combination and falls as the path reorders the samples. Gamma
counts only the pairs tied in neither sequence, so a monotone transfer function with plateaus (ReLU, saturated
tanh) scores 1: ties are not reordering.

This estimator is netdyn's reading of the paper's definition, not the paper's own code; the paper's aggregate
indicator is the RPD gradient (`netdyn.analysis.ranks.rpd_summary`), reported beside it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import closing
from typing import Any, NamedTuple

import pandas as pd
import torch
from torch import nn

from netdyn.analysis._common import (
    cut_layers,
    is_own_network,
    make_generator,
    net_device,
    resolve_layers,
    samples_for,
    seeded_subset,
    take,
    walk,
    with_cuts,
)
from netdyn.analysis.lmap import lmap_matrix
from netdyn.analysis.ranks import (
    CHUNK_ELEMENTS,
    contribution_rank_positions,
    order_index,
    pair_positions,
    sorted_runs,
    tie_groups,
    top_share,
    unsort,
)
from netdyn.analysis.units import (
    NO_PRIVILEGED_BASIS,
    activations_references_contributions,
    as_units,
    no_privileged_basis,
    unit_axis,
)
from netdyn.data.samples import DataLike, SampleSet
from netdyn.errors import ConfigError, ModelError
from netdyn.models import MLP
from netdyn.models.adapter import Network

INFORMATION_BINS = 16
"""Quantile bins of a neuron's output for the class information."""
INACTIVE_BELOW = 0.01
"""A neuron whose class information is below this is `inactive` (constant or class-blind)."""
NEURON_COLUMNS = ["layer", "neuron", "order_preservation", "order_index", "class_information", "mode"]
UNDEFINED = "undefined"
"""The mode of a unit where the cut has no privileged basis (a transformer's residual stream; docs/any-network.md)."""
CENSUS_COLUMNS = ["layer", "opm", "npm", "inactive", "rho_mean", "rho_q10", "rho_q25", "rho_median", "rho_q75",
                  "order_index_mean", "class_information_mean"]


# ---------------------------------------------------------------------------------------------- gamma
class PairCounts(NamedTuple):
    """Pair counts of two sequences per column (int64 [N] each), as Kendall's tau-b and gamma need them."""

    n_pairs: torch.Tensor
    """n0 = P (P - 1) / 2."""
    ties_a: torch.Tensor
    """n1: pairs tied in the first sequence."""
    ties_b: torch.Tensor
    """n2: pairs tied in the second sequence."""
    ties_both: torch.Tensor
    """n3: pairs tied in both."""
    discordant: torch.Tensor
    """D: pairs ordered oppositely by the two sequences (tied in neither)."""

    @property
    def concordant(self) -> torch.Tensor:
        """C = n0 - n1 - n2 + n3 - D."""
        return self.n_pairs - self.ties_a - self.ties_b + self.ties_both - self.discordant

    def tau_b(self) -> torch.Tensor:
        """Kendall's tau-b = (C - D) / sqrt((n0 - n1)(n0 - n2)) (NaN where a sequence is constant)."""
        denom = ((self.n_pairs - self.ties_a).double() * (self.n_pairs - self.ties_b).double()).sqrt()
        return (self.concordant - self.discordant).double() / denom

    def gamma(self) -> torch.Tensor:
        """Goodman-Kruskal gamma = (C - D) / (C + D); 1 where no pair is untied in both (none reordered)."""
        untied = (self.concordant + self.discordant).double()
        value = (self.concordant - self.discordant).double() / untied.clamp(min=1)
        return torch.where(untied > 0, value, torch.ones_like(value))


def _strict_inversions(seq: torch.Tensor) -> torch.Tensor:
    """Pairs j < k with seq[j] > seq[k] in each row of ``seq`` [n, P] (int64 codes in 0..P-1), vectorised.

    Bottom-up merge sort over all rows at once, O(P log P) per row in log2(P) tensor passes. At each level the
    two sorted halves of every block are merged by a stable sort. A right-half entry with index j in its half
    (index width + j in the block) that lands at merged position m has m - j left entries not above it, hence
    width - (m - j) = index - m >= 0 left entries above it: the level's inversions. A left-half entry has
    index - m <= 0, so the positive parts of index - m sum to the inversions.
    """
    n, p = seq.shape
    size = 2
    while size < p:
        size *= 2
    if size > p:  # padding larger than every code, at the end: it adds no inversion
        seq = torch.cat([seq, seq.new_full((n, size - p), p)], dim=1)
    pairs = seq.view(n, size // 2, 2)
    first, second = pairs[..., 0], pairs[..., 1]
    total = (first > second).sum(-1)
    merged = torch.stack([torch.minimum(first, second), torch.maximum(first, second)], dim=-1).view(n, size)
    width = 2
    while width < size:
        values, index = torch.sort(merged.view(n, -1, 2 * width), dim=-1, stable=True)
        total += (index - torch.arange(2 * width, device=seq.device)).clamp_(min=0).sum((1, 2))
        merged = values.view(n, size)
        width *= 2
    return total


def _tied_pairs(first: torch.Tensor) -> torch.Tensor:
    """Tied pairs per row from `sorted_runs`'s ``first``: each entry pairs with its run's earlier ones."""
    pos = torch.arange(first.shape[-1], device=first.device)
    return (pos - first).sum(-1)


def _rank_codes(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Order-preserving integer codes of each row [n, P] (entries strictly below), tied pairs and sorting order."""
    order, first, _ = sorted_runs(rows, last=False)
    return unsort(order, first), _tied_pairs(first), order


def _joint_counts(
    code_a: torch.Tensor, code_b: torch.Tensor, ties_b: torch.Tensor, order_b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(pairs tied in both, discordant pairs) per row, from the rows' rank codes [n, P].

    Sorted by (b, a) lexicographically, the discordant pairs are exactly the strict inversions of a (Knight's
    algorithm): pairs tied in b come out ordered by a and add none. In a row of b without a tie (``ties_b``, its
    tied-pair counts) that order is b's own (``order_b``, the permutation sorting it) and no pair is tied in both:
    only the rows with ties are sorted again.
    """
    tied = torch.nonzero(ties_b > 0).flatten()
    ties_both, order = torch.zeros_like(ties_b), order_b
    if tied.numel():
        p = code_a.shape[-1]
        joint, first, _ = sorted_runs(code_b[tied] * p + code_a[tied], last=False)
        order = order_b.index_copy(0, tied, joint)
        ties_both[tied] = _tied_pairs(first)
    return ties_both, _inversions(code_a.gather(-1, order))


def _inversions(seq: torch.Tensor) -> torch.Tensor:
    """:func:`_strict_inversions` of each row [n, P], counted only in the rows that are not already sorted."""
    unsorted = torch.nonzero((seq[:, 1:] < seq[:, :-1]).any(-1)).flatten()
    total = torch.zeros(seq.shape[0], dtype=torch.int64, device=seq.device)
    if unsorted.numel():
        total[unsorted] = _strict_inversions(seq[unsorted])
    return total


def _chunk(p: int) -> int:
    """Neurons handled at once for P samples (bounds the [neurons, P] work tensors)."""
    return max(1, CHUNK_ELEMENTS // max(p, 1))


@torch.no_grad()
def kendall_counts(a: torch.Tensor, b: torch.Tensor) -> PairCounts:
    """Concordance counts between columns of ``a`` and ``b`` (both [P, N]), vectorised over columns, exact.

    O(P log P) per column: tie counts from the runs of the sorted values, discordant pairs by merge counting.
    Gamma and tau-b follow (`PairCounts`).
    """
    if a.shape != b.shape or a.ndim != 2:
        raise ConfigError(f"kendall_counts takes two [P, N] tensors of one shape, got {tuple(a.shape)} "
                          f"and {tuple(b.shape)}")
    p, width = a.shape
    columns: list[list[torch.Tensor]] = [[], [], [], []]
    step = _chunk(p)
    for lo in range(0, width, step):
        code_a, ties_a, _ = _rank_codes(a[:, lo : lo + step].T)
        code_b, ties_b, order_b = _rank_codes(b[:, lo : lo + step].T)
        joint = _joint_counts(code_a, code_b, ties_b, order_b)
        for column, value in zip(columns, (ties_a, ties_b, *joint), strict=True):
            column.append(value)
    empty = torch.zeros(0, dtype=torch.int64, device=a.device)
    n1, n2, n3, discordant = (torch.cat(c) if c else empty for c in columns)
    return PairCounts(torch.full_like(discordant, p * (p - 1) // 2), n1, n2, n3, discordant)


def goodman_kruskal_gamma(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Goodman-Kruskal gamma between columns of ``a`` and ``b`` [P, N]: float64 [N].

    1 where nothing is ordered in both.
    """
    return kendall_counts(a, b).gamma()


# ---------------------------------------------------------------------------------------------- information
def _entropy(fractions: torch.Tensor) -> float:
    f = fractions[fractions > 0]
    return float(-(f * f.log()).sum())


def _binned_information(
    cells: torch.Tensor, labels: torch.Tensor, n_bins: int, n_classes: int
) -> torch.Tensor:
    """Plug-in mutual information (nats) between each row's bins and the labels [P].

    ``cells`` [n, P] = (row * n_bins + bin) * n_classes.
    """
    n, p = cells.shape
    joint = torch.bincount((cells + labels).flatten(), minlength=n * n_bins * n_classes)
    joint = joint.view(n, n_bins, n_classes).double() / p
    expected = joint.sum(-1, keepdim=True) * joint.sum(-2, keepdim=True)
    terms = joint * (joint / expected.clamp(min=1e-300)).clamp(min=1e-300).log()
    return torch.where(joint > 0, terms, 0.0).sum((1, 2))


def _information_from_codes(
    below: torch.Tensor, labels: torch.Tensor, shuffled: torch.Tensor, n_classes: int, n_bins: int
) -> torch.Tensor:
    """Class information of rows [n, P] given each entry's count of entries strictly below it."""
    p = below.shape[-1]
    entropy = _entropy(torch.bincount(labels, minlength=n_classes).double() / p)
    if entropy == 0:
        return torch.zeros(below.shape[0], dtype=torch.float64, device=below.device)
    bins = below * n_bins // p  # quantile bin of a tie group's lowest rank: equal values share a bin
    rows = torch.arange(below.shape[0], device=below.device).unsqueeze(1)
    cells = (rows * n_bins + bins) * n_classes
    gain = _binned_information(cells, labels, n_bins, n_classes)
    bias = _binned_information(cells, shuffled, n_bins, n_classes)
    return (gain - bias) / entropy


@torch.no_grad()
def class_information(
    values: torch.Tensor,
    labels: torch.Tensor,
    n_bins: int = INFORMATION_BINS,
    seed: int | torch.Generator = 0,
) -> torch.Tensor:
    """Class information of each column of ``values`` [P, N]: float64 [N].

    Mutual information between the column binned into ``n_bins`` quantile bins (bin floor(n_bins * below / P),
    below = entries strictly smaller: equal values share a bin, so a constant column has one bin and
    information 0) and the labels, minus the same with the labels shuffled by
    ``torch.randperm(P, generator=seed)`` (the plug-in estimate's bias), divided by H(label).
    """
    if values.ndim != 2 or labels.shape != values.shape[:1] or values.shape[0] == 0:
        raise ConfigError(f"class_information takes values [P, N] and labels [P] with P > 0, got "
                          f"{tuple(values.shape)} and {tuple(labels.shape)}")
    labels = labels.to(values.device)
    shuffled = labels[torch.randperm(labels.shape[0], generator=make_generator(seed)).to(values.device)]
    n_classes = int(labels.max()) + 1
    step = _chunk(values.shape[0])
    parts = []
    for lo in range(0, values.shape[1], step):
        below, _ = tie_groups(values[:, lo : lo + step].T)
        parts.append(_information_from_codes(below, labels, shuffled, n_classes, n_bins))
    return torch.cat(parts)


# ---------------------------------------------------------------------------------------------- network walk
@torch.no_grad()
def linear_references(
    net: MLP, x: torch.Tensor, layers: Sequence[int]
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """Yield ``(l, x^l, r^l)`` for the hidden layers in ``layers``, walking the network once.

    r^l is layer l's value with the transfer functions of layers l-1 and l replaced by the identity: batch
    norm in running mode, skips kept (they carry the true, nonlinear x^{l-2} and x^{l-3}). It is computed with
    the blocks' own operations, so for a `linear` network r^l equals x^l bit for bit.
    """
    wanted = set(layers)
    if not wanted:
        return
    last = max(wanted)
    xs: dict[int, torch.Tensor] = {}
    hs: dict[int, torch.Tensor] = {}
    with closing(walk(net, x)) as steps:
        for l, x_l, h_l in steps:
            if l in wanted:
                yield l, x_l, _reference(net, l, xs, hs)
            if l >= last:
                break
            xs[l] = x_l
            if h_l is not None:  # layer 0, the input, has no local field
                hs[l] = h_l
            xs.pop(l - 3, None)
            hs.pop(l - 1, None)


def _reference(net: MLP, l: int, xs: dict[int, torch.Tensor], hs: dict[int, torch.Tensor]) -> torch.Tensor:
    if l == 1:
        previous = xs[0]
    else:  # layer l-1 linearised: its local field, plus its post-transfer skip where it has one
        previous = hs[l - 1]
        if net.block(l - 1).skip == "post":
            previous = previous + xs[l - 3]
    block = net.block(l)
    z = block.normalize(block.linear(previous), "running")
    return z + xs[l - 2] if block.skip is not None else z


def _layer_modes(
    x_l: torch.Tensor,
    r_l: torch.Tensor,
    weights: torch.Tensor,
    labels: torch.Tensor,
    shuffled: torch.Tensor,
    n_classes: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(rho, O, I) of every neuron of one layer, float64 [N]; one sort of x^l per chunk serves all three."""
    p, width = x_l.shape
    class_counts = torch.bincount(labels, minlength=n_classes)
    top = class_counts[labels]
    chance = float(((class_counts.double() / p) ** 2).sum())
    signs = torch.sign(weights.detach()).T
    out: list[list[torch.Tensor]] = [[], [], []]
    step = _chunk(p)
    for lo in range(0, width, step):
        hi = min(width, lo + step)
        order, first, last = sorted_runs(x_l[:, lo:hi].T)
        below, equal = unsort(order, first), unsort(order, last - first + 1)
        code_r, ties_r, order_r = _rank_codes(r_l[:, lo:hi].T)
        ties_both, discordant = _joint_counts(below, code_r, ties_r, order_r)
        n_pairs = torch.full_like(discordant, p * (p - 1) // 2)
        counts = PairCounts(n_pairs, _tied_pairs(first), ties_r, ties_both, discordant)
        start, size = pair_positions(below, equal, signs[lo:hi, labels])
        index = order_index(top_share(start, size, top), chance)
        information = _information_from_codes(below, labels, shuffled, n_classes, INFORMATION_BINS)
        for column, value in zip(out, (counts.gamma().abs(), index, information), strict=True):
            column.append(value.cpu())
    return tuple(torch.cat(column) for column in out)  # type: ignore[return-value]


@torch.no_grad()
def neuron_modes(
    net: MLP | nn.Module,
    data: DataLike,
    layers: Sequence[int] | None = None,
    threshold: float = 0.9,
    max_samples: int | None = 2000,
    seed: int | torch.Generator = 0,
    *,
    input_shape: Sequence[int] | None = None,
    cuts: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Mode of every neuron of the hidden layers (default 1..L-1), measured on the training set.

    See docs/quantities.md#neuron-modes.

    Columns ``layer, neuron, order_preservation, order_index, class_information, mode``: rho_i = |gamma|
    between x^l_i and its linear reference (`linear_references`); O_i the RPD order index of neuron i alone;
    I_i the class information (`class_information`); mode ``inactive`` if I_i < 0.01, else ``OPM`` if
    rho_i >= ``threshold``, else ``NPM``. ``max_samples`` (None: all) takes a seeded subset, the same one as
    `rpd` with the same ``max_samples`` and seed; the seed's generator then shuffles the labels once for the
    information's bias correction.

    Any other ``nn.Module`` than a netdyn :class:`MLP` is read through the network adapter (docs/any-network.md;
    ``cuts`` and ``input_shape`` as for :func:`~netdyn.analysis.lmap.lmap_accuracy`). A neuron is a unit of the cut
    (:mod:`netdyn.analysis.units`): a conv channel's rho is the median over its positions of each position's rho,
    its class information that of its spatial mean, its order index that of its contributions summed over positions
    (gradient x input of the linearised tail); the linear reference runs from the previous cut's local field with
    every transfer function up to the unit linearised. The table adds ``cut`` and ``reason``: at a transformer's
    residual stream every value is NaN and ``mode`` is ``undefined``, with the reason; empty where measured.
    """
    if not is_own_network(net, input_shape, cuts):
        return _any_neuron_modes(net, data, layers, threshold, max_samples, seed, input_shape, cuts)
    data = samples_for(net, data)
    _check_modes_options(threshold, max_samples)
    chosen = resolve_layers(net, layers, hidden_only=True)
    x, y, shuffled = _modes_samples(data, net.widths[-1], net_device(net), max_samples, seed)
    frames = []
    for l, x_l, r_l in linear_references(net, x, chosen):
        if not (torch.isfinite(x_l).all() and torch.isfinite(r_l).all()):
            raise ModelError(f"layer {l} has NaN or infinite values: cannot measure its neuron modes")
        rho, order_index, information = _layer_modes(x_l, r_l, lmap_matrix(net, l)[0], y, shuffled, net.widths[-1])
        frames.append(_modes_frame(l, rho, order_index, information, threshold))
    if not frames:
        return _empty(NEURON_COLUMNS, {"mode"})
    return pd.concat(frames, ignore_index=True).astype({"layer": "int64", "neuron": "int64"})


def _check_modes_options(threshold: float, max_samples: int | None) -> None:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise ConfigError(f"threshold must be a number in [0, 1], got {threshold!r}")
    if max_samples is not None and (isinstance(max_samples, bool) or not isinstance(max_samples, int)
                                    or max_samples < 2):
        raise ConfigError(f"max_samples must be an integer >= 2 or None, got {max_samples!r}")


def _modes_samples(
    data: SampleSet, n_classes: int, device: torch.device, max_samples: int | None, seed: int | torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The seeded training subset (x, y) and its labels shuffled once by the same generator."""
    x, y = data.x_train, data.y_train
    if x.shape[0] < 2:
        raise ConfigError("neuron modes need at least two training samples")
    if int(y.min()) < 0 or int(y.max()) >= n_classes:
        raise ConfigError(f"training labels must lie in 0..{n_classes - 1} (the network's classes)")
    generator = make_generator(seed)
    idx = seeded_subset(x.shape[0], max_samples, generator)
    x, y = take(x, idx), take(y, idx).to(device)
    return x, y, y[torch.randperm(y.shape[0], generator=generator).to(y.device)]


def _modes_frame(
    l: int, rho: torch.Tensor, index: torch.Tensor, information: torch.Tensor, threshold: float
) -> pd.DataFrame:
    mode = [
        "inactive" if info < INACTIVE_BELOW else "OPM" if r >= threshold else "NPM"
        for r, info in zip(rho.tolist(), information.tolist(), strict=True)
    ]
    return pd.DataFrame({
        "layer": l,
        "neuron": range(rho.shape[0]),
        "order_preservation": rho.numpy(),
        "order_index": index.numpy(),
        "class_information": information.numpy(),
        "mode": mode,
    })


def _any_neuron_modes(
    model: nn.Module,
    data: DataLike,
    layers: Sequence[int] | None,
    threshold: float,
    max_samples: int | None,
    seed: int | torch.Generator,
    input_shape: Sequence[int] | None,
    cuts: Sequence[str] | None,
) -> pd.DataFrame:
    """Neuron modes of any model's cuts, per unit (NaN where the cut has no privileged basis)."""
    reader, samples, _ = cut_layers(model, data, None, input_shape, cuts)
    _check_modes_options(threshold, max_samples)
    chosen = resolve_layers(reader, layers, hidden_only=True)
    network = reader.network
    n_classes = reader.widths[-1]
    x, y, shuffled = _modes_samples(samples, n_classes, reader.device, max_samples, seed)
    reasons = {l: NO_PRIVILEGED_BASIS if no_privileged_basis(network, l) else "" for l in chosen}
    frames = {l: _undefined_frame(network, l, x, threshold) for l in chosen if reasons[l]}
    measured = [l for l in chosen if not reasons[l]]
    for l, values, references, contributions in activations_references_contributions(network, measured, x):
        axis = unit_axis(network, l)
        x_l, r_l = as_units(values, axis), as_units(references, axis)
        if not (torch.isfinite(x_l).all() and torch.isfinite(r_l).all()):
            raise ModelError(f"layer {l} ({network.cut(l).name}) has NaN or infinite values: cannot measure its "
                             "neuron modes")
        ranks = contribution_rank_positions(contributions, y)
        rho, information = _unit_modes(x_l, r_l, y, shuffled, n_classes)
        index = order_index(ranks.neuron_top_mass.cpu(), ranks.chance)
        frames[l] = _modes_frame(l, rho, index, information, threshold)
    if not frames:
        return with_cuts(_empty([*NEURON_COLUMNS, "reason"], {"mode", "reason"}), reader)
    table = pd.concat([frames[l] for l in chosen], ignore_index=True).astype({"layer": "int64", "neuron": "int64"})
    table["reason"] = [reasons[int(l)] for l in table["layer"]]
    return with_cuts(table, reader)


def _undefined_frame(network: Network, l: int, x: torch.Tensor, threshold: float) -> pd.DataFrame:
    """The rows of a cut without a privileged basis: NaN values, mode ``undefined``."""
    n_units = as_units(network.activations(x[:1], l), -1).shape[1]
    nan = torch.full((n_units,), math.nan, dtype=torch.float64)
    frame = _modes_frame(l, nan, nan, nan, threshold)
    frame["mode"] = UNDEFINED
    return frame


def _unit_modes(
    x_l: torch.Tensor, r_l: torch.Tensor, labels: torch.Tensor, shuffled: torch.Tensor, n_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(rho, I) of every unit [P, units, positions]: rho the median over positions, I that of the spatial mean."""
    p, width, positions = x_l.shape
    if positions == 1:
        rho = goodman_kruskal_gamma(x_l[:, :, 0], r_l[:, :, 0]).abs()
        means = x_l[:, :, 0]
    else:
        gammas = goodman_kruskal_gamma(x_l.reshape(p, -1), r_l.reshape(p, -1)).abs().view(width, positions)
        rho = gammas.quantile(0.5, dim=1)
        means = x_l.double().mean(-1)
    parts = []
    step = _chunk(p)
    for lo in range(0, width, step):
        below, _ = tie_groups(means[:, lo : lo + step].T)
        parts.append(_information_from_codes(below, labels, shuffled, n_classes, INFORMATION_BINS))
    information = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)
    return rho.cpu(), information.cpu()


def neuron_mode_census(table: pd.DataFrame) -> pd.DataFrame:
    """Per layer of a `neuron_modes` table: the share of each neuron mode, rho's distribution, the means of O and I.

    The fractions of OPM, NPM and inactive neurons; the distribution of the order preservation rho over the layer's
    neurons (mean, 10 %, 25 %, 50 % and 75 % quantiles: rho sits near the threshold in trained nets, so compare
    distributions across layers and steps, not only the shares); and the mean order index O and class information
    I.

    Columns ``layer, opm, npm, inactive, rho_mean, rho_q10, rho_q25, rho_median, rho_q75, order_index_mean,
    class_information_mean``. Neurons whose rho is undefined (NaN: a constant output) are left out of its
    distribution. A table of any model (see docs/any-network.md) keeps its ``cut`` and ``reason`` columns; at a cut
    whose units are ``undefined`` (a transformer's residual stream) every value is NaN.
    """
    missing = [c for c in NEURON_COLUMNS if c not in table.columns]
    if missing:
        raise ConfigError(f"neuron_mode_census takes a neuron_modes table; missing columns {missing}")
    extra = [c for c in ("cut", "reason") if c in table.columns]
    columns = ["layer", *(["cut"] if "cut" in extra else []), *CENSUS_COLUMNS[1:], *(["reason"] if "reason" in extra
                                                                                      else [])]
    if table.empty:
        return _empty(columns, set(extra))
    grouped = table.groupby("layer", sort=True)

    def share(mode: str) -> Any:
        return grouped["mode"].agg(lambda m: float((m[m != UNDEFINED] == mode).mean()))

    out = pd.DataFrame({
        "opm": share("OPM"),
        "npm": share("NPM"),
        "inactive": share("inactive"),
        "rho_mean": grouped["order_preservation"].mean(),
        "rho_q10": grouped["order_preservation"].quantile(0.10),
        "rho_q25": grouped["order_preservation"].quantile(0.25),
        "rho_median": grouped["order_preservation"].quantile(0.50),
        "rho_q75": grouped["order_preservation"].quantile(0.75),
        "order_index_mean": grouped["order_index"].mean(),
        "class_information_mean": grouped["class_information"].mean(),
        **{c: grouped[c].first() for c in extra},
    }).reset_index()
    return out[columns].astype({"layer": "int64"})


def _empty(columns: list[str], strings: set[str]) -> pd.DataFrame:
    def dtype(column: str) -> str:
        return "str" if column in strings else "int64" if column in ("layer", "neuron") else "float64"

    return pd.DataFrame({c: pd.Series(dtype=dtype(c)) for c in columns})

