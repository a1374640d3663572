"""The Ray backend's bad input, without a Ray instance: Ray missing, an address nothing answers at, a head that never
answers. Each is one line, a non-zero exit within a bounded time, and nothing written."""

import socket
import sys
import threading
import time
import types

import pytest

from netdyn.cli import main
from netdyn.errors import ConfigError
from netdyn.sweeps.ray_backend import RAY_MISSING, RayBackend, _init_bounded

GRID = ["--grid", "depth=1", "--set", "dataset=blobs", "--set", "steps=2", "--quiet"]


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_ray_missing_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    out = tmp_path / "s"
    assert main(["sweep", *GRID, "--backend", "ray", "--out", str(out)]) == 2
    assert RAY_MISSING in _one_line(capsys.readouterr().err)
    assert not out.exists()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_address_fails_fast(tmp_path, capsys):
    pytest.importorskip("ray")
    out = tmp_path / "s"
    start = time.monotonic()
    argv = ["sweep", *GRID, "--backend", "ray", "--address", f"127.0.0.1:{_closed_port()}", "--connect-timeout", "2",
            "--out", str(out)]
    assert main(argv) == 2
    assert time.monotonic() - start < 30
    assert "cannot reach a Ray cluster at 127.0.0.1" in _one_line(capsys.readouterr().err)
    assert not out.exists()


@pytest.mark.parametrize("address", ["nocolon", "host:notaport", "host:0", "ray://host:10001"])
def test_malformed_address(address):
    with pytest.raises(ConfigError, match="--address takes HOST:PORT"):
        RayBackend(address=address)


def test_a_head_that_never_answers_is_given_up(monkeypatch):
    """ray.init(address=...) retries for minutes against a port that accepts but is not Ray: it is bounded."""
    hang = threading.Event()
    fake = types.SimpleNamespace(init=lambda **kw: hang.wait(30), is_initialized=lambda: False)
    start = time.monotonic()
    with pytest.raises(ConfigError, match="no Ray cluster answered at h:1 within 0.5 s"):
        _init_bounded(fake, "h:1", 0.5)
    assert time.monotonic() - start < 5
    hang.set()
    failing = types.SimpleNamespace(init=lambda **kw: (_ for _ in ()).throw(ConnectionError("refused")),
                                    is_initialized=lambda: False)
    with pytest.raises(ConfigError, match="cannot connect to the Ray cluster at h:1: ConnectionError: refused"):
        _init_bounded(failing, "h:1", 5)


@pytest.mark.parametrize("reply", [None, b"HTTP/1.1 400 Bad Request\r\n\r\n"])
def test_a_port_that_is_not_a_ray_head(tmp_path, capsys, reply):
    """A listening port that stays silent, or answers in another protocol: refused by the probe within the
    timeout, before ray.init (which would retry for minutes)."""
    pytest.importorskip("ray")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def answer():
        conn, _ = server.accept()
        with conn:
            conn.recv(64)
            if reply is not None:
                conn.sendall(reply)
            time.sleep(3)

    threading.Thread(target=answer, daemon=True).start()
    out = tmp_path / "s"
    start = time.monotonic()
    argv = ["sweep", *GRID, "--backend", "ray", "--address", f"127.0.0.1:{server.getsockname()[1]}",
            "--connect-timeout", "1", "--out", str(out)]
    try:
        assert main(argv) == 2
    finally:
        server.close()
    line = _one_line(capsys.readouterr().err)
    assert ("no answer within 1 s" if reply is None else "answers but not as a Ray head") in line
    assert time.monotonic() - start < 30 and not out.exists()

