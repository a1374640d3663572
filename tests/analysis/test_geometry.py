"""Class geometry (SPEC 5.5): direct numpy / scikit-learn computations and an analytic one-hot case."""

import numpy as np
import pytest
import torch
from sklearn.metrics.pairwise import cosine_distances, cosine_similarity

from netdyn.analysis import _common
from netdyn.analysis.geometry import class_geometry
from netdyn.data import Dataset
from netdyn.errors import ConfigError
from netdyn.models import MLP

SUMMARY = [
    "layer", "cos_dist_mean", "cos_dist_q25", "cos_dist_median", "cos_dist_q75", "centre_similarity", "nc1",
]


@pytest.fixture(scope="module")
def relu_case(make_blobs, fit_net, to_float64):
    data = make_blobs(spread=2.5, n_train=302)  # unbalanced: classes 0 and 1 have one sample more
    net = MLP(10, 24, 4, 4, activation="relu", residual="pre", batchnorm=True, seed=9)
    return to_float64(fit_net(net, data, steps=60), data)


def _reference(x, y, num_classes):
    """SPEC 5.5 verbatim in numpy: centres, cosine distances, centre similarity, NC1 with np.linalg.pinv."""
    centres = np.stack([x[y == k].mean(0) for k in range(num_classes)])
    dist = cosine_distances(x, centres)[np.arange(len(y)), y]
    sim = cosine_similarity(centres)
    off = ~np.eye(num_classes, dtype=bool)
    within = x - centres[y]
    s_w = within.T @ within / len(y)
    between = centres - x.mean(0)
    s_b = between.T @ between / num_classes
    nc1 = np.trace(s_w @ np.linalg.pinv(s_b, rcond=1e-10, hermitian=True)) / num_classes
    q25, median, q75 = np.quantile(dist, [0.25, 0.5, 0.75])
    return dist, [dist.mean(), q25, median, q75, sim[off].mean(), nc1]


def test_summary_matches_numpy(relu_case):
    net, data = relu_case
    table = class_geometry(net, data)
    assert list(table.columns) == SUMMARY and table.layer.tolist() == list(range(net.n_layers))
    trace = net.trace(data.x_train)
    y = data.y_train.numpy()
    for l in range(net.n_layers):
        _, expected = _reference(trace.x[l].numpy(), y, 4)
        np.testing.assert_allclose(table.iloc[l, 1:].to_numpy(float), expected, rtol=1e-8, atol=1e-12)
    assert table.nc1.iloc[-1] < table.nc1.iloc[0]  # trained: classes tighten with depth


def test_per_sample_distances_match_scikit_learn(relu_case):
    net, data = relu_case
    table = class_geometry(net, data, per_sample=True)
    assert list(table.columns) == ["layer", "sample", "label", "cos_dist"]
    trace = net.trace(data.x_train)
    y = data.y_train.numpy()
    for l in range(net.n_layers):
        rows = table[table.layer == l]
        assert rows["sample"].tolist() == list(range(len(y))) and (rows.label.to_numpy() == y).all()
        dist, _ = _reference(trace.x[l].numpy(), y, 4)
        np.testing.assert_allclose(rows.cos_dist.to_numpy(), dist, rtol=1e-10, atol=1e-12)


def test_per_sample_takes_the_first_samples_of_each_class(relu_case):
    net, data = relu_case
    everything = class_geometry(net, data, per_sample=True)
    table = class_geometry(net, data, per_sample=True, classes=[1, 3], limit=5, layers=[2, 4])
    y = data.y_train
    first = sorted(i for k in (1, 3) for i in torch.nonzero(y == k).flatten()[:5].tolist())
    assert table.layer.tolist() == [2] * 10 + [4] * 10
    assert table["sample"].tolist() == first * 2
    expected = everything.set_index(["layer", "sample"]).cos_dist
    keys = list(zip(table.layer, table["sample"], strict=True))
    np.testing.assert_allclose(table.cos_dist, expected.loc[keys], rtol=1e-12)


def _one_hot_data(num_classes, per_class, zero_sample=False):
    """Class k's samples are e_k times 1 or 3, alternating: centres 2 e_k, exactly orthogonal."""
    y = torch.arange(num_classes * per_class) % num_classes
    scale = torch.where((torch.arange(len(y)) // num_classes) % 2 == 0, 1.0, 3.0)
    x = torch.eye(num_classes)[y] * scale[:, None]
    if zero_sample:
        x[0] = 0
    return Dataset(x, y, x[:4], y[:4], num_classes, "one-hot", (num_classes,), {})


def test_orthogonal_one_hot_centres_analytic():
    # S_W = I / C on the class axes, S_B = (4 / C) (I - 11^T / C), so trace(S_W S_B^+) / C = (C - 1) / (4 C)
    c = 4
    net = MLP(c, 8, 2, c, seed=0)
    row = class_geometry(net, _one_hot_data(c, per_class=6), layers=[0]).iloc[0]
    assert row.centre_similarity == pytest.approx(0, abs=1e-15)
    assert row.cos_dist_mean == pytest.approx(0, abs=1e-15)
    assert row.cos_dist_q75 == pytest.approx(0, abs=1e-15)
    assert row.nc1 == pytest.approx((c - 1) / (4 * c), rel=1e-12)


def test_zero_vectors_are_at_distance_one():
    net = MLP(4, 8, 2, 4, seed=0)
    with torch.no_grad():  # layer 1 dead: every local field is -1, so x^1 = 0
        net.blocks[0].linear.weight.zero_()
        net.blocks[0].linear.bias.fill_(-1)
    data = _one_hot_data(4, per_class=6, zero_sample=True)
    table = class_geometry(net, data, per_sample=True, classes=[0], layers=[0, 1])
    assert table[table.layer == 0].cos_dist.tolist() == [1.0] + [0.0] * 5
    assert (table[table.layer == 1].cos_dist == 1).all()
    dead = class_geometry(net, data, layers=[1]).iloc[0]
    assert dead.cos_dist_median == 1 and dead.centre_similarity == 0 and np.isnan(dead.nc1)


def test_streaming_in_small_chunks_gives_the_same_table(relu_case, monkeypatch):
    net, data = relu_case
    whole = class_geometry(net, data)
    monkeypatch.setattr(_common, "CHUNK_BUDGET", 16384)
    np.testing.assert_allclose(class_geometry(net, data).to_numpy(float), whole.to_numpy(float), rtol=1e-10)


def test_float32_and_float64_agree(make_blobs, fit_net, to_float64):
    data = make_blobs(spread=2.5)
    net = fit_net(MLP(10, 24, 4, 4, activation="tanh", batchnorm=True, seed=10), data, steps=60)
    single = class_geometry(net, data)
    double = class_geometry(*to_float64(net, data))
    np.testing.assert_allclose(single.to_numpy(float), double.to_numpy(float), rtol=1e-3, atol=1e-6)


def test_bad_arguments_raise(make_blobs):
    data = make_blobs()
    net = MLP(10, 8, 2, 4, seed=0)
    with pytest.raises(ConfigError, match="out of range"):
        class_geometry(net, data, per_sample=True, classes=[4])
    with pytest.raises(ConfigError, match="limit"):
        class_geometry(net, data, per_sample=True, limit=0)
    with pytest.raises(ConfigError, match="per_sample"):
        class_geometry(net, data, classes=[1])
    with pytest.raises(ConfigError, match="out of range"):
        class_geometry(net, data, layers=[-1])
    with pytest.raises(ConfigError, match="input features"):
        class_geometry(MLP(7, 8, 2, 4, seed=0), data)
