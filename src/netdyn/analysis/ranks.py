"""RPD, the rank position distribution: where each sample's contribution ranks in its neuron.

See docs/quantities.md#rpd.

The RPD says where each sample's contribution to its own class ranks among every sample's contribution through the
same neuron.

For hidden layer l, neuron i and sample mu of class k, the contribution is c_i(mu) = M_l[k, i] * x^l_i(mu),
with M_l the L-map matrix (`lmap_matrix`). Sample mu is ranked, descending, in the sequence
{M_l[k, i] x^l_i(nu)} over all P samples nu. M_l[k, i] is a scalar, so that order is x_i's own order
(descending where M_l[k, i] > 0, ascending where it is < 0, one tie group where it is 0): one sort per neuron
serves every class.

Ties carry no order. A group of t tied values at positions a+1..a+t is spread with weight 1/t on each of those
positions, i.e. uniformly over [a/P, (a+t)/P] at the resolution of the ranks; this is exactly the expectation
under random tie-breaking, both for the histogram of q = (position - 1/2) / P and for the top-mass summary.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Literal, TypeVar, overload

import pandas as pd
import torch
from torch import nn

from netdyn.analysis._common import (
    cut_layers,
    is_own_network,
    net_device,
    resolve_layers,
    samples_for,
    seeded_subset,
    take,
    walk,
    with_cuts,
)
from netdyn.analysis.lmap import lmap_matrix
from netdyn.analysis.units import NO_PRIVILEGED_BASIS, contributions_by_cut, no_privileged_basis
from netdyn.data.samples import DataLike, SampleSet
from netdyn.errors import ConfigError, ModelError
from netdyn.models import MLP

T = TypeVar("T", float, torch.Tensor)
RPD_USES = ("output", "field")
CHUNK_ELEMENTS = 1 << 22
"""Pairs (sample, neuron) handled at once: bounds the sort's index tensors to a few tens of MiB."""


# ---------------------------------------------------------------------------------------------- tie groups
@overload
def sorted_runs(rows: torch.Tensor, last: Literal[True] = ...) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...
@overload
def sorted_runs(rows: torch.Tensor, last: Literal[False]) -> tuple[torch.Tensor, torch.Tensor, None]: ...
def sorted_runs(rows: torch.Tensor, last: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Sort each row of ``rows`` [N, P]; return ``(order, first, last)``, all int64 [N, P].

    ``order`` is the sorting permutation; ``first`` and ``last`` (with ``last=True``, else None) give, for each
    sorted position, the first and last sorted position of its run of equal values. Runs come from the sorted
    values' boundaries by cumulative max / min.

    Rows, not columns: sorting along the contiguous last dimension is several times faster on a CPU.
    """
    n = rows.shape[-1]
    sorted_rows, order = torch.sort(rows.contiguous(), dim=-1)
    pos = torch.arange(n, device=rows.device).expand_as(order)
    changes = sorted_rows[..., 1:] != sorted_rows[..., :-1]
    edge = torch.ones((*rows.shape[:-1], 1), dtype=torch.bool, device=rows.device)
    # first position of each run: the last run start at or before it
    first = torch.cummax(torch.where(torch.cat([edge, changes], -1), pos, 0), dim=-1).values
    if not last:
        return order, first, None
    # last position of each run: the first run end at or after it
    ends = torch.where(torch.cat([changes, edge], -1), pos, n - 1)
    return order, first, torch.flip(torch.cummin(torch.flip(ends, [-1]), dim=-1).values, [-1])


def unsort(order: torch.Tensor, sorted_values: torch.Tensor) -> torch.Tensor:
    """Values given per sorted position, put back in the rows' own order."""
    return torch.empty_like(sorted_values).scatter_(-1, order, sorted_values)


def tie_groups(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each entry of ``rows`` [N, P], how many entries of its row are strictly below it and how many equal it.

    The equal ones include the entry itself; both counts are int64 [N, P] in the rows' own order.
    """
    order, first, last = sorted_runs(rows)
    return unsort(order, first), unsort(order, last - first + 1)


def pair_positions(below: torch.Tensor, equal: torch.Tensor, sign: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """First 0-based position a and tie-group size t of each entry [N, P] in the descending order of sign * value.

    Computed from `tie_groups` and the sign of M_l[k(mu), i] of each entry (0: all P samples tied).
    """
    n = below.shape[-1]
    start = torch.where(sign > 0, n - below - equal, below)
    zero = sign == 0
    return torch.where(zero, 0, start), torch.where(zero, n, equal)


def top_share(start: torch.Tensor, size: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
    """Per row, the expected top mass, ties included.

    The mean over entries of the share of each entry's positions start..start+size-1 that lies within the first
    ``top`` [P] positions (n_k of the entry's class).
    """
    inside = (torch.minimum(top, start + size) - start).clamp_(min=0)
    return (inside / size.double()).mean(-1)


def rank_intervals(values: torch.Tensor, descending: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised rank interval [lo, hi] of every entry of ``values`` [P, N] within its column.

    Column i is ordered descending where ``descending[i]`` is True, else ascending. A group of t tied values
    at positions a+1..a+t gets [a/P, (a+t)/P]; an untied value at position r gets [(r-1)/P, r/P], whose centre
    is the RPD's q = (r - 1/2) / P (docs/quantities.md#rpd). Returned as float64 [P, N].
    """
    if values.ndim != 2 or descending.shape != values.shape[1:]:
        raise ConfigError(
            f"rank_intervals takes values [P, N] and descending [N], got {tuple(values.shape)} "
            f"and {tuple(descending.shape)}"
        )
    below, equal = tie_groups(values.T)
    sign = torch.where(descending.to(values.device), 1, -1).unsqueeze(1)
    start, size = pair_positions(below, equal, sign)
    n = values.shape[0]
    return (start.double() / n).T, ((start + size).double() / n).T


def order_index(top_mass: T, chance: float) -> T:
    """The order index O = (T - sum_k p_k^2) / (1 - sum_k p_k^2) of a top mass T (a number or a tensor of them).

    0 for a random order, ties included. NaN when the samples hold a single class (sum_k p_k^2 = 1),
    where there is no order to measure.
    """
    if chance >= 1:
        return top_mass * float("nan")
    return (top_mass - chance) / (1.0 - chance)


# ---------------------------------------------------------------------------------------------- one layer
@dataclass
class RankPositions:
    """Rank statistics of one layer's values (see `rank_positions`)."""

    position_mass: torch.Tensor
    """float64 [P]: expected number of (sample, neuron) pairs at each 0-based rank position."""
    neuron_top_mass: torch.Tensor
    """float64 [N]: per neuron, the expected fraction of samples within the top n_k positions of their
    class."""
    class_fractions: torch.Tensor
    """float64 [C]: p_k, the fraction of samples in class k."""

    @property
    def n_samples(self) -> int:
        """P, the number of samples ranked."""
        return self.position_mass.shape[0]

    @property
    def chance(self) -> float:
        """sum_k p_k^2: the top mass of a random order."""
        return float((self.class_fractions**2).sum())

    def density(self, bins: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(bin centres, density) of q on ``bins`` equal bins of [0, 1]; the density integrates to 1.

        Position r (0-based) sits at q = (r + 1/2) / P and falls in bin b when b/bins <= q < (b+1)/bins.
        """
        n = self.n_samples
        mass = self.position_mass
        edges = torch.arange(bins + 1, dtype=torch.int64)
        # positions r with (r + 1/2) / P < b / bins, counted in integers: r < (2 b P - bins) / (2 bins)
        below_edge = torch.clamp(-((bins - 2 * edges * n) // (2 * bins)), 0, n).to(mass.device)
        cumulative = torch.cat([mass.new_zeros(1), torch.cumsum(mass, 0)])
        counts = cumulative[below_edge[1:]] - cumulative[below_edge[:-1]]
        total = cumulative[-1]
        density = counts * bins / total if total > 0 else torch.full_like(counts, float("nan"))
        centres = (torch.arange(bins, dtype=torch.float64) + 0.5) / bins
        return centres, density.cpu()


@torch.no_grad()
def rank_positions(values: torch.Tensor, weights: torch.Tensor, labels: torch.Tensor) -> RankPositions:
    """Rank statistics of a layer's values [P, N] under output weights ``weights`` [C, N] (the L-map's M_l).

    Sample mu is ranked in neuron i's sequence {weights[labels[mu], i] * values[nu, i]} over all nu,
    descending, with ties spread over their positions. Tensor ops on ``values``' device, chunked over neurons.
    """
    if values.ndim != 2 or weights.ndim != 2 or weights.shape[1] != values.shape[1]:
        raise ConfigError(
            f"rank_positions takes values [P, N] and weights [C, N], got {tuple(values.shape)} "
            f"and {tuple(weights.shape)}"
        )
    if not torch.isfinite(values).all():
        raise ModelError("the layer's values hold NaN or infinity: cannot rank them (did training diverge?)")
    n, width = values.shape
    device = values.device
    if n == 0 or labels.shape != (n,):
        raise ConfigError(f"rank statistics need P > 0 samples and P labels, got {n} and {labels.shape}")
    labels = labels.to(device)
    if int(labels.min()) < 0 or int(labels.max()) >= weights.shape[0]:
        raise ConfigError(f"labels must lie in 0..{weights.shape[0] - 1} (the network's classes)")
    counts = torch.bincount(labels, minlength=weights.shape[0])
    top = counts[labels]  # n_k of each sample's class
    signs = torch.sign(weights.detach().to(device)).T  # [N, C]
    diff = torch.zeros(n + 1, dtype=torch.float64, device=device)
    neuron_top = torch.empty(width, dtype=torch.float64, device=device)
    step = max(1, CHUNK_ELEMENTS // n)
    for lo in range(0, width, step):
        hi = min(width, lo + step)
        below, equal = tie_groups(values[:, lo:hi].T)
        start, size = pair_positions(below, equal, signs[lo:hi, labels])
        share = 1.0 / size.double()
        # each pair adds 1/t on positions start..start+t-1: a difference array, summed up after the loop
        diff += torch.bincount(start.flatten(), weights=share.flatten(), minlength=n + 1)
        diff -= torch.bincount((start + size).flatten(), weights=share.flatten(), minlength=n + 1)
        neuron_top[lo:hi] = top_share(start, size, top)
    mass = torch.cumsum(diff, 0)[:n].clamp_(min=0)
    return RankPositions(position_mass=mass, neuron_top_mass=neuron_top, class_fractions=counts.double() / n)


@torch.no_grad()
def contribution_rank_positions(contributions: torch.Tensor, labels: torch.Tensor) -> RankPositions:
    """Rank statistics of per-class contributions [C, P, N] (any model's RPD, docs/any-network.md).

    Sample mu of class k is ranked, descending, in unit i's sequence {contributions[k, nu, i]} over all nu, ties
    spread over their positions: :func:`rank_positions` where ``contributions[k] = weights[k] * values``, and the
    same ranking where a unit's contribution is not one weight times one value (a conv channel's sum over
    positions, a nonlinear tail's gradient x input). One sort per class and unit.
    """
    if contributions.ndim != 3 or labels.shape != contributions.shape[1:2] or contributions.shape[1] == 0:
        raise ConfigError(f"contribution ranks take contributions [C, P, N] with P > 0 and P labels, got "
                          f"{tuple(contributions.shape)} and {tuple(labels.shape)}")
    if not torch.isfinite(contributions).all():
        raise ModelError("the layer's contributions hold NaN or infinity: cannot rank them (did training diverge?)")
    n_classes, n, width = contributions.shape
    device = contributions.device
    labels = labels.to(device)
    if int(labels.min()) < 0 or int(labels.max()) >= n_classes:
        raise ConfigError(f"labels must lie in 0..{n_classes - 1} (the network's classes)")
    counts = torch.bincount(labels, minlength=n_classes)
    diff = torch.zeros(n + 1, dtype=torch.float64, device=device)
    neuron_top = torch.zeros(width, dtype=torch.float64, device=device)
    step = max(1, CHUNK_ELEMENTS // n)
    for k in torch.nonzero(counts).flatten().tolist():
        own = labels == k
        for lo in range(0, width, step):
            hi = min(width, lo + step)
            # descending: the entries strictly above a value come first, as those strictly below its negation
            below, equal = tie_groups(-contributions[k, :, lo:hi].T)
            start, size = below[:, own], equal[:, own]
            share = 1.0 / size.double()
            diff += torch.bincount(start.flatten(), weights=share.flatten(), minlength=n + 1)
            diff -= torch.bincount((start + size).flatten(), weights=share.flatten(), minlength=n + 1)
            inside = (torch.minimum(counts[k], start + size) - start).clamp_(min=0)
            neuron_top[lo:hi] += (inside / size.double()).sum(-1)
    mass = torch.cumsum(diff, 0)[:n].clamp_(min=0)
    return RankPositions(position_mass=mass, neuron_top_mass=neuron_top / n, class_fractions=counts.double() / n)


def density_gradient(q: torch.Tensor, density: torch.Tensor) -> float:
    """Minus the least-squares slope of density against q (0 for a flat RPD)."""
    q, d = q.double(), density.double()
    qc = q - q.mean()
    return float(-(qc * (d - d.mean())).sum() / (qc * qc).sum())


# ---------------------------------------------------------------------------------------------- networks
def _check_options(bins: int, use: str) -> None:
    if use not in RPD_USES:
        raise ConfigError(f"use must be 'output' (rank x^l) or 'field' (rank h^l), got {use!r}")
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ConfigError(f"bins must be a positive integer, got {bins!r}")


@torch.no_grad()
def layer_rank_positions(
    net: MLP,
    x: torch.Tensor,
    y: torch.Tensor,
    layers: Sequence[int],
    use: str = "output",
) -> Iterator[tuple[int, RankPositions]]:
    """Yield ``(l, RankPositions)`` for each hidden layer in ``layers``, walking the network once over x."""
    wanted = set(layers)
    if not wanted:
        return
    weights = {l: lmap_matrix(net, l)[0] for l in wanted}
    with closing(walk(net, x)) as steps:
        for l, x_l, h_l in steps:
            if l in wanted:
                values = x_l if use == "output" else h_l
                if values is None:
                    raise ConfigError(f"layer {l} has no local field h^l (use='field' takes hidden layers)")
                yield l, rank_positions(values, weights[l], y)
            if l >= max(wanted):
                break


def _training_subset(
    device: torch.device, data: SampleSet, max_samples: int | None, seed: int | torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = data.x_train, data.y_train
    if x.shape[0] == 0:
        raise ConfigError("the training set is empty: the RPD needs samples")
    idx = seeded_subset(x.shape[0], max_samples, seed)
    return take(x, idx), take(y, idx).to(device)


def _rpd_layers(
    net: MLP,
    data: SampleSet,
    layers: Sequence[int] | None,
    bins: int,
    use: str,
    max_samples: int | None,
    seed: int | torch.Generator,
) -> Iterator[tuple[int, RankPositions]]:
    _check_options(bins, use)
    chosen = resolve_layers(net, layers, hidden_only=True)
    x, y = _training_subset(net_device(net), data, max_samples, seed)
    yield from layer_rank_positions(net, x, y, chosen, use)


@torch.no_grad()
def rpd(
    net: MLP | nn.Module,
    data: DataLike,
    layers: Sequence[int] | None = None,
    bins: int = 50,
    use: str = "output",
    max_samples: int | None = None,
    seed: int | torch.Generator = 0,
    *,
    input_shape: Sequence[int] | None = None,
    cuts: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The RPD of each hidden layer (default 1..L-1) on the training set: columns ``layer, q, density``.

    ``q`` are the bin centres of ``bins`` equal bins of [0, 1]; ``density`` integrates to 1. ``use="field"``
    ranks the local fields h^l instead of the outputs x^l. ``max_samples`` takes a seeded subset.

    Any other ``nn.Module`` than a netdyn :class:`MLP` is read through the network adapter (docs/any-network.md;
    ``cuts`` and ``input_shape`` as for :func:`~netdyn.analysis.lmap.lmap_accuracy`): contributions are gradient x input
    of the linearised tail, per unit (a conv channel or a transformer unit summed over positions or tokens; see
    :mod:`netdyn.analysis.units`), and the table adds ``cut`` and ``reason`` (empty where measured; why not where
    the density is NaN: a transformer's residual stream). ``use="field"`` ranks the cut's local field, the input
    of the transfer function that produces it (the cut itself where none does).
    """
    return rpd_tables(net, data, layers, bins, use, max_samples, seed, input_shape=input_shape, cuts=cuts)[0]


@torch.no_grad()
def rpd_summary(
    net: MLP | nn.Module,
    data: DataLike,
    layers: Sequence[int] | None = None,
    bins: int = 50,
    use: str = "output",
    max_samples: int | None = None,
    seed: int | torch.Generator = 0,
    *,
    input_shape: Sequence[int] | None = None,
    cuts: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per hidden layer: ``layer, gradient, top_mass, order_index`` (see docs/quantities.md#rpd).

    ``gradient`` is minus the least-squares slope of the RPD's density against q (the paper's indicator);
    ``top_mass`` T the expected fraction of pairs within the top n_k positions of their class;
    ``order_index`` O = (T - sum_k p_k^2) / (1 - sum_k p_k^2), 0 for a random order, ties included.
    Any other ``nn.Module`` as for :func:`rpd` (the table adds ``cut`` and ``reason``).
    """
    return rpd_tables(net, data, layers, bins, use, max_samples, seed, input_shape=input_shape, cuts=cuts)[1]


@torch.no_grad()
def rpd_tables(
    net: MLP | nn.Module,
    data: DataLike,
    layers: Sequence[int] | None = None,
    bins: int = 50,
    use: str = "output",
    max_samples: int | None = None,
    seed: int | torch.Generator = 0,
    *,
    input_shape: Sequence[int] | None = None,
    cuts: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(rpd(...), rpd_summary(...))`` from one ranking of each layer (what ``analyze`` uses)."""
    if not is_own_network(net, input_shape, cuts):
        return _any_rpd_tables(net, data, layers, bins, use, max_samples, seed, input_shape, cuts)
    data = samples_for(net, data)
    return _rpd_frames(_rpd_layers(net, data, layers, bins, use, max_samples, seed), bins)


def _any_rpd_tables(
    model: nn.Module,
    data: DataLike,
    layers: Sequence[int] | None,
    bins: int,
    use: str,
    max_samples: int | None,
    seed: int | torch.Generator,
    input_shape: Sequence[int] | None,
    cuts: Sequence[str] | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The RPD of any model: per cut, the ranks of its units' contributions (NaN where it has no privileged basis)."""
    _check_options(bins, use)
    reader, samples, _ = cut_layers(model, data, None, input_shape, cuts)
    chosen = resolve_layers(reader, layers, hidden_only=True)
    network = reader.network
    x, y = _training_subset(reader.device, samples, max_samples, seed)
    reasons = {l: NO_PRIVILEGED_BASIS if no_privileged_basis(network, l) else "" for l in chosen}

    measured = [l for l in chosen if not reasons[l]]
    parts: dict[int, list[torch.Tensor]] = {l: [] for l in measured}
    for chunks, _ in contributions_by_cut(network, measured, x, use):  # one pass of the model per chunk
        for l, chunk in chunks.items():
            parts[l].append(chunk)

    def ranked() -> Iterator[tuple[int, RankPositions | None]]:
        for l in chosen:
            yield l, None if reasons[l] else contribution_rank_positions(torch.cat(parts.pop(l), dim=1), y)

    curves, summary = _rpd_frames(ranked(), bins)
    for table in (curves, summary):
        table["reason"] = [reasons[int(l)] for l in table["layer"]]
    return with_cuts(curves, reader), with_cuts(summary, reader)


def _rpd_frames(
    ranked: Iterable[tuple[int, RankPositions | None]], bins: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The RPD's curves and summary from each layer's rank statistics (None: NaN rows for that layer)."""
    frames, rows = [], []
    for l, ranks in ranked:
        if ranks is None:
            q = (torch.arange(bins, dtype=torch.float64) + 0.5) / bins
            frames.append(pd.DataFrame({"layer": l, "q": q.numpy(), "density": math.nan}))
            rows.append({"layer": l, "gradient": math.nan, "top_mass": math.nan, "order_index": math.nan})
            continue
        q, density = ranks.density(bins)
        frames.append(pd.DataFrame({"layer": l, "q": q.numpy(), "density": density.numpy()}))
        top_mass = float(ranks.neuron_top_mass.mean())
        rows.append(
            {
                "layer": l,
                "gradient": density_gradient(q, density),
                "top_mass": top_mass,
                "order_index": order_index(top_mass, ranks.chance),
            }
        )
    if frames:
        curves = pd.concat(frames, ignore_index=True)
    else:
        curves = pd.DataFrame(
            {"layer": pd.Series(dtype="int64"), "q": pd.Series(dtype="float64"), "density": pd.Series(dtype="float64")}
        )
    summary = pd.DataFrame(rows, columns=["layer", "gradient", "top_mass", "order_index"]).astype(
        {"layer": "int64", "gradient": "float64", "top_mass": "float64", "order_index": "float64"}
    )
    return curves, summary
