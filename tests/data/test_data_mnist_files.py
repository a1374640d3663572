"""MNIST-format data sets from folders of IDX files, and the opt-in download from a loopback server."""

import functools
import gzip
import hashlib
import http.server
import threading

import numpy as np
import pytest
import torch

from netdyn import DatasetError
from netdyn.data import list_datasets, load_dataset, read_idx, write_idx

GZ_NAMES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
@pytest.mark.parametrize("gz", [True, False])
def test_loads_a_root_folder_of_idx_files(tmp_path, write_mnist_folder, name, gz):
    arrays = write_mnist_folder(tmp_path, gz=gz)
    data = load_dataset(name, root=tmp_path, normalize="none")
    assert data.name == name and data.num_classes == 10 and data.input_shape == (4, 3)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    # pixel values scaled to [0, 1], files' order kept
    expected = torch.from_numpy(arrays["train_images"].reshape(60, 12).astype(np.float32) / 255)
    assert torch.equal(data.x_train, expected)
    assert data.y_test.tolist() == arrays["test_labels"].tolist()
    assert data.spec["root"] == str(tmp_path.resolve())


def test_found_through_netdyn_data_and_unit_norm_keeps_zero_images(tmp_path, monkeypatch, write_mnist_folder):
    arrays = write_mnist_folder(tmp_path / "mnist")
    arrays["train_images"][5] = 0
    write_idx(tmp_path / "mnist" / "train-images-idx3-ubyte.gz", arrays["train_images"])
    monkeypatch.setenv("NETDYN_DATA", str(tmp_path))
    data = load_dataset("mnist")
    norms = data.x_train.norm(dim=1)
    assert norms[5] == 0
    assert torch.allclose(torch.cat([norms[:5], norms[6:]]), torch.ones(59), atol=1e-6)
    row = list_datasets().set_index("name").loc["mnist"]
    assert row.available and str(tmp_path / "mnist") in row.source and row.how_to_get == ""


def test_missing_training_files_say_where_and_how(tmp_path, write_mnist_folder, empty_netdyn_data):
    write_mnist_folder(tmp_path, skip=("train_images", "train_labels"))
    with pytest.raises(DatasetError) as err:
        load_dataset("mnist", root=tmp_path)
    message = str(err.value)
    assert "training files are missing" in message and str(tmp_path) in message
    assert "train-images-idx3-ubyte" in message and "download=True" in message
    with pytest.raises(DatasetError, match="--download"):
        load_dataset("mnist")  # nothing in $NETDYN_DATA/mnist nor in the cache
    row = list_datasets().set_index("name").loc["mnist"]
    assert not row.available and "download=True" in row.how_to_get


def test_count_mismatch_names_both_files(tmp_path, write_mnist_folder):
    write_mnist_folder(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(59, dtype=np.uint8))
    with pytest.raises(DatasetError) as err:
        load_dataset("mnist", root=tmp_path)
    message = str(err.value)
    assert "train-images-idx3-ubyte.gz" in message and "train-labels-idx1-ubyte.gz" in message
    assert "60 images" in message and "59 labels" in message


@pytest.mark.parametrize(
    "file, content, match",
    [
        ("t10k-images-idx3-ubyte.gz", "truncate", "truncated"),
        ("train-labels-idx1-ubyte.gz", "magic", "wrong magic number 0x00010801"),
        ("train-labels-idx1-ubyte.gz", "images", "expected uint8 labels"),
        ("t10k-labels-idx1-ubyte.gz", "label 12", "out of range"),
        ("t10k-images-idx3-ubyte.gz", "2-d", "uint8 images"),
    ],
)
def test_corrupt_file_is_named_and_nothing_loads(tmp_path, write_mnist_folder, file, content, match):
    arrays = write_mnist_folder(tmp_path)
    path = tmp_path / file
    if content == "truncate":
        raw = write_idx(tmp_path / "full", arrays["test_images"]).read_bytes()
        path.write_bytes(gzip.compress(raw[:-1]))
    elif content == "magic":
        path.write_bytes(gzip.compress(b"\x00\x01\x08\x01\x00\x00\x00\x3c" + b"\x00" * 60))
    elif content == "images":
        write_idx(path, arrays["train_images"])
    elif content == "label 12":
        labels = arrays["test_labels"].copy()
        labels[0] = 12
        write_idx(path, labels)
    else:
        write_idx(path, arrays["test_images"].reshape(30, 12))
    with pytest.raises(DatasetError, match=match) as err:
        load_dataset("mnist", root=tmp_path)
    assert file in str(err.value)


def test_list_datasets_survives_without_dpkg(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no dpkg on the PATH
    table = list_datasets()
    assert set(table.name) >= {"fashion-mnist", "mnist"}


# ------------------------------------------------------------------------------------------------ download


@pytest.fixture
def mirror(tmp_path, write_mnist_folder):
    """A loopback HTTP server serving small synthetic .gz IDX files; yields (base URL, md5 table, arrays)."""
    served = tmp_path / "served"
    served.mkdir()
    arrays = write_mnist_folder(served)
    md5 = {name: hashlib.md5((served / name).read_bytes()).hexdigest() for name in GZ_NAMES}

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=served))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", md5, arrays
    finally:
        server.shutdown()
        server.server_close()


def test_download_verifies_and_loads(tmp_path, mirror):
    url, md5, arrays = mirror
    root = tmp_path / "downloaded"
    # the first mirror lacks the files (404): the second one serves them
    data = load_dataset(
        "mnist", root=root, download=True, mirrors=[url + "nowhere/", url], checksums=md5, normalize="none"
    )
    assert sorted(p.name for p in root.iterdir()) == sorted(GZ_NAMES)
    assert data.y_train.tolist() == arrays["train_labels"].tolist()
    np.testing.assert_array_equal(read_idx(root / "t10k-images-idx3-ubyte.gz"), arrays["test_images"])
    # present files are not fetched again: loading works with the server unreachable
    again = load_dataset("mnist", root=root, download=True, mirrors=["http://127.0.0.1:9/"], checksums=md5)
    assert again.n_train == 60


def test_download_through_environment_mirror_into_the_cache(tmp_path, mirror, monkeypatch):
    url, md5, _ = mirror
    monkeypatch.setenv("NETDYN_FASHION_MNIST_MIRROR", url)
    data = load_dataset("fashion-mnist", download=True, checksums=md5)
    assert data.n_test == 30
    assert sorted(p.name for p in (tmp_path / "xdg-cache" / "netdyn" / "fashion-mnist").iterdir()) == sorted(
        GZ_NAMES
    )


def test_wrong_checksum_raises_and_leaves_nothing(tmp_path, mirror):
    url, md5, _ = mirror
    wrong = dict(md5, **{"t10k-labels-idx1-ubyte.gz": "0" * 32})
    root = tmp_path / "downloaded"
    with pytest.raises(DatasetError) as err:
        load_dataset("mnist", root=root, download=True, mirrors=[url], checksums=wrong)
    message = str(err.value)
    assert "t10k-labels-idx1-ubyte.gz" in message and "0" * 32 in message
    assert md5["t10k-labels-idx1-ubyte.gz"] in message  # the actual md5
    assert not root.exists()  # not even the other, verified files or an empty folder


def test_real_mnist_checksums_reject_other_files(tmp_path, mirror):
    url, md5, _ = mirror
    with pytest.raises(DatasetError, match="f68b3c2dcbeaaa9fbdd348bbdeb94873"):
        load_dataset("mnist", root=tmp_path / "d", download=True, mirrors=[url])
    assert not (tmp_path / "d").exists()


def test_advertised_download_command_works(tmp_path, mirror, monkeypatch, capsys):
    """The missing-files message tells users to run `netdyn datasets --download NAME`: that command works."""
    from netdyn.cli import main
    from netdyn.data import _mnist

    url, md5, _ = mirror
    monkeypatch.setenv("NETDYN_MNIST_MIRROR", url)
    monkeypatch.setitem(_mnist.MD5, "mnist", md5)  # the served files are small synthetic ones
    with pytest.raises(DatasetError, match="netdyn datasets --download mnist"):
        load_dataset("mnist", root=tmp_path / "here")
    assert main(["datasets", "--download", "mnist", "--data-root", str(tmp_path / "here")]) == 0
    assert "mnist: 60 training and 30 test samples are here" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "here").iterdir()) == sorted(GZ_NAMES)
    assert main(["datasets", "--download", "cifar"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_spec_records_no_machine_path(tmp_path, write_mnist_folder):
    from netdyn.data import DataSpec

    write_mnist_folder(tmp_path)
    data = load_dataset("mnist", root=tmp_path, normalize="none", train_size=20)
    spec = DataSpec.of(data)
    assert str(tmp_path) not in repr(spec.to_dict()) and "root" not in spec.to_dict()
    again = spec.load(root=tmp_path)
    assert torch.equal(again.x_train, data.x_train) and torch.equal(again.y_test, data.y_test)
