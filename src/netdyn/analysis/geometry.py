"""Class geometry: per layer, how the training samples sit around their class centres.

See docs/quantities.md#class-geometry.

Two streaming passes over the training set: the first sums each class's x^l (the centres), the second measures
each sample's cosine distance to its own centre and the within-class scatter S_W along the between-class
directions. S_B has rank at most C-1, so trace(S_W S_B^+) only needs S_W projected on S_B's nonzero
eigenvectors: O(P N C) per layer instead of an N x N scatter matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import closing

import numpy as np
import pandas as pd
import torch
from torch import nn

from netdyn.analysis._common import (
    CutLayers,
    LayerReader,
    MLPLayers,
    chunk_rows,
    cut_layers,
    is_own_network,
    iter_chunks,
    numerically_guarded,
    resolve_layers,
    samples_for,
    split_tensors,
    with_cuts,
)
from netdyn.analysis._pooling import MEMORY_BUDGET, PooledLayers, check_budget, features_label, pool_to_fit
from netdyn.data.samples import DataLike, SampleSet
from netdyn.errors import ConfigError
from netdyn.models import MLP

SUMMARY_COLUMNS = ["layer", "cos_dist_mean", "cos_dist_q25", "cos_dist_median", "cos_dist_q75",
                   "centre_similarity", "nc1"]
PER_SAMPLE_COLUMNS = ["layer", "sample", "label", "cos_dist"]


def _per_row_bytes(net: LayerReader) -> int:
    # the walk's one or two layers, plus a few float64 working copies of the widest layer
    widest = max(net.widths)
    return net.dtype.itemsize * 2 * widest + 8 * 4 * widest


def _class_centres(
    net: LayerReader, x: torch.Tensor, y: torch.Tensor, layers: list[int], num_classes: int
) -> dict[int, torch.Tensor]:
    """Per layer, the float64 class sums [num_classes, N_l] of x^l over (x, y)."""
    device = net.device
    last = max(layers)
    sums = {l: torch.zeros(num_classes, net.widths[l], dtype=torch.float64, device=device) for l in layers}
    for rows in iter_chunks(x.shape[0], chunk_rows(x.shape[0], _per_row_bytes(net))):
        labels = y[rows].to(device)
        with closing(net.walk(x[rows])) as trace:
            for l, x_l in trace:
                if l in sums:
                    sums[l].index_add_(0, labels, x_l.double())
                if l >= last:
                    break
    return sums


def _cosine_distance(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Row-wise 1 - cos(x, c) in float64; a zero vector on either side has cosine 0 (distance 1)."""
    norms = x.norm(dim=1) * c.norm(dim=1)
    dots = (x * c).sum(1)
    cos = torch.where(norms > 0, dots / torch.where(norms > 0, norms, 1), 0)
    return (1 - cos).clamp(0, 2)


def _between_class_basis(
    centres: torch.Tensor, counts: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """S_B's nonzero eigenpairs (U [r, N], s [r]) from the centres of the classes present.

    The deviations c_k - c satisfy sum_k n_k (c_k - c) = 0, so they are first projected on the complement of
    the count vector: this removes the rounding noise along that exactly-null direction, keeping S_B intact.
    """
    n_classes = centres.shape[0]
    weights = counts.double()
    grand = (weights[:, None] * centres).sum(0) / weights.sum()
    deviations = centres - grand
    q, _ = torch.linalg.qr(weights[:, None], mode="complete")
    reduced = q[:, 1:].T @ deviations  # [C-1, N], reduced^T reduced = deviations^T deviations
    if reduced.shape[0] == 0:
        empty = centres.new_zeros(0, centres.shape[1])
        return empty, centres.new_zeros(0)
    _, sing, vh = torch.linalg.svd(reduced, full_matrices=False)
    tol = sing.max() * max(reduced.shape) * torch.finfo(torch.float64).eps
    keep = sing > tol
    return vh[keep], sing[keep] ** 2 / n_classes


def _unit_rows(c: torch.Tensor) -> torch.Tensor:
    norms = c.norm(dim=1, keepdim=True)
    return torch.where(norms > 0, c / torch.where(norms > 0, norms, 1), 0)


def _centre_similarity(centres: torch.Tensor) -> float:
    """Mean cosine similarity of the centres over ordered pairs k != k' (a zero centre: similarity 0)."""
    k = centres.shape[0]
    if k < 2:
        return float("nan")
    unit = _unit_rows(centres)
    gram = unit @ unit.T
    return ((gram.sum() - gram.diagonal().sum()) / (k * (k - 1))).item()


def _check_classes(classes: int | Sequence[int] | None, num_classes: int) -> list[int] | None:
    if classes is None:
        return None
    if isinstance(classes, (int, np.integer)):
        classes = [int(classes)]
    chosen = [int(k) for k in classes]
    bad = [k for k in chosen if not 0 <= k < num_classes]
    if bad:
        raise ConfigError(f"classes {bad} are out of range: labels are 0..{num_classes - 1}")
    return sorted(set(chosen))


def _check_labels(y: torch.Tensor, num_classes: int) -> None:
    if y.numel() and not 0 <= int(y.min()) <= int(y.max()) < num_classes:
        raise ConfigError(f"training labels must lie in 0..{num_classes - 1} (num_classes = {num_classes})")


@numerically_guarded("class_geometry")
@torch.no_grad()
def class_geometry(
    net: MLP | nn.Module,
    data: DataLike,
    layers: Sequence[int] | None = None,
    per_sample: bool = False,
    classes: Sequence[int] | None = None,
    limit: int | None = None,
    *,
    input_shape: Sequence[int] | None = None,
    cuts: Sequence[str] | None = None,
    memory_budget: int = MEMORY_BUDGET,
) -> pd.DataFrame:
    """Class geometry of the training set at each layer l = 0..L-1 (see docs/quantities.md#class-geometry).

    Class centres c_k are the means of x^l over each class's training samples; a sample's distance is
    1 - cos(x^l, c_label) (1 where either vector is zero). Returns, per layer, ``layer, cos_dist_mean,
    cos_dist_q25, cos_dist_median, cos_dist_q75, centre_similarity, nc1``: the mean and quartiles of the
    distances, the mean cosine similarity of the centres over pairs k != k', and NC1 = trace(S_W S_B^+) / C
    (Papyan et al. 2020; C = the classes present in the training set; NaN where S_B = 0).

    With ``per_sample=True`` returns ``layer, sample, label, cos_dist`` instead, for the training samples of
    ``classes`` (None: all), the first ``limit`` of each class in dataset order (``sample`` = training index).

    Any other ``nn.Module`` than a netdyn :class:`MLP` is read through the network adapter (see docs/any-network.md):
    the layers are its cuts, measured on their flattened activations, and the table adds ``cut`` and ``features``:
    ``full``, or ``pooled:k x k`` where a conv cut's class centres would not fit ``memory_budget`` bytes and its
    activations are average-pooled over k x k windows (the smallest k that fits), as the LP's are.
    """
    memory_budget = check_budget(memory_budget)
    if is_own_network(net, input_shape, cuts):
        data = samples_for(net, data)
        chosen = resolve_layers(net, layers)
        return _geometry(MLPLayers(net), data, chosen, per_sample, classes, limit)
    cut_reader, data, chosen = cut_layers(net, data, layers, input_shape, cuts)
    pools = _pools(cut_reader, chosen, int(data.num_classes), memory_budget)
    reader: LayerReader = PooledLayers(cut_reader, pools) if pools else cut_reader
    table = with_cuts(_geometry(reader, data, chosen, per_sample, classes, limit), reader)
    table["features"] = [features_label(pools.get(int(l))) for l in table["layer"]]
    return table


def _geometry_bytes(d: int, num_classes: int) -> int:
    """Working memory of one layer's geometry at d features.

    The float64 class sums, centres and S_B's basis, and a few rows of working copies.
    """
    return 8 * d * (3 * num_classes + 4)


def _pools(reader: CutLayers, layers: list[int], num_classes: int, memory_budget: int) -> dict[int, int]:
    """The k of each layer measured on k x k pooled activations: those whose geometry does not fit the budget."""
    return {
        l: pool_to_fit(reader.shapes[l], lambda w: _geometry_bytes(w, num_classes) <= memory_budget,
                       f"class_geometry at {reader.network.cut(l).name}")
        for l in layers if _geometry_bytes(reader.widths[l], num_classes) > memory_budget
    }


def _geometry(
    net: LayerReader,
    data: SampleSet,
    chosen: list[int],
    per_sample: bool,
    classes: Sequence[int] | None,
    limit: int | None,
) -> pd.DataFrame:
    x, y = split_tensors(data, "train")
    num_classes = int(data.num_classes)
    _check_labels(y, num_classes)
    if not per_sample and (classes is not None or limit is not None):
        raise ConfigError("classes and limit pick the samples of per_sample=True; the summary uses them all")
    wanted = _check_classes(classes, num_classes)
    if limit is not None and (int(limit) != limit or limit < 1):
        raise ConfigError(f"limit must be a positive integer or None, got {limit!r}")
    if x.shape[0] == 0:
        raise ConfigError("class geometry is measured on the training set, which is empty")

    device = net.device
    counts = torch.bincount(y, minlength=num_classes).to(device)
    sums = _class_centres(net, x, y, chosen, num_classes)
    centres = {l: s / counts.clamp_min(1)[:, None].double() for l, s in sums.items()}
    if per_sample:
        return _per_sample(net, x, y, chosen, centres, wanted, limit)

    present = counts > 0
    bases = {l: _between_class_basis(centres[l][present], counts[present]) for l in chosen}
    last = max(chosen)
    distances: dict[int, list[torch.Tensor]] = {l: [] for l in chosen}
    scatter = {l: torch.zeros(bases[l][1].shape[0], dtype=torch.float64, device=device) for l in chosen}
    for rows in iter_chunks(x.shape[0], chunk_rows(x.shape[0], _per_row_bytes(net))):
        labels = y[rows].to(device)
        with closing(net.walk(x[rows])) as trace:
            for l, x_l in trace:
                if l in distances:
                    xd = x_l.double()
                    own = centres[l][labels]
                    distances[l].append(_cosine_distance(xd, own))
                    scatter[l] += (((xd - own) @ bases[l][0].T) ** 2).sum(0)
                if l >= last:
                    break

    n_samples, n_present = x.shape[0], int(present.sum())
    rows_out = []
    for l in chosen:
        d = torch.cat(distances[l]).cpu().numpy()
        q25, median, q75 = np.quantile(d, [0.25, 0.5, 0.75])
        # trace(S_W S_B^+) = sum_i u_i^T S_W u_i / s_i over S_B's eigenpairs, S_W = scatter / P
        # no between-class spread at all (one class, identical centres, a dead layer): the ratio is undefined
        spread = bases[l][1]
        nc1 = (scatter[l] / n_samples / spread).sum().item() / n_present if spread.numel() else float("nan")
        rows_out.append({
            "layer": l,
            "cos_dist_mean": float(d.mean()),
            "cos_dist_q25": float(q25),
            "cos_dist_median": float(median),
            "cos_dist_q75": float(q75),
            "centre_similarity": _centre_similarity(centres[l][present]),
            "nc1": nc1,
        })
    return pd.DataFrame(rows_out, columns=SUMMARY_COLUMNS)


def _per_sample(
    net: LayerReader,
    x: torch.Tensor,
    y: torch.Tensor,
    layers: list[int],
    centres: dict[int, torch.Tensor],
    classes: list[int] | None,
    limit: int | None,
) -> pd.DataFrame:
    """Cosine distances of the first ``limit`` training samples of each class in ``classes``."""
    picked = []
    for k in classes if classes is not None else torch.unique(y).tolist():
        index = torch.nonzero(y == k).flatten()
        picked.append(index if limit is None else index[:limit])
    index = torch.sort(torch.cat(picked)).values if picked else torch.zeros(0, dtype=torch.int64)
    device = net.device
    last = max(layers)
    distances: dict[int, list[torch.Tensor]] = {l: [] for l in layers}
    for rows in iter_chunks(index.shape[0], chunk_rows(index.shape[0], _per_row_bytes(net))):
        sub = index[rows]
        labels = y[sub].to(device)
        with closing(net.walk(x[sub])) as trace:
            for l, x_l in trace:
                if l in distances:
                    distances[l].append(_cosine_distance(x_l.double(), centres[l][labels]))
                if l >= last:
                    break
    n = index.shape[0]
    frames = []
    for l in layers:
        d = torch.cat(distances[l]).cpu().numpy() if distances[l] else np.zeros(0)
        frames.append(pd.DataFrame({
            "layer": np.full(n, l, dtype=np.int64),
            "sample": index.numpy().astype(np.int64),
            "label": y[index].numpy().astype(np.int64),
            "cos_dist": d.astype(np.float64),
        }))
    return pd.concat(frames, ignore_index=True)[PER_SAMPLE_COLUMNS]
