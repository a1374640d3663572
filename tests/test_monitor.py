"""netdyn.Monitor inside a user's own loop and Lightning's: the user's training is untouched, the folder is a
run folder like any other, the budget is kept, bad input is one clear error."""

import pytest
import torch
from torch import nn

import netdyn
from netdyn import ConfigError, ModelError, Monitor, RunError, load_run
from netdyn.cli import main


@pytest.fixture(scope="module")
def blobs():
    return netdyn.load_dataset("blobs", n_features=8, n_classes=3, train_size=300, test_size=120)


def _model():
    return nn.Sequential(
        nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3)
    )


def _user_loop(data, steps, monitor=None):
    """A plain training loop whose minibatches come from torch's global generator."""
    torch.manual_seed(0)
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for step in range(steps):
        idx = torch.randperm(data.n_train)[:50]
        loss = nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if monitor is not None:
            monitor.step(model, step + 1, train_loss=loss.item())
    return model, opt, torch.get_rng_state()


def test_the_users_training_is_bit_identical_with_the_monitor(blobs, tmp_path):
    plain, plain_opt, plain_rng = _user_loop(blobs, 40)
    with Monitor(tmp_path / "m", blobs, every=5, budget=10.0, total_steps=40,
                 quantities=("network", "lmap", "rpd", "sample_basin"),
                 analysis=netdyn.AnalysisConfig(eps=(0.0, 1.0), repeats=1, basin_samples=50)) as monitor:
        watched, watched_opt, watched_rng = _user_loop(blobs, 40, monitor)
    for (name, a), b in zip(plain.state_dict().items(), watched.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert torch.equal(plain_rng, watched_rng)
    assert watched.training  # the mode is the user's
    state_a, state_b = plain_opt.state_dict()["state"], watched_opt.state_dict()["state"]
    assert all(torch.equal(state_a[k]["momentum_buffer"], state_b[k]["momentum_buffer"]) for k in state_a)


def test_the_folder_is_a_run_folder(blobs, tmp_path, capsys):
    out = tmp_path / "m"
    with Monitor(out, blobs, every="log:6", total_steps=40, budget=10.0) as monitor:
        _user_loop(blobs, 40, monitor)
    run = load_run(out)
    steps = sorted(set(run.history["step"]))
    assert steps[0] == 1 and steps[-1] == 40 and run.checkpoints() == steps
    assert set(run.tables) >= {"history", "monitor", "network", "lmap", "lp", "rpd", "rpd_summary",
                               "class_geometry", "class_geometry_samples"}
    lmap = run.tables["lmap"]
    assert list(lmap.columns) == ["layer", "split", "accuracy", "step"] and sorted(set(lmap["step"])) == steps
    # the recorded accuracy is the network's on the subset: the model at the last checkpoint agrees
    net = run.model(40)
    last = run.history[(run.history["step"] == 40) & (run.history["split"] == "test")]["accuracy"].item()
    assert last == pytest.approx(netdyn.network_accuracy(net, blobs).set_index("split").loc["test", "accuracy"])
    assert main(["analyze", str(out), "--checkpoint", "all", "--no-basins", "--quiet", "--max-samples", "100"]) == 0
    assert "report:" in capsys.readouterr().out
    assert (out / "report.html").is_file()


def test_the_budget_is_kept_and_skips_are_recorded(blobs, tmp_path):
    monitor = Monitor(tmp_path / "m", blobs, every=1, budget=1e-6, total_steps=12)
    _user_loop(blobs, 12, monitor)
    summary = monitor.close()
    table = load_run(tmp_path / "m").tables["monitor"]
    # the first and the last points are always taken; the budget skips the rest
    assert table["status"].tolist() == ["recorded"] + ["skipped_budget"] * 10 + ["recorded"]
    assert summary["records"] == 2 and summary["skipped"] == list(range(2, 12))
    assert sorted(set(load_run(tmp_path / "m").history["step"])) == [1, 12]


def test_bad_input_is_one_clear_error_and_keeps_what_was_recorded(blobs, tmp_path):
    conv = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2, 3))
    with pytest.raises(ModelError, match="Conv2d"):
        Monitor(tmp_path / "a", blobs).step(conv, 0)
    with pytest.raises(ConfigError, match="input features"):
        Monitor(tmp_path / "b", blobs).step(nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3)), 0)
    monitor = Monitor(tmp_path / "c", blobs, every=1, budget=1e9, quantities=("network",))
    model = _model()
    monitor.step(model, 0)
    monitor.step(model, 3)
    with pytest.raises(ConfigError, match="steps must increase"):
        monitor.step(model, 2)
    assert sorted(set(load_run(tmp_path / "c").history["step"])) == [0, 3]
    monitor.close()
    with pytest.raises(RunError, match="already holds a run"):
        Monitor(tmp_path / "c", blobs).step(model, 0)
    with pytest.raises(ConfigError, match="budget"):
        Monitor(tmp_path / "d", blobs, budget=0)
    with pytest.raises(ConfigError, match="unknown quantities"):
        Monitor(tmp_path / "d", blobs, quantities=("nope",))


def test_lightning_callback(blobs, tmp_path):
    lightning = pytest.importorskip("lightning.pytorch")
    from netdyn.integrations.lightning import NetdynCallback

    class Module(lightning.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = _model()

        def training_step(self, batch, batch_idx):
            x, y = batch
            return nn.functional.cross_entropy(self.model(x), y)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=0.01)

    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(blobs.x_train, blobs.y_train), batch_size=50)
    callback = NetdynCallback(tmp_path / "pl", blobs, every=5, budget=10.0, quantities=("network", "lmap"))
    trainer = lightning.Trainer(max_steps=20, callbacks=[callback], logger=False, enable_checkpointing=False,
                                enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(Module(), loader)
    run = load_run(tmp_path / "pl")
    assert sorted(set(run.history["step"])) == [0, 5, 10, 15, 20]
    monitor = run.tables["monitor"]
    assert monitor["train_loss"].iloc[1:].notna().all()
    assert run.summary["records"] == 5
