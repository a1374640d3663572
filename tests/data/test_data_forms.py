"""Data in the forms researchers hold it: NumPy arrays, torch Datasets and DataLoaders, .npz files, and data sets
that installed packages declare in the ``netdyn.datasets`` entry-point group."""

import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import netdyn
from netdyn.data import DataSpec, list_datasets, load_dataset
from netdyn.data.samples import as_samples
from netdyn.errors import ConfigError, DatasetError


def _arrays(seed=0, n_train=60, n_test=30, shape=(1, 4, 4), classes=3):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(n_train, *shape)),
        rng.integers(0, classes, n_train),
        rng.normal(size=(n_test, *shape)),
        rng.integers(0, classes, n_test),
    )


def _conv_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))


# ---------------------------------------------------------------- arrays and torch data sets


def test_numpy_arrays_give_what_the_same_tensors_give():
    arrays = _arrays()
    tensors = tuple(torch.from_numpy(a) for a in arrays)
    from_numpy, from_torch = as_samples(arrays), as_samples((tensors[0].float(), tensors[1], tensors[2].float(),
                                                             tensors[3]))
    assert from_numpy.x_train.dtype == torch.float32 and from_numpy.y_train.dtype == torch.int64
    assert from_numpy.input_shape == (1, 4, 4) and from_numpy.num_classes == from_torch.num_classes
    for key in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(from_numpy, key), getattr(from_torch, key))
    net = _conv_net()
    pd.testing.assert_frame_equal(netdyn.network_accuracy(net, arrays), netdyn.network_accuracy(net, from_torch))


def test_torch_datasets_and_loaders_are_read_once_with_a_note():
    x_train, y_train, x_test, y_test = (torch.from_numpy(a) for a in _arrays())
    train = TensorDataset(x_train.float(), y_train)
    test = DataLoader(TensorDataset(x_test.float(), y_test), batch_size=7)  # batches as the loader gives them
    with pytest.warns(UserWarning, match=r"60 training and 30 test samples of shape 1x4x4"):
        samples = as_samples((train, test))
    assert samples.input_shape == (1, 4, 4)  # images keep their shape
    assert torch.equal(samples.x_train, x_train.float().flatten(1)) and torch.equal(samples.y_test, y_test)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same pair again: no second reading, no second note
        assert as_samples((train, test)) is samples
        table = netdyn.network_accuracy(_conv_net(), (train, test))
    assert set(table["split"]) == {"train", "test"}


def test_data_in_no_known_form_is_one_clear_error():
    with pytest.raises(ConfigError, match="NumPy arrays.*got tuple of list, list"):
        as_samples(([1.0], [0]))
    with pytest.raises(ConfigError, match="must hold numbers"):
        as_samples((np.array(["a"]), np.array([0]), np.array(["b"]), np.array([0])))

    class Words(torch.utils.data.Dataset):  # items torch cannot stack, such as images without a transform
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return object(), i

    with pytest.raises(ConfigError, match="the train split's items must be"):
        as_samples((Words(), Words()))


# ---------------------------------------------------------------- .npz files


def _write_npz(path, seed=0, **extra):
    x_train, y_train, x_test, y_test = _arrays(seed)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, **extra)
    return path


def test_an_npz_file_is_recorded_by_name_and_hash_and_found_again(tmp_path, monkeypatch):
    folder = tmp_path / "somewhere"
    folder.mkdir()
    path = _write_npz(folder / "mine.npz", num_classes=5)
    data = load_dataset(str(path), train_size=30, seed=1)
    assert data.name == "mine.npz" and data.num_classes == 5 and data.input_shape == (1, 4, 4)
    spec = DataSpec.of(data)
    assert spec.name == "mine.npz" and len(spec.options["sha256"]) == 64
    assert str(folder) not in json.dumps(spec.to_dict())  # no machine path in what a run records
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NETDYN_DATA", raising=False)
    with pytest.raises(DatasetError, match=f"mine.npz \\(SHA-256 {spec.options['sha256']}\\) is not here"):
        spec.load()
    again = spec.load(root=folder)
    assert torch.equal(again.x_train, data.x_train) and torch.equal(again.y_test, data.y_test)
    monkeypatch.setenv("NETDYN_DATA", str(folder))  # resolved like the other data roots
    assert torch.equal(spec.load().x_test, data.x_test)
    _write_npz(path, seed=2)
    with pytest.raises(DatasetError, match=f"mine.npz: .* not the recorded {spec.options['sha256']}: the file changed"):
        spec.load()


def test_a_bad_npz_file_names_what_is_wrong(tmp_path):
    np.savez(tmp_path / "half.npz", x_train=np.zeros((3, 2)), y_train=np.zeros(3, dtype=int))
    with pytest.raises(DatasetError, match="half.npz: missing array\\(s\\) x_test, y_test"):
        load_dataset(str(tmp_path / "half.npz"))
    _write_npz(tmp_path / "few.npz", num_classes=2)
    with pytest.raises(DatasetError, match="few.npz: labels run 0..2, outside 0..1"):
        load_dataset(str(tmp_path / "few.npz"))


# ---------------------------------------------------------------- installed packages (entry points)

PACKAGE = '''
import numpy as np


def make(n_features=5, seed=0):
    rng = np.random.default_rng(seed)
    centres = 3 * rng.normal(size=(3, n_features))
    y_train, y_test = np.arange(90) % 3, np.arange(45) % 3
    x_train = centres[y_train] + rng.normal(size=(90, n_features))
    x_test = centres[y_test] + rng.normal(size=(45, n_features))
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test, "num_classes": 3}
'''


@pytest.fixture
def installed_set(tmp_path, monkeypatch):
    """A tiny distribution, ``toy-sets``, as pip installs one into a target folder: the package and a dist-info
    declaring ``toy_blobs = toy_sets:make`` in the ``netdyn.datasets`` group; the folder is on sys.path here and
    on PYTHONPATH for the processes this one starts."""
    site = tmp_path / "site"
    (site / "toy_sets").mkdir(parents=True)
    (site / "toy_sets" / "__init__.py").write_text(textwrap.dedent(PACKAGE))
    info = site / "toy_sets-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-sets\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[netdyn.datasets]\ntoy_blobs = toy_sets:make\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    return site


def test_an_installed_data_set_loads_by_name_here_and_in_a_fresh_process(installed_set):
    data = load_dataset("toy-blobs", n_features=4, test_size=30, seed=3)
    assert data.name == "toy-blobs" and data.n_features == 4 and data.n_test == 30 and data.num_classes == 3
    assert DataSpec.from_dict(data.spec) == DataSpec("toy_blobs", test_size=30, seed=3, options={"n_features": 4})
    row = list_datasets().set_index("name").loc["toy-blobs"]
    assert row["available"] and "toy_sets:make (toy-sets 0.1)" in row["source"]
    with pytest.raises(ConfigError, match="unknown option\\(s\\) width"):
        load_dataset("toy-blobs", width=3)
    # a worker process (a process pool's, a Ray worker's) finds the set through the environment alone
    script = (
        "import json, sys; from netdyn.data import DataSpec; "
        "d = DataSpec.from_dict(json.loads(sys.argv[1])).load(); print(float(d.x_train.sum()))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(data.spec)], capture_output=True, text=True, timeout=120, check=True
    )
    assert float(done.stdout) == pytest.approx(float(data.x_train.sum()), rel=1e-6)


# ---------------------------------------------------------------- the command line

TRAIN = ["train", "--width", "8", "--depth", "2", "--epochs", "1", "--batch-size", "30", "--eval-every", "log:2",
         "--checkpoint-every", "log:2", "-q"]


def test_netdyn_train_on_an_npz_file_and_analyze_the_run(tmp_path, monkeypatch, capsys):
    from netdyn.cli import main

    (tmp_path / "data").mkdir()
    _write_npz(tmp_path / "data" / "mine.npz")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NETDYN_DATA", raising=False)
    assert main([*TRAIN, "--dataset", "data/mine.npz", "--out", "run"]) == 0
    record = (tmp_path / "run" / "config.json").read_text()
    assert '"name": "mine.npz"' in record and '"sha256": "' in record and "data/mine.npz" not in record
    capsys.readouterr()
    assert main(["analyze", "run", "--no-basins", "--quantities", "lmap", "-q"]) == 1  # not in ., nor NETDYN_DATA
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "mine.npz (SHA-256 " in err and "--data-root" in err
    assert main(["analyze", "run", "--no-basins", "--quantities", "lmap", "-q", "--data-root", "data"]) == 0


def test_netdyn_finds_an_installed_data_set(installed_set, tmp_path, capsys):
    from netdyn.cli import main

    assert main(["datasets"]) == 0
    assert "toy-blobs" in capsys.readouterr().out
    assert main([*TRAIN, "--dataset", "toy_blobs", "--data-option", "n_features=3", "--out", str(tmp_path / "r")]) == 0
    assert main(["analyze", str(tmp_path / "r"), "--no-basins", "--quantities", "lmap", "-q"]) == 0
    assert netdyn.load_run(tmp_path / "r").dataset().n_features == 3
