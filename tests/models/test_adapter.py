"""The network adapter (SPEC 10): cuts named as torchvision names graph nodes, tails with known answers."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netdyn.errors import ModelError
from netdyn.models import adapter
from netdyn.models.adapter import fit_affine, read_network, register_transfer_function


class TwoLayer(nn.Module):
    """The functional form of Sequential(Linear, ReLU, Linear, ReLU, Linear)."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(6, 5), nn.Linear(5, 4), nn.Linear(4, 3)

    def forward(self, x):
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class SharedAct(nn.Module):
    """One Tanh module called twice."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(6, 5), nn.Linear(5, 5), nn.Linear(5, 3)
        self.act = nn.Tanh()

    def forward(self, x):
        return self.fc3(self.act(self.fc2(self.act(self.fc1(x)))))


class Gated(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(6, 5), nn.Linear(5, 5), nn.Linear(5, 3)

    def forward(self, x):
        h = self.fc2(F.relu(self.fc1(x)))
        return self.fc3(h * torch.sigmoid(h))


def small_conv(activation, pool):
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), activation(), pool(2),
        nn.Conv2d(3, 4, 3, padding=1), activation(), pool(2),
        nn.Flatten(), nn.Linear(4 * 2 * 2, 3),
    )


def trained_bn(model, x):
    """Running statistics that are not the defaults, so that batch norm in eval mode is a real affine map."""
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(x)
    return model


@pytest.fixture
def x():
    return torch.randn(64, 6, generator=torch.Generator().manual_seed(0))


def test_default_cuts_are_transfer_function_outputs_named_as_torchvision_names_them():
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    assert [c.name for c in read_network(seq, (6,)).cuts] == ["input", "1", "3"]
    net = read_network(TwoLayer(), (6,))
    assert [(c.layer, c.name) for c in net.cuts] == [(0, "x"), (1, "relu"), (2, "relu_1")]
    assert net.n_layers == 3


def test_names_match_torchvision_feature_extraction():
    feature_extraction = pytest.importorskip("torchvision.models.feature_extraction")
    model = SharedAct()
    _, eval_names = feature_extraction.get_graph_node_names(model)
    inner = [n for n in eval_names if n not in ("x", "output", "fc3")]  # the input is layer 0, fc3 the logits
    assert [c.name for c in read_network(model, (6,), cuts=inner).cuts][1:] == inner


def test_a_module_called_twice_is_two_cuts_and_a_cut_between_them_linearises_only_the_later_call(x):
    torch.manual_seed(0)
    model = SharedAct().eval()
    net = read_network(model, (6,))
    assert [c.name for c in net.cuts] == ["x", "act", "act_1"]
    first = net.activations(x, "act")
    torch.testing.assert_close(first, torch.tanh(model.fc1(x)))
    with torch.no_grad():
        expected = model.fc3(model.fc2(first))  # the second tanh is the identity, the first is kept
    torch.testing.assert_close(net.run_tail("act", [first]), expected)
    assert net.tail_kind("act", x) == "affine"


def test_a_gate_is_kept_and_its_tail_is_nonlinear(x):
    torch.manual_seed(0)
    net = read_network(Gated(), (6,))
    assert [c.name for c in net.cuts] == ["x", "relu"]  # the sigmoid gates: it is no cut
    assert "sigmoid" in net.tail("relu").code
    assert net.tail_kind("relu", x) == "nonlinear"


def test_conv_net_with_identity_activations_and_average_pooling_has_affine_tails():
    torch.manual_seed(0)
    images = torch.randn(80, 64)
    model = trained_bn(small_conv(nn.Identity, nn.AvgPool2d), images.reshape(-1, 1, 8, 8))
    net = read_network(model, (1, 8, 8))
    assert [c.name for c in net.cuts] == ["input", "3", "6"]  # the pooled outputs
    for cut in net.cuts:
        assert net.tail_kind(cut.layer, images) == "affine"
        assert fit_affine(net, cut.layer, images).error < 1e-10
    assert model.training  # reading and checking leave the model's mode as it was


def test_a_tail_with_max_pooling_is_not_affine():
    torch.manual_seed(0)
    images = torch.randn(80, 64)
    net = read_network(small_conv(nn.ReLU, nn.MaxPool2d).eval(), (1, 8, 8))
    assert net.tail_kind(0, images) == "piecewise_linear"
    assert net.tail_kind(1, images) == "piecewise_linear"
    assert net.tail_kind(2, images) == "affine"  # only Flatten and Linear follow the last pool


def test_tail_batch_norm_uses_running_statistics_in_any_mode():
    torch.manual_seed(0)
    images = torch.randn(40, 64)
    model = trained_bn(small_conv(nn.ReLU, nn.AvgPool2d), images.reshape(-1, 1, 8, 8))
    net = read_network(model, (1, 8, 8))
    tail = net.tail(0)
    model.train()
    with torch.no_grad():
        out = tail(images.reshape(-1, 1, 8, 8))
        model.eval()
        conv, bn = model[0], model[1]
        h = bn(conv(images.reshape(-1, 1, 8, 8)))
        expected = model[8](model[7](model[6](model[4](model[3](h)))))
    torch.testing.assert_close(out, expected)


def test_cut_names_pick_nodes_and_modules_in_execution_order(x):
    net = read_network(TwoLayer(), (6,), cuts=["relu_1", "fc1"])
    assert [c.name for c in net.cuts] == ["x", "fc1", "relu_1"]
    with pytest.raises(ModelError, match="valid names: .*fc1.*relu") as info:
        read_network(TwoLayer(), (6,), cuts=["fc9"])
    assert "\n" not in str(info.value)


def test_activations_are_cloned_before_an_in_place_relu(x):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(inplace=True), nn.Linear(5, 3))
    net = read_network(model, (6,), cuts=["0"])
    with torch.no_grad():
        torch.testing.assert_close(net.activations(x, "0"), model[0](x))
    assert (net.activations(x, "0") < 0).any()


def test_residual_models_are_cut_after_each_block():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, h):
            return h + F.relu(self.fc(h))

    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem, self.blocks, self.head = nn.Linear(3, 4), nn.Sequential(Block(), Block()), nn.Linear(4, 2)

        def forward(self, x):
            return self.head(self.blocks(F.relu(self.stem(x))))

    net = read_network(Res(), (3,))
    assert net.residual
    assert [c.name for c in net.cuts] == ["x", "relu", "blocks.0", "blocks.1"]
    inner = read_network(Res(), (3,), cuts=["blocks.0.relu"])
    assert len(inner.tail_inputs("blocks.0.relu")) == 2  # the skip crosses the cut
    data = torch.randn(50, 3)
    assert inner.tail_kind("blocks.0.relu", data) == "affine"


def test_dropout_and_layer_norm_do_not_break_the_adapter(x):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Dropout(0.5), nn.LayerNorm(5), nn.Linear(5, 5), nn.GELU(),
                          nn.Linear(5, 3)).train()
    net = read_network(model, (6,))
    assert [c.name for c in net.cuts] == ["input", "1", "5"]
    torch.testing.assert_close(net.activations(x, "1"), net.activations(x, "1"))  # dropout off: deterministic
    assert net.tail_kind("1", x) == "nonlinear"
    assert net.tail_kind("5", x) == "affine"
    assert model.training


def test_netdyn_activations_and_a_registered_one_are_transfer_functions(monkeypatch, x):
    from netdyn.models import MLP

    net = read_network(MLP(6, 5, 2, 3, activation="gauss", seed=0), (6,))
    assert [c.name for c in net.cuts] == ["x", "blocks.0.gauss", "blocks.1.gauss"]
    linear = read_network(MLP(6, 5, 2, 3, activation="linear", seed=0), (6,))
    assert all(linear.tail_kind(c.layer, x) == "affine" for c in linear.cuts)

    softplus = nn.Sequential(nn.Linear(6, 5), nn.Softplus(), nn.Linear(5, 3))
    with pytest.raises(ModelError, match="register_transfer_function"):
        read_network(softplus, (6,))
    monkeypatch.setattr(adapter, "_TRANSFER_MODULES", dict(adapter._TRANSFER_MODULES))
    register_transfer_function(nn.Softplus, "softplus")
    assert [c.name for c in read_network(softplus, (6,)).cuts] == ["input", "1"]


def test_a_model_fx_cannot_trace_is_one_clear_model_error():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 3)

        def forward(self, x):
            return self.fc(x) if x.sum() > 0 else -self.fc(x)

    with pytest.raises(ModelError, match="cannot read Branchy: torch.fx failed to trace") as info:
        read_network(Branchy(), (6,))
    assert "\n" not in str(info.value)
