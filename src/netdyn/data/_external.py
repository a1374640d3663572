"""Data sets from outside the registry: a user's ``.npz`` file, and the functions installed packages declare in the
``netdyn.datasets`` entry-point group.

An ``.npz`` file is named by its file name and SHA-256, never by where it lies: it is looked up where the data set is
loaded (``root``, the path as given, ``$NETDYN_DATA``), and a file whose content changed is refused.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from netdyn.data.samples import as_samples
from netdyn.errors import ConfigError, DatasetError

logger = logging.getLogger(__name__)

NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
ENTRY_POINT_GROUP = "netdyn.datasets"

#: What one loader returns before the registry's subsets and normalisation: x_train, y_train, x_test, y_test (inputs
#: [P, ...] as given), num_classes (None: largest label + 1).
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int | None]


def is_npz(name: object) -> bool:
    """Whether a data set name is a ``.npz`` file (by its suffix, whether or not it exists here)."""
    return isinstance(name, str) and name.strip().lower().endswith(".npz")


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def locate_npz(name: str, root: Path | None, sha256: str | None) -> tuple[Path, str]:
    """The file a ``.npz`` name stands for here, and its SHA-256.

    With ``root``, only ``root/<file name>``; else the name as a path (relative to the working folder), then
    ``$NETDYN_DATA/<file name>``. A file found whose SHA-256 is not the recorded ``sha256`` is a DatasetError, as is
    no file at all; both messages name the file and the hash.
    """
    file_name = Path(name).name
    if root is not None:
        candidates = [root / file_name]
    else:
        candidates = [Path(name).expanduser()]
        if os.environ.get("NETDYN_DATA"):
            candidates.append(Path(os.environ["NETDYN_DATA"]).expanduser() / file_name)
    wanted = f" (SHA-256 {sha256})" if sha256 else ""
    for path in candidates:
        if path.is_file():
            found = sha256_of(path)
            if sha256 and found != sha256:
                raise DatasetError(
                    f"{file_name}: {path.resolve()} has SHA-256 {found}, not the recorded {sha256}: the file "
                    "changed since the run used it"
                )
            logger.info("reading %s (SHA-256 %s)", path.resolve(), found)
            return path, found
    places = ", ".join(str(p.parent) for p in candidates)
    raise DatasetError(
        f"{file_name}{wanted} is not here (looked in {places}); pass the folder holding it as --data-root DIR "
        "(root=) or put it in $NETDYN_DATA"
    )


def read_npz(path: Path) -> Arrays:
    """The arrays of an ``.npz`` file: ``x_train, y_train, x_test, y_test`` and an optional ``num_classes``."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in NPZ_ARRAYS if key not in archive.files]
            if missing:
                raise DatasetError(
                    f"{path.name}: missing array(s) {', '.join(missing)} (an .npz data set holds "
                    f"{', '.join(NPZ_ARRAYS)} and optionally num_classes; it has {', '.join(archive.files) or 'none'})"
                )
            arrays = [archive[key] for key in NPZ_ARRAYS]
            num_classes = int(archive["num_classes"]) if "num_classes" in archive.files else None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path.name}: not a readable .npz file ({exc})") from None
    return arrays[0], arrays[1], arrays[2], arrays[3], num_classes


# ---------------------------------------------------------------- installed packages


def entry_points() -> dict[str, metadata.EntryPoint]:
    """The installed data sets by canonical name (lower case, ``-`` for ``_``), read from the environment each call
    so that a package installed after import is found."""
    found = metadata.entry_points(group=ENTRY_POINT_GROUP)
    return {canonical(ep.name): ep for ep in found}


def canonical(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def describe(ep: metadata.EntryPoint) -> str:
    """Where an installed data set comes from: ``module:function (distribution version)``."""
    dist = getattr(ep, "dist", None)
    origin = f" ({dist.name} {dist.version})" if dist is not None else ""
    return f"{ep.value}{origin}"


def check_options(name: str, function: Any, options: Mapping[str, Any]) -> None:
    """An option that an installed data set's function does not take (besides ``seed``) is a ConfigError."""
    parameters = inspect.signature(function).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return
    accepted = [p.name for p in parameters if p.name != "seed" and p.kind is not inspect.Parameter.VAR_POSITIONAL]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(f"{name}: unknown option(s) {', '.join(unknown)} (accepted: {', '.join(accepted) or 'none'})")


def load_function(ep: metadata.EntryPoint) -> Any:
    try:
        function = ep.load()
    except Exception as exc:  # whatever importing a user's package raises, said in one line
        raise DatasetError(f"data set {ep.name!r}: its entry point {ep.value} does not load: {exc}") from None
    if not callable(function):
        raise DatasetError(f"data set {ep.name!r}: its entry point {ep.value} is not a function")
    return function


def call_plugin(ep: metadata.EntryPoint, seed: int, options: Mapping[str, Any]) -> tuple[Arrays, tuple[int, ...]]:
    """Call an installed data set's function (``seed`` passed where it takes one) and read what it returns: the four
    arrays or tensors, a mapping of them (with an optional ``num_classes``), a ``(train, test)`` pair of torch
    Datasets or DataLoaders, or a sample set. Returns the arrays and the shape of one sample."""
    function = load_function(ep)
    logger.info("calling %s for the data set %r", describe(ep), ep.name)
    check_options(canonical(ep.name), function, options)
    if "seed" in inspect.signature(function).parameters:
        options = {**options, "seed": seed}
    data = function(**options)
    num_classes = None
    if isinstance(data, Mapping):
        missing = [key for key in NPZ_ARRAYS if key not in data]
        if missing:
            raise DatasetError(f"data set {ep.name!r}: {ep.value} returned a mapping without {', '.join(missing)}")
        num_classes = data.get("num_classes")
        data = tuple(data[key] for key in NPZ_ARRAYS)
    try:
        samples = as_samples(data, None if num_classes is None else int(num_classes))
    except ConfigError as exc:
        raise DatasetError(f"data set {ep.name!r}: what {ep.value} returned is not a data set: {exc}") from None
    arrays = tuple(getattr(samples, key).detach().cpu().numpy() for key in NPZ_ARRAYS)
    shape = tuple(getattr(samples, "input_shape", None) or arrays[0].shape[1:])
    return (arrays[0], arrays[1], arrays[2], arrays[3], int(samples.num_classes)), shape
