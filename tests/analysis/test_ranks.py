"""RPD (SPEC 5.3): ranks against scipy, the tie rule against random tie-breaking, a numpy reference, and the
known answers (random labels -> order index 0, perfect separation -> 1, flat RPD -> gradient 0)."""

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import rankdata

from netdyn.analysis._common import seeded_subset
from netdyn.analysis.lmap import lmap_matrix
from netdyn.analysis.ranks import rank_intervals, rank_positions, rpd, rpd_summary
from netdyn.data import Dataset
from netdyn.errors import ConfigError
from netdyn.models import MLP


def dataset(x, y, num_classes):
    return Dataset(x, y, x, y, num_classes, "toy", (x.shape[1],), {})


def gaussian_data(n, d, num_classes, seed, labels="random"):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen)
    if labels == "random":
        y = torch.randint(0, num_classes, (n,), generator=gen)
    else:
        y = torch.arange(n) % num_classes
    return dataset(x, y, num_classes)


# ------------------------------------------------------------------------------------------ rank intervals
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ranks_equal_scipy_rankdata_without_ties(seed):
    gen = torch.Generator().manual_seed(seed)
    values = torch.randn(57, 6, generator=gen, dtype=torch.float64)
    descending = torch.tensor([True, False, True, True, False, False])
    lo, hi = rank_intervals(values, descending)
    n = values.shape[0]
    for i in range(values.shape[1]):
        keys = -values[:, i].numpy() if descending[i] else values[:, i].numpy()
        rank = rankdata(keys)
        np.testing.assert_allclose((lo[:, i] + hi[:, i]).numpy() / 2, (rank - 0.5) / n, rtol=0, atol=1e-12)
        np.testing.assert_allclose((hi[:, i] - lo[:, i]).numpy(), 1 / n, rtol=0, atol=1e-12)


def test_tied_values_span_the_positions_of_their_group():
    gen = torch.Generator().manual_seed(3)
    values = torch.randint(0, 4, (40, 5), generator=gen).float()
    descending = torch.tensor([True, False, True, False, True])
    lo, hi = rank_intervals(values, descending)
    for i in range(values.shape[1]):
        keys = -values[:, i].numpy() if descending[i] else values[:, i].numpy()
        np.testing.assert_allclose(lo[:, i].numpy() * 40, rankdata(keys, method="min") - 1)
        np.testing.assert_allclose(hi[:, i].numpy() * 40, rankdata(keys, method="max"))


def random_tie_break_average(values, weights, labels, bins, repeats, seed):
    """Monte Carlo reference: rank every (neuron, class) sequence M[k, i] * x_i with ties broken at random,
    histogram q = (position + 1/2) / P of each sample in its own class's sequence, average over repeats."""
    rng = np.random.default_rng(seed)
    n, width = values.shape
    counts = np.bincount(labels, minlength=weights.shape[0])
    histogram = np.zeros(bins)
    top = np.zeros(width)
    for i in range(width):
        for k in range(weights.shape[0]):
            members = labels == k
            if not members.any():
                continue
            contribution = weights[k, i] * values[:, i]
            dense = rankdata(-contribution, method="dense")  # ties share a code; order descending
            keys = dense[None, :] + rng.random((repeats, n))  # random order inside each tie group
            position = np.argsort(np.argsort(keys, axis=1), axis=1)[:, members]
            histogram += np.histogram((position + 0.5) / n, bins=bins, range=(0, 1))[0]
            top[i] += (position < counts[k]).sum()
    density = histogram / repeats / (n * width) * bins
    return density, top / repeats / n


def test_tie_rule_equals_mean_over_random_tie_breaks():
    gen = torch.Generator().manual_seed(4)
    n, width, num_classes, bins = 23, 4, 3, 7  # bin edges fall inside rank cells: a strict check
    values = torch.randint(0, 3, (n, width), generator=gen).double()
    weights = torch.tensor([[1.0, -2.0, 0.0, 0.5], [-1.0, 0.5, 0.0, -0.3], [2.0, 1.0, -1.0, 0.0]])
    labels = torch.randint(0, num_classes, (n,), generator=gen)
    ranks = rank_positions(values, weights, labels)
    _, density = ranks.density(bins)
    ref_density, ref_top = random_tie_break_average(values.numpy(), weights.numpy(), labels.numpy(), bins,
                                                    repeats=4000, seed=0)
    # Monte Carlo standard error at 4,000 repeats: about 0.003 on a density bin, 0.001 on a top mass
    np.testing.assert_allclose(density.numpy(), ref_density, atol=0.015)
    np.testing.assert_allclose(ranks.neuron_top_mass.numpy(), ref_top, atol=0.005)


# ------------------------------------------------------------------------------------------ numpy reference
def reference_rpd(net, data, layer, bins, use="output"):
    """Direct loops over neurons, classes and samples: each sample's tie group in its class's order, spread
    with weight 1/t over its t positions; histogram of (position + 1/2) / P; top mass over the top n_k."""
    trace = net.trace(data.x_train, layers=[layer])
    values = (trace.x if use == "output" else trace.h)[layer].double().numpy()
    m = lmap_matrix(net, layer)[0].detach().double().numpy()
    y = data.y_train.numpy()
    n, width = values.shape
    counts = np.bincount(y, minlength=m.shape[0])
    mass = np.zeros(n)
    top = 0.0
    for i in range(width):
        for k in range(m.shape[0]):
            contribution = np.sign(m[k, i]) * values[:, i]
            for mu in np.flatnonzero(y == k):
                above = int((contribution > contribution[mu]).sum())
                tied = int((contribution == contribution[mu]).sum())
                mass[above : above + tied] += 1 / tied
                top += max(0, min(counts[k], above + tied) - above) / tied
    centres = (np.arange(n) + 0.5) / n
    in_bin = [(centres >= b / bins) & (centres < (b + 1) / bins) for b in range(bins)]
    histogram = np.array([mass[mask].sum() for mask in in_bin])
    top_mass = top / (n * width)
    chance = ((counts / n) ** 2).sum()
    return histogram / (n * width) * bins, top_mass, (top_mass - chance) / (1 - chance)


@pytest.mark.parametrize(
    "arch",
    [
        {"activation": "relu"},
        {"activation": "relu", "batchnorm": True, "residual": "pre"},
        {"activation": "tanh", "residual": "post"},
    ],
)
def test_rpd_matches_direct_reference(arch, fit_net):
    data = gaussian_data(60, 5, 3, seed=5, labels="balanced")
    data = dataset(data.x_train.double(), data.y_train, 3)
    net = MLP(5, 6, 3, 3, seed=0, **arch).double()
    fit_net(net, data, steps=20)
    table = rpd(net, data, bins=9)
    summary = rpd_summary(net, data, bins=9)
    for layer in (1, 2, 3):
        density, top_mass, order_index = reference_rpd(net, data, layer, bins=9)
        np.testing.assert_allclose(table.loc[table.layer == layer, "density"].to_numpy(), density, atol=1e-9)
        row = summary.set_index("layer").loc[layer]
        assert row.top_mass == pytest.approx(top_mass, abs=1e-12)
        assert row.order_index == pytest.approx(order_index, abs=1e-12)
    density, _, _ = reference_rpd(net, data, 2, bins=9, use="field")
    field = rpd(net, data, layers=[2], bins=9, use="field")
    np.testing.assert_allclose(field.density.to_numpy(), density, atol=1e-9)


# ------------------------------------------------------------------------------------------ known answers
def test_random_labels_give_order_index_zero_for_a_relu_net():
    """Half of every ReLU neuron's values sit on the zero plateau; the tie rule keeps O unbiased (a midrank
    rule would not). Mean over label draws, within three standard errors of 0."""
    data = gaussian_data(1000, 20, 4, seed=6)
    net = MLP(20, 64, 2, 4, activation="relu", seed=1)
    gen = torch.Generator().manual_seed(7)
    values = []
    for _ in range(8):
        shuffled = dataset(data.x_train, torch.randint(0, 4, (1000,), generator=gen), 4)
        values.append(rpd_summary(net, shuffled).order_index.to_numpy())
    values = np.array(values)  # [draws, layers]
    plateau = (net.trace(data.x_train, layers=[1]).x[1] == 0).double().mean().item()
    assert 0.3 < plateau < 0.7  # the case the tie rule is for
    standard_error = values.std(axis=0, ddof=1) / np.sqrt(len(values))
    assert np.all(np.abs(values.mean(axis=0)) < 3 * standard_error + 1e-3)
    assert np.all(np.abs(values) < 0.05)


def test_perfect_separation_with_opposite_output_weights_has_order_index_one():
    """x_1 = relu(u) fires for class 0 only and x_2 = relu(-u) for class 1 only; the output weights give each
    neuron opposite signs for the two classes, so every sample ranks within the top n_k of its own class."""
    gen = torch.Generator().manual_seed(8)
    u = torch.randn(200, 1, generator=gen)
    y = (u[:, 0] < 0).long()
    net = MLP(1, 2, 1, 2, activation="relu")
    with torch.no_grad():
        net.blocks[0].linear.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        net.blocks[0].linear.bias.zero_()
        net.blocks[1].linear.weight.copy_(torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))
        net.blocks[1].linear.bias.zero_()
    data = dataset(u, y, 2)
    summary = rpd_summary(net, data)
    assert summary.order_index.item() == pytest.approx(1.0, abs=1e-12)
    assert summary.top_mass.item() == pytest.approx(1.0, abs=1e-12)
    assert summary.gradient.item() > 1.0
    table = rpd(net, data, bins=10)
    n0 = int((y == 0).sum())
    # every sample lies within the first max(n_0, n_1) positions: no density beyond
    beyond = table.q > max(n0, 200 - n0) / 200 + 0.05
    assert (table.density[beyond] == 0).all()


def test_all_tied_rpd_is_exactly_flat():
    """Output weights all zero: every sample is tied in every sequence, spread over [0, 1]: density 1."""
    data = gaussian_data(100, 4, 3, seed=9)
    net = MLP(4, 8, 2, 3, seed=2)
    with torch.no_grad():
        net.blocks[-1].linear.weight.zero_()
    summary = rpd_summary(net, data, bins=20)
    table = rpd(net, data, bins=20)
    np.testing.assert_allclose(table.density.to_numpy(), 1.0, atol=1e-12)
    np.testing.assert_allclose(summary.gradient.to_numpy(), 0.0, atol=1e-12)
    np.testing.assert_allclose(summary.order_index.to_numpy(), 0.0, atol=1e-12)


def test_random_rpd_has_gradient_near_zero():
    data = gaussian_data(2000, 10, 5, seed=10)
    net = MLP(10, 64, 2, 5, activation="tanh", seed=3)
    summary = rpd_summary(net, data)
    # density fluctuates by about 1 / sqrt(pairs per bin): the slope's noise is far below 0.1
    assert np.all(np.abs(summary.gradient.to_numpy()) < 0.1)


# ------------------------------------------------------------------------------------------ table and options
def test_rpd_table_schema_and_normalisation(make_blobs):
    data = make_blobs()
    net = MLP(data.x_train.shape[1], 16, 3, data.num_classes, seed=0)
    table = rpd(net, data, bins=25)
    assert list(table.columns) == ["layer", "q", "density"]
    assert table.layer.dtype == np.int64
    assert sorted(table.layer.unique()) == [1, 2, 3]
    for _, group in table.groupby("layer"):
        np.testing.assert_allclose(group.q.to_numpy(), (np.arange(25) + 0.5) / 25)
        assert group.density.sum() / 25 == pytest.approx(1.0, abs=1e-12)
        assert (group.density >= 0).all()
    summary = rpd_summary(net, data, layers=[2])
    assert list(summary.columns) == ["layer", "gradient", "top_mass", "order_index"]
    assert summary.layer.tolist() == [2]


def test_max_samples_takes_the_seeded_subset(make_blobs):
    data = make_blobs(n_train=300)
    net = MLP(data.x_train.shape[1], 16, 2, data.num_classes, seed=0)
    idx = seeded_subset(300, 120, 5)
    subset = dataset(data.x_train[idx], data.y_train[idx], data.num_classes)
    pd.testing.assert_frame_equal(rpd(net, data, max_samples=120, seed=5), rpd(net, subset))
    pd.testing.assert_frame_equal(rpd_summary(net, data, max_samples=120, seed=5), rpd_summary(net, subset))
    assert not rpd_summary(net, data, max_samples=120, seed=6).equals(rpd_summary(net, subset))


def test_linear_network_ranks_field_and_output_alike(make_blobs):
    data = make_blobs()
    net = MLP(data.x_train.shape[1], 12, 2, data.num_classes, activation="linear", seed=0)
    pd.testing.assert_frame_equal(rpd(net, data, use="output"), rpd(net, data, use="field"))


def test_bad_arguments_raise_config_error(make_blobs):
    data = make_blobs()
    net = MLP(data.x_train.shape[1], 8, 2, data.num_classes, seed=0)
    with pytest.raises(ConfigError, match="out of range"):
        rpd(net, data, layers=[0])
    with pytest.raises(ConfigError, match="out of range"):
        rpd_summary(net, data, layers=[3])
    with pytest.raises(ConfigError, match="use"):
        rpd(net, data, use="fields")
    with pytest.raises(ConfigError, match="bins"):
        rpd(net, data, bins=0)
    wrong = MLP(data.x_train.shape[1] + 1, 8, 2, data.num_classes, seed=0)
    with pytest.raises(ConfigError, match="input features"):
        rpd(wrong, data)
