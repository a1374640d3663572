"""What runs one point, in whatever process a backend gives it (a pool worker, a Ray worker on any machine).

``run_point`` never raises for a failure of the point itself: an exception becomes a ``failed`` outcome with
its one-line message and traceback, a non-finite loss a ``diverged`` one. Only the death of the process (killed,
out of memory, a crash) escapes it, and the backend records that.

Where the worker sees the sweep folder (same machine, or a shared file system: it finds ``sweep.json`` with this
sweep's id), it writes the run folder in place; otherwise it runs into a temporary folder and ships the folder's
files back in the outcome, and the driver writes them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OK, FAILED, DIVERGED = "ok", "failed", "diverged"
STATUSES = (OK, FAILED, DIVERGED)


@dataclass(frozen=True)
class PointTask:
    """Everything a worker needs to run one point; picklable, with no open handles."""

    name: str
    spec: Any
    """The point's RunSpec."""
    out: str
    """The sweep folder, as the driver sees it (absolute)."""
    sweep_id: str
    """The sweep's id, from sweep.json: how a worker tells whether it sees the driver's folder."""
    root: str | None = None
    """Where the data set's files lie on the worker's machine (netdyn.run's ``root``)."""
    download: bool = False
    threads: int | None = None
    """Torch threads for this point (the CPUs reserved for it)."""


@dataclass
class PointOutcome:
    """How a point ended: ``status`` (ok, failed, diverged), the error, and where it ran."""

    name: str
    status: str
    error: str | None = None
    """One line: the exception's type and message, or why the point diverged or died."""
    traceback: str | None = None
    files: dict[str, bytes] | None = None
    """The run folder's files (relative path -> bytes) when the worker could not write into the sweep folder."""
    host: str = ""
    pid: int = 0
    wall_time: float = 0.0


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (at most 300 characters)."""
    message = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def sees_sweep_folder(out: str | Path, sweep_id: str) -> bool:
    """Whether this process sees the driver's sweep folder (its sweep.json carries ``sweep_id``)."""
    try:
        return json.loads((Path(out) / "sweep.json").read_text()).get("id") == sweep_id
    except (OSError, ValueError):
        return False


def running_marker(out: str | Path, name: str) -> Path:
    """``OUT/.running/NAME.json``: which host and process runs the point now."""
    return Path(out) / ".running" / f"{name}.json"


def _write_marker(path: Path) -> None:
    from netdyn import _io

    _io.write_json(path, {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()})


def read_files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path (POSIX separators)."""
    if not folder.is_dir():
        return {}
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_point(task: PointTask) -> PointOutcome:
    """Run one point with ``netdyn.run``; a failure of the point is returned, never raised."""
    import torch

    from netdyn.orchestration import run

    if task.threads:
        torch.set_num_threads(int(task.threads))
    start = time.perf_counter()
    shared = sees_sweep_folder(task.out, task.sweep_id)
    scratch = None
    if shared:
        run_dir = Path(task.out) / "runs" / task.name
        marker = running_marker(task.out, task.name)
        _write_marker(marker)
    else:
        scratch = Path(tempfile.mkdtemp(prefix="netdyn-point-"))
        run_dir, marker = scratch / task.name, None
    outcome = PointOutcome(task.name, OK, host=socket.gethostname(), pid=os.getpid())
    try:
        result = run(
            task.spec, run_dir, resume=(run_dir / "config.json").is_file(), root=task.root, download=task.download
        )
        if result.train.diverged:
            step = result.train.summary.get("diverged_step")
            outcome.status, outcome.error = DIVERGED, f"diverged: the loss became non-finite at step {step}"
    except Exception as exc:  # the point failed; the sweep goes on
        outcome.status, outcome.error = FAILED, one_line(exc)
        outcome.traceback = traceback.format_exc()
    finally:
        if scratch is not None:
            outcome.files = read_files(run_dir)
            shutil.rmtree(scratch, ignore_errors=True)
        if marker is not None:
            marker.unlink(missing_ok=True)
    outcome.wall_time = time.perf_counter() - start
    return outcome
