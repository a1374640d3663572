"""The `Dataset` container, class-stratified sampling and the normalisations."""

from __future__ import annotations

import copy
import numbers
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from netdyn.errors import ConfigError

NORMALIZATIONS = ("unit", "none", "standard")

# Stream tags for the generators of `_split_rng`: the train and test subsets draw independently, so asking
# for a different test size never changes the training subset.
_STREAMS = {"train": 1, "test": 2}


@dataclass(eq=False, repr=False)
class Dataset:
    """A classification data set with a training and a test split, ready for `netdyn.train` and the analysis.

    The inputs are flattened (``input_shape`` keeps the original shape, e.g. ``(28, 28)``); ``spec`` holds the
    keyword arguments with which ``load_dataset(**spec)`` rebuilds exactly these tensors, which is what a run
    folder's ``config.json`` records.
    """

    x_train: torch.Tensor
    """Training inputs, float32 [P_train, d] on the CPU."""
    y_train: torch.Tensor
    """Training labels, int64 [P_train], values in 0..num_classes-1."""
    x_test: torch.Tensor
    """Test inputs, float32 [P_test, d]."""
    y_test: torch.Tensor
    """Test labels, int64 [P_test]."""
    num_classes: int
    """Number of classes C (also when a small subset misses some)."""
    name: str
    """The registry name, e.g. ``"mnist"``."""
    input_shape: tuple[int, ...]
    """Shape of one sample before flattening, e.g. ``(28, 28)`` for images or ``(d,)``."""
    spec: dict = field(default_factory=dict)
    """Keyword arguments of `load_dataset` that rebuild this data set (empty for hand-made ones)."""

    @property
    def n_features(self) -> int:
        """Input dimension d (784 for MNIST)."""
        return int(self.x_train.shape[1])

    @property
    def n_train(self) -> int:
        """Number of training samples."""
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        """Number of test samples."""
        return int(self.x_test.shape[0])

    def __repr__(self) -> str:
        normalize = self.spec.get("normalize")
        extra = f", normalize={normalize!r}" if normalize is not None else ""
        return (
            f"Dataset({self.name!r}, n_train={self.n_train}, n_test={self.n_test}, "
            f"n_features={self.n_features}, num_classes={self.num_classes}{extra})"
        )

    def _repr_html_(self) -> str:
        from netdyn._html import block, grayscale_strip, png_img

        meta = {"name": self.name, "train samples": self.n_train, "test samples": self.n_test,
                "input shape": " x ".join(map(str, self.input_shape)), "classes": self.num_classes}
        if self.spec:
            meta["spec"] = self.spec
        counts = {split: np.bincount(y.numpy(), minlength=self.num_classes)
                  for split, y in (("train", self.y_train), ("test", self.y_test))}
        table = pd.DataFrame({"class": np.arange(self.num_classes), **counts})
        images = []
        shape = tuple(d for d in self.input_shape if d != 1)
        if len(shape) == 2 and self.n_train:
            first = self.x_train[:10].reshape(-1, *shape).numpy()
            width = 2 * len(first) * (shape[1] + 1)
            images.append(png_img(grayscale_strip(first), "the first training samples", width=width))
        return block(f"netdyn Dataset {self.name}", meta, [("samples per class", table)], images,
                     max_rows=self.num_classes)

    def subset(self, train_size: int | None = None, test_size: int | None = None, seed: int = 0) -> Dataset:
        """A class-stratified, seeded subset of either split (None keeps a split whole).

        Each class keeps its share of the split (largest-remainder rounding) and the chosen samples keep their
        order. The rows are selected as they are, already normalised. The new ``spec`` records the selection,
        so ``load_dataset(**subset.spec)`` rebuilds the subset.
        """
        train_size = check_size("train_size", train_size)
        test_size = check_size("test_size", test_size)
        seed = check_seed(seed)
        train_index = _as_index(
            select_subset(self.y_train, train_size, seed, "train", self.num_classes, self.name)
        )
        test_index = _as_index(
            select_subset(self.y_test, test_size, seed, "test", self.num_classes, self.name)
        )
        spec = copy.deepcopy(self.spec)
        if spec:
            spec["subsets"] = [
                *spec.get("subsets", []),
                {"train_size": train_size, "test_size": test_size, "seed": seed},
            ]
        return Dataset(
            x_train=self.x_train[train_index],
            y_train=self.y_train[train_index],
            x_test=self.x_test[test_index],
            y_test=self.y_test[test_index],
            num_classes=self.num_classes,
            name=self.name,
            input_shape=tuple(self.input_shape),
            spec=spec,
        )


def _as_index(index: slice | np.ndarray) -> slice | torch.Tensor:
    return index if isinstance(index, slice) else torch.from_numpy(index)


def check_size(what: str, size: object) -> int | None:
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
        raise ConfigError(f"{what} must be a positive integer or None, got {size!r}")
    return int(size)


def check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def allocate(counts: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` over groups in proportion to ``counts``, rounding by largest remainder.

    Exact integer arithmetic; remainders that tie go to the lower group index, so the result is deterministic.
    """
    counts = np.asarray(counts, dtype=np.int64)
    available = int(counts.sum())
    if total > available:
        raise ValueError(f"cannot take {total} of {available}")
    if available == 0:
        return np.zeros_like(counts)
    quotas, remainders = np.divmod(counts * total, available)
    extra = total - int(quotas.sum())
    order = np.argsort(-remainders, kind="stable")
    quotas[order[:extra]] += 1
    return quotas


def split_rng(seed: int, split: str) -> np.random.Generator:
    return np.random.default_rng([seed, _STREAMS[split]])


def stratified_indices(y: np.ndarray, size: int, rng: np.random.Generator, num_classes: int) -> np.ndarray:
    """Indices of a class-stratified random subset of ``size`` samples, in their original order."""
    counts = np.bincount(y, minlength=num_classes)
    chosen = []
    for label, n_take in enumerate(allocate(counts, size)):
        members = np.flatnonzero(y == label)
        chosen.append(rng.permutation(members)[:n_take])
    return np.sort(np.concatenate(chosen))


def stratified_split(
    y: np.ndarray, size_a: int, size_b: int, rng: np.random.Generator, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint class-stratified random subsets of a pool (e.g. train and held-out test), in pool order.

    Part a takes its classes' shares of the pool; part b takes its shares of what is left.
    """
    counts = np.bincount(y, minlength=num_classes)
    take_a = allocate(counts, size_a)
    take_b = allocate(counts - take_a, size_b)
    part_a, part_b = [], []
    for label in range(num_classes):
        members = rng.permutation(np.flatnonzero(y == label))
        part_a.append(members[: take_a[label]])
        part_b.append(members[take_a[label] : take_a[label] + take_b[label]])
    return np.sort(np.concatenate(part_a)), np.sort(np.concatenate(part_b))


def select_subset(
    y: torch.Tensor | np.ndarray, size: int | None, seed: int, split: str, num_classes: int, name: str
) -> slice | np.ndarray:
    """Indices (numpy) of the stratified subset of one split, or ``slice(None)`` for the whole split."""
    labels = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if size is None or size == len(labels):
        return slice(None)
    if size > len(labels):
        raise ConfigError(
            f"{split}_size={size} is larger than the {len(labels)} {split} samples available in {name!r}"
        )
    return stratified_indices(labels, size, split_rng(seed, split), num_classes)


def normalize_inputs(x_train: np.ndarray, x_test: np.ndarray, how: str) -> tuple[np.ndarray, np.ndarray]:
    """Apply one of `NORMALIZATIONS` to both splits (statistics of ``"standard"`` from the training split)."""
    if how == "none":
        return x_train, x_test
    if how == "unit":
        return _unit_rows(x_train), _unit_rows(x_test)
    if how == "standard":
        # scikit-learn's scaler: population std, and scale 1 for features that are constant on the training
        # set (also those constant up to rounding, which a plain `std == 0` test would blow up).
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(x_train)
        return scaler.transform(x_train), scaler.transform(x_test)
    raise ConfigError(f"normalize must be one of {', '.join(map(repr, NORMALIZATIONS))}; got {how!r}")


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1)  # zero vectors stay zero
