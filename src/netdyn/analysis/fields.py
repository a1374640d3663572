"""Local-field projections and how often a test sample's nearest training projection shares its label.

See docs/quantities.md#local-fields.

A projection is a pair of output local fields h^L_a, h^L_b of a few classes' samples, on both splits. How often a
test sample's nearest training projection carries its own label shows test samples falling inside, or outside, the
training samples' regions before and after grokking (paper Figs. 6-7).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from netdyn.analysis._common import (
    SPLITS,
    chunk_rows,
    is_own_network,
    iter_chunks,
    model_logits,
    model_samples,
    net_device,
    net_dtype,
    samples_for,
    split_tensors,
    walk,
)
from netdyn.data.samples import DataLike
from netdyn.errors import ConfigError
from netdyn.models import MLP
from netdyn.models.adapter import read_network

POINT_COLUMNS = ["split", "label", "h_a", "h_b"]
SUMMARY_COLUMNS = ["label", "test_in_train_fraction"]


@dataclass
class LocalFields:
    """Output local fields of the chosen classes for one neuron pair, and the per-class overlap summary."""

    points: pd.DataFrame
    """``split, label, h_a, h_b``: a row per sample of the chosen classes, train rows first, dataset order."""
    summary: pd.DataFrame
    """``label, test_in_train_fraction``: per chosen class, the share of its test samples whose nearest
    training point (2-D Euclidean, among the chosen classes' training points) has the same label; NaN without
    test samples of the class or without training points."""
    neurons: tuple[int, int]
    """The output neurons (a, b) whose local fields are h_a and h_b."""


def _projections(net: MLP, x: torch.Tensor, neurons: tuple[int, int]) -> torch.Tensor:
    """h^L of the given neuron pair for every row of x, float64 [P, 2], streamed in chunks."""
    widest = max(net.widths)
    per_row = net_dtype(net).itemsize * 2 * widest
    parts = [torch.zeros(0, 2, dtype=torch.float64, device=net_device(net))]
    pair = list(neurons)
    for rows in iter_chunks(x.shape[0], chunk_rows(x.shape[0], per_row)):
        for l, x_l, _ in walk(net, x[rows]):
            if l == net.n_layers:
                parts.append(x_l[:, pair].double())
    return torch.cat(parts)


def _nearest_labels(test: torch.Tensor, train: torch.Tensor, train_labels: torch.Tensor) -> torch.Tensor:
    """Label of each test point's nearest training point, via cdist in chunks.

    Where several training points are equally near (dead units project many samples onto one point), the label
    most of them carry wins, the smallest such label on a tie: the answer does not depend on the samples' order.
    """
    size = chunk_rows(test.shape[0], 8 * max(1, train.shape[0]))
    parts = [torch.zeros(0, dtype=train_labels.dtype, device=train_labels.device)]
    one_hot = torch.nn.functional.one_hot(train_labels.long()).to(torch.float64)
    for rows in iter_chunks(test.shape[0], size):
        # direct differences, not the matrix-product shortcut: a test point equal to a training point is at 0
        dist = torch.cdist(test[rows], train, compute_mode="donot_use_mm_for_euclid_dist")
        nearest = (dist == dist.min(1, keepdim=True).values).to(torch.float64)
        parts.append((nearest @ one_hot).argmax(1).to(train_labels.dtype))
    return torch.cat(parts)


def _check_choice(
    classes: int | Sequence[int], neurons: Sequence[int] | None, num_classes: int, n_out: int
) -> tuple[list[int], tuple[int, int]]:
    if isinstance(classes, (int, np.integer)):
        classes = [int(classes)]
    chosen = [int(k) for k in classes]
    if not chosen or len(set(chosen)) != len(chosen):
        raise ConfigError(f"classes must be distinct labels, at least one, got {list(classes)!r}")
    bad = [k for k in chosen if not 0 <= k < num_classes]
    if bad:
        raise ConfigError(f"classes {bad} are out of range: labels are 0..{num_classes - 1}")
    if neurons is None:
        if len(chosen) < 2:
            raise ConfigError("with one class, name the neuron pair: neurons=(a, b)")
        neurons = chosen[:2]
    pair = [int(i) for i in neurons]
    if len(pair) != 2 or not all(0 <= i < n_out for i in pair):
        raise ConfigError(f"neurons must be two output neurons in 0..{n_out - 1}, got {neurons!r}")
    return chosen, (pair[0], pair[1])


def _any_projections(model: nn.Module, shape: tuple[int, ...], x: torch.Tensor,
                     neurons: tuple[int, int]) -> torch.Tensor:
    """Any model's outputs of the given neuron pair for every row of x, float64 [P, 2], streamed in chunks."""
    size = chunk_rows(x.shape[0], 8 * 4 * math.prod(shape))
    parts = [model_logits(model, x[rows], shape)[:, list(neurons)].double() for rows in iter_chunks(x.shape[0], size)]
    return torch.cat(parts) if parts else torch.zeros(0, 2, dtype=torch.float64)


@torch.no_grad()
def local_fields(
    net: MLP | nn.Module,
    data: DataLike,
    classes: Sequence[int] = (1, 2, 3),
    neurons: Sequence[int] | None = None,
    *,
    input_shape: Sequence[int] | None = None,
    cuts: Sequence[str] | None = None,
) -> LocalFields:
    """Output local fields of ``classes``' samples for a neuron pair, train and test.

    See docs/quantities.md#local-fields.

    ``neurons`` defaults to the output neurons of ``classes[0]`` and ``classes[1]``. See :class:`LocalFields`
    for the two tables.

    Any other ``nn.Module`` than a netdyn :class:`MLP` (see docs/any-network.md) is fed ``x.reshape(-1, *input_shape)``
    and its output is h^L; ``cuts``, which the output does not depend on, are checked as everywhere else.
    """
    project: Callable[[torch.Tensor, tuple[int, int]], torch.Tensor]
    if is_own_network(net, input_shape, cuts):
        data = samples_for(net, data)
        n_out, device = net.widths[-1], net_device(net)
        project = functools.partial(_projections, net)
    else:
        data, shape = model_samples(net, data, input_shape)
        if cuts is not None:
            read_network(net, shape, cuts)
        probe = data.x_train[:1] if data.x_train.shape[0] else data.x_test[:1]
        logits = model_logits(net, probe, shape)
        n_out, device = logits.shape[1], logits.device
        project = functools.partial(_any_projections, net, shape)
    chosen, pair = _check_choice(classes, neurons, int(data.num_classes), n_out)
    wanted = torch.tensor(chosen, dtype=torch.int64)
    fields, labels, frames = {}, {}, []
    for split in SPLITS:
        x, y = split_tensors(data, split)
        mask = torch.isin(y, wanted)
        fields[split] = project(x[mask], pair).to(device)
        labels[split] = y[mask].to(device)
        points = fields[split].cpu().numpy()
        frames.append(pd.DataFrame({
            "split": [split] * points.shape[0],
            "label": y[mask].numpy().astype(np.int64),
            "h_a": points[:, 0],
            "h_b": points[:, 1],
        }))

    test_labels = labels["test"]
    if fields["train"].shape[0] and fields["test"].shape[0]:
        hits = _nearest_labels(fields["test"], fields["train"], labels["train"]) == test_labels
    else:
        hits = torch.zeros(0, dtype=torch.bool, device=device)
    summary = []
    for k in chosen:
        own = test_labels == k
        n = int(own.sum())
        share = hits[own].double().mean().item() if n and hits.numel() else float("nan")
        summary.append({"label": k, "test_in_train_fraction": share})
    return LocalFields(
        points=pd.concat(frames, ignore_index=True)[POINT_COLUMNS],
        summary=pd.DataFrame(summary, columns=SUMMARY_COLUMNS),
        neurons=pair,
    )
