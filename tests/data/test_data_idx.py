"""IDX reader and writer: round trips, exact bytes, and every corruption named by file."""

import gzip

import numpy as np
import pytest

from netdyn import ConfigError, DatasetError
from netdyn.data import read_idx, write_idx

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip(tmp_path, dtype, suffix):
    rng = np.random.default_rng(1)
    array = (rng.standard_normal((3, 4, 5)) * 100).astype(dtype)
    path = write_idx(tmp_path / f"a-idx3{suffix}", array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == (3, 4, 5)
    np.testing.assert_array_equal(back, array)


def test_exact_bytes_of_a_label_file_and_big_endian_values(tmp_path):
    write_idx(tmp_path / "labels", np.array([7, 2, 1], dtype=np.uint8))
    assert (tmp_path / "labels").read_bytes() == b"\x00\x00\x08\x01\x00\x00\x00\x03\x07\x02\x01"
    write_idx(tmp_path / "shorts", np.array([[258]], dtype=np.int16))
    assert (tmp_path / "shorts").read_bytes() == b"\x00\x00\x0b\x02\x00\x00\x00\x01\x00\x00\x00\x01\x01\x02"
    # gzip without a timestamp: the same array gives the same bytes
    a = write_idx(tmp_path / "x.gz", np.arange(24, dtype=np.uint8).reshape(2, 3, 4)).read_bytes()
    b = write_idx(tmp_path / "x.gz", np.arange(24, dtype=np.uint8).reshape(2, 3, 4)).read_bytes()
    assert a == b and gzip.decompress(a)[:4] == b"\x00\x00\x08\x03"


def test_write_rejects_dtypes_without_a_type_code(tmp_path):
    with pytest.raises(ConfigError, match="int64"):
        write_idx(tmp_path / "y", np.arange(3))
    assert not list(tmp_path.iterdir())


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DatasetError, match="not found") as err:
        read_idx(tmp_path / "nothing-idx1-ubyte.gz")
    assert "nothing-idx1-ubyte.gz" in str(err.value)


@pytest.mark.parametrize(
    "header", [b"\x00\x00\x07\x01", b"\x12\x34\x08\x01", b"\x00\x00\x08\x00", b"\x00\x00"]
)
def test_wrong_magic_number_is_named(tmp_path, header):
    path = tmp_path / "bad-magic"
    path.write_bytes(header + b"\x00\x00\x00\x01\x05")
    with pytest.raises(DatasetError, match="magic|too short") as err:
        read_idx(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_truncated_and_oversized_files_give_expected_and_actual_bytes(tmp_path, suffix):
    body = write_idx(tmp_path / "full", np.zeros((10, 2, 2), dtype=np.uint8)).read_bytes()
    assert len(body) == 16 + 40
    for name, content, what in [("short", body[:-3], "truncated"), ("long", body + b"\x00", "oversized")]:
        path = tmp_path / (name + suffix)
        path.write_bytes(gzip.compress(content) if suffix else content)
        with pytest.raises(DatasetError, match=what) as err:
            read_idx(path)
        message = str(err.value)
        assert str(path) in message and "56" in message and str(len(content)) in message


def test_cut_gzip_stream_is_named(tmp_path):
    data = write_idx(tmp_path / "x.gz", np.arange(4000, dtype=np.int32)).read_bytes()
    path = tmp_path / "cut.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="gzip") as err:
        read_idx(path)
    assert str(path) in str(err.value)


def test_official_mnist_test_labels(official_mnist_test):
    labels = read_idx(next(official_mnist_test.glob("t10k-labels-idx1-ubyte*")))
    assert labels.dtype == np.uint8 and labels.shape == (10000,)
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
