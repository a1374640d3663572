"""Neuron modes (SPEC 5.4): gamma against scipy and brute force, the class information against scikit-learn,
the linear reference against a linearised network, and the SPEC's calibration cases with known answers."""

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import entropy, kendalltau
from sklearn.metrics import mutual_info_score

from netdyn.analysis.modes import (
    class_information,
    goodman_kruskal_gamma,
    kendall_counts,
    linear_references,
    neuron_mode_census,
    neuron_modes,
)
from netdyn.analysis.ranks import rpd_summary
from netdyn.data import Dataset, load_dataset
from netdyn.errors import ConfigError
from netdyn.models import MLP

MODE_COLUMNS = ["layer", "neuron", "order_preservation", "order_index", "class_information", "mode"]


def dataset(x, y, num_classes):
    return Dataset(x, y, x, y, num_classes, "toy", (x.shape[1],), {})


def brute_force_gamma(a, b):
    sign = np.sign(a[:, None] - a[None, :]) * np.sign(b[:, None] - b[None, :])
    upper = np.triu(sign, 1)
    concordant, discordant = (upper > 0).sum(), (upper < 0).sum()
    return (concordant - discordant) / (concordant + discordant) if concordant + discordant else 1.0


# ------------------------------------------------------------------------------------------ gamma
@pytest.mark.parametrize("n", [1, 2, 3, 7, 16, 33, 200])
def test_gamma_and_tau_b_match_brute_force_and_scipy_on_tied_data(n):
    gen = torch.Generator().manual_seed(n)
    a = torch.randint(0, 4, (n, 8), generator=gen).float()
    b = torch.randint(0, 3, (n, 8), generator=gen).float()
    b[:, 0] = a[:, 0]  # identical sequences
    b[:, 1] = 5.0  # a constant one
    counts = kendall_counts(a, b)
    gamma, tau_b = counts.gamma(), counts.tau_b()
    for i in range(8):
        x, y = a[:, i].numpy(), b[:, i].numpy()
        assert gamma[i].item() == pytest.approx(brute_force_gamma(x, y), abs=1e-12)
        if n > 1 and len(set(x)) > 1 and len(set(y)) > 1:
            assert tau_b[i].item() == pytest.approx(kendalltau(x, y).statistic, abs=1e-12)
    assert gamma[1].item() == 1.0  # nothing untied in both: nothing reordered


def test_gamma_on_many_samples_matches_scipy_tau_b():
    gen = torch.Generator().manual_seed(11)
    r = torch.randn(3000, 4, generator=gen, dtype=torch.float64)
    x = torch.tanh(r) + 0.5 * torch.randn(3000, 4, generator=gen, dtype=torch.float64)
    x[:, 3] = torch.round(x[:, 3] * 4)  # heavy ties
    counts = kendall_counts(x, r)
    for i in range(4):
        assert counts.tau_b()[i].item() == pytest.approx(kendalltau(x[:, i], r[:, i]).statistic, abs=1e-12)
    # gamma from tau-b and the tie counts, as SPEC 5.4 states it
    n0, n1, n2, n3 = (t.double() for t in (counts.n_pairs, counts.ties_a, counts.ties_b, counts.ties_both))
    c_minus_d = counts.tau_b() * ((n0 - n1) * (n0 - n2)).sqrt()
    np.testing.assert_allclose(counts.gamma().numpy(), (c_minus_d / (n0 - n1 - n2 + n3)).numpy(), atol=1e-12)


def test_monotone_maps_with_plateaus_have_gamma_one():
    gen = torch.Generator().manual_seed(12)
    h = torch.randn(500, 3, generator=gen)
    assert (goodman_kruskal_gamma(torch.relu(h), h) == 1).all()
    assert (goodman_kruskal_gamma(torch.tanh(8 * h), h) == 1).all()  # saturates to ties in float32
    assert (goodman_kruskal_gamma(-torch.relu(h), h) == -1).all()
    assert (goodman_kruskal_gamma(torch.exp(-h * h / 2), h).abs() < 0.2).all()  # Gauss reorders


# ------------------------------------------------------------------------------------------ class information
def test_class_information_matches_scikit_learn_reference():
    gen = torch.Generator().manual_seed(13)
    n, num_classes = 700, 5
    y = torch.randint(0, num_classes, (n,), generator=gen)
    values = torch.stack([
        y + 2.0 * torch.randn(n, generator=gen),  # informative
        torch.randn(n, generator=gen),  # class-blind
        torch.round(y + torch.randn(n, generator=gen)).clamp(min=0),  # few distinct values, many ties
        torch.full((n,), 3.0),  # constant
    ], dim=1)
    info = class_information(values, y, seed=4)
    shuffled = y[torch.randperm(n, generator=torch.Generator().manual_seed(4))].numpy()
    h_label = entropy(np.bincount(y.numpy()))
    for i in range(values.shape[1]):
        below = (values[:, i, None] > values[None, :, i]).sum(1).numpy()  # entries strictly below: ties share
        codes = below * 16 // n
        expected = (mutual_info_score(codes, y.numpy()) - mutual_info_score(codes, shuffled)) / h_label
        assert info[i].item() == pytest.approx(expected, abs=1e-10)
    assert info[3].item() == 0.0
    assert info[0] > 0.1 > abs(info[1])


def test_class_information_removes_the_plug_in_bias():
    gen = torch.Generator().manual_seed(14)
    y = torch.arange(2000) % 10
    blind = torch.randn(2000, 200, generator=gen)
    info = class_information(blind, y, seed=0).numpy()
    assert abs(info.mean()) < 3 * info.std() / np.sqrt(len(info))
    y8 = torch.arange(2000) % 8  # 250 samples a class: two quantile bins each, so MI(bins, label) = H(label)
    perfect = class_information((y8 + 0.01 * torch.randn(2000, generator=gen))[:, None], y8)
    assert 0.97 < perfect.item() < 1.0  # minus the small plug-in bias


# ------------------------------------------------------------------------------------------ linear reference
@pytest.mark.parametrize("residual", [False, "pre", "post"])
def test_linear_reference_equals_the_network_with_two_transfer_functions_removed(residual, make_blobs,
                                                                                 fit_net):
    data = make_blobs(n_train=120)
    d, depth = data.x_train.shape[1], 5
    net = fit_net(MLP(d, 8, depth, data.num_classes, activation="tanh", residual=residual, batchnorm=True,
                      seed=0), data, steps=30)
    references = {l: r for l, _, r in linear_references(net, data.x_train, range(1, depth + 1))}
    for l in range(1, depth + 1):
        activations = ["tanh"] * depth
        activations[l - 1] = "linear"
        if l >= 2:
            activations[l - 2] = "linear"
        linearised = MLP(d, 8, depth, data.num_classes, activation=activations, residual=residual,
                         batchnorm=True)
        linearised.load_state_dict(net.state_dict())
        linearised.eval()
        expected = linearised.trace(data.x_train, layers=[l]).x[l]
        torch.testing.assert_close(references[l], expected, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------------------------------ calibration
@pytest.mark.parametrize("residual", [False, "pre", "post"])
def test_linear_network_is_all_opm_or_inactive_with_rho_exactly_one(residual, make_blobs, fit_net):
    data = make_blobs()
    net = MLP(data.x_train.shape[1], 12, 4, data.num_classes, activation="linear", residual=residual,
              batchnorm=True, seed=1)
    fit_net(net, data, steps=40)
    table = neuron_modes(net, data)
    assert (table.order_preservation == 1.0).all()
    assert set(table["mode"]) <= {"OPM", "inactive"}
    assert (table["mode"] == "OPM").mean() > 0.5


def test_gauss_network_trained_on_rings_is_mostly_npm(fit_net, net_accuracy):
    data = load_dataset("rings", train_size=600, test_size=60, normalize="none", seed=0)
    net = MLP(2, 16, 1, 3, activation="gauss", seed=0)
    fit_net(net, data, steps=300, lr=0.02)
    assert net_accuracy(net, data.x_train, data.y_train) > 0.95  # the network has learned the rings
    table = neuron_modes(net, data)
    active = table[table["mode"] != "inactive"]
    assert len(active) >= 5
    assert (active["mode"] == "NPM").mean() > 0.5


def tanh_bump_network():
    """Scalar u: layer 1 = (tanh(u), tanh(u - 3)); layer 2 neuron 0 = tanh(tanh(u) - tanh(u - 3) / 2), a bump
    in u (non-monotone), neuron 1 = tanh(tanh(u)) (monotone)."""
    net = MLP(1, 2, 2, 3, activation="tanh")
    with torch.no_grad():
        first, second, output = net.blocks
        first.linear.weight.copy_(torch.tensor([[1.0], [1.0]]))
        first.linear.bias.copy_(torch.tensor([0.0, -3.0]))
        second.linear.weight.copy_(torch.tensor([[1.0, -0.5], [1.0, 0.0]]))
        second.linear.bias.zero_()
        output.linear.weight.copy_(torch.tensor([[-1.0, -1.0], [1.0, 0.0], [0.0, 1.0]]))
        output.linear.bias.zero_()
    return net


def test_tanh_pair_forming_a_bump_is_npm_and_its_inputs_opm():
    gen = torch.Generator().manual_seed(15)
    u = torch.rand(1500, 1, generator=gen) * 9 - 3
    y = (u[:, 0] >= 0).long() + (u[:, 0] >= 3).long()  # classes by ranges of u: the bump is informative
    table = neuron_modes(tanh_bump_network(), dataset(u, y, 3)).set_index(["layer", "neuron"])
    assert table.loc[(1, 0), "mode"] == "OPM" and table.loc[(1, 1), "mode"] == "OPM"
    assert table.loc[(1, 0), "order_preservation"] == 1.0
    assert table.loc[(2, 0), "mode"] == "NPM"
    assert table.loc[(2, 0), "order_preservation"] < 0.5
    assert table.loc[(2, 1), "mode"] == "OPM"


def test_tanh_network_with_small_weights_is_all_opm(make_blobs):
    data = make_blobs()
    net = MLP(data.x_train.shape[1], 16, 3, data.num_classes, activation="tanh", init_scale=0.1, seed=2)
    table = neuron_modes(net, data)
    assert (table["mode"] == "OPM").all()
    assert (table.order_preservation > 0.99).all()


def test_relu_first_layer_preserves_order_exactly(make_blobs):
    data = make_blobs()
    net = MLP(data.x_train.shape[1], 16, 2, data.num_classes, activation="relu", seed=3)
    table = neuron_modes(net, data, layers=[1])
    assert (table.order_preservation == 1.0).all()


# ------------------------------------------------------------------------------------------ tables
def test_order_index_agrees_with_the_rpd_on_the_same_subset(make_blobs, fit_net):
    data = make_blobs(n_train=300)
    net = fit_net(MLP(data.x_train.shape[1], 16, 2, data.num_classes, seed=4), data, steps=60)
    table = neuron_modes(net, data, max_samples=150, seed=3)
    summary = rpd_summary(net, data, max_samples=150, seed=3).set_index("layer")
    means = table.groupby("layer").order_index.mean()
    expected = summary.loc[means.index, "order_index"].to_numpy()
    np.testing.assert_allclose(means.to_numpy(), expected, atol=1e-12)


def test_table_schema_determinism_and_census(make_blobs, fit_net):
    data = make_blobs()
    net = fit_net(MLP(data.x_train.shape[1], 10, 3, data.num_classes, activation="tanh", seed=5), data)
    table = neuron_modes(net, data, max_samples=200, seed=1)
    assert list(table.columns) == MODE_COLUMNS
    assert table.layer.dtype == np.int64 and table.neuron.dtype == np.int64
    assert len(table) == 30 and table.groupby("layer").neuron.apply(list).tolist() == [list(range(10))] * 3
    assert set(table["mode"]) <= {"OPM", "NPM", "inactive"}
    pd.testing.assert_frame_equal(table, neuron_modes(net, data, max_samples=200, seed=1))
    expected = np.where(table.class_information < 0.01, "inactive",
                        np.where(table.order_preservation >= 0.5, "OPM", "NPM"))
    relaxed = neuron_modes(net, data, threshold=0.5, max_samples=200, seed=1)
    assert (relaxed["mode"].to_numpy() == expected).all()

    census = neuron_mode_census(table)
    assert list(census.columns) == ["layer", "opm", "npm", "inactive", "rho_mean", "rho_q10", "rho_q25",
                                    "rho_median", "rho_q75", "order_index_mean", "class_information_mean"]
    np.testing.assert_allclose(census[["opm", "npm", "inactive"]].sum(axis=1).to_numpy(), 1.0)
    for _, row in census.iterrows():
        layer = table[table.layer == row.layer]
        assert row.opm == pytest.approx((layer["mode"] == "OPM").mean())
        assert row.npm == pytest.approx((layer["mode"] == "NPM").mean())
        assert row.rho_mean == pytest.approx(layer.order_preservation.mean())
        assert row.rho_median == pytest.approx(np.median(layer.order_preservation))
        assert row.rho_q10 <= row.rho_q25 <= row.rho_median <= row.rho_q75
        assert row.order_index_mean == pytest.approx(layer.order_index.mean())
        assert row.class_information_mean == pytest.approx(layer.class_information.mean())


def test_census_of_a_hand_made_table():
    table = pd.DataFrame({
        "layer": [1, 1, 1, 1, 2],
        "neuron": [0, 1, 2, 3, 0],
        "order_preservation": [1.0, 0.5, 0.2, 1.0, 0.95],
        "order_index": [0.1, 0.2, 0.3, 0.0, 0.4],
        "class_information": [0.5, 0.4, 0.3, 0.0, 0.2],
        "mode": ["OPM", "NPM", "NPM", "inactive", "OPM"],
    })
    census = neuron_mode_census(table)
    assert census.layer.tolist() == [1, 2]
    assert census.opm.tolist() == [0.25, 1.0]
    assert census.npm.tolist() == [0.5, 0.0]
    assert census.inactive.tolist() == [0.25, 0.0]
    assert census.rho_mean.tolist() == pytest.approx([0.675, 0.95])
    # numpy's linear quantiles of layer 1's rho [1.0, 0.5, 0.2, 1.0]
    assert census.rho_q25.tolist() == pytest.approx([np.quantile([1.0, 0.5, 0.2, 1.0], 0.25), 0.95])
    assert census.rho_median.tolist() == pytest.approx([0.75, 0.95])


def test_bad_arguments_raise_config_error(make_blobs):
    data = make_blobs()
    net = MLP(data.x_train.shape[1], 8, 2, data.num_classes, seed=0)
    with pytest.raises(ConfigError, match="threshold"):
        neuron_modes(net, data, threshold=1.5)
    with pytest.raises(ConfigError, match="out of range"):
        neuron_modes(net, data, layers=[3])
    with pytest.raises(ConfigError, match="max_samples"):
        neuron_modes(net, data, max_samples=1)
    with pytest.raises(ConfigError, match="input features"):
        neuron_modes(MLP(data.x_train.shape[1] + 2, 8, 2, data.num_classes), data)
    with pytest.raises(ConfigError, match="missing columns"):
        neuron_mode_census(pd.DataFrame({"layer": [1]}))


def test_gamma_where_some_columns_of_the_second_sequence_are_tied_and_others_not():
    """Columns of b without ties take b's own order, the others the joint sort: each matches brute force."""
    gen = torch.Generator().manual_seed(5)
    a = torch.randint(0, 6, (40, 6), generator=gen).double()
    b = torch.randn(40, 6, generator=gen, dtype=torch.float64)
    b[:, 1] = torch.randint(0, 3, (40,), generator=gen).double()  # tied
    b[:, 4] = torch.round(b[:, 4])  # tied
    gamma = goodman_kruskal_gamma(a, b)
    for i in range(6):
        assert gamma[i].item() == pytest.approx(brute_force_gamma(a[:, i].numpy(), b[:, i].numpy()), abs=1e-12)
