"""Atomic file writes: a temporary file in the same folder, then a rename, so a reader never sees half a file.

A write that the operating system refuses (a read-only place, a file where a folder belongs, a full disk) raises
:class:`~netdyn.errors.StorageError` naming the path, and leaves no temporary file behind.
:func:`check_writable_folder` asks the same question before any work is done, so that a long computation is not
lost to a folder it cannot be saved in.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from netdyn.errors import StorageError


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on failure it is removed."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise _storage_error(path, exc) from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)  # mkstemp's files are owner-only; results should read like any new file
        os.replace(tmp_path, path)
    except StorageError:
        tmp_path.unlink(missing_ok=True)
        raise
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        raise _storage_error(path, exc) from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _storage_error(path: Path, exc: OSError) -> StorageError:
    blocker = file_in_the_way(path.parent)
    if blocker is not None:
        return StorageError(f"cannot write {path}: {blocker} is a file, not a folder")
    return StorageError(f"cannot write {path}: {exc.strerror or exc}")


def file_in_the_way(folder: str | os.PathLike) -> Path | None:
    """The first existing component of ``folder`` (or ``folder`` itself) that is not a folder, if any."""
    folder = Path(folder)
    for part in (*reversed(folder.parents), folder):
        if part.exists() and not part.is_dir():
            return part
    return None


def check_writable_folder(path: str | os.PathLike, what: str = "folder") -> Path:
    """Raise :class:`~netdyn.errors.StorageError` unless ``path`` is a folder netdyn can write into, or one it
    can create: not a file, not under a file, and its nearest existing folder writable. Nothing is created.

    Writability is the operating system's answer (``os.access``), which also says no for a read-only mount;
    a disk that fills up during the work is reported when a write fails."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise StorageError(f"the {what} {path} is a file, not a folder")
    blocker = file_in_the_way(path.parent)
    if blocker is not None:
        raise StorageError(f"the {what} {path} lies under {blocker}, which is a file")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        if existing == path:
            raise StorageError(f"the {what} {path} is read-only: nothing can be written there")
        raise StorageError(f"cannot create the {what} {path}: {existing} is read-only")
    return path


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces ``path`` when the block ends without error; on error, no trace."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        yield f


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically (numpy and torch scalars, tuples, sets and paths allowed)."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON values: dict keys as strings, tuples as lists, numpy and torch scalars as Python
    numbers, and non-finite floats as None (JSON has no NaN); anything else is left as it is."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def write_parquet(path: str | os.PathLike, df: Any) -> Path:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
    return Path(path)
