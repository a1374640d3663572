"""What training and every analysis take as data: a :class:`SampleSet` (a ``Dataset`` is one), or plain tensors.

A monitor inside a user's own loop has no ``Dataset``; it passes its held-out batch as
``(x_train, y_train, x_test, y_test)`` and :func:`as_samples` makes a sample set of it.
"""

from __future__ import annotations

from typing import Protocol, TypeAlias, cast, runtime_checkable

import torch

from netdyn.errors import ConfigError


@runtime_checkable
class SampleSet(Protocol):
    """Training and test samples with labels: inputs [P, ...] (flattened by the network), labels int [P]."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int


#: A sample set, or the four tensors ``(x_train, y_train, x_test, y_test)``.
DataLike: TypeAlias = SampleSet | tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def as_samples(data: DataLike, num_classes: int | None = None) -> SampleSet:
    """``data`` as a :class:`SampleSet`: returned as it is when it is one; four tensors become a ``Dataset``
    named ``"tensors"`` (``num_classes`` defaults to the largest label + 1)."""
    if hasattr(data, "x_train") and hasattr(data, "y_train"):  # a Dataset, or anything shaped like one
        return cast(SampleSet, data)
    if isinstance(data, (tuple, list)) and len(data) == 4 and all(isinstance(t, torch.Tensor) for t in data):
        from netdyn.data._dataset import Dataset

        x_train, y_train, x_test, y_test = data
        if x_train.ndim < 2 or x_test.ndim < 2 or x_train.shape[1:] != x_test.shape[1:]:
            raise ConfigError(
                f"data tensors: x_train {tuple(x_train.shape)} and x_test {tuple(x_test.shape)} must be "
                "[samples, features...] of the same feature shape"
            )
        for name, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
            if y.ndim != 1 or y.shape[0] != x.shape[0] or y.is_floating_point():
                raise ConfigError(
                    f"data tensors: y_{name} must be integer labels, one per sample of x_{name} "
                    f"({x.shape[0]}), got shape {tuple(y.shape)} of {y.dtype}"
                )
        if num_classes is None:
            labels = torch.cat([y_train, y_test])
            num_classes = int(labels.max().item()) + 1 if labels.numel() else 0
        return Dataset(
            x_train.flatten(1),
            y_train.long(),
            x_test.flatten(1),
            y_test.long(),
            int(num_classes),
            "tensors",
            tuple(x_train.shape[1:]),
            {},
        )
    raise ConfigError(
        "data must be a Dataset (netdyn.load_dataset) or the four tensors (x_train, y_train, x_test, y_test); "
        f"got {type(data).__name__}"
    )


def check_fits(data: SampleSet, in_features: int, num_classes: int) -> None:
    """A sample set whose inputs or labels do not fit a network is a clear :class:`ConfigError`, not a shape
    crash deep inside torch."""
    name = getattr(data, "name", "?")
    for split in ("train", "test"):
        x, y = getattr(data, f"x_{split}", None), getattr(data, f"y_{split}", None)
        if x is None or y is None:
            continue
        _check_split(name, split, x, y)
        d = x.flatten(1).shape[1] if x.ndim >= 2 else None
        if d != in_features:
            raise ConfigError(f"data set {name!r} has {d} input features but the network takes {in_features}")
        _check_labels(name, split, y, num_classes, "the network's outputs are")


def check_labels(data: SampleSet) -> None:
    """Labels of both splits are class indices 0..num_classes-1 of the sample set itself, and each split's
    inputs and labels agree in number (for functions that take data without a network)."""
    name = getattr(data, "name", "?")
    for split in ("train", "test"):
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        _check_split(name, split, x, y)
        _check_labels(name, split, y, int(data.num_classes), "the data set's classes are")


def _check_split(name: str, split: str, x: object, y: object) -> None:
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise ConfigError(f"data set {name!r}: x_{split} and y_{split} must be torch tensors")
    if x.ndim < 1 or y.ndim != 1 or y.shape[0] != x.shape[0] or y.is_floating_point() or y.is_complex():
        raise ConfigError(
            f"data set {name!r}: y_{split} must hold one integer label per sample of x_{split} "
            f"({x.shape[0] if x.ndim else 0}), got shape {tuple(y.shape)} of {y.dtype}"
        )


def _check_labels(name: str, split: str, y: torch.Tensor, num_classes: int, what: str) -> None:
    if y.numel():
        low, high = int(y.min().item()), int(y.max().item())
        if low < 0 or high >= num_classes:
            raise ConfigError(
                f"data set {name!r}: {split} labels run {low}..{high} but {what} 0..{num_classes - 1}"
            )
