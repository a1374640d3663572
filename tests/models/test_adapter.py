"""The network adapter (SPEC 10): cuts named as torchvision names graph nodes, tails with known answers."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netdyn.errors import ModelError
from netdyn.models.adapter import _registry, fit_affine, read_network, register_transfer_function


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


class TorchvisionBlock(nn.Module):
    """A basic block as torchvision writes it: the shortcut is a projection where the shape changes."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                           if stride != 1 or cin != cout else None)

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class TinyResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1, self.relu = nn.Conv2d(1, 4, 3, 1, 1, bias=False), nn.BatchNorm2d(4), nn.ReLU()
        self.layer1 = nn.Sequential(TorchvisionBlock(4, 4, 1), TorchvisionBlock(4, 4, 1))
        self.layer2 = nn.Sequential(TorchvisionBlock(4, 8, 2))  # a stage whose only block has a projection
        self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(8, 3)

    def forward(self, x):
        x = self.layer2(self.layer1(self.relu(self.bn1(self.conv1(x)))))
        return self.fc(torch.flatten(self.pool(x), 1))


@pytest.mark.parametrize("path", ["fx", "hooks"])
def test_a_block_whose_shortcut_is_a_projection_is_a_block_cut(path):
    """torchvision's ``out += downsample(x)`` joins two descendants of the block's input, neither an ancestor of
    the other: the block is still a residual block, on both paths, even as the only block of its stage."""
    net = read_network(TinyResNet().eval(), (1, 8, 8), path=path)
    assert net.residual
    assert [c.name for c in net.cuts] == ["x", "relu", "layer1.0", "layer1.1", "layer2.0"]


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
    monkeypatch.setattr(_registry, "_TRANSFER_MODULES", dict(_registry._TRANSFER_MODULES))  # the one shared registry
    register_transfer_function(nn.Softplus, "softplus")
    assert [c.name for c in read_network(softplus, (6,)).cuts] == ["input", "1"]


class Branchy(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it, forward hooks read it."""

    def __init__(self):
        super().__init__()
        self.fc1, self.act, self.fc2, self.out = nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.Linear(4, 3)
        self.act2 = nn.Tanh()

    def forward(self, x):
        h = self.act(self.fc1(x))
        if x.sum() > -1e6:  # taken on every batch the tests feed
            h = h * 2
        return self.out(self.act2(self.fc2(h)))


def test_a_model_fx_cannot_trace_is_read_through_forward_hooks(x):
    torch.manual_seed(0)
    model = Branchy().eval()
    with pytest.raises(ModelError, match="torch.fx failed to trace"):
        read_network(model, (6,), path="fx")
    net = read_network(model, (6,))
    assert net.path == "hooks" and [c.name for c in net.cuts] == ["x", "act", "act2"]
    with torch.no_grad():
        h = F.relu(model.fc1(x))
        expected = model.out(model.fc2(2 * h))  # the tanh after the cut is the identity
    torch.testing.assert_close(net.activations(x, "act"), h)
    torch.testing.assert_close(net.run_tail("act", [h, net.feed(x)]), expected)
    assert net.tail_kind("act", x) == "affine"
    with pytest.raises(ModelError, match="no graph"):
        net.graph_module  # noqa: B018 - the property is the check


def test_a_model_neither_path_reads_is_one_clear_model_error():
    class Hopeless(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 3)

        def forward(self, x):
            return {"logits": self.fc(x) if x.sum() > 0 else -self.fc(x)}

    with pytest.raises(ModelError, match="cannot read Hopeless: torch.fx failed to trace .*forward hooks failed too: "
                       ".*returns dict") as info:
        read_network(Hopeless(), (6,))
    assert "\n" not in str(info.value)


def hooked_and_traced(model, shape, **kwargs):
    return read_network(model, shape, path="fx", **kwargs), read_network(model, shape, path="hooks", **kwargs)


def assert_same_tails(traced, hooked, x):
    """Both paths: the same cuts, activations, L-map outputs and tail kinds."""
    assert [c.name for c in hooked.cuts] == [c.name for c in traced.cuts]
    assert (traced.path, hooked.path) == ("fx", "hooks")
    for cut in traced.cuts:
        outputs = []
        for net in (traced, hooked):
            values = net.capture(x, net.tail_inputs(cut.layer), logits=False)
            outputs.append(net.run_tail(cut.layer, [values[n] for n in net.tail_inputs(cut.layer)]))
        torch.testing.assert_close(outputs[1], outputs[0])
        assert hooked.tail_kind(cut.layer, x) == traced.tail_kind(cut.layer, x)


@pytest.mark.parametrize("pool", [nn.AvgPool2d, nn.MaxPool2d])
def test_the_hook_path_reads_a_conv_net_as_tracing_does(pool):
    torch.manual_seed(0)
    images = torch.randn(80, 64)
    model = trained_bn(small_conv(nn.ReLU, pool), images.reshape(-1, 1, 8, 8))
    assert_same_tails(*hooked_and_traced(model, (1, 8, 8)), images)


def test_the_hook_path_cuts_a_module_called_twice_twice_and_a_residual_model_after_each_block(x):
    torch.manual_seed(0)
    assert_same_tails(*hooked_and_traced(SharedAct().eval(), (6,)), x)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.act = nn.Linear(6, 6), nn.ReLU(inplace=True)

        def forward(self, h):
            h = h + self.act(self.fc(h))
            return h

    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem, self.stem_act = nn.Linear(6, 6), nn.ReLU()
            self.blocks, self.head = nn.Sequential(Block(), Block()), nn.Linear(6, 3)

        def forward(self, x):
            return self.head(self.blocks(self.stem_act(self.stem(x))))

    traced, hooked = hooked_and_traced(Res().eval(), (6,))
    assert hooked.residual and [c.name for c in hooked.cuts] == ["x", "stem_act", "blocks.0", "blocks.1"]
    assert_same_tails(traced, hooked, x)
    _, inner = hooked_and_traced(Res().eval(), (6,), cuts=["blocks.0.fc"])
    assert (inner.activations(x, "blocks.0.fc") == inner.activations(x, "blocks.0.fc")).all()
    assert (inner.activations(x, "blocks.0.fc") < 0).any()  # cloned before the in-place ReLU


def test_the_hook_path_keeps_a_gate_and_linearises_a_registered_transfer_module(monkeypatch, x):
    torch.manual_seed(0)
    model = Gated().eval()
    net = read_network(model, (6,), cuts=["fc2"], path="hooks")
    h = net.activations(x, "fc2")
    with torch.no_grad():
        torch.testing.assert_close(net.run_tail("fc2", [h, net.feed(x)]), model.fc3(h * torch.sigmoid(h)))

    monkeypatch.setattr(_registry, "_TRANSFER_MODULES", dict(_registry._TRANSFER_MODULES))  # the one shared registry
    register_transfer_function(nn.Softplus, "softplus")
    softplus = nn.Sequential(nn.Linear(6, 5), nn.Softplus(), nn.Linear(5, 5), nn.Softplus(), nn.Linear(5, 3))
    assert_same_tails(*hooked_and_traced(softplus, (6,)), x)


def test_a_cut_the_batch_does_not_compute_is_a_model_error(x):
    class Switch(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.a, self.b, self.out = nn.Linear(6, 4), nn.ReLU(), nn.Tanh(), nn.Linear(4, 3)

        def forward(self, x):
            return self.out(self.a(self.fc(x)) if x.sum() > 0 else self.b(self.fc(x)))

    with pytest.raises(ModelError, match="names no module call of Switch; valid names: fc, a, out"):
        read_network(Switch(), (6,), cuts=["b"])  # the probe batch takes the other branch
    net = read_network(Switch(), (6,), cuts=["a"])
    assert net.path == "hooks"
    with pytest.raises(ModelError, match="did not compute cut") as info:
        net.activations(torch.full((2, 6), -1.0), "a")
    assert "\n" not in str(info.value)


def test_an_opaque_transformer_layer_is_cut_at_its_output_and_linearised_inside():
    """A TorchFunctionMode sees the GELU of an eval-mode nn.TransformerEncoderLayer (the mode turns its fused fast
    path off): the layer's tail equals the same layer built with an identity activation."""
    torch.manual_seed(0)

    def model(activation):
        layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation=activation, batch_first=True)
        return nn.Sequential(nn.Linear(12, 8), nn.Unflatten(1, (1, 8)), layer, nn.Flatten(), nn.Linear(8, 3)).eval()

    gelu = model("gelu")
    identity = model(lambda t: t)
    identity.load_state_dict(gelu.state_dict())
    x = torch.randn(50, 12)
    for path in ("fx", "hooks"):
        net = read_network(gelu, (12,), path=path)
        assert [c.name for c in net.cuts] == ["input", "2"]
        with torch.no_grad():
            torch.testing.assert_close(net.run_tail(0, [x]), identity(x), rtol=1e-5, atol=1e-5)
            assert (net.run_tail(0, [x]) - gelu(x)).abs().max() > 1e-3  # the GELU did matter
        assert net.tail_kind(0, x) == "nonlinear"  # LayerNorm and attention stay
        assert net.tail_kind(1, x) == "affine"
    encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True), 2,
                                    enable_nested_tensor=False)
    stacked = nn.Sequential(nn.Linear(12, 8), nn.Unflatten(1, (1, 8)), encoder, nn.Flatten(), nn.Linear(8, 3)).eval()
    assert [c.name for c in read_network(stacked, (12,)).cuts] == ["input", "2"]  # the encoder is one leaf
