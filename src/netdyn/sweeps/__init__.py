"""Grids of runs on a local process pool or a Ray cluster (see docs/runs.md#beyond-one-run).

``sweep(points, out)`` runs every point (settings named as ``netdyn train``'s flags, turned into a RunSpec by
``spec_from_settings`` and carried out by ``netdyn.run``) into ``out/runs/NAME`` and gathers ``out/sweep.parquet``,
one row per point with ``status`` (ok, failed, diverged) and ``error``; ``load_sweep(out)`` reads a sweep folder
back. The ``ray`` backend imports Ray only when it is used.
"""

from netdyn.orchestration.settings import spec_from_settings
from netdyn.sweeps.core import BACKENDS, SweepResult, load_sweep, sweep
from netdyn.sweeps.folder import SweepFolder
from netdyn.sweeps.local import LocalBackend
from netdyn.sweeps.plan import SweepDefinition, SweepPoint, load_sweep_file, parse_assignments, plan_points, sweep_keys
from netdyn.sweeps.ray_backend import RayBackend

__all__ = [
    "BACKENDS",
    "LocalBackend",
    "RayBackend",
    "SweepDefinition",
    "SweepFolder",
    "SweepPoint",
    "SweepResult",
    "load_sweep",
    "load_sweep_file",
    "parse_assignments",
    "plan_points",
    "spec_from_settings",
    "sweep",
    "sweep_keys",
]
