"""Degenerate data files: IDX files that hold zero samples or zero-sized images, and headers that claim more bytes
than any file holds. Each is a DatasetError naming the file, and one line with exit status 1 on the command line,
before anything is trained."""

import gzip

import pytest

from netdyn import DatasetError
from netdyn.cli import main
from netdyn.data import load_dataset, read_idx, write_idx

IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def _lines(text):
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize(
    "emptied, words",
    [
        ({"train_images": lambda a: a[:0], "train_labels": lambda a: a[:0]}, "holds no images"),
        ({"test_images": lambda a: a[:0], "test_labels": lambda a: a[:0]}, "holds no images"),
        ({"train_images": lambda a: a[:, :0, :0]}, "holds no images"),
    ],
    ids=["train split empty", "test split empty", "images of 0x0 pixels"],
)
def test_an_idx_file_without_samples_is_a_dataset_error_naming_it(tmp_path, write_mnist_folder, emptied, words):
    """Image and label counts agree (so the companion check passes), but there is nothing to learn from."""
    arrays = write_mnist_folder(tmp_path)
    for key, cut in emptied.items():
        write_idx(tmp_path / (IDX_NAMES[key] + ".gz"), cut(arrays[key]))
    with pytest.raises(DatasetError, match=words) as info:
        load_dataset("mnist", root=tmp_path)
    first = next(k for k in IDX_NAMES if k in emptied and "images" in k)
    assert IDX_NAMES[first] in str(info.value) and len(str(info.value).splitlines()) == 1


def test_an_empty_label_file_is_named(tmp_path, write_mnist_folder):
    arrays = write_mnist_folder(tmp_path)
    write_idx(tmp_path / (IDX_NAMES["test_labels"] + ".gz"), arrays["test_labels"][:0])
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte.gz: holds no labels"):
        load_dataset("mnist", root=tmp_path)


def test_zero_sample_files_on_the_command_line_are_one_line_before_training(tmp_path, write_mnist_folder, capsys,
                                                                           monkeypatch):
    arrays = write_mnist_folder(tmp_path / "data")
    for key in ("train_images", "train_labels"):
        write_idx(tmp_path / "data" / (IDX_NAMES[key] + ".gz"), arrays[key][:0])

    def trip(*args, **kwargs):
        raise AssertionError("training started on an empty data set")

    monkeypatch.setattr("netdyn.training.loop.train", trip)
    argv = ["train", "--dataset", "mnist", "--data-root", str(tmp_path / "data"), "--steps", "2", "--quiet",
            "--out", str(tmp_path / "run")]
    assert main(argv) == 1
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and "holds no images" in err[0] and "train-images-idx3-ubyte" in err[0]
    assert not (tmp_path / "run").exists()


def test_a_header_claiming_more_than_any_file_holds_is_truncated_not_an_overflow(tmp_path):
    # four dimensions of 2**32 - 1: their product overflows int64, so a wrapped count could look plausible
    header = bytes([0, 0, 0x08, 4]) + (2**32 - 1).to_bytes(4, "big") * 4
    path = tmp_path / "huge-idx4-ubyte.gz"
    path.write_bytes(gzip.compress(header + b"\x00" * 16))
    with pytest.raises(DatasetError, match="truncated"):
        read_idx(path)
