"""Reading and writing IDX files, the format of MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions), one big-endian
uint32 per dimension, then the values in C order, big-endian. Files ending in ``.gz`` are gzip-compressed.
The reader checks everything it can (magic number, type code, that the byte count matches the dimensions
exactly) so that a truncated download or a wrong file fails here, with the file's name, rather than later
as a reshape error.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from netdyn._io import atomic_write
from netdyn.errors import ConfigError, DatasetError

__all__ = ["read_idx", "write_idx"]

# IDX type code -> big-endian numpy dtype (LeCun's format description; 0x0A is unassigned).
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_TYPE_CODES: dict[np.dtype, int] = {dtype.newbyteorder("="): code for code, dtype in _IDX_DTYPES.items()}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw or ``.gz``) into a native-endian numpy array of the shape its header gives.

    Raises `DatasetError`, naming the file, when it is missing, unreadable, not IDX (wrong magic number or
    type code), or when its length does not match the header's dimensions exactly (truncated or oversized).
    """
    path = Path(path)
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                content = f.read()
        else:
            content = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise DatasetError(f"{path}: corrupt gzip stream ({err}); the file is truncated or damaged") from None
    except OSError as err:
        raise DatasetError(f"{path}: cannot read the file ({err.strerror or err})") from None

    if len(content) < 4:
        raise DatasetError(
            f"{path}: {len(content)} bytes is too short for an IDX header (4-byte magic number)"
        )
    magic = int.from_bytes(content[:4], "big")
    type_code, ndim = content[2], content[3]
    if content[0] != 0 or content[1] != 0 or type_code not in _IDX_DTYPES or ndim == 0:
        raise DatasetError(
            f"{path}: wrong magic number 0x{magic:08X}, not an IDX file (expected 0x0000TTNN with a type "
            f"code TT in 0x08..0x0E and NN dimensions, e.g. 0x00000801 for labels, 0x00000803 for images)"
        )
    header_bytes = 4 + 4 * ndim
    if len(content) < header_bytes:
        raise DatasetError(
            f"{path}: truncated header: {ndim} dimensions need {header_bytes} bytes, "
            f"the file has {len(content)}"
        )
    shape = tuple(int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = _IDX_DTYPES[type_code]
    expected = header_bytes + math.prod(shape) * dtype.itemsize  # exact: a damaged header may claim 2**128 bytes
    if len(content) != expected:
        what = "truncated" if len(content) < expected else "oversized"
        raise DatasetError(
            f"{path}: {what} file: the header's dimensions {shape} ({dtype.newbyteorder('=').name}) need "
            f"{expected} bytes, found {len(content)}"
            + (" (after decompression)" if path.name.endswith(".gz") else "")
        )
    values = np.frombuffer(content, dtype=dtype, offset=header_bytes)
    return values.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def write_idx(path: str | os.PathLike, array: ArrayLike) -> Path:
    """Write ``array`` as an IDX file (gzip-compressed when ``path`` ends in ``.gz``); returns the path.

    Supported dtypes: uint8, int8, int16, int32, float32, float64 (convert others first, e.g. int64 labels
    with ``.astype(np.uint8)``). The write is atomic (a temporary file in the same folder, then a rename),
    and the gzip stream carries no timestamp, so the same array always gives the same bytes.
    """
    path = Path(path)
    array = np.asarray(array)
    dtype = array.dtype.newbyteorder("=")
    if dtype not in _TYPE_CODES:
        supported = ", ".join(d.name for d in _TYPE_CODES)
        raise ConfigError(f"write_idx: dtype {array.dtype} has no IDX type code; use one of {supported}")
    if not 1 <= array.ndim <= 255 or any(n >= 2**32 for n in array.shape):
        raise ConfigError(f"write_idx: shape {array.shape} cannot be written as IDX (1..255 dims < 2**32)")
    header = bytes([0, 0, _TYPE_CODES[dtype], array.ndim]) + b"".join(
        n.to_bytes(4, "big") for n in array.shape
    )
    body = np.ascontiguousarray(array, dtype=dtype.newbyteorder(">")).tobytes()

    with atomic_write(path) as raw:
        if path.name.endswith(".gz"):
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as f:
                f.write(header)
                f.write(body)
        else:
            raw.write(header)
            raw.write(body)
    return path
