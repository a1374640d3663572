"""netdyn.Monitor inside a user's own loop and Lightning's: the user's training is untouched, the folder is a
run folder like any other, the budget is kept, bad input is one clear error."""

from pathlib import Path

import pandas as pd
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
    with Monitor(out, blobs, every="log:6", total_steps=40, budget=1e9) as monitor:  # every point in full
        _user_loop(blobs, 40, monitor)
    run = load_run(out)
    steps = sorted(set(run.history["step"]))
    assert steps == [1, 2, 4, 9, 19, 40] and run.checkpoints() == steps
    # a net with batch norm: both evaluations at every point (SPEC 7)
    assert run.history.groupby("step")["bn_mode"].apply(set).eq({"running", "batch"}).all()
    assert {"test_accuracy", "test_accuracy_batch", "train_loss_batch"} <= set(run.summary)
    assert set(run.tables) >= {"history", "monitor", "network", "lmap", "lp", "rpd", "rpd_summary",
                               "class_geometry", "class_geometry_samples"}
    lmap = run.tables["lmap"]
    assert list(lmap.columns) == ["layer", "split", "accuracy", "step"] and sorted(set(lmap["step"])) == steps
    # the recorded accuracy is the network's on the subset: the model at the last checkpoint agrees
    net = run.model(40)
    history = run.history[run.history["bn_mode"] == "running"]
    last = history[(history["step"] == 40) & (history["split"] == "test")]["accuracy"].item()
    assert last == pytest.approx(netdyn.network_accuracy(net, blobs).set_index("split").loc["test", "accuracy"])
    assert main(["analyze", str(out), "--checkpoint", "all", "--no-basins", "--quiet", "--max-samples", "100"]) == 0
    assert "report:" in capsys.readouterr().out
    assert (out / "report.html").is_file()


def test_the_budget_is_kept_and_skips_are_recorded(blobs, tmp_path):
    monitor = Monitor(tmp_path / "m", blobs, every=1, budget=1e-6, total_steps=12)
    _user_loop(blobs, 12, monitor)
    summary = monitor.close()
    table = load_run(tmp_path / "m").tables["monitor"]
    # the first and the last points are always taken in full; the budget skips the quantities of the rest, never
    # their history
    assert table["status"].tolist() == ["recorded"] + ["skipped_budget"] * 10 + ["recorded"]
    assert summary["records"] == 2 and summary["skipped"] == list(range(2, 12))
    run = load_run(tmp_path / "m")
    assert sorted(set(run.history["step"])) == list(range(1, 13)) and summary["history_points"] == 12
    assert sorted(set(run.tables["lmap"]["step"])) == run.checkpoints() == [1, 12]


def test_a_fast_loop_records_its_history_and_close_records_the_last_step(blobs, tmp_path):
    """No total, the default budget, a loop far faster than a record: every scheduled point still has its
    history, and close() records the last step seen (not scheduled) in full, so the summary is the trained net's."""
    monitor = Monitor(tmp_path / "m", blobs, quantities=("network", "lmap"))
    model, _, _ = _user_loop(blobs, 57, monitor)
    summary = monitor.close()
    run = load_run(tmp_path / "m")
    scheduled = [s for s in range(1, 58) if netdyn.monitor.monitor_steps("log:30", None, s)]
    assert sorted(set(run.history["step"])) == [*scheduled, 57] and 57 not in scheduled
    assert run.checkpoints()[-1] == 57 and sorted(set(run.tables["lmap"]["step"]))[-1] == 57
    last = run.history[(run.history["step"] == 57) & (run.history["split"] == "test")]
    assert summary["test_accuracy"] == last.set_index("bn_mode").loc["running", "accuracy"]
    assert summary["test_accuracy"] == pytest.approx(
        netdyn.network_accuracy(run.model(57), blobs).set_index("split").loc["test", "accuracy"])
    assert summary["steps"] == 57 and "warning" not in summary


def test_a_loop_that_never_trained_says_so(blobs, tmp_path, caplog, capsys):
    monitor = Monitor(tmp_path / "m", blobs, quantities=("network",))
    monitor.step(_model(), 0)
    with caplog.at_level("WARNING", logger="netdyn.monitor"):
        summary = monitor.close()
    assert "only step 0" in summary["warning"] and "only step 0" in caplog.text
    assert "test_accuracy" not in summary  # the untrained net's accuracy is not the run's result
    assert main(["analyze", str(tmp_path / "m"), "--no-basins", "--quiet", "--max-samples", "100"]) == 0
    assert "warning: only step 0 (the untrained network) was recorded" in capsys.readouterr().err


def test_loggers_get_every_records_scalars(blobs, tmp_path):
    """A real TensorBoard SummaryWriter (its event file read back), and any callable (scalars, step)."""
    tensorboard = pytest.importorskip("torch.utils.tensorboard")
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    writer = tensorboard.SummaryWriter(tmp_path / "tb")
    seen: list[tuple[dict, int]] = []
    with Monitor(tmp_path / "m", blobs, every="log:6", total_steps=40, budget=1e-6, quantities=("network", "lmap"),
                 loggers=[writer, lambda scalars, step: seen.append((scalars, step))]) as monitor:
        _user_loop(blobs, 40, monitor)
    writer.close()
    steps = [1, 2, 4, 9, 19, 40]
    assert [step for _, step in seen] == steps
    history = load_run(tmp_path / "m").history
    first = history[(history["step"] == 1) & (history["split"] == "test")].set_index("bn_mode")["accuracy"]
    assert seen[0][0]["netdyn/test_accuracy"] == first["running"]
    assert seen[0][0]["netdyn/test_accuracy_batch"] == first["batch"]
    # the quantities' numbers come with the full records (the first and the last) only
    assert [("netdyn/lmap_effective_earliest" in scalars) for scalars, _ in seen] == [1, 0, 0, 0, 0, 1]
    events = accumulator.EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert {"netdyn/train_loss", "netdyn/test_accuracy_batch"} <= set(events.Tags()["scalars"])
    read = events.Scalars("netdyn/test_accuracy")
    assert [e.step for e in read] == steps
    assert [e.value for e in read] == pytest.approx([scalars["netdyn/test_accuracy"] for scalars, _ in seen])
    with pytest.raises(ConfigError, match="loggers takes"):
        Monitor(tmp_path / "x", blobs, loggers=["tensorboard"])


def test_bad_input_is_one_clear_error_and_keeps_what_was_recorded(blobs, tmp_path):
    conv = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2, 3))
    with pytest.raises(ModelError, match="Sequential cannot take the data's samples as input_shape"):
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


def _lightning_module(lightning, skip=False):
    class Module(lightning.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = _model()
            # skip: manual optimisation that never steps the optimiser, so the trainer takes no step
            self.automatic_optimization = not skip

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = nn.functional.cross_entropy(self.model(x), y)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=0.01)

    return Module()


def _fit(lightning, data, callback, skip=False, **trainer):
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data.x_train, data.y_train), batch_size=50)
    trainer = lightning.Trainer(callbacks=[callback], enable_checkpointing=False, enable_progress_bar=False,
                                enable_model_summary=False, accelerator="cpu", **trainer)
    trainer.fit(_lightning_module(lightning, skip), loader)
    return trainer


def test_lightning_callback_with_max_steps(blobs, tmp_path):
    lightning = pytest.importorskip("lightning.pytorch")
    from netdyn.integrations.lightning import NetdynCallback

    callback = NetdynCallback(tmp_path / "pl", blobs, every=5, budget=10.0, quantities=("network", "lmap"))
    _fit(lightning, blobs, callback, max_steps=20, logger=False)
    run = load_run(tmp_path / "pl")
    assert sorted(set(run.history["step"])) == [0, 5, 10, 15, 20] and run.checkpoints()[-1] == 20
    assert callback.monitor.total_steps == 20 and callback.monitor.batch_size == 50  # from the trainer
    monitor = run.tables["monitor"]
    assert monitor["train_loss"].iloc[1:].notna().all()
    assert run.summary["steps"] == 20 and "warning" not in run.summary


def test_lightning_callback_with_max_epochs_logs_through_the_csv_logger(blobs, tmp_path):
    """Trainer(max_epochs=...), the common way: the run length comes from estimated_stepping_batches, the last
    step is recorded in full with the default budget, and netdyn's scalars reach the module's CSVLogger."""
    lightning = pytest.importorskip("lightning.pytorch")
    from netdyn.integrations.lightning import NetdynCallback

    callback = NetdynCallback(tmp_path / "pl", blobs, quantities=("network", "lmap"))
    csv = lightning.loggers.CSVLogger(tmp_path / "csv")
    _fit(lightning, blobs, callback, max_epochs=2, logger=csv, log_every_n_steps=1)
    total = 2 * 6  # 300 samples in batches of 50
    run = load_run(tmp_path / "pl")
    assert callback.monitor.total_steps == total and run.summary["steps"] == total
    steps = sorted(set(run.history["step"]))
    assert steps[0] == 0 and steps[-1] == total and len(steps) == total + 1  # log:30 over 12 steps: every one
    assert run.checkpoints()[-1] == total and "warning" not in run.summary
    last = run.history[(run.history["step"] == total) & (run.history["split"] == "test")].set_index("bn_mode")
    assert run.summary["test_accuracy"] == last.loc["running", "accuracy"] > 0.5  # the trained net's
    metrics = pd.read_csv(Path(csv.log_dir) / "metrics.csv")
    assert {"train_loss", "netdyn/test_accuracy", "netdyn/test_accuracy_batch", "netdyn/train_loss"} <= set(
        metrics.columns)
    logged = metrics.dropna(subset=["netdyn/test_accuracy"])
    assert sorted(logged["step"]) == steps
    assert logged.set_index("step").loc[total, "netdyn/test_accuracy"] == pytest.approx(run.summary["test_accuracy"])


def test_lightning_callback_without_a_training_step_says_so(blobs, tmp_path, caplog):
    lightning = pytest.importorskip("lightning.pytorch")
    from netdyn.integrations.lightning import NetdynCallback

    callback = NetdynCallback(tmp_path / "pl", blobs, quantities=("network",))
    with caplog.at_level("WARNING", logger="netdyn.monitor"):
        _fit(lightning, blobs, callback, skip=True, max_epochs=1, logger=False)  # no optimiser step is taken
    summary = load_run(tmp_path / "pl").summary
    assert "only step 0" in summary["warning"] and "test_accuracy" not in summary
    assert "only step 0" in caplog.text
