"""MLP against a hand-written reference of SPEC section 1's equations, on random weights."""

import pytest
import torch
from torch import nn

from netdyn import MLP, ConfigError, ModelError
from netdyn.models import gauss

ACTS = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "linear": lambda h: h,
    "gauss": gauss,
    "sigmoid": torch.sigmoid,
    "gelu": nn.functional.gelu,
}


def reference_forward(net: MLP, x: torch.Tensor, bn_mode: str) -> tuple[list, list]:
    """SPEC section 1 written out with plain tensor algebra: returns (x^0..x^{L-1}, h^L appended; h list)."""
    xs, hs = [x], [None]
    for l in range(1, net.n_layers + 1):
        block = net.block(l)
        a = xs[-1] @ block.linear.weight.T + block.linear.bias
        if block.bn is not None:
            if bn_mode == "running":
                mean, var = block.bn.running_mean, block.bn.running_var
            else:
                mean, var = a.mean(0), a.var(0, unbiased=False)
            z = (a - mean) / torch.sqrt(var + block.bn.eps) * block.bn.weight + block.bn.bias
        else:
            z = a
        if l == net.n_layers:
            xs.append(z)
            hs.append(z)
            break
        skip = net.spec.residual != "none" and l >= 3 and l % 2 == 1
        f = ACTS[block.activation]
        if skip and net.spec.residual == "pre":
            h = z + xs[l - 2]
            out = f(h)
        elif skip:
            h = z
            out = f(z) + xs[l - 2]
        else:
            h = z
            out = f(z)
        hs.append(h)
        xs.append(out)
    return xs, hs


def _randomise_bn(net: MLP, gen: torch.Generator) -> None:
    with torch.no_grad():
        for block in net.blocks:
            if block.bn is not None:
                block.bn.running_mean.normal_(generator=gen)
                block.bn.running_var.uniform_(0.5, 2.0, generator=gen)
                block.bn.weight.normal_(1.0, 0.2, generator=gen)
                block.bn.bias.normal_(0.0, 0.2, generator=gen)


@pytest.mark.parametrize("activation", sorted(ACTS))
@pytest.mark.parametrize("residual", [False, "pre", "post"])
@pytest.mark.parametrize("batchnorm", [False, True])
@pytest.mark.parametrize("bn_mode", ["running", "batch"])
def test_forward_matches_reference(activation, residual, batchnorm, bn_mode):
    gen = torch.Generator().manual_seed(3)
    net = MLP(7, 6, 5, 4, activation=activation, residual=residual, batchnorm=batchnorm, seed=1).double()
    _randomise_bn(net, gen)
    x = torch.randn(11, 7, generator=gen, dtype=torch.float64)
    xs, hs = reference_forward(net, x, bn_mode)
    assert torch.allclose(net(x, bn_mode=bn_mode), xs[-1], atol=1e-12)
    trace = net.trace(x, bn_mode=bn_mode, chunk_size=11)
    for l in range(net.n_layers + 1):
        assert torch.allclose(trace.x[l], xs[l], atol=1e-12)
        if l > 0:
            assert torch.allclose(trace.h[l], hs[l], atol=1e-12)
    assert trace.h[0] is None


def test_trace_chunks_and_layers_agree_with_one_pass():
    net = MLP(5, 8, 4, 3, residual="pre", seed=0)
    x = torch.randn(37, 5, generator=torch.Generator().manual_seed(0))
    whole = net.trace(x)
    chunked = net.trace(x, chunk_size=4)
    few = net.trace(x, layers=[0, 2, 5], memory_budget=200)
    for l in range(6):
        assert torch.allclose(whole.x[l], chunked.x[l])
    assert few.x[1] is None and few.h[3] is None
    assert torch.allclose(few.x[2], whole.x[2]) and torch.allclose(few.output, whole.output)
    walked = {l: xl for l, xl, _ in net.iter_layers(x)}
    assert sorted(walked) == list(range(6))
    assert torch.allclose(walked[5], net(x))


def test_run_from_equals_forward():
    net = MLP(5, 8, 5, 3, residual="post", batchnorm=True, seed=0).eval()
    x = torch.randn(9, 5)
    trace = net.trace(x)
    for l in range(net.n_layers):
        prev = trace.x[l - 1] if l > 0 else None
        assert torch.allclose(net.run_from(l, trace.x[l], prev), net(x), atol=1e-6)


def test_batch_mode_leaves_running_stats_untouched():
    net = MLP(4, 6, 2, 2, batchnorm=True, seed=0)
    before = net.block(1).bn.running_mean.clone()
    net(torch.randn(10, 4), bn_mode="batch")
    assert torch.equal(net.block(1).bn.running_mean, before)
    net.train()(torch.randn(10, 4) + 3)
    assert not torch.equal(net.block(1).bn.running_mean, before)


def test_seed_reproducible_and_init_scale():
    a, b = MLP(6, 5, 2, 3, seed=7), MLP(6, 5, 2, 3, seed=7)
    c = MLP(6, 5, 2, 3, seed=8)
    s = MLP(6, 5, 2, 3, seed=7, init_scale=8.0)
    for pa, pb, pc, ps in zip(a.parameters(), b.parameters(), c.parameters(), s.parameters(), strict=True):
        assert torch.equal(pa, pb)
        assert not torch.equal(pa, pc)
        assert torch.allclose(ps, 8 * pa)


def test_default_init_follows_nn_linear_bounds():
    net = MLP(100, 50, 1, 3, seed=0)
    w, b = net.block(1).linear.weight, net.block(1).linear.bias
    bound = 1 / 100**0.5
    assert w.abs().max() <= bound and b.abs().max() <= bound
    assert w.abs().max() > 0.9 * bound  # uniform over the whole interval, as nn.Linear draws


@pytest.mark.parametrize("init", ["orthogonal", "kaiming", "xavier"])
def test_other_inits(init):
    net = MLP(30, 30, 2, 3, init=init, seed=0)
    w = net.block(2).linear.weight
    if init == "orthogonal":
        assert torch.allclose(w @ w.T, torch.eye(30), atol=1e-5)
    assert torch.count_nonzero(net.block(2).linear.bias) == 0


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"depth": 0}, "depth"),
        ({"width": 0}, "width"),
        ({"activation": "swish"}, "activation"),
        ({"residual": True, "depth": 2}, "depth >= 3"),
        ({"residual": "sideways"}, "residual"),
        ({"init": "magic"}, "init"),
    ],
)
def test_impossible_configs_raise_one_line(kwargs, words):
    args = {"in_features": 4, "width": 5, "depth": 3, "num_classes": 2, **kwargs}
    with pytest.raises(ConfigError) as info:
        MLP(**args)
    message = str(info.value)
    assert words in message and "\n" not in message


def test_from_sequential_copies_parameters():
    seq = nn.Sequential(
        nn.Flatten(),
        nn.Linear(6, 5),
        nn.BatchNorm1d(5),
        nn.ReLU(),
        nn.Linear(5, 4),
        nn.Tanh(),
        nn.Linear(4, 3),
        nn.Linear(3, 2),
    )
    seq.train()(torch.randn(20, 6))  # give batch norm running statistics
    seq.eval()
    net = MLP.from_sequential(seq)
    assert net.depth == 3
    assert net.spec.activation == ("relu", "tanh", "linear")
    assert net.spec.batchnorm == (True, False, False)
    x = torch.randn(8, 6)
    assert torch.allclose(net(x), seq(x), atol=1e-6)
    rebuilt = MLP.from_spec(net.spec)
    rebuilt.load_state_dict(net.state_dict())
    assert torch.allclose(rebuilt.eval()(x), seq(x), atol=1e-6)


@pytest.mark.parametrize(
    "seq, words",
    [
        (nn.Sequential(nn.Linear(3, 4), nn.Dropout(), nn.Linear(4, 2)), "Dropout"),
        (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2), nn.Softmax(dim=1)), "Softmax"),
        (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2), nn.ReLU()), "output layer"),
        (nn.Sequential(nn.Linear(3, 4)), "two Linear"),
        (nn.Sequential(nn.Linear(3, 4), nn.Linear(5, 2)), "chain"),
    ],
)
def test_from_sequential_rejects_unsupported(seq, words):
    with pytest.raises(ModelError, match=words):
        MLP.from_sequential(seq)
