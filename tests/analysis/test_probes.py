"""LP (SPEC 5.2): scikit-learn's Ridge on the training trace as reference; exact fits on linear networks."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge

from netdyn.analysis import _common
from netdyn.analysis.probes import fit_probe, lp_accuracy
from netdyn.errors import ConfigError
from netdyn.models import MLP


@pytest.fixture(scope="module")
def relu_case(make_blobs, fit_net, to_float64):
    data = make_blobs(spread=2.5)
    net = MLP(10, 24, 4, 4, activation="relu", residual="pre", batchnorm=True, seed=5)
    return to_float64(fit_net(net, data, steps=60), data)


def _acc(pred, y):
    return float(np.mean(pred.argmax(1) == y.numpy()))


@pytest.mark.parametrize("ridge", [1e-6, 1e-1])
def test_lp_matches_sklearn_ridge_on_the_training_trace(relu_case, ridge):
    net, data = relu_case
    table = lp_accuracy(net, data, ridge=ridge)
    train, test = net.trace(data.x_train), net.trace(data.x_test)
    targets = train.x[-1].numpy()
    for l in range(net.n_layers):
        x_train, x_test = train.x[l].numpy(), test.x[l].numpy()
        centred = x_train - x_train.mean(0)
        lam = ridge * np.trace(centred.T @ centred) / x_train.shape[1]
        reference = Ridge(alpha=lam).fit(x_train, targets)
        a_mat, intercept = fit_probe(net, data, l, ridge=ridge)
        scale = np.abs(reference.coef_).max()
        np.testing.assert_allclose(a_mat.numpy(), reference.coef_.T, rtol=1e-6, atol=1e-8 * scale)
        np.testing.assert_allclose(intercept.numpy(), reference.intercept_, rtol=1e-6, atol=1e-8 * scale)
        got = table[table.layer == l].set_index("split").accuracy
        assert got["train"] == _acc(reference.predict(x_train), data.y_train)
        assert got["test"] == _acc(reference.predict(x_test), data.y_test)


def test_schema_and_a_nontrivial_profile(relu_case):
    net, data = relu_case
    table = lp_accuracy(net, data, layers=[0, 2])
    assert list(table.columns) == ["layer", "split", "accuracy"]
    assert table.layer.tolist() == [0, 2, 0, 2] and table.split.tolist() == ["test", "test", "train", "train"]
    assert table.accuracy.between(0.5, 1).all()
    a_mat, intercept = fit_probe(net, data, 2)
    assert a_mat.shape == (24, 4) and intercept.shape == (4,) and a_mat.dtype == torch.float64


def test_streaming_in_small_chunks_gives_the_same_fit(relu_case, monkeypatch):
    net, data = relu_case
    whole = lp_accuracy(net, data)
    probe = fit_probe(net, data, 3)
    monkeypatch.setattr(_common, "CHUNK_BUDGET", 16384)  # a few samples per chunk
    assert lp_accuracy(net, data).equals(whole)
    for got, expected in zip(fit_probe(net, data, 3), probe, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("residual", [False, "post"])
def test_unregularised_lp_of_a_linear_network_is_exact(
    residual, make_blobs, fit_net, to_float64, net_accuracy
):
    # width 24 > 10 inputs: every hidden layer's Gram matrix is singular, the minimum-norm solve must cope
    data = make_blobs(spread=2.5)
    net = MLP(10, 24, 3, 4, activation="linear", residual=residual, seed=6)
    net, data = to_float64(fit_net(net, data, steps=40), data)
    table = lp_accuracy(net, data, ridge=0)
    trace = net.trace(data.x_test)
    for l in range(net.n_layers):
        a_mat, intercept = fit_probe(net, data, l, ridge=0)
        torch.testing.assert_close(trace.x[l] @ a_mat + intercept, trace.x[-1], rtol=1e-7, atol=1e-7)
    for split in ("train", "test"):
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        assert (table[table.split == split].accuracy == net_accuracy(net, x, y)).all()


def test_an_all_zero_layer_predicts_the_mean_output(make_blobs, fit_net):
    data = make_blobs(spread=2.5)
    net = fit_net(MLP(10, 16, 2, 4, activation="relu", seed=7), data, steps=40)
    with torch.no_grad():  # layer 1 dead: every local field is -1
        net.blocks[0].linear.weight.zero_()
        net.blocks[0].linear.bias.fill_(-1)
    a_mat, intercept = fit_probe(net, data, 1)
    assert not a_mat.any()
    torch.testing.assert_close(intercept, net(data.x_train).mean(0))
    row = lp_accuracy(net, data, layers=[1])
    majority = intercept.argmax()
    expected = {s: (getattr(data, f"y_{s}") == majority).double().mean().item() for s in _common.SPLITS}
    assert row.set_index("split").accuracy.to_dict() == expected


def test_float32_and_float64_agree(make_blobs, fit_net, to_float64):
    data = make_blobs(spread=2.5)
    net = fit_net(MLP(10, 24, 4, 4, activation="tanh", batchnorm=True, seed=8), data, steps=60)
    single = lp_accuracy(net, data)
    double = lp_accuracy(*to_float64(net, data))
    np.testing.assert_allclose(single.accuracy, double.accuracy, atol=2 / data.x_test.shape[0])


def test_bad_arguments_raise(make_blobs):
    data = make_blobs()
    net = MLP(10, 8, 2, 4, seed=0)
    with pytest.raises(ConfigError, match="ridge"):
        lp_accuracy(net, data, ridge=-1)
    with pytest.raises(ConfigError, match="out of range"):
        lp_accuracy(net, data, layers=[0, net.n_layers])
    with pytest.raises(ConfigError, match="out of range"):
        fit_probe(net, data, net.n_layers)
    with pytest.raises(ConfigError, match="input features"):
        lp_accuracy(MLP(7, 8, 2, 4, seed=0), data)


# ------------------------------------------------------------------ the LP given the L-map's inputs (with_skip)
def test_lp_with_skip_matches_sklearn_ridge_on_the_concatenated_features(relu_case):
    net, data = relu_case
    ridge = 1e-3
    table = lp_accuracy(net, data, ridge=ridge, with_skip=True)
    train, test = net.trace(data.x_train), net.trace(data.x_test)
    crossed = [l for l in range(1, net.n_layers - 1) if net.block(l + 1).skip is not None]
    assert crossed == [2]  # depth 4, residual pre: layer 3 receives x^1
    assert table.set_index(["split", "layer"]).skip.xs("test").tolist() == [l in crossed for l in range(5)]
    for l in range(net.n_layers):
        def features(trace, l=l):
            x = trace.x[l].numpy()
            return np.concatenate([x, trace.x[l - 1].numpy()], 1) if l in crossed else x

        x_train, x_test = features(train), features(test)
        centred = x_train - x_train.mean(0)
        lam = ridge * np.trace(centred.T @ centred) / x_train.shape[1]
        reference = Ridge(alpha=lam).fit(x_train, train.x[-1].numpy())
        got = table[table.layer == l].set_index("split").accuracy
        assert got["train"] == _acc(reference.predict(x_train), data.y_train), l
        assert got["test"] == _acc(reference.predict(x_test), data.y_test), l


def test_lp_with_skip_of_a_linear_residual_network_is_exact_where_the_lp_of_x_l_alone_is_not(
    make_blobs, fit_net, to_float64, net_accuracy
):
    data = make_blobs(n_train=600, spread=2.5)
    net = MLP(10, 12, 5, 4, activation="linear", residual="pre", seed=9)
    net, data = to_float64(fit_net(net, data, steps=40), data)
    with torch.no_grad():  # layer 2 keeps one direction of x^1: x^1 reaches the output only through the skip into 3
        weight = net.block(2).linear.weight
        weight.copy_(weight[:1].repeat(weight.shape[0], 1) * torch.linspace(-1, 1, weight.shape[0])[:, None])
    with_skip = lp_accuracy(net, data, with_skip=True)
    alone = lp_accuracy(net, data)
    for split in ("train", "test"):
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        rows = with_skip[with_skip.split == split]
        assert (rows.accuracy == net_accuracy(net, x, y)).all(), split
        assert rows.skip.tolist() == [False, False, True, False, True, False]  # skips into layers 3 and 5
    at_two = alone[(alone.layer == 2) & (alone.split == "test")].accuracy.item()
    assert at_two < net_accuracy(net, data.x_test, data.y_test) - 0.05  # x^2 alone has lost x^1


def test_lp_with_skip_of_a_plain_network_is_the_lp(make_blobs, fit_net):
    data = make_blobs(spread=2.5)
    net = fit_net(MLP(10, 16, 4, 4, activation="relu", batchnorm=True, seed=3), data, steps=40)
    with_skip = lp_accuracy(net, data, with_skip=True)
    assert list(with_skip.columns) == ["layer", "split", "accuracy", "skip"] and not with_skip.skip.any()
    assert with_skip.drop(columns="skip").equals(lp_accuracy(net, data))


def test_lp_with_skip_refuses_other_models(make_blobs):
    data = make_blobs()
    model = torch.nn.Sequential(torch.nn.Linear(10, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4))
    with pytest.raises(ConfigError, match="with_skip is for netdyn's residual MLPs"):
        lp_accuracy(model, data, with_skip=True)
