"""L-map (SPEC 5.1): known answers on linear networks, a linearised twin as reference for nonlinear ones."""

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

from netdyn.analysis.lmap import lmap_accuracy, lmap_matrix
from netdyn.errors import ConfigError
from netdyn.models import MLP

LINEAR_NETS = {
    "plain": dict(depth=3),
    "residual-pre": dict(depth=4, residual="pre"),
    "residual-post": dict(depth=5, residual="post"),
    "batchnorm-residual": dict(depth=4, residual="pre", batchnorm=True),
}


def _linear_net(fit_net, data, **arch):
    net = MLP(data.x_train.shape[1], 16, num_classes=data.num_classes, activation="linear", seed=1, **arch)
    return fit_net(net, data, steps=40)


def _linearised(net):
    """The same network with every transfer function the identity: the L-map's definition, run directly."""
    twin = MLP.from_spec(replace(net.spec, activation="linear"))
    twin.load_state_dict(net.state_dict())
    return twin.to(dtype=next(net.parameters()).dtype).eval()


def _apply(net, l, trace):
    m, c, s = lmap_matrix(net, l, with_skip=True)
    out = trace.x[l] @ m.T + c
    return out + trace.x[l - 1] @ s.T if l >= 1 else out


@pytest.mark.parametrize("arch", LINEAR_NETS.values(), ids=LINEAR_NETS.keys())
def test_linear_network_lmap_is_the_network_at_every_layer(
    arch, make_blobs, fit_net, to_float64, net_accuracy
):
    data = make_blobs(spread=2.5)
    net, data = to_float64(_linear_net(fit_net, data, **arch), data)
    if arch.get("batchnorm"):
        assert not torch.allclose(net.blocks[0].bn.running_var, torch.ones(16, dtype=torch.float64))
    table = lmap_accuracy(net, data)
    assert list(table.columns) == ["layer", "split", "accuracy"]
    assert len(table) == 2 * net.n_layers
    for split in ("train", "test"):
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        expected = net_accuracy(net, x, y)
        got = table[table.split == split].set_index("layer").accuracy
        assert got.to_dict() == {l: expected for l in range(net.n_layers)}
        trace = net.trace(x)
        for l in range(net.n_layers):
            torch.testing.assert_close(_apply(net, l, trace), trace.x[-1], rtol=1e-9, atol=1e-9)


def test_plain_linear_lmap_matrix_is_the_weight_product(make_blobs, fit_net):
    data = make_blobs()
    net = _linear_net(fit_net, data, depth=3).double()
    weights = [block.linear.weight for block in net.blocks]  # W^1 .. W^L
    for l in range(net.n_layers):
        m, c = lmap_matrix(net, l)
        product = weights[-1]
        for w in reversed(weights[l:-1]):
            product = product @ w
        torch.testing.assert_close(m, product, rtol=1e-12, atol=1e-12)
        # the constant is what the affine tail gives for x^l = 0
        start = torch.zeros(1, net.widths[l], dtype=torch.float64)
        torch.testing.assert_close(c, net.run_from(l, start)[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("residual", [False, "pre", "post"])
def test_folded_batchnorm_map_equals_linearised_network(residual, make_blobs, fit_net, to_float64):
    data = make_blobs(spread=2.5)
    net = MLP(10, 12, 5, 4, activation="relu", residual=residual, batchnorm=True, seed=2)
    net, data = to_float64(fit_net(net, data, steps=30), data)
    twin = _linearised(net)
    trace = net.trace(data.x_test)
    table = lmap_accuracy(net, data)
    for l in range(net.n_layers):
        prev = trace.x[l - 1] if l >= 1 else None
        expected = twin.run_from(l, trace.x[l], prev)
        torch.testing.assert_close(_apply(net, l, trace), expected, rtol=1e-9, atol=1e-9)
        got = table[(table.layer == l) & (table.split == "test")].accuracy.item()
        assert got == (expected.argmax(1) == data.y_test).double().mean().item()


def test_skip_term_appears_exactly_where_a_skip_crosses_the_cut():
    net = MLP(6, 8, 6, 3, activation="relu", residual="pre", seed=0)
    for l in range(net.n_layers):
        m, c, s = lmap_matrix(net, l, with_skip=True)
        assert m.shape == (3, net.widths[l]) and c.shape == (3,)
        assert s.shape == (3, net.widths[l - 1] if l else 0)
        crosses = l + 1 < net.n_layers and net.block(l + 1).skip is not None
        assert bool(s.abs().max() > 0) if crosses else not s.any()
    assert [l for l in range(net.n_layers) if net.block(l + 1).skip] == [2, 4]


def test_last_hidden_layer_lmap_accuracy_is_the_networks(make_blobs, fit_net, net_accuracy):
    data = make_blobs(spread=2.5)
    net = fit_net(MLP(10, 32, 3, 4, activation="relu", batchnorm=True, seed=3), data, steps=60)
    table = lmap_accuracy(net, data, layers=[net.n_layers - 1])
    for split in ("train", "test"):
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        assert table[table.split == split].accuracy.item() == net_accuracy(net, x, y)
    assert 0.5 < net_accuracy(net, data.x_test, data.y_test) < 1  # a non-trivial case


def test_float32_and_float64_agree(make_blobs, fit_net, to_float64):
    data = make_blobs(spread=2.5)
    net = MLP(10, 24, 4, 4, activation="tanh", residual="pre", batchnorm=True, seed=4)
    net = fit_net(net, data, steps=60)
    single = lmap_accuracy(net, data)
    double = lmap_accuracy(*to_float64(net, data))
    tolerance = 2 / data.x_test.shape[0]
    np.testing.assert_allclose(single.accuracy, double.accuracy, atol=tolerance)
    m32, c32 = lmap_matrix(net, 1)
    m64, c64 = lmap_matrix(copy.deepcopy(net).double(), 1)
    assert m32.dtype == torch.float32 and m64.dtype == torch.float64
    torch.testing.assert_close(m32.double(), m64, rtol=1e-5, atol=1e-6)


def test_bad_layers_and_inputs_raise(make_blobs):
    data = make_blobs()
    net = MLP(10, 8, 2, 4, seed=0)
    with pytest.raises(ConfigError, match="out of range"):
        lmap_accuracy(net, data, layers=[net.n_layers])
    with pytest.raises(ConfigError):
        lmap_matrix(net, net.n_layers)
    with pytest.raises(ConfigError, match="input features"):
        lmap_accuracy(MLP(7, 8, 2, 4, seed=0), data)
