"""Without --address the Ray backend starts its own local instance, even where a dead cluster's address is still
recorded in Ray's temp folder (``ray_current_cluster``, left behind by a ``ray start`` whose head has died): a plain
``ray.init()`` would join that address and retry it for minutes."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import pandas as pd
import pytest

from netdyn.sweeps.ray_backend import RayBackend


def test_no_address_asks_ray_for_a_local_instance(monkeypatch):
    calls = []
    fake = types.SimpleNamespace(is_initialized=lambda: False, init=lambda **kw: calls.append(kw))
    monkeypatch.setattr("netdyn.sweeps.ray_backend.import_ray", lambda: fake)
    session = RayBackend(num_cpus=1).open(1)
    assert calls[0]["address"] == "local" and calls[0]["num_cpus"] == 1 and session.started


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_stale_cluster_file_does_not_hang_the_sweep(tmp_path):
    pytest.importorskip("ray")
    # a short temp folder of Ray's own (its socket paths must stay under the 107 characters of AF_UNIX), so the
    # machine's real /tmp/ray is never read or touched
    ray_tmp = Path(tempfile.mkdtemp(prefix="ndray-", dir="/tmp"))
    try:
        (ray_tmp / "ray").mkdir()
        (ray_tmp / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{_closed_port()}")
        out = tmp_path / "s"
        env = {**os.environ, "RAY_TMPDIR": str(ray_tmp), "RAY_AUTH_MODE": "disabled", "OMP_NUM_THREADS": "1"}
        env.pop("RAY_ADDRESS", None)
        argv = [sys.executable, "-m", "netdyn.cli", "sweep", "--grid", "depth=1", "--set", "dataset=blobs",
                "--set", "steps=2", "--backend", "ray", "--out", str(out), "--quiet"]
        # before the fix this retried the dead head for minutes; a local instance starts in seconds
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        assert pd.read_parquet(out / "sweep.parquet")["status"].tolist() == ["ok"]
        assert any(p.name.startswith("session_") for p in (ray_tmp / "ray").iterdir())  # Ray used this folder
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
