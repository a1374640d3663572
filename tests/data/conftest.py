"""Fixtures of the data tests: an isolated download cache, and small synthetic IDX folders."""

import os
from pathlib import Path

import numpy as np
import pytest

from netdyn.data import write_idx

IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@pytest.fixture(autouse=True)
def _isolated_cache(monkeypatch, tmp_path):
    """No test reads or fills the real ~/.cache/netdyn, nor follows a mirror set in the environment."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("NETDYN_MNIST_MIRROR", raising=False)
    monkeypatch.delenv("NETDYN_FASHION_MNIST_MIRROR", raising=False)


@pytest.fixture
def empty_netdyn_data(monkeypatch, tmp_path):
    """NETDYN_DATA pointing at an empty folder: no official MNIST file anywhere."""
    folder = tmp_path / "netdyn-data"
    folder.mkdir()
    monkeypatch.setenv("NETDYN_DATA", str(folder))
    return folder


@pytest.fixture
def official_mnist_test():
    """The folder of the official MNIST test files from $NETDYN_DATA/mnist, or skip."""
    base = os.environ.get("NETDYN_DATA")
    if not base:
        pytest.skip("NETDYN_DATA is not set: the official MNIST test set is not available here")
    folder = Path(base) / "mnist"
    names = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    if not all((folder / n).is_file() or (folder / f"{n}.gz").is_file() for n in names):
        pytest.skip(f"$NETDYN_DATA/mnist ({folder}) does not hold the official MNIST test files")
    return folder


def synthetic_mnist(n_train=60, n_test=30, rows=4, cols=3, seed=0):
    """Random uint8 images and labels 0..9 (each class present), as the four IDX arrays."""
    rng = np.random.default_rng(seed)

    def split(n):
        labels = (np.arange(n) % 10).astype(np.uint8)
        rng.shuffle(labels)
        return rng.integers(0, 256, size=(n, rows, cols), dtype=np.uint8), labels

    (x_train, y_train), (x_test, y_test) = split(n_train), split(n_test)
    return {"train_images": x_train, "train_labels": y_train, "test_images": x_test, "test_labels": y_test}


@pytest.fixture
def write_mnist_folder():
    """Write the four IDX files of `synthetic_mnist` (or given arrays) into a folder; returns the arrays."""

    def write(folder: Path, arrays=None, gz=True, skip=()):
        arrays = synthetic_mnist() if arrays is None else arrays
        for key, array in arrays.items():
            if key not in skip:
                write_idx(Path(folder) / (IDX_NAMES[key] + (".gz" if gz else "")), array)
        return arrays

    return write
