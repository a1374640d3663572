"""The Ray backend for real, on one local Ray instance with 2 CPUs started for this module (not a mock): one point
of each fate (ok, raises, worker killed, diverges), the other points complete and the failures recorded; a resume
through the command line runs nothing."""

import pandas as pd
import pytest
from sweep_fates import DIVERGES, KILLED, RAISES, Killer, fates

from netdyn import load_run
from netdyn.cli import main
from netdyn.errors import ConfigError
from netdyn.sweeps import RayBackend, sweep
from netdyn.sweeps.ray_backend import probe

ray = pytest.importorskip("ray", reason="the Ray backend's tests need Ray: pip install -e '.[ray]'")


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the module (about 3 s and 700 MB to start): 2 CPUs, no dashboard; the session's
    auth token is off (RAY_AUTH_MODE=disabled, set by the suite's conftest), so nothing lands in ~/.ray."""
    if ray.is_initialized():  # pragma: no cover - another module left one running
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def test_ray_backend_records_every_fate_and_resumes(local_ray, tmp_path, mnist_root, capsys):
    out = tmp_path / "sweep"
    with Killer(out, KILLED) as killer:
        result = sweep(fates(), out, backend=RayBackend(), root=mnist_root)
    assert len(killer.killed) == 1
    table = result.table.set_index("name")
    assert list(result.table["name"]) == ["lr=0.01", RAISES, KILLED, DIVERGES]
    assert table.loc["lr=0.01", "status"] == "ok" and table.loc["lr=0.01", "steps"] == 20
    assert table.loc[RAISES, "status"] == "failed" and table.loc[RAISES, "error"].startswith("DatasetError: mnist")
    assert table.loc[KILLED, "status"] == "failed" and "Ray worker died" in table.loc[KILLED, "error"]
    assert table.loc[DIVERGES, "status"] == "diverged"
    assert load_run(out / "runs" / "lr=0.01").model().depth == 1
    assert f"process {killer.killed[0]}" in (out / "errors" / f"{KILLED}.txt").read_text()
    assert local_ray.is_initialized()  # the backend used the running instance and left it running

    # the same sweep from the command line: every point is complete or failed before, so nothing runs; exit 1
    # because failed points remain (the table says which)
    toml = tmp_path / "fates.toml"
    toml.write_text("".join(
        "[[points]]\n" + "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in p.items()) + "\n"
        for p in fates().points
    ))
    argv = ["sweep", str(toml), "--out", str(out), "--backend", "ray", "--data-root", str(mnist_root), "--quiet"]
    for key, value in fates().fixed.items():
        argv += ["--set", f"{key}={value}"]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "4 points: 1 ok, 2 failed, 1 diverged (0 run now, 4 complete or failed before" in captured.out
    assert f"failed: {KILLED}" in captured.err
    pd.testing.assert_frame_equal(pd.read_parquet(out / "sweep.parquet"), result.table)


def test_the_probe_knows_a_real_ray_head(local_ray):
    """The address probe's idea of a Ray head matches a real one (its GCS answers the HTTP/2 preface); an address
    given while this process already has a Ray session is refused rather than ignored."""
    address = local_ray.get_runtime_context().gcs_address
    probe(address, 10)
    with pytest.raises(ConfigError, match="already initialised"):
        RayBackend(address=address).open(1)
