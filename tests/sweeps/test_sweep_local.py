"""The local backend for real: spawned worker processes, one point of each fate (ok, raises, worker killed,
diverges); the others' results complete and the failures recorded; resume skips complete points; --retry-failed
runs the failed ones again."""

import pandas as pd
from sweep_fates import DIVERGES, KILLED, RAISES, Killer, fates, write_fake_mnist

from netdyn import load_run
from netdyn.cli import main
from netdyn.sweeps import LocalBackend, load_sweep, sweep
from netdyn.sweeps.local import WORKER_DIED


def _by_name(table: pd.DataFrame) -> pd.DataFrame:
    return table.set_index("name")


def test_local_backend_records_every_fate_resumes_and_retries(tmp_path, mnist_root):
    out = tmp_path / "sweep"
    with Killer(out, KILLED) as killer:
        result = sweep(fates(), out, backend=LocalBackend(workers=2), root=mnist_root)
    assert len(killer.killed) == 1
    table = _by_name(result.table)
    assert list(result.table["name"]) == ["lr=0.01", RAISES, KILLED, DIVERGES]  # the points' order
    assert table.loc["lr=0.01", "status"] == "ok" and pd.isna(table.loc["lr=0.01", "error"])
    assert table.loc["lr=0.01", "steps"] == 20 and table.loc["lr=0.01", "train_accuracy"] > 0.5
    assert table.loc[RAISES, "status"] == "failed"
    assert table.loc[RAISES, "error"].startswith("DatasetError: mnist: the training files are missing")
    assert table.loc[KILLED, "status"] == "failed" and table.loc[KILLED, "error"] == WORKER_DIED
    assert table.loc[DIVERGES, "status"] == "diverged" and "non-finite" in table.loc[DIVERGES, "error"]
    assert result.counts() == {"ok": 1, "failed": 2, "diverged": 1}
    # the complete points' run folders are whole; each failure has its error file, naming the killed process
    assert load_run(out / "runs" / "lr=0.01").model().depth == 1
    assert f"process {killer.killed[0]}" in (out / "errors" / f"{KILLED}.txt").read_text()
    assert "Traceback" in (out / "errors" / f"{RAISES}.txt").read_text()
    on_disk = pd.read_parquet(out / "sweep.parquet")
    pd.testing.assert_frame_equal(on_disk, result.table)

    # resume: nothing to run (complete points skipped, failed ones kept failed), no worker started; the CLI says so
    again = sweep(fates(), out, backend=LocalBackend(workers=2), root=mnist_root)
    assert again.ran == []
    pd.testing.assert_frame_equal(again.table, result.table)
    assert load_sweep(out).table.equals(result.table)

    # --retry-failed runs the failed points again: mnist now has its files; the killed point dies once more
    write_fake_mnist(mnist_root)
    with Killer(out, KILLED) as killer:
        retried = sweep(fates(), out, backend=LocalBackend(workers=2), root=mnist_root, retry_failed=True)
    assert sorted(retried.ran) == sorted([RAISES, KILLED]) and len(killer.killed) == 1
    table = _by_name(retried.table)
    assert table.loc[RAISES, "status"] == "ok" and not (out / "errors" / f"{RAISES}.txt").exists()
    assert table.loc[KILLED, "status"] == "failed"
    assert table.loc["lr=0.01", "wall_time"] == _by_name(result.table).loc["lr=0.01", "wall_time"]  # not rerun


def test_cli_resume_runs_only_the_new_points_of_a_grown_grid(tmp_path, capsys):
    out = tmp_path / "s"
    argv = ["sweep", "--grid", "seed=0", "--set", "dataset=blobs", "--set", "train-size=80", "--set",
            "test-size=40", "--set", "width=4", "--set", "depth=1", "--set", "steps=5", "--out", str(out), "--quiet",
            "--workers", "1"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "1 points: 1 ok, 0 failed, 0 diverged (1 run now" in first
    assert "comparison:" not in first and not (out / "compare").exists()  # one point: nothing to compare
    checkpoints = load_run(out / "runs" / "seed=0").checkpoints()
    argv[2] = "seed=0,1"
    assert main(argv) == 0
    second = capsys.readouterr().out
    assert "2 points: 2 ok, 0 failed, 0 diverged (1 run now, 1 complete" in second
    report = out / "compare" / "report.html"
    assert f"comparison: {report}" in second
    assert "seed=0" in report.read_text() and "seed=1" in report.read_text()  # both points, side by side
    assert load_run(out / "runs" / "seed=0").checkpoints() == checkpoints
    assert list(pd.read_parquet(out / "sweep.parquet")["name"]) == ["seed=0", "seed=1"]
