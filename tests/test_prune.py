"""Pruning the linear tail: the pruned network *is* the L-map (or LP) it was cut at, cuts that a residual skip crosses
are skipped, accuracy stays within the tolerance, and the pruned model is a run folder that reloads and analyses."""

import pytest
import torch

import netdyn
from netdyn import MLP, load_run
from netdyn.cli import main
from netdyn.data import Dataset
from netdyn.errors import ConfigError, NetdynError
from netdyn.prune import linear_tail, parameter_count, prune_network, prune_run, truncated_network


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A batch-norm ReLU net of depth 3 trained on blobs (linearly separable: its tail turns linear)."""
    folder = tmp_path_factory.mktemp("prune") / "run"
    spec = netdyn.RunSpec(
        model=netdyn.ModelSpec(width=16, depth=3, batchnorm=True, seed=0),
        data=netdyn.DataSpec("blobs", train_size=400, test_size=200),
        train=netdyn.TrainConfig(steps=120, batch_size=50, lr=0.01, eval_every="log:5", checkpoint_every="log:3"),
    )
    netdyn.run(spec, folder)
    return folder


def _logits(net, x):
    with torch.no_grad():
        return net.eval()(x)


def test_a_linear_network_prunes_to_one_layer_exactly(tiny_data):
    net = MLP(12, 10, 4, 3, activation="linear", batchnorm=True, seed=1).double()
    with torch.no_grad():  # running statistics that are not the identity, so the folding is exercised
        for block in net.blocks[:-1]:
            block.bn.running_mean.uniform_(-1, 1, generator=torch.Generator().manual_seed(2))
            block.bn.running_var.uniform_(0.5, 2, generator=torch.Generator().manual_seed(3))
    pruned = prune_network(net, tiny_data, "lmap", tolerance=0.0)
    assert pruned.layer == 1 and pruned.net.depth == 1
    assert list(pruned.scan["chosen"]) == [True, False, False]
    x = tiny_data.x_test.double()
    torch.testing.assert_close(_logits(pruned.net, x), _logits(net, x), rtol=1e-9, atol=1e-9)
    assert parameter_count(pruned.net) < parameter_count(net)


@pytest.mark.parametrize("method", ["lmap", "lp"])
def test_the_pruned_network_is_the_linear_map(tiny_data, method):
    torch.manual_seed(0)
    net = MLP(12, 16, 4, 3, batchnorm=True, seed=0).double()
    netdyn.train(net, tiny_data, netdyn.TrainConfig(steps=30, lr=0.01, dtype="float64", eval_every=10,
                                                    checkpoint_every="none"))
    net.eval()
    for l in (1, 2, 3):
        weight, bias = linear_tail(net, tiny_data, l, method)
        pruned = truncated_network(net, l, weight, bias)
        x = tiny_data.x_test.double()
        x_l = net.trace(x, layers=[l]).x[l]
        if method == "lmap":
            m, c = netdyn.lmap_matrix(net, l)
            expected = x_l @ m.T + c
        else:
            a_mat, a = netdyn.fit_probe(net, tiny_data, l)
            expected = x_l @ a_mat + a
        torch.testing.assert_close(_logits(pruned, x), expected, rtol=1e-9, atol=1e-9)


def test_cuts_a_residual_skip_crosses_are_skipped(tiny_data):
    net = MLP(12, 8, 5, 3, activation="linear", residual=True, seed=0).double()
    # layers 3 and 5 receive skips, so the cuts after layers 2 and 4 need x^1 and x^3 too
    pruned = prune_network(net, tiny_data, "lmap", tolerance=0.0)
    assert list(pruned.scan["skip_crosses"]) == [False, True, False, True]
    with pytest.raises(ConfigError, match="skip crosses the cut after layer 2"):
        linear_tail(net, tiny_data, 2, "lmap")
    # a cut after layer 3 keeps the skip into layer 3; the pruned net is still the network (it is linear)
    cut = truncated_network(net, 3, *linear_tail(net, tiny_data, 3, "lmap"))
    assert cut.spec.residual == "pre" and cut.blocks[2].skip == "pre"
    x = tiny_data.x_test.double()
    torch.testing.assert_close(_logits(cut, x), _logits(net, x), rtol=1e-9, atol=1e-9)
    # the LP has no such cuts: it maps x^l alone
    assert not prune_network(net, tiny_data, "lp", tolerance=0.0).scan["skip_crosses"].any()


def _abs_net_and_data():
    """1-D input u; class 1 when |u| > 0.5. Layer 1 (linear) gives (u, -u), layer 2 (ReLU) their positive parts,
    the output compares their sum |u| with 0.5. The net is exact; replacing the ReLU by the identity (the L-map)
    sums u - u = 0 and always answers class 0."""
    net = MLP(1, 2, 2, 2, activation=("linear", "relu"), seed=0).double().eval()
    with torch.no_grad():
        net.block(1).linear.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        net.block(1).linear.bias.zero_()
        net.block(2).linear.weight.copy_(torch.eye(2))
        net.block(2).linear.bias.zero_()
        net.block(3).linear.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
        net.block(3).linear.bias.copy_(torch.tensor([0.5, 0.0]))
    u = torch.linspace(-1, 1, 201, dtype=torch.float64)[:, None]
    keep = (u.abs() - 0.5).abs()[:, 0] > 0.05
    u = u[keep]
    y = (u.abs()[:, 0] > 0.5).long()
    return net, Dataset(u, y, u, y, 2, "abs", (1,), {})


def test_no_linear_tail_keeps_the_accuracy():
    net, data = _abs_net_and_data()
    assert netdyn.network_accuracy(net, data)["accuracy"].tolist() == [1.0, 1.0]
    chance = (data.y_test == 0).double().mean().item()  # the L-map always answers class 0
    with pytest.raises(NetdynError, match=rf"no lmap tail keeps .* 1\.0000 .* reaches {chance:.4f}\); nothing"):
        prune_network(net, data, "lmap")
    with pytest.raises(NetdynError, match="nothing to prune"):
        prune_network(MLP(1, 2, 1, 2, seed=0), data, "lmap")
    with pytest.raises(ConfigError, match="method"):
        prune_network(net, data, "svd")


def test_prune_run_saves_a_run_folder_that_reloads_and_analyses(trained_run, tmp_path, capsys):
    out = tmp_path / "pruned"
    result = prune_run(trained_run, out, method="lmap")
    before, after = result.table.iloc[0], result.table.iloc[1]
    assert before["depth"] == 3 and after["depth"] == result.layer < 3
    assert after["test_accuracy"] >= before["test_accuracy"] - 0.005
    assert after["parameters"] < before["parameters"] and after["inference_ms"] > 0
    run = load_run(out)
    net = run.model()
    assert net.depth == result.layer and run.config["pruned_from"]["layer"] == result.layer
    assert run.spec.data == load_run(trained_run).spec.data
    assert run.checkpoints() == [load_run(trained_run).checkpoints()[-1]]
    acc = netdyn.network_accuracy(net, run.dataset()).set_index("split")["accuracy"]
    assert acc["test"] == pytest.approx(after["test_accuracy"])
    assert acc["train"] == pytest.approx(after["train_accuracy"])
    assert {"prune", "prune_scan"} <= set(run.table_names())
    assert main(["analyze", str(out), "--no-basins", "--quantities", "lmap,lp", "--quiet"]) == 0
    assert (out / "report.html").is_file()
    capsys.readouterr()

    # the command line: the before/after table, then refusing to overwrite the folder it wrote
    out2 = tmp_path / "pruned-lp"
    assert main(["prune", str(trained_run), "--method", "lp", "--out", str(out2)]) == 0
    printed = capsys.readouterr().out
    assert "original" in printed and "pruned (lp after layer" in printed and f"pruned run folder: {out2}" in printed
    listing = sorted(p.name for p in out2.rglob("*"))
    assert main(["prune", str(trained_run), "--out", str(out2)]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "already exists" in err
    assert sorted(p.name for p in out2.rglob("*")) == listing


def test_prune_refusals_are_one_line_and_write_nothing(trained_run, tmp_path, capsys):
    shallow = tmp_path / "shallow"
    netdyn.run(netdyn.RunSpec(model=netdyn.ModelSpec(width=4, depth=1, seed=0),
                              data=netdyn.DataSpec("blobs", train_size=40, test_size=20),
                              train=netdyn.TrainConfig(steps=2, eval_every=1, checkpoint_every=1)), shallow)
    cases = [
        ([str(shallow)], 1, "nothing to prune"),
        ([str(trained_run), "--checkpoint", "99999"], 2, "no checkpoint at step 99999"),
        ([str(tmp_path)], 1, "not a netdyn run folder"),
        ([str(trained_run), "--tolerance", "1.5"], 2, "--tolerance"),
    ]
    for argv, status, words in cases:
        out = tmp_path / "never"
        assert main(["prune", *argv, "--out", str(out)]) == status, argv
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and words in err, err
        assert not out.exists()
    assert not (tmp_path / "shallow-pruned-lmap").exists()
