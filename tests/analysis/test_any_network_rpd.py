"""RPD, neuron modes and local fields on any traceable model (SPEC 10): known answers against netdyn's own MLP,
the L-map, captum's layer gradient x activation, channel permutations and a transformer's residual stream."""

import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from any_models import conv_net
from netdyn import MLP
from netdyn.analysis import units
from netdyn.analysis.fields import local_fields
from netdyn.analysis.lmap import lmap_matrix
from netdyn.analysis.modes import neuron_mode_census, neuron_modes
from netdyn.analysis.ranks import rpd_summary, rpd_tables
from netdyn.data import Dataset
from netdyn.models.adapter import read_network


@pytest.fixture(scope="module")
def data(make_blobs):
    return make_blobs(n_train=240, n_test=120, spread=1.5, seed=3)


def twin(mlp: MLP, batchnorm: bool) -> nn.Sequential:
    """The netdyn MLP as an nn.Sequential of Linear (BatchNorm1d) ReLU modules, with its parameters copied."""
    layers: list[nn.Module] = []
    for l in range(1, mlp.n_layers + 1):
        block = mlp.block(l)
        layers.append(nn.Linear(block.linear.in_features, block.linear.out_features))
        if l < mlp.n_layers:
            layers += [nn.BatchNorm1d(block.linear.out_features)] if batchnorm else []
            layers.append(nn.ReLU())
    seq = nn.Sequential(*layers)
    linears = [m for m in seq if isinstance(m, nn.Linear)]
    norms = [m for m in seq if isinstance(m, nn.BatchNorm1d)]
    with torch.no_grad():
        for l, linear in enumerate(linears, start=1):
            linear.weight.copy_(mlp.block(l).linear.weight)
            linear.bias.copy_(mlp.block(l).linear.bias)
        for l, norm in enumerate(norms, start=1):
            norm.load_state_dict(mlp.block(l).bn.state_dict())
    return seq.eval()


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "batchnorm"])
def twins(request, data, fit_net):
    mlp = fit_net(MLP(10, 12, 3, 4, seed=0, batchnorm=request.param), data, steps=60)
    seq = twin(mlp, request.param)
    assert torch.allclose(seq(data.x_train), mlp(data.x_train, bn_mode="running"), atol=1e-5)
    return mlp, seq


def shared(table, reference):
    return table[list(reference.columns)]


@pytest.mark.parametrize("use", ["output", "field"])
def test_an_nn_sequential_mlp_has_the_netdyn_mlps_rpd(twins, data, use):
    mlp, seq = twins
    for reference, table in zip(rpd_tables(mlp, data, use=use), rpd_tables(seq, data, use=use), strict=True):
        assert list(table.columns) == ["layer", "cut", *reference.columns[1:], "reason"]
        assert (table["reason"] == "").all()
        pd.testing.assert_frame_equal(shared(table, reference), reference, rtol=1e-9)
    assert rpd_summary(mlp, data)["order_index"].min() > 0.1  # a trained net: something to compare


def test_an_nn_sequential_mlp_has_the_netdyn_mlps_neuron_modes(twins, data):
    mlp, seq = twins
    reference = neuron_modes(mlp, data, max_samples=200, seed=1)
    table = neuron_modes(seq, data, max_samples=200, seed=1)
    pd.testing.assert_frame_equal(shared(table, reference), reference, rtol=1e-9)
    census = neuron_mode_census(table)
    assert list(census.columns[:2]) == ["layer", "cut"] and census.columns[-1] == "reason"
    pd.testing.assert_frame_equal(shared(census, neuron_mode_census(reference)), neuron_mode_census(reference))
    assert 0 < reference["order_preservation"].min() < 1  # the census has NPM and OPM to tell apart


def test_an_nn_sequential_mlp_has_the_netdyn_mlps_local_fields(twins, data):
    mlp, seq = twins
    reference, fields = local_fields(mlp, data), local_fields(seq, data)
    pd.testing.assert_frame_equal(fields.points, reference.points, rtol=1e-6)
    pd.testing.assert_frame_equal(fields.summary, reference.summary)
    assert fields.neurons == reference.neurons


# ------------------------------------------------------------------------------------------------- conv nets
@pytest.fixture(scope="module")
def images():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(180, 64, generator=gen)
    y = (x[:, :20].sum(1) > 0).long() + (x[:, 40:].sum(1) > 2).long()
    return Dataset(x[:120], y[:120], x[120:], y[120:], 3, "images", (1, 8, 8), {})


def trained(model, images, steps=40):
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(images.x_train.reshape(-1, 1, 8, 8)), images.y_train).backward()
        opt.step()
    return model.eval()


def test_contributions_of_an_affine_tail_sum_to_the_l_maps_logits(images):
    model = trained(conv_net(), images).double()
    network = read_network(model, (1, 8, 8))
    x = images.x_train.double()
    for layer in (1, 2, 3):
        contributions = units.unit_contributions(network, layer, x)
        m, c = lmap_matrix(model, layer, data=images)
        values = network.activations(x, layer).flatten(1)
        logits = network.run_tail(layer, [network.activations(x, layer)])
        torch.testing.assert_close(contributions.sum(-1).T + c, logits, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(contributions.sum(-1).T + c, values @ m.T + c, rtol=1e-9, atol=1e-9)


def test_a_channels_contribution_is_its_positions_summed(images):
    model = trained(conv_net(), images).double()
    network = read_network(model, (1, 8, 8))
    x = images.x_train.double()
    m, _ = lmap_matrix(model, 1, data=images)
    elements = units.element_contributions(network, 1, x)  # [C, P, 4, 4, 4]
    values = network.activations(x, 1)
    assert elements.shape == (3, 120, 4, 4, 4)
    torch.testing.assert_close(elements, m.view(3, 1, 4, 4, 4) * values, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(units.unit_contributions(network, 1, x), elements.sum((-1, -2)), rtol=1e-12,
                               atol=1e-12)


def test_one_jacobian_for_an_affine_tail_equals_the_per_sample_gradients(images, monkeypatch):
    model = trained(conv_net(), images).double()
    network = read_network(model, (1, 8, 8))
    x = images.x_train.double()
    shared_matrix = units.unit_contributions(network, 2, x)
    monkeypatch.setattr(units, "AFFINE_TOLERANCE", -1.0)  # every tail takes the per-sample path
    torch.testing.assert_close(units.unit_contributions(network, 2, x), shared_matrix, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("pool", [nn.AvgPool2d, nn.MaxPool2d])  # an affine tail, and one that is not
def test_captums_layer_gradient_x_activation_gives_the_contributions(images, pool):
    from captum.attr import LayerGradientXActivation

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 3), pool(2),
                          nn.Flatten(), nn.Linear(5 * 3 * 3, 3)).double().eval()  # no transfer function after 1
    x, y = images.x_train.double(), images.y_train
    network = read_network(model, (1, 8, 8))
    assert network.cut(1).name == "1"
    assert network.tail_kind(1, images.x_train.double()) == ("affine" if pool is nn.AvgPool2d else "piecewise_linear")
    ours = units.element_contributions(network, 1, x)[y, torch.arange(x.shape[0])]
    theirs = LayerGradientXActivation(model, model[1]).attribute(x.reshape(-1, 1, 8, 8), target=y)
    torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-12)

    relu_net = trained(conv_net(), images).double()  # a nonlinear tail, linearised: captum on netdyn's tail
    network = read_network(relu_net, (1, 8, 8))

    class Tail(nn.Module):
        def __init__(self, tail):
            super().__init__()
            self.cut, self.tail = nn.Identity(), tail

        def forward(self, v):
            return self.tail(self.cut(v))

    tail = Tail(network.tail(1)).eval()
    values = network.activations(x, 1)
    theirs = LayerGradientXActivation(tail, tail.cut).attribute(values, target=y)
    ours = units.unit_contributions(network, 1, x)[y, torch.arange(x.shape[0])]
    torch.testing.assert_close(ours, theirs.sum((-1, -2)), rtol=1e-9, atol=1e-12)


def permuted_conv_net(model, order):
    """The conv net with its first conv layer's channels permuted (and the second conv's inputs)."""
    twin_net = conv_net()
    twin_net.load_state_dict(model.state_dict())
    conv, norm, after = twin_net[0], twin_net[1], twin_net[4]
    with torch.no_grad():
        for tensor in (conv.weight, conv.bias, norm.weight, norm.bias, norm.running_mean, norm.running_var):
            tensor.copy_(tensor[order])
        after.weight.copy_(after.weight[:, order])
    return twin_net.eval()


def test_permuting_a_conv_layers_channels_leaves_the_summaries_unchanged(images):
    model = trained(conv_net(), images)
    order = torch.tensor([2, 0, 3, 1])
    permuted = permuted_conv_net(model, order)
    kwargs = {"input_shape": (1, 8, 8)}
    pd.testing.assert_frame_equal(rpd_summary(permuted, images, **kwargs), rpd_summary(model, images, **kwargs),
                                  rtol=1e-6)
    modes, reference = neuron_modes(permuted, images, **kwargs), neuron_modes(model, images, **kwargs)
    pd.testing.assert_frame_equal(neuron_mode_census(modes), neuron_mode_census(reference), rtol=1e-6)
    first = reference[reference["layer"] == 1].set_index("neuron")
    moved = modes[modes["layer"] == 1].set_index("neuron")
    pd.testing.assert_frame_equal(moved, first.loc[order.tolist()].set_index(moved.index), rtol=1e-6)
    assert list(first.index) == [0, 1, 2, 3] and first["order_preservation"].between(0, 1).all()


def test_neuron_modes_read_in_one_pass_or_cut_by_cut_are_equal(images, monkeypatch):
    """All cuts in one pass of the model per chunk, or one cut per pass where the held bytes allow no more."""
    model = trained(conv_net(), images)
    together = neuron_modes(model, images, input_shape=(1, 8, 8))
    monkeypatch.setattr(units, "HELD_BYTES", 1)
    network = read_network(model, (1, 8, 8))
    assert units._groups(network, [1, 2, 3], 100) == [[1], [2], [3]]
    pd.testing.assert_frame_equal(neuron_modes(model, images, input_shape=(1, 8, 8)), together)


def test_conv_neuron_modes_are_per_channel_and_a_linear_net_is_all_opm(images):
    model = trained(conv_net(nn.Identity), images)
    table = neuron_modes(model, images, input_shape=(1, 8, 8))
    assert list(table.groupby("layer").size()) == [4, 6, 5]  # channels, channels, units
    assert (table["order_preservation"] == 1).all()  # the reference is the cut itself, bit for bit
    assert set(table["mode"]) <= {"OPM", "inactive"}


# ---------------------------------------------------------------------------------------- residual models
class Attention(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.qkv, self.out = nn.Linear(width, 3 * width), nn.Linear(width, width)

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
        return self.out(weights @ v)


class Block(nn.Module):
    """A pre-LN transformer block: explicit softmax attention, then a GELU MLP, each added to the stream."""

    def __init__(self, width):
        super().__init__()
        self.ln1, self.attn, self.ln2 = nn.LayerNorm(width), Attention(width), nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TinyTransformer(nn.Module):
    def __init__(self, tokens=4, features=4, width=8, classes=3):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Linear(features, width)
        self.blocks = nn.ModuleList([Block(width), Block(width)])
        self.norm, self.head = nn.LayerNorm(width), nn.Linear(width, classes)

    def forward(self, x):
        x = self.embed(x)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x).mean(1))


def test_a_transformers_residual_stream_is_nan_with_its_reason_and_its_gelu_units_are_measured(images):
    model = TinyTransformer().eval()
    kwargs = {"input_shape": (16, 4), "cuts": ["embed", "blocks.0.mlp.1", "blocks.0", "blocks.1"]}
    summary = rpd_summary(model, images, **kwargs).set_index("cut")
    residual, gelu = ["embed", "blocks.0", "blocks.1"], "blocks.0.mlp.1"
    assert (summary.loc[residual, "reason"] == units.NO_PRIVILEGED_BASIS).all()
    assert summary.loc[residual, ["gradient", "top_mass", "order_index"]].isna().all().all()
    assert summary.loc[gelu, "reason"] == "" and math.isfinite(summary.loc[gelu, "order_index"])
    modes = neuron_modes(model, images, **kwargs)
    assert modes.groupby("cut").size().to_dict() == {"embed": 8, "blocks.0.mlp.1": 16, "blocks.0": 8, "blocks.1": 8}
    stream = modes[modes["cut"].isin(residual)]
    assert (stream["mode"] == "undefined").all() and stream["order_preservation"].isna().all()
    assert modes.loc[modes["cut"] == gelu, "order_preservation"].between(0, 1).all()
    census = neuron_mode_census(modes).set_index("cut")
    assert census.loc[residual, ["opm", "npm", "inactive", "rho_mean"]].isna().all().all()
    assert census.loc[gelu, ["opm", "npm", "inactive"]].sum() == pytest.approx(1)
    network = read_network(model, (16, 4), kwargs["cuts"])
    assert units.unit_axis(network, 2) == -1  # units summed over tokens
    assert rpd_summary(model, images, input_shape=(16, 4))["gradient"].isna().all()  # default cuts: the stream


def test_a_resnets_block_outputs_keep_their_rpd_per_channel(images):
    class Basic(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)

        def forward(self, x):
            return F.relu(self.bn(self.conv(x)) + x)

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.stem = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU())
            self.layers = nn.Sequential(Basic(), Basic())
            self.head = nn.Linear(3, 3)

        def forward(self, x):
            return self.head(self.layers(self.stem(x)).mean((2, 3)))

    model = ResNet().eval()
    summary = rpd_summary(model, images, input_shape=(1, 8, 8))
    assert list(summary["cut"]) == ["stem.1", "layers.0", "layers.1"]
    assert (summary["reason"] == "").all() and summary["order_index"].notna().all()
    assert list(neuron_modes(model, images, input_shape=(1, 8, 8)).groupby("layer").size()) == [3, 3, 3]
