"""Attraction basins (SPEC 5.6) and their two companions, against known answers."""

import copy
import math
import types

import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestNeighbors

from netdyn.analysis._common import make_generator
from netdyn.analysis.basins import (
    _BIAS,
    _BN_BIAS,
    _BN_WEIGHT,
    _WEIGHT,
    CURVE_COLUMNS,
    _basin_sizes,
    _draw_seeds,
    _interval,
    _layer_params,
    _param_noise,
    _perturbed_tensors,
    _run_grid,
    bn_perturbation,
    nearest_train_distance,
    sample_basin,
    weight_basin,
)
from netdyn.data import Dataset
from netdyn.errors import ConfigError
from netdyn.models import MLP, stacked_forward

# short explicit grids leave sizes unreached on purpose; the warning itself is tested with pytest.warns
pytestmark = pytest.mark.filterwarnings("ignore:.*accuracy never fell.*:RuntimeWarning")


@pytest.fixture
def blobs(make_blobs):
    return make_blobs(n_train=300, n_test=150, n_features=10, num_classes=4)


@pytest.fixture
def bn_net(blobs, fit_net):
    """A residual BN net, trained only part way so that the clean accuracy is below 1."""
    net = MLP(10, 16, 4, 4, activation="tanh", residual=True, batchnorm=True, seed=1)
    return fit_net(net, blobs, steps=4, lr=1e-2)


@pytest.fixture
def trained_net(blobs, fit_net):
    return fit_net(MLP(10, 32, 2, 4, batchnorm=True, seed=0), blobs, steps=30, lr=3e-2)


def clean_accuracy(net, data):
    with torch.no_grad():
        return (net(data.x_train, bn_mode="running").argmax(1) == data.y_train).double().mean().item()


# --------------------------------------------------------------------------------------------- sizes and grid
def test_sizes_are_interpolated_on_a_hand_made_curve():
    eps = np.array([0.0, 1.0, 2.0, 3.0])
    acc = np.array([1.0, 0.8, 0.4, 0.1])
    mid, half = _basin_sizes(eps, acc, num_classes=4)
    assert mid == pytest.approx(1 + (0.8 - 0.625) / 0.4)  # threshold (1 + 1/4) / 2
    assert half == pytest.approx(1 + (0.8 - 0.5) / 0.4)
    # a clean accuracy already at the mid threshold gives size 0; a curve that stays high gives NaN + warning
    assert _basin_sizes(eps, np.array([0.25, 0.25, 0.2, 0.1]), 4)[0] == 0.0
    with pytest.warns(RuntimeWarning, match="size_half is NaN"):
        mid, half = _basin_sizes(eps, np.array([1.0, 0.9, 0.7, 0.55]), 10)
    assert mid == pytest.approx(2 + (0.7 - 0.55) / 0.15) and math.isnan(half)


class FakeTally:
    def __init__(self, eps, f):
        self.eps, self.f, self.accuracy = eps, f, f(eps)

    def concat(self, other):
        return FakeTally(np.concatenate([self.eps, other.eps]), self.f)


@pytest.mark.parametrize(("f", "last"), [(lambda e: 1 - e / 10, 6.0), (lambda e: 1 - e / 16, 9.0),
                                         (lambda e: 1 - e / 100, 12.0), (lambda e: 1 - e / 4, 3.0)])
def test_default_grid_extends_by_blocks_until_half_is_reached(f, last):
    calls = []

    def evaluate(block):
        calls.append(block)
        return FakeTally(block, f)

    tally = _run_grid(evaluate, None)
    assert tally.eps[-1] == pytest.approx(last)
    assert np.allclose(np.diff(tally.eps), 0.1) and tally.eps[0] == 0 and len(calls[0]) == 31
    assert all(len(block) == 30 for block in calls[1:])
    # an explicit grid is evaluated once, as given, with 0 prepended
    calls.clear()
    assert list(_run_grid(evaluate, [0.5, 1.0]).eps) == [0.0, 0.5, 1.0] and len(calls) == 1
    with pytest.raises(ConfigError):
        _run_grid(evaluate, [1.0, 0.5])


def margin_data(d, n_per_class=8, num_classes=4):
    """Samples sitting exactly on orthonormal class centres, and a linear net classifying by the centres: a
    perturbation of relative size eps moves the logit differences by about eps * sqrt(2/d)."""
    centres = torch.eye(d)[:num_classes]
    y = torch.arange(num_classes).repeat(n_per_class)
    data = Dataset(centres[y], y, centres[y], y, num_classes, "margin", (d,), {})
    net = MLP(d, num_classes, 1, num_classes, activation="linear", seed=0)
    with torch.no_grad():
        net.blocks[0].linear.weight.copy_(centres)
        net.blocks[1].linear.weight.copy_(torch.eye(num_classes))
        for block in net.blocks:
            block.linear.bias.zero_()
    return net, data


def test_grid_extension_on_a_network_with_a_wide_margin():
    net, data = margin_data(32)
    basin = sample_basin(net, data, repeats=8)
    assert basin.curve["eps"].max() > 3 and basin.clean_accuracy == 1.0
    assert basin.curve["eps"].max() - 3 < basin.size_half < basin.curve["eps"].max()
    net, data = margin_data(2048, n_per_class=2)
    with pytest.warns(RuntimeWarning, match="size_half is NaN"):
        basin = sample_basin(net, data, repeats=2)
    assert basin.curve["eps"].max() == pytest.approx(12.0) and len(basin.curve) == 121
    assert math.isnan(basin.size_half)


# ---------------------------------------------------------------------------------------------- known answers
def test_amplitude_zero_gives_the_clean_accuracy(bn_net, blobs):
    clean = clean_accuracy(bn_net, blobs)
    assert 0.3 < clean < 1.0  # a net that makes mistakes, so that the equality means something
    for layer in range(bn_net.n_layers):  # layer 2 is followed by a skip from layer 1
        basin = sample_basin(bn_net, blobs, eps=[0.0], repeats=3, layer=layer)
        assert basin.curve["accuracy"].tolist() == [clean]
    basin = weight_basin(bn_net, blobs, eps=[0.0, 0.5], repeats=3, include_bias=True, include_bn=True)
    assert basin.curve["accuracy"].iloc[0] == clean
    assert list(basin.curve.columns) == CURVE_COLUMNS


def test_large_amplitudes_fall_to_chance(trained_net, blobs):
    chance = torch.bincount(blobs.y_train).max().item() / len(blobs.y_train)
    sample = sample_basin(trained_net, blobs, eps=[1000.0], repeats=5)
    weight = weight_basin(trained_net, blobs, eps=[1000.0], repeats=40, include_bias=True, include_bn=True)
    for basin in (sample, weight):
        assert basin.clean_accuracy == 1.0
        assert abs(basin.curve["accuracy"].iloc[1] - chance) < 0.05
        assert basin.size_mid < 1000.0 and basin.size_half < 1000.0


def test_seed_fixes_the_curve(trained_net, blobs):
    grid = np.linspace(0, 3, 7)
    for fn in (sample_basin, weight_basin):
        a = fn(trained_net, blobs, eps=grid, repeats=3, seed=4).curve
        b = fn(trained_net, blobs, eps=grid, repeats=3, seed=4).curve
        c = fn(trained_net, blobs, eps=grid, repeats=3, seed=5).curve
        assert a.equals(b)
        assert not np.array_equal(a["accuracy"].to_numpy(), c["accuracy"].to_numpy())


def test_chunking_does_not_change_the_result(bn_net, blobs):
    grid = np.linspace(0, 3, 7)
    # 300 samples span two noise streams; a tiny budget splits samples, eps and networks into many passes
    big = sample_basin(bn_net, blobs, eps=grid, repeats=3, layer=2, per_sample=True)
    small = sample_basin(bn_net, blobs, eps=grid, repeats=3, layer=2, per_sample=True, chunk_budget=200_000)
    assert big.curve.equals(small.curve) and big.per_sample.equals(small.per_sample)
    big = weight_basin(bn_net, blobs, eps=grid, repeats=3, include_bn=True)
    small = weight_basin(bn_net, blobs, eps=grid, repeats=3, include_bn=True, chunk_budget=200_000)
    assert np.allclose(big.curve["accuracy"], small.curve["accuracy"], atol=1 / 900)


def l1_data(d=400, per_class=40, threshold=8.0, seed=0):
    """Class 0: sparse unit vectors (L1 norm sqrt(k), k = 1..20); class 1: dense ones. The net's logits are
    (threshold, ||x||_1): noise raises the L1 norm by an amount that hardly depends on its direction in 400
    dimensions, so each sparse sample flips at its own sharp radius and dense samples never flip."""
    gen = torch.Generator().manual_seed(seed)
    sparse = torch.zeros(per_class, d)
    for i in range(per_class):
        k = 1 + i % 20
        sparse[i, torch.randperm(d, generator=gen)[:k]] = torch.sign(torch.randn(k, generator=gen)) / k**0.5
    dense = torch.randn(per_class, d, generator=gen)
    x = torch.cat([sparse, dense / dense.norm(dim=1, keepdim=True)])
    y = torch.arange(2).repeat_interleave(per_class)
    net = MLP(d, 2 * d, 1, 2, activation="relu", seed=0)
    with torch.no_grad():
        # relu(x) + relu(-x) = |x|
        net.blocks[0].linear.weight.copy_(torch.cat([torch.eye(d), -torch.eye(d)]))
        net.blocks[0].linear.bias.zero_()
        net.blocks[1].linear.weight.zero_()
        net.blocks[1].linear.weight[1] = 1.0
        net.blocks[1].linear.bias.copy_(torch.tensor([threshold, 0.0]))
    return net, Dataset(x, y, x, y, 2, "l1", (d,), {})


def test_per_sample_radii_agree_with_the_curve_where_transitions_are_sharp():
    net, data = l1_data()
    basin = sample_basin(net, data, eps=np.linspace(0, 1, 51), repeats=16, per_sample=True)
    radius = basin.per_sample["radius"].to_numpy()
    assert list(basin.per_sample.columns) == ["sample", "label", "radius"]
    assert np.all(np.isinf(radius[40:])) and np.all((0.1 < radius[:40]) & (radius[:40] < 0.6))
    for eps, acc in zip(basin.curve["eps"], basin.curve["accuracy"], strict=True):
        assert abs((radius > eps).mean() - acc) <= 0.1


def test_per_sample_radii_bound_the_curve_on_a_trained_net(trained_net, blobs):
    # A radius is the median of a sample's ray radii and the curve the survival function of all rays, so they
    # differ where a sample's rays spread (low dimensions); Markov's inequality still bounds one by the other.
    basin = sample_basin(trained_net, blobs, repeats=8, per_sample=True)
    table = basin.per_sample
    radius = table["radius"].to_numpy()
    assert table["label"].tolist() == blobs.y_train.numpy()[table["sample"].to_numpy()].tolist()
    for eps, acc in zip(basin.curve["eps"], basin.curve["accuracy"], strict=True):
        share = (radius > eps).mean()
        assert 2 * acc - 1 - 0.05 <= share <= min(1.0, 2 * acc)


def test_float32_and_float64_agree(bn_net, blobs, to_float64):
    net64, data64 = to_float64(bn_net, blobs)
    grid = np.linspace(0, 2, 5)
    for fn, kwargs in ((sample_basin, {"layer": 1}), (weight_basin, {"include_bias": True})):
        a = fn(bn_net, blobs, eps=grid, repeats=3, **kwargs)
        b = fn(net64, data64, eps=grid, repeats=3, **kwargs)
        assert np.abs(a.curve["accuracy"] - b.curve["accuracy"]).max() <= 2 / (300 * 3) + 1e-12


# ----------------------------------------------------------------------------------------------- weight noise
@pytest.mark.parametrize("residual", ["pre", "post"])
def test_batched_weight_noise_equals_perturbed_copies(residual, blobs):
    net = MLP(10, 12, 4, 4, activation="tanh", residual=residual, batchnorm=True, seed=2)
    with torch.no_grad():  # running statistics and BN affine parameters away from their defaults
        for block in net.blocks[:-1]:
            block.bn.running_mean.normal_(0, 0.3)
            block.bn.running_var.uniform_(0.5, 2.0)
            block.bn.weight.uniform_(0.5, 1.5)
            block.bn.bias.normal_(0, 0.2)
    net.eval()
    seeds = _draw_seeds(make_generator(7), (net.n_layers, 4, 3))
    eps = torch.tensor([0.0, 0.3, 1.0, 0.3])
    reps = torch.tensor([0, 2, 1, 1])
    x = blobs.x_train[:50]
    cases = (({1, 2, 3, 4, 5}, True, True), ({3}, False, True), ({5}, True, False))
    for layers, include_bias, include_bn in cases:
        with torch.no_grad():
            perturbed = _perturbed_tensors(net, eps, reps, seeds, layers, include_bias, include_bn)
            batched = stacked_forward(net, perturbed, x, bn_mode="running")
        for k in range(len(eps)):
            copy_net = copy.deepcopy(net)
            kinds = {_WEIGHT} | ({_BIAS} if include_bias else set())
            kinds |= {_BN_WEIGHT, _BN_BIAS} if include_bn else set()
            with torch.no_grad():
                for l in layers:
                    originals = _layer_params(net, l)
                    for kind, param in _layer_params(copy_net, l).items():
                        if kind in kinds:
                            param += eps[k] * _param_noise(originals[kind], seeds[l - 1, kind, reps[k]])
                expected = copy_net(x, bn_mode="running")
            torch.testing.assert_close(batched[k], expected, rtol=1e-5, atol=1e-5)
            if eps[k] > 0:
                assert not torch.allclose(expected, net(x, bn_mode="running"), atol=1e-3)


def test_weight_noise_has_the_relative_size_asked_for(bn_net):
    for kind, param in _layer_params(bn_net, 2).items():
        noise = _param_noise(param, seed=11 + kind)
        assert torch.linalg.vector_norm(noise).item() == pytest.approx(torch.linalg.vector_norm(param).item())


# ----------------------------------------------------------------------------------------------- the interval
@pytest.mark.parametrize(("sd_sample", "sd_repeat", "repeats"), [(1.0, 0.0, 5), (0.5, 0.4, 5), (1.0, 0.0, 1)])
def test_interval_covers_the_mean_accuracy_at_the_nominal_rate(sd_sample, sd_repeat, repeats):
    # hits = [mu + a_sample + b_repeat + e > 0]: samples and repeats crossed, as in a weight basin
    rng = np.random.default_rng(0)
    mu, n, sims = 0.8, 150, 400
    truth = 0.5 * math.erfc(-mu / math.sqrt(2 * (1 + sd_sample**2 + sd_repeat**2)))
    a = rng.normal(0, sd_sample, (sims, n, 1))
    b = rng.normal(0, sd_repeat, (sims, 1, repeats))
    hits = (mu + a + b + rng.normal(0, 1, (sims, n, repeats))) > 0
    p, low, high = _interval(hits.sum(2), hits.sum(1))
    assert np.allclose(p, hits.mean((1, 2))) and np.all((low <= p) & (p <= high))
    coverage = np.mean((low <= truth) & (truth <= high))
    assert 0.91 <= coverage <= 0.985


# ------------------------------------------------------------------------------------------------ companions
def test_nearest_train_distance_matches_sklearn(blobs):
    table = nearest_train_distance(blobs, chunk_budget=50_000)
    assert list(table.columns) == ["sample", "label", "distance"]
    train, test = blobs.x_train.double().numpy(), blobs.x_test.double().numpy()
    dist, _ = NearestNeighbors(n_neighbors=1).fit(train).kneighbors(test)
    expected = dist[:, 0] / np.linalg.norm(test, axis=1)
    np.testing.assert_allclose(table["distance"].to_numpy(), expected, rtol=1e-10)
    assert table["label"].tolist() == blobs.y_test.tolist()
    # a test sample that is also a training sample is at distance 0
    same = Dataset(blobs.x_train, blobs.y_train, blobs.x_train[:5], blobs.y_train[:5], 4, "same", (10,), {})
    assert nearest_train_distance(same)["distance"].max() < 1e-7


def test_bn_perturbation_vanishes_when_running_and_batch_statistics_agree(bn_net, blobs):
    net = copy.deepcopy(bn_net)
    with torch.no_grad():  # running statistics := full-batch statistics, layer by layer in batch mode
        prev = None
        for l, x_l, _ in net.iter_layers(blobs.x_train, bn_mode="batch"):
            if 1 <= l < net.n_layers:
                a = net.block(l).linear(prev)
                net.block(l).bn.running_mean.copy_(a.mean(0))
                net.block(l).bn.running_var.copy_(a.var(0, unbiased=False))
            prev = x_l
    table = bn_perturbation(net, blobs, batch_size=len(blobs.y_train))
    assert table["layer"].tolist() == [1, 2, 3, 4] and list(table.columns) == ["layer", "eps_equivalent"]
    assert table["eps_equivalent"].max() < 1e-5
    small = bn_perturbation(net, blobs, batch_size=20, n_batches=30)
    assert (small["eps_equivalent"] > 1e-3).all()
    assert small.equals(bn_perturbation(net, blobs, batch_size=20, n_batches=30))


def test_bn_perturbation_matches_explicit_folding(bn_net, blobs):
    """One batch, compared with [W | b] folded by hand from the batch's own statistics."""
    table = bn_perturbation(bn_net, blobs, batch_size=300, n_batches=1, seed=3)
    order = torch.randperm(300, generator=torch.Generator().manual_seed(3))
    x = blobs.x_train[order]
    prev, expected = None, []
    with torch.no_grad():
        for l, x_l, _ in bn_net.iter_layers(x, bn_mode="batch"):
            if 1 <= l < bn_net.n_layers:
                lin, bn = bn_net.block(l).linear, bn_net.block(l).bn
                a = lin(prev).double()

                def fold(mean, var, lin=lin, bn=bn):
                    g = bn.weight.double() / torch.sqrt(var.double() + bn.eps)
                    w = g[:, None] * lin.weight.double()
                    b = g * (lin.bias.double() - mean.double()) + bn.bias.double()
                    return torch.cat([w, b[:, None]], 1)

                run = fold(bn.running_mean, bn.running_var)
                batch = fold(a.mean(0), a.var(0, unbiased=False))
                expected.append((torch.linalg.norm(batch - run) / torch.linalg.norm(run)).item())
            prev = x_l
    np.testing.assert_allclose(table["eps_equivalent"].to_numpy(), expected, rtol=1e-9)


def test_bad_input_is_a_clear_error(bn_net, blobs):
    with pytest.raises(ConfigError, match="layer"):
        sample_basin(bn_net, blobs, layer=5)
    with pytest.raises(ConfigError, match="layers"):
        weight_basin(bn_net, blobs, layers=[0])
    with pytest.raises(ConfigError, match="repeats"):
        sample_basin(bn_net, blobs, repeats=0)
    with pytest.raises(ConfigError, match="batch_size"):
        bn_perturbation(bn_net, blobs, batch_size=1)
    wrong = types.SimpleNamespace(x_train=torch.zeros(5, 3), y_train=torch.zeros(5).long(), num_classes=4)
    with pytest.raises(ConfigError, match="input features"):
        weight_basin(bn_net, wrong)
