"""The quantities on any traceable model (SPEC 10): known answers against netdyn's own MLP and hand-built nets."""

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from any_models import conv_net
from netdyn import MLP
from netdyn.analysis import probes
from netdyn.analysis.geometry import class_geometry
from netdyn.analysis.lmap import lmap_accuracy
from netdyn.analysis.network import network_accuracy
from netdyn.analysis.probes import lp_accuracy
from netdyn.data import Dataset
from netdyn.errors import ModelError

QUANTITIES = [lmap_accuracy, lp_accuracy, class_geometry]


class Functional(nn.Module):
    """Sequential(Linear, ReLU, Linear, Tanh, Linear) written with attributes and functional calls."""

    def __init__(self, seq):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = seq[0], seq[2], seq[4]

    def forward(self, x):
        return self.fc3(torch.tanh(self.fc2(F.relu(self.fc1(x)))))


@pytest.fixture(scope="module")
def data(make_blobs):
    return make_blobs(n_train=240, n_test=120, spread=2.0, seed=3)


@pytest.fixture(scope="module")
def seq(data):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 12), nn.Tanh(), nn.Linear(12, 4))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        F.cross_entropy(model(data.x_train), data.y_train).backward()
        opt.step()
    return model.eval()


def shared(table, reference):
    """The columns the netdyn MLP's table has, from a table of the adapter (which adds cut, tail, features)."""
    return table[list(reference.columns)]


@pytest.mark.parametrize("quantity", QUANTITIES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("form", ["sequential", "functional"])
def test_an_nn_module_mlp_gives_the_netdyn_mlps_tables(seq, data, quantity, form):
    model = seq if form == "sequential" else Functional(seq)
    reference = quantity(MLP.from_sequential(seq), data)
    table = quantity(model, data)
    assert list(table["cut"].unique()) == (["input", "1", "3"] if form == "sequential" else ["x", "relu", "tanh"])
    pd.testing.assert_frame_equal(shared(table, reference), reference, rtol=1e-5)
    if "accuracy" in reference:
        assert 0.3 < reference["accuracy"].min() < 1  # a task where linear replacements can differ


def test_network_accuracy_of_any_module(seq, data):
    pd.testing.assert_frame_equal(network_accuracy(seq, data), network_accuracy(MLP.from_sequential(seq), data))


def test_per_sample_geometry_of_any_module(seq, data):
    reference = class_geometry(MLP.from_sequential(seq), data, per_sample=True, classes=[1], limit=5)
    table = class_geometry(seq, data, per_sample=True, classes=[1], limit=5)
    pd.testing.assert_frame_equal(shared(table, reference), reference, rtol=1e-5)


@pytest.fixture(scope="module")
def images():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(180, 64, generator=gen)
    y = (x[:, :20].sum(1) > 0).long() + (x[:, 40:].sum(1) > 2).long()
    return x[:120], y[:120], x[120:], y[120:]


def test_conv_net_with_identity_activations_has_l_map_equal_to_network_and_affine_tails(images):
    model = conv_net(nn.Identity)
    model.train()
    with torch.no_grad():
        model(images[0].reshape(-1, 1, 8, 8))  # running statistics of its own
    table = lmap_accuracy(model, images, input_shape=(1, 8, 8))
    net = network_accuracy(model, images, input_shape=(1, 8, 8)).set_index("split")["accuracy"]
    assert list(table["cut"].unique()) == ["input", "3", "6", "9"]
    assert (table["tail"] == "affine").all()
    assert (table["accuracy"].to_numpy() == net[table["split"]].to_numpy()).all()
    assert model.training


def test_an_image_sets_samples_reach_a_conv_net_with_one_channel(images):
    """A data set that records an image shape (H, W) feeds a conv net (1, H, W) without an input_shape."""
    model = conv_net(nn.ReLU).eval()
    x_train, y_train, x_test, y_test = images
    data = Dataset(x_train, y_train, x_test, y_test, num_classes=3, name="blobs", input_shape=(8, 8))
    expected = network_accuracy(model, images, input_shape=(1, 8, 8))
    pd.testing.assert_frame_equal(network_accuracy(model, data), expected)


def test_conv_net_lp_and_geometry_run_on_flattened_cuts(images):
    model = conv_net(nn.ReLU).eval()
    lp = lp_accuracy(model, images, input_shape=(1, 8, 8), layers=[1, 3])
    assert list(lp.columns) == ["layer", "cut", "split", "accuracy", "features"]
    assert set(lp["layer"]) == {1, 3} and (lp["features"] == "full").all()
    geometry = class_geometry(model, images, input_shape=(1, 8, 8))
    assert list(geometry["layer"]) == [0, 1, 2, 3]
    assert geometry["cos_dist_mean"].between(0, 2).all()


def test_the_dual_lp_equals_the_primal(monkeypatch, images):
    model = conv_net(nn.ReLU).eval()
    primal = lp_accuracy(model, images, input_shape=(1, 8, 8))
    monkeypatch.setattr(probes, "PRIMAL_MAX_FEATURES", 0)
    dual = lp_accuracy(model, images, input_shape=(1, 8, 8))
    assert (dual["features"] == "dual").all() and (primal["features"] == "full").all()
    pd.testing.assert_frame_equal(dual.drop(columns="features"), primal.drop(columns="features"))


@pytest.mark.parametrize("ridge", [1e-3, 0.0])
@pytest.mark.parametrize("n_features", [30, 90])
def test_the_dual_ridge_solves_the_primal_ridge(ridge, n_features):
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(60, n_features, dtype=torch.float64, generator=gen) + 3
    h = x[:, :3] @ torch.randn(3, 4, dtype=torch.float64, generator=gen) + torch.randn(60, 4, generator=gen).double()
    moments = probes._Moments.start(x, h)
    moments.add(x, h)
    a_primal, c_primal = probes._solve(moments, ridge)
    a_dual, c_dual = probes._solve_dual(x, h, ridge)
    torch.testing.assert_close(x @ a_dual + c_dual, x @ a_primal + c_primal, rtol=1e-7, atol=1e-7)


def test_permuting_hidden_units_leaves_the_tables_unchanged(seq, data):
    permuted = nn.Sequential(*(nn.Linear(m.in_features, m.out_features) if isinstance(m, nn.Linear) else m
                               for m in seq))
    permuted.load_state_dict(seq.state_dict())
    order = torch.randperm(16, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        permuted[0].weight.copy_(seq[0].weight[order])
        permuted[0].bias.copy_(seq[0].bias[order])
        permuted[2].weight.copy_(seq[2].weight[:, order])
    for quantity in (lmap_accuracy, lp_accuracy, network_accuracy, class_geometry):
        pd.testing.assert_frame_equal(quantity(permuted, data), quantity(seq, data), rtol=1e-5)


def test_layer_norm_tails_are_nonlinear_and_bad_cut_names_are_model_errors(data):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 8), nn.ReLU(), nn.Dropout(0.3), nn.LayerNorm(8), nn.Linear(8, 4))
    table = lmap_accuracy(model, data)
    assert list(table.loc[table["layer"] == 1, "tail"]) == ["nonlinear", "nonlinear"]
    assert list(table.loc[table["layer"] == 0, "tail"]) == ["nonlinear", "nonlinear"]
    with pytest.raises(ModelError, match="valid names"):
        lp_accuracy(model, data, cuts=["fc1"])


def test_lmap_matrix_of_any_model_is_the_tails_affine_map():
    """An nn.Sequential twin of a netdyn MLP has the MLP's L-map matrices; a nonlinear tail has none."""
    import torch
    from torch import nn

    import netdyn
    from netdyn.errors import ModelError

    torch.manual_seed(0)
    data = netdyn.load_dataset("blobs", train_size=120, test_size=60)
    d, c = data.x_train.shape[1], data.num_classes
    mlp = netdyn.MLP(d, 7, 3, c, seed=0).double().eval()
    seq = nn.Sequential(nn.Linear(d, 7), nn.ReLU(), nn.Linear(7, 7), nn.ReLU(), nn.Linear(7, 7), nn.ReLU(),
                        nn.Linear(7, c)).double()
    linears = [m for m in seq if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for l, linear in enumerate(linears, start=1):
            linear.weight.copy_(mlp.block(l).linear.weight)
            linear.bias.copy_(mlp.block(l).linear.bias)
    for layer in (1, 2, 3):  # layer 0 is the input: its tail is linear too
        m_ref, c_ref = netdyn.lmap_matrix(mlp, layer)
        m, c_any = netdyn.lmap_matrix(seq, layer, data=data)
        assert torch.allclose(m, m_ref, atol=1e-10) and torch.allclose(c_any, c_ref, atol=1e-10)
    gated = nn.Sequential(nn.Linear(d, 6), nn.ReLU(), nn.Linear(6, 6), nn.LayerNorm(6), nn.Linear(6, c)).double()
    with pytest.raises(ModelError, match="nonlinear, not affine"):
        netdyn.lmap_matrix(gated, 1, data=data)
    with pytest.raises(netdyn.ConfigError, match="needs data"):
        netdyn.lmap_matrix(seq, 1)


@pytest.fixture
def hooks_only(monkeypatch):
    """Every any-network function reads its model through forward hooks."""
    from functools import partial

    from netdyn.analysis import _common
    from netdyn.models.adapter import read_network

    monkeypatch.setattr(_common, "read_network", partial(read_network, path="hooks"))


def test_the_hook_path_gives_the_traced_paths_tables(seq, data, images, request):
    conv = conv_net(nn.ReLU).eval()
    traced = [lmap_accuracy(seq, data), network_accuracy(seq, data),
              lmap_accuracy(conv, images, input_shape=(1, 8, 8)), network_accuracy(conv, images, input_shape=(1, 8, 8))]
    request.getfixturevalue("hooks_only")
    hooked = [lmap_accuracy(seq, data), network_accuracy(seq, data),
              lmap_accuracy(conv, images, input_shape=(1, 8, 8)), network_accuracy(conv, images, input_shape=(1, 8, 8))]
    for table, reference in zip(hooked, traced, strict=True):
        pd.testing.assert_frame_equal(table, reference)
    assert list(hooked[2]["cut"].unique()) == ["input", "3", "6", "9"]


class Branching(nn.Module):
    """An MLP with data-dependent control flow in its forward (torch.fx cannot trace it)."""

    def __init__(self, seq):
        super().__init__()
        self.seq = seq

    def forward(self, x):
        if x.abs().sum() < 0:  # never taken
            return torch.zeros(x.shape[0], 4)
        return self.seq(x)


def test_a_model_with_data_dependent_control_flow_gets_its_tables(seq, data):
    from netdyn.models.adapter import read_network

    model = Branching(seq)
    assert read_network(model, (10,)).path == "hooks"
    reference = lmap_accuracy(seq, data)
    table = lmap_accuracy(model, data)
    assert list(table["cut"].unique()) == ["x", "seq.1", "seq.3"]
    pd.testing.assert_frame_equal(table.drop(columns="cut"), reference.drop(columns="cut"))
    pd.testing.assert_frame_equal(network_accuracy(model, data), network_accuracy(seq, data))


class Attention(nn.Module):
    """Multi-head self-attention written out: the softmax pattern is a node of the graph."""

    def __init__(self, d, heads):
        super().__init__()
        self.heads, self.qkv, self.out = heads, nn.Linear(d, 3 * d), nn.Linear(d, d)

    def forward(self, h):
        b, t, d = h.shape
        q, k, v = self.qkv(h).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        pattern = torch.softmax(q @ k.transpose(-2, -1) / (d // self.heads) ** 0.5, dim=-1)
        return self.out((pattern @ v).transpose(1, 2).reshape(b, t, d))


class PreLN(nn.Module):
    def __init__(self, d, fused):
        super().__init__()
        self.fused, self.ln1, self.ln2 = fused, nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, 2, batch_first=True) if fused else Attention(d, 2)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, h):
        a = self.ln1(h)
        h = h + (self.attn(a, a, a, need_weights=False)[0] if self.fused else self.attn(a))
        return h + self.mlp(self.ln2(h))


class TinyTransformer(nn.Module):
    """Tokens of 2 features each, two pre-LN blocks, a final LayerNorm, mean pooling and a linear head."""

    def __init__(self, fused=False, d=8):
        super().__init__()
        self.embed = nn.Linear(2, d)
        self.blocks = nn.ModuleList([PreLN(d, fused), PreLN(d, fused)])
        self.norm, self.head = nn.LayerNorm(d), nn.Linear(d, 4)

    def forward(self, x):
        h = self.embed(x.reshape(x.shape[0], -1, 2))
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h).mean(1))


@pytest.mark.parametrize("path", ["fx", "hooks"])
def test_lmap_variant_constant_makes_a_layer_norm_and_attention_tail_affine(data, path, request):
    if path == "hooks":
        request.getfixturevalue("hooks_only")
    torch.manual_seed(0)
    model = TinyTransformer().eval()
    keep = lmap_accuracy(model, data)
    constant = lmap_accuracy(model, data, lmap_variant="constant")
    assert list(keep["cut"].unique()) == ["x", "embed", "blocks.0", "blocks.1"]
    assert (keep["tail"] == "nonlinear").all() and (keep["variant"] == "keep").all()
    assert (constant["tail"] == "affine").all() and (constant["variant"] == "constant").all()
    assert constant["accuracy"].between(0, 1).all()
    m, c = netdyn_lmap_matrix(model, 2, data=data, lmap_variant="constant")
    assert m.shape == (4, 5 * 8) and c.shape == (4,)
    with pytest.raises(ModelError, match="nonlinear, not affine"):
        netdyn_lmap_matrix(model, 2, data=data)


def netdyn_lmap_matrix(*args, **kwargs):
    from netdyn.analysis.lmap import lmap_matrix

    return lmap_matrix(*args, **kwargs)


def test_the_constant_variant_holds_layer_norm_scales_at_their_training_means(data):
    """On a LayerNorm-only tail, held at the mean 1/std over the training set, the L-map is computed by hand."""
    from netdyn.models.adapter import read_network

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 6), nn.ReLU(), nn.Linear(6, 6), nn.LayerNorm(6), nn.Linear(6, 4)).eval()
    x = data.x_train
    network = read_network(model, (10,)).constant_variant(x)
    with torch.no_grad():
        h = F.relu(model[0](x))
        g = model[2](h)
        scale = torch.rsqrt(g.double().var(1, unbiased=False) + model[3].eps).mean().float()
        expected = model[4]((g - g.mean(1, keepdim=True)) * scale * model[3].weight + model[3].bias)
        torch.testing.assert_close(network.run_tail(1, [h]), expected)
    assert network.variant == "constant" and network.tail_kind(1, x) == "affine"


def test_lmap_variant_constant_through_fused_attention_is_one_model_error(data):
    torch.manual_seed(0)
    model = TinyTransformer(fused=True).eval()
    assert (lmap_accuracy(model, data)["tail"] == "nonlinear").all()
    with pytest.raises(ModelError, match="MultiheadAttention 'blocks.0.attn'.*lmap_variant='keep'") as info:
        lmap_accuracy(model, data, lmap_variant="constant")
    assert "\n" not in str(info.value)
