"""What training and every analysis take as data: a `SampleSet` (a ``Dataset`` is one), or the forms researchers
hold data in.

A monitor inside a user's own loop has no ``Dataset``; it passes its held-out batch as
``(x_train, y_train, x_test, y_test)`` (tensors or NumPy arrays), and a pair ``(train, test)`` of
``torch.utils.data.Dataset`` or ``DataLoader`` objects is read into tensors once; `as_samples` makes a sample set of
any of them.
"""

from __future__ import annotations

import warnings
import weakref
from typing import Any, Protocol, TypeAlias, cast, runtime_checkable

import numpy as np
import torch
import torch.utils.data

from netdyn.errors import ConfigError


@runtime_checkable
class SampleSet(Protocol):
    """Training and test samples with labels: inputs [P, ...] (flattened by the network), labels int [P]."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int


#: One array of the four: a tensor or a NumPy array.
ArrayLike: TypeAlias = torch.Tensor | np.ndarray
#: One split as torch holds it: a map-style or iterable ``Dataset`` of (input, label) items, or a ``DataLoader``.
TorchSplit: TypeAlias = torch.utils.data.Dataset | torch.utils.data.DataLoader

#: A sample set; the four arrays ``(x_train, y_train, x_test, y_test)``; or a pair ``(train, test)`` of torch
#: ``Dataset`` / ``DataLoader`` objects.
DataLike: TypeAlias = (
    SampleSet | tuple[ArrayLike, ArrayLike, ArrayLike, ArrayLike] | tuple[TorchSplit, TorchSplit]
)

#: Batch size with which a torch ``Dataset`` is read into tensors.
_READ_BATCH = 1024

#: A (train, test) pair already read, by its train split: the same objects are read once, however many functions
#: take them.
_READ: weakref.WeakKeyDictionary[Any, tuple[Any, int | None, SampleSet]] = weakref.WeakKeyDictionary()


def as_samples(data: DataLike, num_classes: int | None = None) -> SampleSet:
    """``data`` as a `SampleSet`.

    A sample set is returned as it is. Four tensors or NumPy arrays ``(x_train, y_train, x_test, y_test)`` become a
    ``Dataset`` named ``"tensors"``; a pair ``(train, test)`` of torch ``Dataset`` or ``DataLoader`` objects is read
    into tensors once (a warning says so and how many samples), named ``"torch"``. Inputs keep their values (NumPy
    inputs and integer tensors become float32) and their sample shape as ``input_shape``; ``num_classes`` defaults
    to the largest label + 1.
    """
    if hasattr(data, "x_train") and hasattr(data, "y_train"):  # a Dataset, or anything shaped like one
        return cast(SampleSet, data)
    if isinstance(data, (tuple, list)) and len(data) == 4 and all(_is_array(t) for t in data):
        x_train, y_train, x_test, y_test = (_as_tensor(t, inputs=i % 2 == 0) for i, t in enumerate(data))
        return _from_tensors(x_train, y_train, x_test, y_test, num_classes, "tensors")
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(_is_torch_split(t) for t in data):
        return _read_splits(data[0], data[1], num_classes)
    raise ConfigError(
        "data must be a Dataset (netdyn.load_dataset), the four tensors or NumPy arrays (x_train, y_train, x_test, "
        f"y_test), or a pair (train, test) of torch Datasets or DataLoaders; got {_describe(data)}"
    )


def _is_array(value: object) -> bool:
    return isinstance(value, (torch.Tensor, np.ndarray))


def _is_torch_split(value: object) -> bool:
    return isinstance(value, (torch.utils.data.Dataset, torch.utils.data.DataLoader))


def _describe(data: object) -> str:
    if isinstance(data, (tuple, list)):
        return f"{type(data).__name__} of {', '.join(type(v).__name__ for v in data) or 'nothing'}"
    return type(data).__name__


def _as_tensor(value: ArrayLike, inputs: bool) -> torch.Tensor:
    """A tensor of ``value``: NumPy inputs as float32 (torch's default, whatever NumPy's), labels as they are; an
    array of objects or strings is a ConfigError, not a torch TypeError."""
    if isinstance(value, torch.Tensor):
        return value
    if value.dtype.kind not in "biuf":
        raise ConfigError(f"data arrays must hold numbers, got an array of dtype {value.dtype}")
    return torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32 if inputs else None))


def _from_tensors(
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    num_classes: int | None,
    name: str,
) -> SampleSet:
    from netdyn.data._dataset import Dataset

    if x_train.ndim < 2 or x_test.ndim < 2 or x_train.shape[1:] != x_test.shape[1:]:
        raise ConfigError(
            f"data tensors: x_train {tuple(x_train.shape)} and x_test {tuple(x_test.shape)} must be "
            "[samples, features...] of the same feature shape"
        )
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if y.ndim != 1 or y.shape[0] != x.shape[0] or y.is_floating_point() or y.is_complex():
            raise ConfigError(
                f"data tensors: y_{split} must be integer labels, one per sample of x_{split} "
                f"({x.shape[0]}), got shape {tuple(y.shape)} of {y.dtype}"
            )
    if num_classes is None:
        labels = torch.cat([y_train, y_test])
        num_classes = int(labels.max().item()) + 1 if labels.numel() else 0
    return Dataset(
        _float_inputs(x_train.flatten(1)),
        y_train.long(),
        _float_inputs(x_test.flatten(1)),
        y_test.long(),
        int(num_classes),
        name,
        tuple(x_train.shape[1:]),
        {},
    )


def _float_inputs(x: torch.Tensor) -> torch.Tensor:
    """Inputs as floating point: integer pixels become float32 values (not rescaled); floats keep their type."""
    return x if x.is_floating_point() else x.float()


def _read_splits(train: TorchSplit, test: TorchSplit, num_classes: int | None) -> SampleSet:
    """A (train, test) pair of torch Datasets or DataLoaders read into one sample set, once per pair."""
    try:
        known = _READ.get(train)
    except TypeError:  # an object that cannot be weakly referenced is read every time
        known = None
    if known is not None and known[0] is test and known[1] == num_classes:
        return known[2]
    x_train, y_train = _read_split(train, "train")
    x_test, y_test = _read_split(test, "test")
    samples = _from_tensors(x_train, y_train, x_test, y_test, num_classes, "torch")
    shape = "x".join(map(str, x_train.shape[1:]))
    warnings.warn(
        f"read the (train, test) torch data into tensors: {x_train.shape[0]} training and {x_test.shape[0]} test "
        f"samples of shape {shape}",
        stacklevel=3,
    )
    try:
        _READ[train] = (test, num_classes, samples)
    except TypeError:
        pass
    return samples


def _read_split(split: TorchSplit, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and labels of one split: a DataLoader's batches as it gives them, a Dataset's items in order."""
    loader = (
        split
        if isinstance(split, torch.utils.data.DataLoader)
        else torch.utils.data.DataLoader(split, batch_size=_READ_BATCH, shuffle=False)
    )
    xs, ys = [], []
    try:
        for batch in loader:
            x, y = _input_and_label(batch, name)
            xs.append(x)
            ys.append(y)
    except (TypeError, RuntimeError) as exc:  # what torch's collation raises for items it cannot stack
        raise ConfigError(
            f"data: the {name} split's items must be (input, label) pairs of tensors, arrays or numbers "
            f"(a transform such as torchvision's ToTensor makes tensors of images); reading them failed: {exc}"
        ) from None
    if not xs:
        raise ConfigError(f"data: the {name} split holds no samples")
    return torch.cat(xs), torch.cat(ys)


def _input_and_label(batch: object, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise ConfigError(f"data: the {name} split must give (input, label) pairs, got {type(batch).__name__}")
    x, y = (torch.as_tensor(v) for v in batch[:2])
    return x.detach().cpu(), y.detach().cpu().reshape(-1)


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
