"""The transition detector on hand-made dynamics with known answers, on a run folder through the CLI, and inside
the monitor."""

import json
import logging

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import netdyn
from netdyn import RunFolder, detect_transitions
from netdyn.cli import main
from netdyn.transitions import EVENT_COLUMNS

STEPS = [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000]


def _history(train, test, test_loss=None, steps=STEPS, modes=None):
    """A history table; ``modes`` maps a bn_mode to (train, test) curves (default: one mode, ``none``)."""
    modes = modes or {"none": (train, test)}
    rows = []
    for mode, (tr, te) in modes.items():
        loss = test_loss if test_loss is not None else [1 - a for a in te]
        for i, step in enumerate(steps):
            rows.append({"step": step, "split": "train", "bn_mode": mode, "loss": 1 - tr[i], "accuracy": tr[i]})
            rows.append({"step": step, "split": "test", "bn_mode": mode, "loss": loss[i], "accuracy": te[i]})
    return pd.DataFrame(rows)


FAST = [0.1, 0.2, 0.5, 0.9, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
LATE = [0.1, 0.1, 0.12, 0.15, 0.2, 0.2, 0.21, 0.2, 0.22, 0.3, 0.6, 0.85, 0.9, 0.9]
TOGETHER = [0.1, 0.15, 0.4, 0.8, 0.9, 0.92, 0.93, 0.93, 0.94, 0.94, 0.94, 0.94, 0.94, 0.94]


def test_grokking_is_the_test_accuracys_late_jump():
    events = detect_transitions({"history": _history(FAST, LATE)})
    assert events["event"].tolist() == ["grokking"]
    row = events.iloc[0]
    # the mid-rise: the first step at >= 0.1 + (0.9 - 0.1) / 2 = 0.5, step 1000; the training accuracy's at
    # >= 0.1 + 0.9 / 2, step 5; the onset is the last step still <= 0.1 + 0.1 x 0.8 before the end (0.15 at 5)
    assert row.step == 1000 and row.start_step == 5 and row.end_step == 2000
    evidence = json.loads(row.evidence)
    assert evidence["delay"] == pytest.approx(200.0) and "1000" in evidence["test_accuracy"]
    assert row.confidence == pytest.approx(1.0)


def test_nothing_is_flagged_on_an_ordinary_run():
    loss = [2.3, 2.0, 1.5, 0.8, 0.5, 0.4, 0.35, 0.33, 0.32, 0.31, 0.31, 0.31, 0.31, 0.31]
    events = detect_transitions({"history": _history(FAST, TOGETHER, test_loss=loss)})
    assert list(events.columns) == EVENT_COLUMNS and events.empty
    # overfitting: the test loss creeps up at the end and never falls again is no double descent
    rising = loss[:9] + [0.33, 0.36, 0.4, 0.45, 0.5]
    assert detect_transitions({"history": _history(FAST, TOGETHER, test_loss=rising)}).empty


def test_double_descent_is_a_rise_and_fall_of_the_test_loss():
    loss = [2.3, 2.2, 2.1, 2.0, 2.6, 3.2, 2.9, 1.0, 0.5, 0.4, 0.35, 0.33, 0.32, 0.32]
    events = detect_transitions({"history": _history(FAST, TOGETHER, test_loss=loss)})
    assert events["event"].tolist() == ["double_descent"]
    row = events.iloc[0]
    assert (row.step, row.start_step, row.end_step) == (20, 5, 5000)  # peak, valley, the first minimum after it
    assert json.loads(row.evidence)["relative_rise"] == pytest.approx(0.6)
    assert row.confidence == pytest.approx(1.0)
    assert detect_transitions({"history": _history(FAST, TOGETHER, test_loss=loss)}, min_relative_bump=0.7).empty


def test_batch_norm_grokking_compares_running_test_with_batch_training_accuracy():
    # the test accuracy jumps late under both evaluations: grokking
    history = _history(None, None, modes={"batch": (FAST, LATE), "running": (LATE, LATE)})
    events = detect_transitions({"history": history})
    assert events["event"].tolist() == ["grokking"]
    assert "(running)" in json.loads(events.iloc[0].evidence)["what"]
    # with running statistics alone the training accuracy jumps as late: nothing to flag
    assert detect_transitions({"history": _history(LATE, LATE, modes={"running": (LATE, LATE)})}).empty


def test_a_late_jump_or_bump_under_running_statistics_only_is_bn_lag():
    """SPEC 7: the running statistics trailing the weights is not grokking or double descent."""
    history = _history(None, None, modes={"batch": (FAST, FAST), "running": (LATE, LATE)})
    events = detect_transitions({"history": history})
    assert events["event"].tolist() == ["bn_lag"]
    evidence = json.loads(events.iloc[0].evidence)
    assert evidence["seen_as"] == "grokking" and "running statistics trail the weights" in evidence["what"]
    bump = [2.3, 2.2, 2.1, 2.0, 2.6, 3.2, 2.9, 1.0, 0.5, 0.4, 0.35, 0.33, 0.32, 0.32]
    smooth = [2.3, 2.0, 1.5, 0.8, 0.5, 0.4, 0.35, 0.33, 0.32, 0.31, 0.31, 0.31, 0.31, 0.31]
    rows = _history(None, None, modes={"batch": (FAST, TOGETHER), "running": (FAST, TOGETHER)})
    running_test = (rows["bn_mode"] == "running") & (rows["split"] == "test")
    batch_test = (rows["bn_mode"] == "batch") & (rows["split"] == "test")
    rows.loc[running_test, "loss"], rows.loc[batch_test, "loss"] = bump, smooth
    events = detect_transitions({"history": rows})
    assert events["event"].tolist() == ["bn_lag"]
    assert json.loads(events.iloc[0].evidence)["seen_as"] == "double_descent"
    rows.loc[batch_test, "loss"] = bump  # under both: double descent
    assert detect_transitions({"history": rows})["event"].tolist() == ["double_descent"]


def test_a_trained_bn_net_whose_running_statistics_trail_reports_bn_lag(tmp_path):
    """A real run (both BN evaluations recorded by default): the first BN layer's running variance starts at 1,
    far above its batch variance, so the running-statistics test accuracy sits at chance for tens of steps while
    the batch-statistics one rises from the start; the detector reports bn_lag, not grokking."""
    spec = netdyn.RunSpec(model=netdyn.ModelSpec(width=32, depth=3, batchnorm=True, seed=0),
                          data=netdyn.DataSpec("mnist5k", train_size=1000, test_size=300),
                          train=netdyn.TrainConfig(batch_size=50, steps=200, eval_every="log:30",
                                                   checkpoint_every="log:2", device="cpu"))
    netdyn.run(spec, tmp_path / "run")
    assert set(netdyn.load_run(tmp_path / "run").history["bn_mode"]) == {"running", "batch"}
    events = detect_transitions(tmp_path / "run")
    assert events["event"].tolist() == ["bn_lag"]
    evidence = json.loads(events.iloc[0].evidence)
    assert evidence["seen_as"] == "grokking" and evidence["delay"] >= 3


def test_the_rpd_gradients_fastest_change_in_the_later_layers():
    steps = [0, 10, 20, 50, 70, 100, 200, 500, 1000]
    rows = []
    for step in steps:
        for layer in (1, 2, 3):
            late = 2.0 if step >= 70 else 0.5  # layers 2-3 jump between steps 50 and 70
            rows.append({"step": step, "layer": layer, "gradient": 0.5 + 0.001 * step if layer == 1 else late})
    summary = pd.DataFrame(rows)
    lmap = pd.DataFrame({"step": 1000, "layer": [0, 1, 2, 3] * 2, "split": ["test"] * 4 + ["train"] * 4,
                         "accuracy": [0.5, 0.8, 0.95, 0.95, 0.5, 0.8, 0.95, 0.95]})
    network = pd.DataFrame({"step": [1000, 1000], "split": ["train", "test"], "accuracy": [0.96, 0.95]})
    history = _history(FAST, TOGETHER)
    events = detect_transitions({"history": history, "rpd_summary": summary, "lmap": lmap, "network": network})
    assert events["event"].tolist() == ["rpd_rate_max"]
    row = events.iloc[0]
    assert row.step == round(np.sqrt(50 * 70)) and (row.start_step, row.end_step) == (50, 70)
    evidence = json.loads(row.evidence)
    assert evidence["layers"] == [2, 3] and evidence["rate"] == pytest.approx(1.5 / np.log10(70 / 50), rel=1e-3)


def test_cli_reads_a_run_folder(tmp_path, capsys):
    folder = RunFolder(tmp_path / "grok")
    folder.write_record({"model": None, "train": None, "data": None})
    folder.write_table("history", _history(FAST, LATE))
    assert main(["transitions", str(folder.path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("grokking at step 1000 (confidence 1.00): test accuracy") and len(out.splitlines()) == 1
    folder = RunFolder(tmp_path / "plain")
    folder.write_record({"model": None, "train": None, "data": None})
    folder.write_table("history", _history(FAST, TOGETHER))
    assert main(["transitions", str(folder.path)]) == 0
    assert "no transition found" in capsys.readouterr().out
    assert main(["transitions", str(folder.path), "--min-delay", "0"]) == 2
    assert "--min-delay" in capsys.readouterr().err


def test_the_monitor_reports_a_newly_found_transition(tmp_path, monkeypatch, caplog):
    """The monitor's wiring: each record asks the detector, a kind of event is reported once, as it is found."""
    import netdyn.transitions as transitions

    calls = []

    def fake(tables):
        calls.append(int(tables["history"]["step"].max()))
        if len(calls) < 3:
            return pd.DataFrame(columns=EVENT_COLUMNS)
        return pd.DataFrame([{"event": "grokking", "step": 4, "confidence": 0.8, "start_step": 3.0,
                              "end_step": 5.0, "evidence": json.dumps({"what": "a test jump"})}])

    monkeypatch.setattr(transitions, "detect_transitions", fake)
    data = netdyn.load_dataset("blobs", n_features=4, n_classes=3, train_size=60, test_size=30)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    monitor = netdyn.Monitor(tmp_path / "m", data, every=1, budget=1e9, quantities=("network",))
    with caplog.at_level(logging.WARNING, logger="netdyn.monitor"):
        for step in range(8):
            with torch.no_grad():
                model[0].weight.mul_(1.01)
            monitor.step(model, step)
    summary = monitor.close()
    assert calls == [3, 4, 5, 6, 7]  # from the fourth record on
    assert [r.getMessage() for r in caplog.records] == [
        "netdyn monitor: grokking at step 4 (confidence 0.80): a test jump"
    ]
    events = netdyn.load_run(tmp_path / "m").tables["events"]
    assert events["event"].tolist() == ["grokking"] and events["detected_at"].tolist() == [5]
    assert summary["events"] == [{"event": "grokking", "step": 4, "confidence": 0.8, "detected_at": 5}]
