"""AnalysisConfig.bn_mode: "batch" analyses a BN net with the training set's own statistics at its current weights,
which is the analysis of the same net after its running statistics are recomputed by hand (reset, then one
cumulative pass, momentum None, over the training samples); the net given is left as it was."""

import copy

import pandas as pd
import pytest
import torch
from torch import nn

import netdyn
from netdyn import AnalysisConfig, ConfigError

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
QUANTITIES = ("lmap", "lp", "rpd", "weight_basin", "local_fields")


def _config(bn_mode):
    return AnalysisConfig(quantities=QUANTITIES, bn_mode=bn_mode, eps=(0.0, 0.5, 1.0), repeats=1,
                          basin_samples=60, max_samples=60, classes=(0, 1), device="cpu")


def _stale(net):
    """Running statistics far from the data's (as early in training, where they trail the weights)."""
    g = torch.Generator().manual_seed(1)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 3)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) * 5 + 0.1)
    return net


def _by_hand(net, x, **call):
    net = copy.deepcopy(net)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.reset_running_stats()
            m.momentum = None
    net.train()
    with torch.no_grad():
        net(x, **call)
    return net.eval()


def _same_tables(a, b):
    assert sorted(a.tables) == sorted(b.tables)
    for name, table in a.tables.items():
        pd.testing.assert_frame_equal(table, b.tables[name], obj=name, rtol=1e-5, atol=1e-6)


def _differs(a, b):
    return any(not a.tables[n].equals(b.tables[n]) for n in a.tables)


def test_batch_mode_is_the_analysis_after_recomputing_the_statistics_by_hand():
    data = netdyn.load_dataset("blobs", train_size=120, test_size=60)
    net = _stale(netdyn.MLP(data.x_train.shape[1], 8, 3, data.num_classes, batchnorm=True, seed=0))
    before = copy.deepcopy(net.state_dict())
    batch = netdyn.analyze(net, data, _config("batch"))
    _same_tables(batch, netdyn.analyze(_by_hand(net, data.x_train), data, _config("running")))
    assert _differs(batch, netdyn.analyze(net, data, _config("running"))), "stale statistics change nothing"
    for key, value in net.state_dict().items():  # the net given keeps its running statistics
        assert torch.equal(value, before[key]), key


def test_batch_mode_on_any_model_and_on_a_net_without_batch_norm():
    data = netdyn.load_dataset("blobs", train_size=120, test_size=60)
    d, k = data.x_train.shape[1], data.num_classes
    torch.manual_seed(0)
    seq = _stale(nn.Sequential(nn.Linear(d, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 8), nn.BatchNorm1d(8),
                               nn.ReLU(), nn.Linear(8, k)))
    config = AnalysisConfig(quantities=("lmap", "rpd"), bn_mode="batch", max_samples=60, device="cpu")
    running = AnalysisConfig(quantities=("lmap", "rpd"), max_samples=60, device="cpu")
    _same_tables(netdyn.analyze(seq, data, config), netdyn.analyze(_by_hand(seq, data.x_train), data, running))
    plain = netdyn.MLP(d, 8, 2, k, seed=0)
    _same_tables(netdyn.analyze(plain, data, config), netdyn.analyze(plain, data, running))


def test_bn_mode_takes_running_or_batch():
    with pytest.raises(ConfigError, match="bn_mode must be one of running, batch"):
        AnalysisConfig(bn_mode="train")
