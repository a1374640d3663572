"""A user's own model through the layers above the quantities (SPEC 10): analyze and its report, the Monitor, the
Lightning callback and prune, and the run folder that rebuilds the model by its factory or loads it into one."""

import json
import math

import pandas as pd
import pytest
import torch
from torch import nn

import netdyn
from any_models import INPUT_SHAPE, image_data, small_cnn, trained
from netdyn import MLP, AnalysisConfig, ConfigError, ModelError, Monitor, analyze, load_analysis, load_run
from netdyn.models.pruned import Pruned
from netdyn.prune import prune_network, prune_run

FACTORY = "any_models:small_cnn"
FAST = AnalysisConfig(basins=False, max_samples=200)


@pytest.fixture(scope="module")
def images():
    return image_data()


@pytest.fixture(scope="module")
def cnn(images):
    torch.manual_seed(0)  # the initial weights, whatever tests ran before in this process (pytest-xdist)
    return trained(small_cnn(), images)


def _loop(data, steps, monitor=None, **cnn):
    torch.manual_seed(0)
    model = small_cnn(**cnn)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(steps):
        idx = torch.randperm(data.n_train)[:60]
        loss = nn.functional.cross_entropy(model(data.x_train[idx].reshape(-1, *INPUT_SHAPE)), data.y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if monitor is not None:
            monitor.step(model, step + 1, train_loss=loss.item())
    return model


# ------------------------------------------------------------------------------------------------- analyze
def test_analyze_a_cnn_and_render_its_report(cnn, images, tmp_path):
    analysis = analyze(cnn, images, FAST)
    assert analysis.input_shape == INPUT_SHAPE and analysis.cuts is None
    lmap = analysis["lmap"]
    assert list(lmap["cut"].unique()) == ["input", "2", "5", "8"]  # the pooled outputs, then the dense ReLU
    for name, table in analysis.tables.items():
        if "layer" in table.columns:
            assert "cut" in table.columns, name
    # every quantity either computed or named with its reason: none fails the analysis
    computed = {q for q in netdyn.analysis.QUANTITIES if set(netdyn.analysis.QUANTITIES[q].tables) <= set(
        analysis.tables)}
    assert computed | set(analysis.skipped) >= {"network", "lmap", "lp", "rpd", "neuron_modes", "class_geometry",
                                                "local_fields"}
    assert {"network", "lmap", "lp", "class_geometry"} <= computed
    assert all(isinstance(reason, str) and reason for reason in analysis.skipped.values())
    assert analysis.summary["test_accuracy"] > 0.8
    analysis.save(tmp_path)
    record = json.loads((tmp_path / "analysis.json").read_text())
    assert record["input_shape"] == list(INPUT_SHAPE)
    assert record["summary"].get("skipped_quantities", {}) == analysis.skipped
    back = load_analysis(tmp_path)
    assert back.input_shape == INPUT_SHAPE and back.skipped == analysis.skipped
    html = analysis.to_html(tmp_path / "report.html").read_text()
    assert "L-map accuracy" in html and '<th scope="col">cut</th>' in html and "<td>5</td>" in html  # cut names
    if analysis.skipped:
        assert "Not computed for this model" in html and next(iter(analysis.skipped)) in html
    assert any(p.suffix == ".png" for p in analysis.plot(tmp_path))


def test_a_skipped_quantity_is_recorded_not_raised(cnn, images, tiny_data, monkeypatch):
    """A quantity that refuses the model (here by force) is left out with its reason; a netdyn MLP still raises."""
    from netdyn.analysis import quantities

    def refuse(*args, **kwargs):
        raise ModelError("the analysis takes a netdyn MLP, got Sequential")

    record = quantities.QUANTITIES["lp"]
    monkeypatch.setitem(quantities.QUANTITIES, "lp", quantities.Quantity(**{**record.__dict__, "compute": refuse}))
    analysis = analyze(cnn, images, AnalysisConfig(quantities=("lmap", "lp")))
    assert analysis.skipped == {"lp": "the analysis takes a netdyn MLP, got Sequential"}
    assert "lp" not in analysis.tables and "lp_effective_earliest" not in analysis.summary
    assert "lmap_effective_earliest" in analysis.summary
    with pytest.raises(ModelError, match="takes a netdyn MLP"):
        analyze(MLP(12, 8, 2, 3, seed=0), tiny_data, AnalysisConfig(quantities=("lp",)))


def test_an_nn_sequential_mlp_analyses_as_its_netdyn_twin(images):
    seq = trained(nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 12), nn.Tanh(), nn.Linear(12, 3)),
                  images)
    config = AnalysisConfig(quantities=("lmap", "lp", "class_geometry"))
    mine = analyze(seq, images, config, input_shape=(64,))
    twin = analyze(MLP.from_sequential(seq), images, config)
    assert not mine.skipped
    for name, reference in twin.tables.items():
        pd.testing.assert_frame_equal(mine[name][list(reference.columns)], reference, rtol=1e-5)


def test_analyze_names_cuts_and_refuses_a_bad_one(cnn, images):
    analysis = analyze(cnn, images, AnalysisConfig(quantities=("lmap",)), cuts=["5"])
    assert analysis.cuts == ("5",) and list(analysis["lmap"]["cut"].unique()) == ["input", "5"]
    with pytest.raises(ModelError, match="names no node or module"):
        analyze(cnn, images, FAST, cuts=["nope"])
    with pytest.raises(ConfigError, match="input_shape"):
        analyze(cnn, images, FAST, input_shape=(1, 4, 4))


# ------------------------------------------------------------------------------- a user's model in a run folder
def test_the_monitor_records_a_cnn_that_its_factory_rebuilds(images, tmp_path):
    out = tmp_path / "m"
    with Monitor(out, images, every="log:4", total_steps=20, budget=1e9, max_samples=200,
                 model_factory=FACTORY, model_args={"batchnorm": True}) as monitor:
        model = _loop(images, 20, monitor, batchnorm=True)
    run = load_run(out)
    config = run.config
    assert config["model"] is None and config["model_factory"] == FACTORY
    assert config["model_args"] == {"batchnorm": True} and config["input_shape"] == list(INPUT_SHAPE)
    # a net with batch norm: both evaluations at every point
    assert run.history.groupby("step")["bn_mode"].apply(set).eq({"running", "batch"}).all()
    assert set(run.tables) >= {"history", "network", "lmap", "lp", "class_geometry"}
    assert "cut" in run.tables["lmap"].columns and sorted(set(run.tables["lmap"]["step"])) == run.checkpoints()
    rebuilt = run.model()
    assert isinstance(rebuilt, nn.Sequential) and not rebuilt.training
    for (name, a), b in zip(model.state_dict().items(), rebuilt.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    recorded = run.history.query("step == 20 and split == 'test' and bn_mode == 'running'")["accuracy"].item()
    assert recorded == run.summary["test_accuracy"]
    # netdyn analyze reads the folder: the factory rebuilds the model, the recorded input shape feeds it
    analysis = netdyn.analyze_checkpoints(run, "last", AnalysisConfig(quantities=("lmap",)), data=images)
    assert analysis.input_shape == INPUT_SHAPE and "cut" in analysis["lmap"].columns


def test_without_a_factory_the_weights_load_into_the_users_model(images, tmp_path):
    out = tmp_path / "m"
    with Monitor(out, images, every=10, total_steps=10, quantities=("network",)) as monitor:
        model = _loop(images, 10, monitor)
    run = load_run(out)
    assert run.config["model_factory"] is None and run.config["model_class"].endswith("Sequential")
    with pytest.raises(ModelError, match=r"without a model_factory: pass the architecture, run.model\(into=net\)"):
        run.model()
    loaded = run.model(into=small_cnn())
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values(),
                                                 strict=True))
    with pytest.raises(ModelError, match="does not fit"):
        run.model(into=small_cnn(channels=3))
    with pytest.raises(ConfigError, match="package.module:function"):
        Monitor(tmp_path / "x", images, model_factory="no colon")
    with pytest.raises(ConfigError, match="JSON object"):
        Monitor(tmp_path / "x", images, model_factory=FACTORY, model_args={"pool": object()})


def test_a_factory_that_cannot_be_imported_is_one_line(images, tmp_path):
    with Monitor(tmp_path / "m", images, every=1, quantities=("network",), model_factory="no_such_module:f") as m:
        _loop(images, 1, m)
    with pytest.raises(ModelError, match="cannot import the model factory 'no_such_module:f'"):
        load_run(tmp_path / "m").model()


def test_the_lightning_callback_records_a_cnn(images, tmp_path):
    lightning = pytest.importorskip("lightning.pytorch")
    from netdyn.integrations.lightning import NetdynCallback

    class Module(lightning.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = small_cnn()

        def training_step(self, batch, batch_idx):
            x, y = batch
            return nn.functional.cross_entropy(self.net(x.reshape(-1, *INPUT_SHAPE)), y)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=0.01)

    callback = NetdynCallback(tmp_path / "pl", images, network="net", every=4, quantities=("network", "lmap"),
                              model_factory=FACTORY, max_samples=200)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images.x_train, images.y_train),
                                         batch_size=60)
    trainer = lightning.Trainer(callbacks=[callback], enable_checkpointing=False, enable_progress_bar=False,
                                enable_model_summary=False, accelerator="cpu", max_steps=8, logger=False)
    module = Module()
    trainer.fit(module, loader)
    run = load_run(tmp_path / "pl")
    assert sorted(set(run.history["step"])) == [0, 4, 8] and run.checkpoints()[-1] == 8
    assert set(run.history["bn_mode"]) == {"none"} and "cut" in run.tables["lmap"].columns
    rebuilt = run.model()
    assert all(torch.equal(a, b) for a, b in zip(module.net.state_dict().values(), rebuilt.state_dict().values(),
                                                 strict=True))
    assert math.isclose(run.summary["test_accuracy"], float(netdyn.network_accuracy(
        rebuilt, images).set_index("split").loc["test", "accuracy"]), abs_tol=1e-9)


# ------------------------------------------------------------------------------------------------------ prune
def test_prune_a_cnn_run_into_its_trunk_and_one_linear(images, tmp_path):
    run_dir = tmp_path / "m"
    with Monitor(run_dir, images, every=40, total_steps=40, quantities=("network",), model_factory=FACTORY,
                 max_samples=1000) as monitor:
        model = _loop(images, 40, monitor).eval()
    result = prune_run(run_dir, tmp_path / "p", tolerance=0.05, data=images)
    scan = result.scan.set_index("layer")
    assert list(scan["cut"]) == ["2", "5"] and set(scan["tail"]) == {"affine"}
    cut = scan.loc[result.layer, "cut"]
    lmap = netdyn.lmap_accuracy(model, images, input_shape=INPUT_SHAPE).set_index(["layer", "split"])["accuracy"]
    pruned = load_run(tmp_path / "p")
    rebuilt = pruned.model()
    assert isinstance(rebuilt, Pruned) and rebuilt.cut == cut and rebuilt.linear.in_features == {"2": 64, "5": 16}[cut]
    accuracy = netdyn.network_accuracy(rebuilt, images, input_shape=INPUT_SHAPE).set_index("split")["accuracy"]
    # the pruned CNN is the L-map at its cut: the same accuracy on both splits
    assert accuracy["test"] == lmap[(result.layer, "test")] and accuracy["train"] == lmap[(result.layer, "train")]
    before, after = result.table.iloc[0], result.table.iloc[1]
    assert after["parameters"] < before["parameters"] and after["test_accuracy"] == accuracy["test"]
    assert pruned.config["pruned"]["cut"] == cut and pruned.config["model_factory"] == FACTORY
    assert pruned.summary["pruned_from"]["layer"] == result.layer
    # without a factory the original architecture is passed, and the pruned model is built around it
    with Monitor(tmp_path / "n", images, every=1, quantities=("network",)) as monitor:
        monitor.step(model, 1)
    prune_run(tmp_path / "n", tmp_path / "q", tolerance=0.05, data=images, into=small_cnn())
    with pytest.raises(ModelError, match="without a model_factory"):
        load_run(tmp_path / "q").model()
    into = load_run(tmp_path / "q").model(into=small_cnn())
    assert torch.equal(into(images.x_test.reshape(-1, *INPUT_SHAPE)), rebuilt(images.x_test.reshape(-1, *INPUT_SHAPE)))


def test_prune_refuses_a_model_without_an_affine_tail(images):
    torch.manual_seed(0)
    model = trained(small_cnn(pool="max"), images, steps=20)
    with pytest.raises(ModelError, match="no cut of Sequential has an affine tail.*1: piecewise_linear"):
        prune_network(model, images, input_shape=INPUT_SHAPE, cuts=["1", "4"])
    with pytest.raises(ConfigError, match="prunes netdyn MLPs; prune a Sequential with lmap"):
        prune_network(model, images, method="lp")
