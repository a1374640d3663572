"""``sweep(points, out)``: run every point of a grid or list on a backend and gather one table."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from netdyn import _io
from netdyn._device import resolve_device
from netdyn._progress import progress_bar
from netdyn.errors import ConfigError
from netdyn.sweeps.folder import SweepFolder
from netdyn.sweeps.local import LocalBackend
from netdyn.sweeps.plan import SweepDefinition, SweepPoint, plan_points
from netdyn.sweeps.ray_backend import RayBackend
from netdyn.sweeps.worker import DIVERGED, FAILED, OK, PointTask

BACKENDS = ("local", "ray")


@dataclass
class SweepResult:
    """A sweep folder's points and gathered table (``table``: one row per point, ``status`` and ``error``)."""

    folder: Path
    table: pd.DataFrame
    points: list[SweepPoint]
    ran: list[str]
    """Names of the points run by this call (the others were complete, or failed and not retried)."""
    wall_time: float = 0.0
    comparison: Path | None = None
    """``compare/report.html``: the points that ended ok, side by side (None with fewer than two)."""

    def counts(self) -> dict[str, int]:
        """How many points ended ok, failed and diverged."""
        status = self.table["status"] if len(self.table) else pd.Series(dtype=object)
        return {s: int((status == s).sum()) for s in (OK, FAILED, DIVERGED)}

    @property
    def failed(self) -> pd.DataFrame:
        """The failed points' rows (name, parameters, error)."""
        return self.table[self.table["status"] == FAILED]


def resolve_backend(backend: str | LocalBackend | RayBackend) -> LocalBackend | RayBackend:
    """The backend ``backend`` names ("local" or "ray"); a backend object is returned as it is."""
    if isinstance(backend, (LocalBackend, RayBackend)):
        return backend
    if backend == "local":
        return LocalBackend()
    if backend == "ray":
        return RayBackend()
    raise ConfigError(f"unknown sweep backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def _as_points(points: Any, fixed: Mapping[str, Any] | None) -> list[SweepPoint]:
    if isinstance(points, SweepDefinition):
        if fixed:
            points = SweepDefinition(fixed=dict(fixed)).merge(points)
        return plan_points(points)
    if isinstance(points, Mapping):
        return plan_points(grid=points, fixed=fixed)
    points = list(points or [])
    if not points:
        raise ConfigError("the sweep is empty: give a grid or a list of points")
    if not all(isinstance(p, SweepPoint) for p in points):
        raise ConfigError("sweep takes a grid (a dict of value lists), a SweepDefinition or a list of SweepPoint")
    if fixed:
        raise ConfigError("fixed= applies to a grid or a SweepDefinition; SweepPoints already hold their specs")
    names = [p.name for p in points]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"sweep point names repeat: {', '.join(repeated)}")
    return points


def check_data(points: Sequence[SweepPoint], root: str | Path | None = None) -> None:
    """Load each distinct data set of ``points`` once, here, before any point starts.

    An option or size its loader refuses is then one ConfigError, not a failure of every point. A data set that does not
    load here for another reason (files missing on this machine: the workers may have them) is left to the points.
    """
    seen: set[str] = set()
    for point in points:
        data = point.spec.data
        key = json.dumps(data.to_dict(), sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        try:
            data.load(root=root)
        except ConfigError as exc:
            raise ConfigError(f"sweep point {point.name}: {exc}") from None
        except Exception:  # the point that needs this data records why it does not load
            continue


def check_devices(points: Sequence[SweepPoint], backend: LocalBackend | RayBackend) -> None:
    """Refuse, before any point starts, a device this machine lacks where the points run on it.

    That is the local backend or a local Ray instance: ``mps`` without MPS, ``cuda`` without CUDA, ... are one
    ConfigError. A cluster's workers (``address``) may have devices this machine lacks.
    """
    if isinstance(backend, RayBackend) and backend.address is not None:
        return
    for device in dict.fromkeys(p.spec.train.device for p in points):
        try:
            resolve_device(device)
        except ConfigError as exc:
            name = next(p.name for p in points if p.spec.train.device == device)
            raise ConfigError(f"sweep point {name}: {exc}") from None


def sweep(
    points: Mapping[str, Sequence[Any]] | SweepDefinition | Sequence[SweepPoint],
    out: str | Path,
    *,
    fixed: Mapping[str, Any] | None = None,
    backend: str | LocalBackend | RayBackend = "local",
    retry_failed: bool = False,
    progress: bool = False,
    root: str | Path | None = None,
    download: bool = False,
) -> SweepResult:
    """Run every point of a sweep into ``out/runs/NAME`` and gather ``out/sweep.parquet``.

    ``points`` is a grid (``{"depth": [2, 4], "width": [64, 256]}``, keys = ``netdyn train`` flags), a
    :class:`SweepDefinition` (grid, list, fixed settings: what a TOML file holds) or a list of
    :class:`SweepPoint` (each with its own RunSpec). ``fixed`` holds settings shared by every point of a grid.
    ``backend`` is "local", "ray", or a configured :class:`LocalBackend` / :class:`RayBackend`.

    Before any point starts, each data set of the points to run is loaded once here (:func:`check_data`), so that
    a data-set option or size its loader refuses is one ConfigError.

    Resumable: a point whose run folder is complete is not run again, a point that failed before is not run again
    unless ``retry_failed``, and an interrupted point continues from its last checkpoint. A point that raises,
    diverges or whose worker dies is recorded (``status``, ``error``) and the others go on. Every point is its own
    run (the population trainer, which would run points of one architecture together, is not used yet).
    ``root`` and ``download`` are passed to each point's ``netdyn.run`` (where its data files lie on the worker).
    """
    start = time.perf_counter()
    planned = _as_points(points, fixed)
    folder = SweepFolder(out)
    _io.check_writable_folder(folder.path, "sweep folder")
    record = folder.merged_definition(planned)
    backend = resolve_backend(backend)
    from netdyn.orchestration import RunSpec

    every = [SweepPoint(p["name"], dict(p.get("params") or {}), RunSpec.from_dict(p["spec"])) for p in record["points"]]
    by_name = {p.name: p for p in planned}
    every = [by_name.get(p.name, p) for p in every]
    params = list(dict.fromkeys(k for p in every for k in p.params))
    rows: dict[str, dict[str, Any]] = {}
    todo: list[SweepPoint] = []
    for point in every:
        if folder.complete(point):
            rows[point.name] = folder.row(point)
        elif folder.failure(point.name) is not None and not retry_failed:
            rows[point.name] = folder.row(point, FAILED, folder.failure(point.name))
        else:
            todo.append(point)

    check_data(todo, root)
    check_devices(todo, backend)
    session = backend.open(len(todo)) if todo else None  # connect before writing anything
    order = [p.name for p in every]

    def write() -> pd.DataFrame:
        return folder.write_table([rows[n] for n in order if n in rows], params)

    bar = None
    try:
        folder.write_definition(record)
        table = write()
        if session is not None:
            threads = max(1, math.ceil(backend.cpus_per_point))
            tasks = [
                PointTask(p.name, p.spec, str(folder.path.resolve()), record["id"],
                          None if root is None else str(root), download, threads)
                for p in todo
            ]
            points_by_name = {p.name: p for p in todo}
            bar = progress_bar(len(todo), unit="point", description=session.description) if progress else None
            for outcome in session.map(tasks):
                folder.record_outcome(outcome)
                rows[outcome.name] = folder.row(points_by_name[outcome.name], outcome.status, outcome.error)
                table = write()
                if bar is not None:
                    counts = table["status"].value_counts()
                    bar.set_postfix({s: int(counts.get(s, 0)) for s in (OK, FAILED, DIVERGED)})
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        if session is not None:
            session.close()
        try:  # gone when no point runs any more (a killed driver's workers may still be writing theirs)
            (folder.path / ".running").rmdir()
        except OSError:
            pass
    ok = [folder.path / "runs" / n for n in order if n in rows and rows[n].get("status") == OK]
    comparison = _write_comparison(folder.path, ok)
    return SweepResult(folder.path, table, every, [p.name for p in todo], time.perf_counter() - start, comparison)


def _write_comparison(out: Path, runs: list[Path]) -> Path | None:
    """``out/compare/report.html``: the runs that ended ok, side by side (None for fewer than two)."""
    if len(runs) < 2:
        return None
    from netdyn.comparison import compare

    return compare(runs, out / "compare", title=f"the points of {out.name}, side by side")


def load_sweep(out: str | Path) -> SweepResult:
    """Open a sweep folder: its points (sweep.json) and its table (sweep.parquet)."""
    folder = SweepFolder(out)
    if not folder.path.is_dir():
        from netdyn.errors import RunError

        raise RunError(f"no sweep folder at {folder.path}")
    points = folder.points()
    return SweepResult(folder.path, folder.read_table(), points, [])

