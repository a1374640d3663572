"""Attraction basins on any traceable model (SPEC 5.6 and 10): known answers against netdyn's own MLP and
hand-built nets whose weight tensors are known."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netdyn import MLP
from netdyn.analysis import basins
from netdyn.analysis.basins import sample_basin, weight_basin
from netdyn.analysis.network import network_accuracy
from netdyn.errors import ConfigError

pytestmark = pytest.mark.filterwarnings("ignore:.*basin. accuracy never fell:RuntimeWarning")

EPS = [0.0, 0.5, 1.0, 2.0, 4.0]


def float64(data):
    data64 = copy.copy(data)
    data64.x_train, data64.x_test = data.x_train.double(), data.x_test.double()
    return data64


def train(model, x, y, steps=80):
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def data(make_blobs):
    return float64(make_blobs(n_train=240, n_test=60, spread=2.0, seed=3))


@pytest.fixture(scope="module", params=["plain", "batchnorm"])
def twin(request, data):
    """A trained float64 nn.Sequential MLP and the netdyn MLP made from it."""
    torch.manual_seed(0)
    norm = (lambda w: [nn.BatchNorm1d(w)]) if request.param == "batchnorm" else (lambda w: [])
    seq = nn.Sequential(nn.Linear(10, 16), *norm(16), nn.ReLU(), nn.Linear(16, 12), *norm(12), nn.Tanh(),
                        nn.Linear(12, 4)).double()
    seq = train(seq, data.x_train, data.y_train)
    return seq, MLP.from_sequential(seq)


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_an_nn_module_mlp_has_the_netdyn_mlps_sample_basin(twin, data, layer):
    seq, mlp = twin
    reference = sample_basin(mlp, data, eps=EPS, repeats=3, layer=layer, per_sample=True)
    basin = sample_basin(seq, data, eps=EPS, repeats=3, layer=layer, per_sample=True)
    pd.testing.assert_frame_equal(basin.curve, reference.curve)
    pd.testing.assert_frame_equal(basin.per_sample, reference.per_sample)
    assert basin.settings["cut"] == ["input", "2", "5"][layer] if len(seq) == 7 else True
    assert 0.5 < reference.clean_accuracy and reference.curve["accuracy"].iloc[-1] < reference.clean_accuracy


@pytest.mark.parametrize("options", [{}, {"include_bias": True}, {"layers": [2]}], ids=str)
def test_an_nn_module_mlp_has_the_netdyn_mlps_weight_basin(twin, data, options):
    seq, mlp = twin
    reference = weight_basin(mlp, data, eps=EPS, repeats=3, **options)
    basin = weight_basin(seq, data, eps=EPS, repeats=3, **options)
    pd.testing.assert_frame_equal(basin.curve, reference.curve)
    assert reference.curve["accuracy"].iloc[-1] < reference.clean_accuracy
    linears = [f"{i}" for i, m in enumerate(seq) if isinstance(m, nn.Linear)]
    chosen = [linears[l - 1] for l in options.get("layers", [1, 2, 3])]
    kinds = ["weight", "bias"] if options.get("include_bias") else ["weight"]
    assert basin.settings["perturbed"] == [f"{m}.{k}" for m in chosen for k in kinds]


def conv_net():
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(6 * 2 * 2, 3),
    )


@pytest.fixture(scope="module")
def images():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(180, 64, generator=gen)
    y = (x[:, :20].sum(1) > 0).long() + (x[:, 40:].sum(1) > 2).long()
    model = train(conv_net(), x[:120].reshape(-1, 1, 8, 8), y[:120], steps=60)
    return model, (x[:120], y[:120], x[120:], y[120:])


def test_a_conv_nets_weight_basin_perturbs_its_kernels_layer_by_layer(images):
    model, data = images
    every = weight_basin(model, data, eps=[0.0, 3.0], repeats=2, input_shape=(1, 8, 8))
    assert every.settings["perturbed"] == ["0.weight", "4.weight", "8.weight"]
    norms = weight_basin(model, data, eps=[0.0, 3.0], repeats=2, input_shape=(1, 8, 8), include_bn=True,
                         include_bias=True)
    assert norms.settings["perturbed"] == ["0.weight", "0.bias", "4.weight", "4.bias", "8.weight", "8.bias",
                                           "1.weight", "1.bias"]
    first = weight_basin(model, data, eps=[0.0, 3.0], repeats=2, input_shape=(1, 8, 8), layers=[1])
    assert first.settings["perturbed"] == ["0.weight"]  # the first cut is the first pooled ReLU
    assert first.curve["accuracy"].iloc[1] < first.clean_accuracy - 0.1  # a kernel three times its norm away


def test_a_conv_nets_sample_basin_starts_at_the_networks_accuracy_at_every_cut(images):
    model, data = images
    clean = network_accuracy(model, data, input_shape=(1, 8, 8)).set_index("split")["accuracy"]["train"]
    for layer in range(3):
        basin = sample_basin(model, data, eps=[0.0, 1.0, 4.0], repeats=2, layer=layer, input_shape=(1, 8, 8))
        assert basin.clean_accuracy == clean
        assert basin.curve["accuracy"].iloc[-1] < clean


class Residual(nn.Module):
    """A residual MLP whose block outputs are its cuts: a skip crosses every hidden cut."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(10, 8)
        self.blocks = nn.ModuleList(nn.Linear(8, 8) for _ in range(2))
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        h = F.relu(self.stem(x))
        for block in self.blocks:
            h = h + F.relu(block(h))
        return self.head(h)


def test_a_residual_models_sample_basin_runs_the_rest_of_the_graph_as_it_is(data):
    torch.manual_seed(4)
    model = train(Residual().double(), data.x_train, data.y_train)
    clean = network_accuracy(model, data).set_index("split")["accuracy"]["train"]
    for layer in range(3):
        basin = sample_basin(model, data, eps=[0.0, 8.0], repeats=2, layer=layer)
        assert basin.clean_accuracy == clean and basin.curve["accuracy"].iloc[1] < clean


def test_weight_noise_is_relative_to_each_tensors_own_norm(data):
    """Scaling the first layer by 1000 and the second by 1/1000 leaves a ReLU net's function, and so its weight
    basin, unchanged only if each tensor's noise follows its own norm."""
    torch.manual_seed(5)
    model = train(nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 4)).double(), data.x_train, data.y_train)
    scaled = copy.deepcopy(model)
    with torch.no_grad():
        scaled[0].weight.mul_(1000)
        scaled[0].bias.mul_(1000)
        scaled[2].weight.div_(1000)
    reference = weight_basin(model, data, eps=EPS, repeats=3, include_bias=True)
    basin = weight_basin(scaled, data, eps=EPS, repeats=3, include_bias=True)
    pd.testing.assert_frame_equal(basin.curve, reference.curve)
    assert reference.curve["accuracy"].iloc[-1] < reference.clean_accuracy - 0.1


class Attention(nn.Module):
    """Tokens of an input through one nn.MultiheadAttention, a GELU and a linear head."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(5, 8)
        self.pos_embedding = nn.Parameter(0.1 * torch.randn(2, 8))
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        tokens = self.embed(x.reshape(-1, 2, 5)) + self.pos_embedding
        mixed, _ = self.attn(tokens, tokens, tokens, need_weights=False)
        return self.head(F.gelu(self.norm(mixed + tokens)).mean(1))


def test_attention_projections_are_perturbed_third_by_third(data):
    torch.manual_seed(6)
    model = Attention().double().eval()
    with torch.no_grad():
        model.attn.in_proj_weight[:8].mul_(100)  # the query third's norm dwarfs the others'
    pieces = basins._weight_pieces(model)
    labels = [p.label for p in pieces if p.kind == "weight"]
    assert labels == ["embed.weight", "attn.in_proj_weight[q]", "attn.in_proj_weight[k]", "attn.in_proj_weight[v]",
                      "attn.out_proj.weight", "head.weight"]
    assert {p.label: p.kind for p in pieces}["pos_embedding"] == "embedding"
    params = dict(model.named_parameters())
    noise = [(p, basins._param_noise(p.of(params[p.name]), 10 + i)) for i, p in enumerate(pieces)]
    perturbed = basins._perturbed_parameters(params, noise, 0.3)
    for piece in pieces:
        original = piece.of(params[piece.name])
        change = torch.linalg.vector_norm(piece.of(perturbed[piece.name]) - original)
        assert change.item() == pytest.approx(0.3 * torch.linalg.vector_norm(original).item(), rel=1e-9)
    basin = weight_basin(model, data, eps=[0.0, 1.0], repeats=2, include_embedding=True)
    assert "attn.in_proj_weight[v]" in basin.settings["perturbed"] and "pos_embedding" in basin.settings["perturbed"]
    assert "norm.weight" not in basin.settings["perturbed"]


@pytest.mark.parametrize("measure", [sample_basin, weight_basin], ids=lambda f: f.__name__)
def test_the_users_model_is_left_as_it_was(images, measure):
    model = copy.deepcopy(images[0]).train()
    before = copy.deepcopy(model.state_dict())
    options = {"layer": 1} if measure is sample_basin else {"include_bn": True, "include_bias": True}
    basin = measure(model, images[1], eps=[0.0, 2.0], repeats=2, input_shape=(1, 8, 8), **options)
    assert basin.curve["accuracy"].iloc[1] < basin.clean_accuracy  # something was perturbed
    assert model.training and all(m.training for m in model.modules())
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_bad_options_for_any_model_are_config_errors(images):
    model, data = images
    with pytest.raises(ConfigError, match="layer must be in 0..2"):
        sample_basin(model, data, layer=3, input_shape=(1, 8, 8))
    with pytest.raises(ConfigError, match="subset of 1..3"):
        weight_basin(model, data, layers=[4], input_shape=(1, 8, 8))
    no_weights = nn.Sequential(nn.ReLU(), nn.Flatten())
    x = torch.randn(12, 3)
    with pytest.raises(ConfigError, match="no parameter"):
        weight_basin(no_weights, (x, torch.arange(12) % 3, x, torch.arange(12) % 3))


def test_seeded_any_model_basins_repeat(images):
    model, data = images
    first = weight_basin(model, data, eps=[0.0, 1.0], repeats=2, input_shape=(1, 8, 8), seed=3)
    again = weight_basin(model, data, eps=[0.0, 1.0], repeats=2, input_shape=(1, 8, 8), seed=3)
    other = sample_basin(model, data, eps=[0.0, 1.0], repeats=2, input_shape=(1, 8, 8), seed=4, layer=2)
    assert np.array_equal(first.curve.to_numpy(), again.curve.to_numpy())
    assert other.settings["cut"] == "6"


# ------------------------------------------------------------------------------------- LP and geometry, pooled
@pytest.fixture(scope="module")
def images64(images):
    model, (x_train, y_train, x_test, y_test) = images
    return copy.deepcopy(model).double(), (x_train.double(), y_train, x_test.double(), y_test)


def pooled_cut(model, x, layer):
    """The conv net's cut ``layer`` (input, first pooled ReLU, second) on samples x, average-pooled 2 x 2 by hand."""
    a = x.reshape(-1, 1, 8, 8) if layer == 0 else model[: 4 if layer == 1 else 7](x.reshape(-1, 1, 8, 8))
    a = a.detach().numpy()
    n, c, h, w = a.shape
    return a.reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5)).reshape(n, -1)


def test_the_lp_of_a_cut_whose_dual_does_not_fit_is_fitted_on_pooled_activations(monkeypatch, images64):
    from sklearn.linear_model import Ridge

    from netdyn.analysis import probes
    from netdyn.analysis.probes import lp_accuracy

    model, data = images64
    monkeypatch.setattr(probes, "PRIMAL_MAX_FEATURES", 20)
    assert (lp_accuracy(model, data, input_shape=(1, 8, 8))["features"] == "dual").all()  # 2 GiB: the dual fits
    table = lp_accuracy(model, data, input_shape=(1, 8, 8), memory_budget=100_000, ridge=1e-3)
    assert (table["features"] == "pooled:2 x 2").all()
    with torch.no_grad():
        logits = model(data[0].reshape(-1, 1, 8, 8)).numpy()
        for layer in range(3):
            x_train, x_test = pooled_cut(model, data[0], layer), pooled_cut(model, data[2], layer)
            centred = x_train - x_train.mean(0)
            ridge = Ridge(alpha=1e-3 * np.trace(centred.T @ centred) / x_train.shape[1]).fit(x_train, logits)
            for split, x, y in (("train", x_train, data[1]), ("test", x_test, data[3])):
                expected = (ridge.predict(x).argmax(1) == y.numpy()).mean()
                row = table[(table["layer"] == layer) & (table["split"] == split)]
                assert row["accuracy"].item() == pytest.approx(expected, abs=1e-12)


def test_a_flat_cut_that_fits_no_form_is_a_model_error(monkeypatch, data):
    from netdyn.analysis import probes
    from netdyn.analysis.probes import lp_accuracy
    from netdyn.errors import ModelError

    monkeypatch.setattr(probes, "PRIMAL_MAX_FEATURES", 5)
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 4)).double()
    with pytest.raises(ModelError, match="only a conv cut"):
        lp_accuracy(model, data, memory_budget=1000)
    with pytest.raises(ConfigError, match="memory_budget"):
        lp_accuracy(model, data, memory_budget=0)


def test_class_geometry_pools_a_cut_whose_centres_do_not_fit(images64):
    from netdyn.analysis.geometry import class_geometry

    model, data = images64
    full = class_geometry(model, data, input_shape=(1, 8, 8))
    assert (full["features"] == "full").all()
    table = class_geometry(model, data, input_shape=(1, 8, 8), memory_budget=2000)
    assert (table["features"] == "pooled:2 x 2").all()
    y = data[1].numpy()
    for layer in range(3):
        x = pooled_cut(model, data[0], layer)
        centres = np.stack([x[y == k].mean(0) for k in range(3)])
        own = centres[y]
        cos = (x * own).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(own, axis=1))
        assert table.loc[layer, "cos_dist_mean"] == pytest.approx((1 - cos).mean(), rel=1e-9)
    samples = class_geometry(model, data, input_shape=(1, 8, 8), memory_budget=2000, per_sample=True, limit=3)
    assert (samples["features"] == "pooled:2 x 2").all() and len(samples) == 3 * 3 * 3


# ------------------------------------------------------------------------------------------- bn_perturbation
def test_an_nn_module_mlp_has_the_netdyn_mlps_bn_perturbation(data):
    from netdyn.analysis.basins import bn_perturbation

    torch.manual_seed(7)
    seq = nn.Sequential(nn.Linear(10, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 12), nn.BatchNorm1d(12),
                        nn.ReLU(), nn.Linear(12, 4)).double()
    seq = train(seq, data.x_train, data.y_train, steps=20)
    before = copy.deepcopy(seq.state_dict())
    reference = bn_perturbation(MLP.from_sequential(seq), data, 40, seed=2)
    table = bn_perturbation(seq, data, 40, seed=2)
    assert list(table["module"]) == ["1", "4"]
    pd.testing.assert_frame_equal(table.drop(columns="module"), reference, rtol=1e-9)
    assert all(torch.equal(before[k], v) for k, v in seq.state_dict().items())


def test_a_conv_batch_norms_perturbation_is_its_folded_kernels(images64):
    from netdyn.analysis.basins import bn_perturbation

    model, data = images64
    table = bn_perturbation(model, data, 120, n_batches=1, input_shape=(1, 8, 8))
    assert list(table.columns) == ["layer", "module", "eps_equivalent"] and list(table["module"]) == ["1"]
    conv, bn = model[0], model[1]
    with torch.no_grad():
        a = conv(data[0].reshape(-1, 1, 8, 8))  # the whole training set is the one batch: its order does not matter
    rows = torch.linalg.vector_norm(conv.weight.flatten(1), dim=1)

    def fold(mean, var):
        g = bn.weight / torch.sqrt(var + bn.eps)
        return torch.cat([rows * g, (conv.bias - mean) * g + bn.bias])

    with torch.no_grad():
        running = fold(bn.running_mean, bn.running_var)
        batch = fold(a.mean((0, 2, 3)), a.var((0, 2, 3), unbiased=False))
        expected = (torch.linalg.vector_norm(batch - running) / torch.linalg.vector_norm(running)).item()
    assert table["eps_equivalent"].item() == pytest.approx(expected, rel=1e-9)
    assert table["layer"].item() == 1
