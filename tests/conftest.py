"""Fixtures shared by the whole suite: tiny synthetic data, writable homes for matplotlib and Ray."""

import os

import pytest
import torch
from hypothesis import settings

# Two loaded cores make single examples slow now and then: no per-example deadline (a slow example is not a
# failure; a wrong one is).
settings.register_profile("netdyn", deadline=None)
settings.load_profile("netdyn")


@pytest.fixture(autouse=True, scope="session")
def _writable_homes(tmp_path_factory):
    os.environ.setdefault("MPLCONFIGDIR", str(tmp_path_factory.mktemp("mpl")))
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # one thread per test process: pytest -n 2 on 2 cores would otherwise oversubscribe and spin-wait
    torch.set_num_threads(1)


def make_dataset(n_train=240, n_test=120, n_features=12, num_classes=3, seed=0):
    """Gaussian classes around random centres: learnable in a few dozen steps."""
    from netdyn.data import Dataset

    gen = torch.Generator().manual_seed(seed)
    centres = 2.0 * torch.randn(num_classes, n_features, generator=gen)

    def draw(n):
        y = torch.arange(n) % num_classes
        x = centres[y] + torch.randn(n, n_features, generator=gen)
        return x / x.norm(dim=1, keepdim=True), y

    x_train, y_train = draw(n_train)
    x_test, y_test = draw(n_test)
    return Dataset(x_train, y_train, x_test, y_test, num_classes, "gaussians", (n_features,), {})


@pytest.fixture
def tiny_data():
    return make_dataset()
