"""Helpers for the analysis tests: seeded toy data, a plain full-batch training loop, float64 copies.

Test modules cannot import a conftest reliably (several share the name), so each helper is also a fixture
that returns the function.
"""

import copy

import pytest
import torch
import torch.nn.functional as F

from netdyn.data import Dataset


def make_blobs(n_train=300, n_test=150, n_features=10, num_classes=4, spread=0.8, seed=0):
    """Gaussian classes around random centres, balanced, classes interleaved; unit-norm rows."""
    gen = torch.Generator().manual_seed(seed)
    centres = 2.0 * torch.randn(num_classes, n_features, generator=gen)

    def draw(n):
        y = torch.arange(n) % num_classes
        x = centres[y] + spread * torch.randn(n, n_features, generator=gen)
        return x / x.norm(dim=1, keepdim=True), y

    x_train, y_train = draw(n_train)
    x_test, y_test = draw(n_test)
    return Dataset(x_train, y_train, x_test, y_test, num_classes, "blobs", (n_features,), {})


def fit(net, data, steps=150, lr=1e-2):
    """Full-batch Adam steps in training mode (batch norm updates its running statistics); returns net."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(net(data.x_train), data.y_train).backward()
        opt.step()
    net.eval()
    return net


def as_float64(net, data):
    """Float64 copies of a network and a data set (the originals stay as they are)."""
    net64 = copy.deepcopy(net).double()
    data64 = copy.copy(data)
    data64.x_train, data64.x_test = data.x_train.double(), data.x_test.double()
    return net64, data64


def net_accuracy(net, x, y):
    with torch.no_grad():
        return (net(x, bn_mode="running").argmax(1) == y).double().mean().item()


@pytest.fixture(name="make_blobs", scope="session")
def _make_blobs():
    return make_blobs


@pytest.fixture(name="fit_net", scope="session")
def _fit_net():
    return fit


@pytest.fixture(name="to_float64", scope="session")
def _to_float64():
    return as_float64


@pytest.fixture(name="net_accuracy", scope="session")
def _net_accuracy():
    return net_accuracy
