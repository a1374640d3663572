"""Property tests (hypothesis) of the analyses on random small networks and data: per-layer tables do not depend
on the order of the samples, fractions and interval bounds lie in [0, 1], the order index in its range."""

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import netdyn
from netdyn import MLP
from netdyn.data import Dataset

ACTIVATIONS = ["relu", "tanh", "gauss", "linear"]


def _case(seed: int, activation: str, batchnorm: bool, num_classes: int):
    gen = torch.Generator().manual_seed(seed)
    centres = 2 * torch.randn(num_classes, 6, generator=gen, dtype=torch.float64)

    def draw(n):
        y = torch.arange(n) % num_classes
        return centres[y] + torch.randn(n, 6, generator=gen, dtype=torch.float64), y

    x_train, y_train = draw(60)
    x_test, y_test = draw(30)
    data = Dataset(x_train, y_train, x_test, y_test, num_classes, "random", (6,), {})
    net = MLP(6, 7, 3, num_classes, activation=activation, batchnorm=batchnorm, seed=seed).double()
    if batchnorm:  # give the running statistics something to hold
        net.train()
        with torch.no_grad():
            net(x_train)
    return net.eval(), data


def _permuted(data, seed):
    gen = torch.Generator().manual_seed(seed + 1)
    p_train, p_test = torch.randperm(data.n_train, generator=gen), torch.randperm(data.n_test, generator=gen)
    return Dataset(data.x_train[p_train], data.y_train[p_train], data.x_test[p_test], data.y_test[p_test],
                   data.num_classes, data.name, data.input_shape, {})


CASES = dict(
    seed=st.integers(0, 10_000),
    activation=st.sampled_from(ACTIVATIONS),
    batchnorm=st.booleans(),
    num_classes=st.integers(2, 4),
)


@settings(max_examples=12)
@given(**CASES)
def test_per_layer_tables_ignore_sample_order(seed, activation, batchnorm, num_classes):
    net, data = _case(seed, activation, batchnorm, num_classes)
    shuffled = _permuted(data, seed)
    for name, compute in {
        "network": lambda d: netdyn.network_accuracy(net, d),
        "lmap": lambda d: netdyn.lmap_accuracy(net, d),
        "lp": lambda d: netdyn.lp_accuracy(net, d),
        "rpd_summary": lambda d: netdyn.rpd_summary(net, d),
        "rpd": lambda d: netdyn.rpd(net, d, bins=10),
        "class_geometry": lambda d: netdyn.class_geometry(net, d),
        "local_fields_summary": lambda d: netdyn.local_fields(net, d, classes=(0, 1)).summary,
    }.items():
        pd.testing.assert_frame_equal(compute(data), compute(shuffled), rtol=1e-6, atol=1e-9, obj=name)


@pytest.mark.filterwarnings("ignore:.*basin.*:RuntimeWarning")
@settings(max_examples=12)
@given(**CASES)
def test_fractions_bounds_and_order_index_range(seed, activation, batchnorm, num_classes):
    net, data = _case(seed, activation, batchnorm, num_classes)
    for table in (netdyn.lmap_accuracy(net, data), netdyn.lp_accuracy(net, data), netdyn.network_accuracy(net, data)):
        assert table["accuracy"].between(0, 1).all()
    for curve in (
        netdyn.sample_basin(net, data, eps=[0, 0.5, 1, 2], repeats=2, seed=seed).curve,
        netdyn.weight_basin(net, data, eps=[0, 0.5, 1, 2], repeats=2, seed=seed).curve,
    ):
        values = curve[["ci_low", "accuracy", "ci_high"]].to_numpy()
        assert ((values >= 0) & (values <= 1)).all()
        assert (values[:, 0] <= values[:, 1] + 1e-12).all() and (values[:, 1] <= values[:, 2] + 1e-12).all()
    p = np.bincount(data.y_train.numpy(), minlength=num_classes) / data.n_train
    chance = float((p**2).sum())
    summary = netdyn.rpd_summary(net, data)
    assert summary["top_mass"].between(0, 1).all()
    assert summary["order_index"].between(-chance / (1 - chance) - 1e-9, 1 + 1e-9).all()
    modes = netdyn.neuron_modes(net, data, max_samples=60)
    assert modes["order_index"].dropna().between(-chance / (1 - chance) - 1e-9, 1 + 1e-9).all()
    assert modes["order_preservation"].dropna().between(0, 1 + 1e-12).all()
    census = netdyn.neuron_mode_census(modes)
    np.testing.assert_allclose(census[["opm", "npm", "inactive"]].sum(axis=1), 1.0)
