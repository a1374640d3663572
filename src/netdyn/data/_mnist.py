"""MNIST and Fashion-MNIST from IDX files: where to look, how to check them, and the opt-in download."""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from netdyn.data.idx import read_idx
from netdyn.errors import ConfigError, DatasetError

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
TEST_FILES = ("test_images", "test_labels")

MD5 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
FASHION_MNIST_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
)
MIRRORS = {"mnist": MNIST_MIRRORS, "fashion-mnist": FASHION_MNIST_MIRRORS}
MIRROR_ENV = {"mnist": "NETDYN_MNIST_MIRROR", "fashion-mnist": "NETDYN_FASHION_MNIST_MIRROR"}
DEBIAN_PACKAGE = "dataset-fashion-mnist"
NUM_CLASSES = 10
DOWNLOAD_TIMEOUT_S = 60


def cache_folder(name: str) -> Path:
    """Where downloads go without ``root``: ``$XDG_CACHE_HOME/netdyn/<name>`` (default ~/.cache)."""
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "netdyn" / name


def debian_folder() -> Path | None:
    """The folder of Debian's ``dataset-fashion-mnist`` package, or None (not installed, or no dpkg)."""
    try:
        listing = subprocess.run(
            ["dpkg", "-L", DEBIAN_PACKAGE], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if listing.returncode != 0:
        return None
    wanted = {FILES["train_images"], FILES["train_images"] + ".gz"}
    for line in listing.stdout.splitlines():
        path = Path(line.strip())
        if path.name in wanted and path.is_file():
            return path.parent
    return None


def search_folders(name: str, root: Path | None) -> list[Path]:
    """The folders searched, in order: only ``root`` when given; else $NETDYN_DATA/<name>, Debian's
    package (fashion-mnist), the download cache."""
    if root is not None:
        return [root]
    folders = []
    if os.environ.get("NETDYN_DATA"):
        folders.append(Path(os.environ["NETDYN_DATA"]).expanduser() / name)
    if name == "fashion-mnist":
        debian = debian_folder()
        if debian is not None:
            folders.append(debian)
    folders.append(cache_folder(name))
    return folders


def find_file(folder: Path, base: str) -> Path | None:
    for path in (folder / base, folder / f"{base}.gz"):
        if path.is_file():
            return path
    return None


def find_files(folder: Path, keys: Sequence[str] = tuple(FILES)) -> dict[str, Path] | None:
    """The files of ``keys`` in ``folder`` (raw or .gz), or None if any is missing."""
    found = {}
    for key in keys:
        path = find_file(folder, FILES[key])
        if path is None:
            return None
        found[key] = path
    return found


def locate(name: str, root: Path | None = None, keys: Sequence[str] = tuple(FILES)) -> dict[str, Path] | None:
    """The files of the first searched folder that holds all of ``keys``; None if no folder does."""
    for folder in search_folders(name, root):
        found = find_files(folder, keys)
        if found is not None:
            return found
    return None


def missing_files_message(name: str, root: Path | None) -> str:
    """Which files are missing where, and how to get them."""
    details = []
    training_missing = True
    for folder in search_folders(name, root):
        missing = [f"{FILES[key]}[.gz]" for key in FILES if find_file(folder, FILES[key]) is None]
        training_missing &= any(m.startswith("train-") for m in missing)
        where = "does not exist" if not folder.is_dir() else "lacks " + ", ".join(missing)
        details.append(f"{folder} {where}")
    target = root if root is not None else cache_folder(name)
    what = "the training files are missing" if training_missing else "IDX files are missing"
    return (
        f"{name}: {what}: {'; '.join(details)}. Get them with load_dataset({name!r}, download=True) "
        f"(command line: netdyn datasets --download {name}), which saves them in {target}, or put the "
        f"four files ({', '.join(FILES.values())}, raw or .gz) in a folder given as root= or in "
        f"$NETDYN_DATA/{name}"
    )


def read_images(path: Path) -> np.ndarray:
    images = read_idx(path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise DatasetError(
            f"{path}: expected uint8 images [n, rows, cols] (magic 0x00000803), found {images.dtype} "
            f"with shape {images.shape}"
        )
    if images.shape[0] == 0 or images.shape[1] == 0 or images.shape[2] == 0:
        raise DatasetError(f"{path}: holds no images (shape {images.shape}); the file is empty or damaged")
    return images


def read_labels(path: Path) -> np.ndarray:
    labels = read_idx(path)
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DatasetError(
            f"{path}: expected uint8 labels [n] (magic 0x00000801), found {labels.dtype} "
            f"with shape {labels.shape}"
        )
    if labels.size == 0:
        raise DatasetError(f"{path}: holds no labels (0 samples); the file is empty or damaged")
    if labels.max() >= NUM_CLASSES:
        raise DatasetError(f"{path}: label {int(labels.max())} is out of range 0..{NUM_CLASSES - 1}")
    return labels


def read_split(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_images(images_path), read_labels(labels_path)
    if len(images) != len(labels):
        raise DatasetError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels"
        )
    return images, labels


def read_all(files: dict[str, Path]) -> tuple[np.ndarray, ...]:
    """Parse and cross-check the four files: (train images, train labels, test images, test labels)."""
    x_train, y_train = read_split(files["train_images"], files["train_labels"])
    x_test, y_test = read_split(files["test_images"], files["test_labels"])
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DatasetError(
            f"{files['train_images']} holds {x_train.shape[1]}x{x_train.shape[2]} images but "
            f"{files['test_images']} holds {x_test.shape[1]}x{x_test.shape[2]}"
        )
    return x_train, y_train, x_test, y_test


def resolve_mirrors(name: str, mirrors: str | Sequence[str] | None) -> tuple[str, ...]:
    """Mirror base URLs: the ``mirrors`` argument, else the environment variable, else the built-in list."""
    if mirrors is None:
        env = os.environ.get(MIRROR_ENV[name], "").strip()
        mirrors = re.split(r"[\s,]+", env) if env else MIRRORS[name]
    elif isinstance(mirrors, str):
        mirrors = [mirrors]
    resolved = tuple(str(m) for m in mirrors if str(m))
    if not resolved:
        raise ConfigError(f"{name}: no download mirror given")
    return resolved


def download(
    name: str, folder: Path, mirrors: str | Sequence[str] | None = None, checksums: dict[str, str] | None = None
) -> None:
    """Fetch the ``.gz`` files missing from ``folder``, verify their MD5s, and move them in all at once.

    Either every missing file arrives verified or none does: on any failure the partial downloads are
    deleted (and the folder too, if this call created it and it stayed empty).
    """
    urls = resolve_mirrors(name, mirrors)
    table = MD5[name] if checksums is None else dict(checksums)
    wanted = [FILES[key] + ".gz" for key in FILES if find_file(folder, FILES[key]) is None]
    unknown = [file for file in wanted if file not in table]
    if unknown:
        raise ConfigError(f"{name}: no checksum given for {', '.join(unknown)}")

    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    fetched: dict[Path, Path] = {}
    try:
        for file in wanted:
            fetched[folder / file] = _fetch_verified(file, urls, table[file], folder)
        for destination, temporary in fetched.items():
            os.replace(temporary, destination)
    except BaseException:
        for temporary in fetched.values():
            temporary.unlink(missing_ok=True)
        if created and not any(folder.iterdir()):
            folder.rmdir()
        raise


def _fetch_verified(file: str, mirrors: tuple[str, ...], expected_md5: str, folder: Path) -> Path:
    """Download ``file`` from the first mirror that serves it with the right MD5; returns the temporary."""
    failures = []
    for base in mirrors:
        url = base.rstrip("/") + "/" + file
        fd, name = tempfile.mkstemp(dir=folder, prefix=f".{file}.", suffix=".part")
        temporary = Path(name)
        try:
            md5 = hashlib.md5()
            with (
                os.fdopen(fd, "wb") as out,
                urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response,
            ):
                while chunk := response.read(1 << 20):
                    md5.update(chunk)
                    out.write(chunk)
            if md5.hexdigest() != expected_md5.lower():
                raise _ChecksumMismatch(f"md5 {md5.hexdigest()} instead of the expected {expected_md5}")
            os.chmod(temporary, 0o644)
            return temporary
        except (
            _ChecksumMismatch,
            urllib.error.URLError,
            http.client.HTTPException,
            OSError,
            ValueError,
        ) as err:
            temporary.unlink(missing_ok=True)
            reason = getattr(err, "reason", None) or err
            failures.append(f"{url}: {reason}")
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    raise DatasetError(f"could not download {file} ({'; '.join(failures)}); nothing was saved in {folder}")


class _ChecksumMismatch(Exception):
    pass
