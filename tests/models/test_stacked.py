"""The one stacked forward and the one batch-norm fold: against per-copy networks and torch.func's own
vmap over functional_call."""

import copy

import pytest
import torch
from torch import nn
from torch.func import functional_call, vmap

from netdyn import ConfigError, ModelError
from netdyn.models import MLP, StackedMLP, fold_batchnorm, fold_block, stacked_forward

ARCHS = {
    "plain": dict(width=12, depth=2),
    "bn": dict(width=12, depth=3, batchnorm=True),
    "residual-pre-bn": dict(width=12, depth=4, residual="pre", batchnorm=True, activation="tanh"),
    "residual-post": dict(width=12, depth=5, residual="post", activation="gelu"),
    "no-bias-bn": dict(width=[12, 8], depth=2, batchnorm=[True, False], bias=False),
}


def with_statistics(net):
    """Running statistics and BN affine parameters away from their defaults, so a wrong mode shows."""
    with torch.no_grad():
        for block in net.layer_blocks:
            if block.bn is not None:
                block.bn.running_mean.normal_(0, 0.3)
                block.bn.running_var.uniform_(0.5, 2.0)
                block.bn.weight.uniform_(0.5, 1.5)
                block.bn.bias.normal_(0, 0.2)
    return net.eval()


def copies(arch, k=3):
    return [with_statistics(MLP(6, num_classes=4, seed=s, init_scale=1 + s / 4, **arch)) for s in range(k)]


def stack(nets):
    states = [net.state_dict() for net in nets]
    return {name: torch.stack([state[name] for state in states]) for name in states[0]}


@pytest.mark.parametrize("arch", ARCHS.values(), ids=ARCHS.keys())
@pytest.mark.parametrize("bn_mode", ["running", "batch"])
def test_stacked_forward_is_each_copy_forward(arch, bn_mode):
    nets = copies(arch)
    x = torch.randn(20, 6)
    with torch.no_grad():
        ours = stacked_forward(nets[0], stack(nets), x, bn_mode=bn_mode)
        reference = vmap(lambda t: functional_call(nets[0], t, (x,), {"bn_mode": bn_mode}))(stack(nets))
    assert ours.shape == (3, 20, 4)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)
    for k, net in enumerate(nets):
        torch.testing.assert_close(ours[k], net(x, bn_mode=bn_mode), rtol=1e-5, atol=1e-6)


def test_shared_and_stacked_tensors_mix():
    """Only some tensors stacked (a weight basin's perturbed layers): the rest are the template's."""
    net = with_statistics(MLP(6, 12, 3, 4, batchnorm=True, residual="pre", seed=0))
    weight = net.blocks[1].linear.weight
    stacked = {"blocks.1.linear.weight": torch.stack([weight, 2 * weight]), "blocks.2.bn.bias": torch.zeros(12)}
    x = torch.randn(10, 6)
    with torch.no_grad():
        ours = stacked_forward(net, stacked, x)
        for k, scale in enumerate((1.0, 2.0)):
            twin = copy.deepcopy(net)
            twin.blocks[1].linear.weight.mul_(scale)
            twin.blocks[2].bn.bias.zero_()
            torch.testing.assert_close(ours[k], twin(x, bn_mode="running"), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arch", ARCHS.values(), ids=ARCHS.keys())
def test_folded_batch_norm_is_running_mode(arch):
    nets = copies(arch)
    stacked, tensors, x = StackedMLP(nets[0]), stack(nets), torch.randn(20, 6)
    with torch.no_grad():
        folded = stacked.fold(tensors)
        torch.testing.assert_close(
            stacked.forward(folded, x, "folded"), stacked.forward(tensors, x, "running"), rtol=1e-5, atol=1e-6
        )
    assert set(tensors) <= set(folded)


def test_train_mode_returns_the_batch_statistics_of_each_copy():
    nets = copies(ARCHS["bn"], k=2)
    x = torch.randn(16, 6)
    stats = []
    with torch.no_grad():
        StackedMLP(nets[0]).forward(stack(nets), x, "train", stats)
        for k, net in enumerate(nets):
            twin = copy.deepcopy(net).train()
            twin(x)  # BatchNorm1d's own update: running = 0.9 running + 0.1 batch (unbiased variance)
            for (mean, var), block, old in zip(stats, twin.layer_blocks, net.layer_blocks, strict=False):
                torch.testing.assert_close(0.9 * old.bn.running_mean + 0.1 * mean[k], block.bn.running_mean)
                torch.testing.assert_close(0.9 * old.bn.running_var + 0.1 * var[k] * 16 / 15, block.bn.running_var)
    assert len(stats) == 3 and stats[0][0].shape == (2, 12)


def test_any_module_runs_through_functional_call():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv1d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(12, 2)).eval()
    weights = torch.randn(4, 2, 12)
    x = torch.randn(5, 1, 6)
    with torch.no_grad():
        ours = stacked_forward(module, {"3.weight": weights}, x)
        for k in range(4):
            torch.testing.assert_close(ours[k], functional_call(module, {"3.weight": weights[k]}, (x,)))


def test_stacked_tensors_are_checked():
    net = MLP(6, 12, 2, 4, seed=0)
    x = torch.randn(4, 6)
    with pytest.raises(ModelError, match="does not have"):
        stacked_forward(net, {"blocks.0.nothing": torch.zeros(2)}, x)
    with pytest.raises(ModelError, match="shape"):
        stacked_forward(net, {"blocks.0.linear.bias": torch.zeros(2, 5)}, x)
    with pytest.raises(ConfigError, match="one number of copies"):
        two_counts = {"blocks.0.linear.bias": torch.zeros(2, 12), "blocks.1.linear.bias": torch.zeros(3, 12)}
        stacked_forward(net, two_counts, x)
    with pytest.raises(ConfigError, match="one number of copies"):
        stacked_forward(net, {}, x)
    with pytest.raises(ConfigError, match="bn_mode"):
        stacked_forward(net, {"blocks.0.linear.bias": torch.zeros(2, 12)}, x, bn_mode="eval")


@pytest.mark.parametrize("bias", [True, False])
def test_the_fold_is_the_layer_with_fixed_statistics(bias):
    torch.manual_seed(1)
    linear, bn = nn.Linear(5, 7, bias=bias).double(), nn.BatchNorm1d(7).double()
    with torch.no_grad():
        bn.running_mean.normal_(), bn.running_var.uniform_(0.5, 2), bn.weight.uniform_(0.5, 1.5), bn.bias.normal_()
    x = torch.randn(30, 5, dtype=torch.float64)
    with torch.no_grad():
        stats = (bn.running_mean, bn.running_var)
        w, b = fold_batchnorm(linear.weight, linear.bias, *stats, bn.eps, bn.weight, bn.bias)
        torch.testing.assert_close(x @ w.T + b, bn.eval()(linear(x)))
        a = linear(x)  # with a batch's statistics: the training-mode layer on that batch
        batch = (a.mean(0), a.var(0, unbiased=False))
        w, b = fold_batchnorm(linear.weight, linear.bias, *batch, bn.eps, bn.weight, bn.bias)
        torch.testing.assert_close(x @ w.T + b, bn.train()(a))
        # stacked: K weights, shared statistics and affine parameters
        weights = torch.stack([linear.weight, 2 * linear.weight])
        w, b = fold_batchnorm(weights, linear.bias, *stats, bn.eps, bn.weight, bn.bias)
        torch.testing.assert_close(x @ w[1].T + b, bn.eval()(x @ weights[1].T + (linear.bias if bias else 0)))


def test_fold_block_in_float64():
    net = with_statistics(MLP(6, 12, 2, 4, batchnorm=True, bias=False, seed=3))
    x = torch.randn(9, 6)
    w, b = fold_block(net.block(1), torch.float64)
    assert w.dtype == b.dtype == torch.float64
    expected = net.block(1).normalize(net.block(1).linear(x), "running")
    torch.testing.assert_close((x.double() @ w.T + b).float(), expected, rtol=1e-5, atol=1e-6)
    w, b = fold_block(net.block(3))  # the output layer: no batch norm and no bias
    assert torch.equal(w, net.block(3).linear.weight) and torch.equal(b, torch.zeros(4))
