"""Synthetic sets: separability as promised, balanced classes, seeded generation."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from netdyn.data import load_dataset


def linear_train_accuracy(data) -> float:
    model = LogisticRegression(max_iter=2000).fit(data.x_train.numpy(), data.y_train.numpy())
    return model.score(data.x_train.numpy(), data.y_train.numpy())


@pytest.mark.parametrize("normalize", ["unit", "none"])
@pytest.mark.parametrize("options", [{}, {"n_features": 3, "n_classes": 6}])
def test_blobs_are_linearly_separable(normalize, options):
    assert linear_train_accuracy(load_dataset("blobs", normalize=normalize, **options)) > 0.95


@pytest.mark.parametrize("name", ["xor", "rings"])
@pytest.mark.parametrize("options", [{}, {"n_features": 5}])
def test_xor_and_rings_are_not_linearly_separable(name, options):
    assert linear_train_accuracy(load_dataset(name, normalize="none", **options)) < 0.75


@pytest.mark.parametrize("name", ["blobs", "xor", "rings"])
def test_balanced_seeded_and_sized(name):
    np.random.seed(0)
    before = np.random.random()
    np.random.seed(0)
    data = load_dataset(name, train_size=301, test_size=99, n_classes=3, n_features=4, seed=5)
    assert np.random.random() == before  # no global RNG drawn
    for labels, n in ((data.y_train, 301), (data.y_test, 99)):
        counts = torch.bincount(labels, minlength=3)
        assert counts.sum() == n and counts.max() - counts.min() <= 1
    assert data.x_train.shape == (301, 4) and data.input_shape == (4,) and data.num_classes == 3
    same = load_dataset(name, train_size=301, test_size=99, n_classes=3, n_features=4, seed=5)
    assert torch.equal(same.x_train, data.x_train) and torch.equal(same.y_test, data.y_test)
    other = load_dataset(name, train_size=301, test_size=99, n_classes=3, n_features=4, seed=6)
    assert not torch.equal(other.x_train, data.x_train)
    # the training split does not depend on the test size
    fewer_test = load_dataset(name, train_size=301, test_size=7, n_classes=3, n_features=4, seed=5)
    assert torch.equal(fewer_test.x_train, data.x_train)


def test_xor_labels_are_the_parity_of_the_signs():
    data = load_dataset("xor", noise=0.0, normalize="none", n_features=3)
    x, y = data.x_train, data.y_train
    assert torch.equal(y, ((x[:, 0] < 0) ^ (x[:, 1] < 0)).long())
    assert float(x.abs().max()) <= 1.0  # the cube [-1, 1]^d, not rescaled


def test_rings_radius_is_the_class_plus_one():
    data = load_dataset("rings", noise=0.0, normalize="none", n_features=3)
    assert torch.allclose(data.x_train.norm(dim=1), data.y_train.float() + 1, atol=1e-5)


def test_bad_synthetic_options():
    from netdyn import ConfigError

    with pytest.raises(ConfigError, match="n_classes"):
        load_dataset("blobs", n_classes=1)
    with pytest.raises(ConfigError, match="n_features"):
        load_dataset("xor", n_features=1)
    with pytest.raises(ConfigError, match="noise"):
        load_dataset("rings", noise=-1)
