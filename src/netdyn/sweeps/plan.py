"""The points of a sweep: a grid and/or a list of settings, each turned into a RunSpec.

A key is a RunSpec field, named as ``netdyn train`` names its flag (``depth``, ``width``, ``lr``, ``batch-size``,
``seed``, ``dataset``, ``train-size``, ``batchnorm``, ``analyze``, ...; dashes or underscores): see
:mod:`netdyn.orchestration.settings`, whose :func:`~netdyn.orchestration.settings.spec_from_settings` builds each
point's spec (``model-seed`` and ``data-seed`` follow ``seed`` unless given) and is what ``netdyn train`` builds its
spec with, so a key means exactly what the flag means.

Three sources, merged:

* ``fixed``: settings shared by every point (TOML ``[fixed]``, flags ``--set KEY=VALUE`` and ``--KEY VALUE``);
* ``grid``: the product of value lists (TOML ``[grid]``, flag ``--grid KEY=V1,V2``);
* ``points``: a list of settings (TOML ``[[points]]``); with a grid too, each listed point is crossed with it.

A point is named after its grid and list settings (``depth=2_width=64_seed=0``), so a grown grid keeps the
names, and run folders, of the points it already had.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netdyn.errors import ConfigError
from netdyn.orchestration.settings import (
    RUN_LEVEL,
    as_text,
    canonical_key,
    column_value,
    keys,
    parse_settings,
    spec_from_settings,
    sweep_keys,
)

__all__ = [
    "FILE_TABLES",
    "MAX_NAME",
    "RUN_LEVEL",
    "SweepDefinition",
    "SweepPoint",
    "canonical_key",
    "load_sweep_file",
    "parse_assignments",
    "plan_points",
    "point_name",
    "sweep_keys",
]

#: TOML tables a sweep file may hold.
FILE_TABLES = ("fixed", "grid", "points")

_UNSAFE = re.compile(r"[^A-Za-z0-9.+\-=]")  # portable folder names (no ":" for Windows)
MAX_NAME = 120


@dataclass(frozen=True)
class SweepPoint:
    """One point of a sweep: its name (its run folder's), the settings that name it, and its RunSpec."""

    name: str
    """The point's run folder under ``OUT/runs/``; unique within a sweep."""
    params: dict[str, Any]
    """The settings that vary across the sweep (grid and list keys) by key (``depth``, ``batch_size``, ``dataset``;
    ``data_options`` for ``data_option``), as read: the parameter columns of ``sweep.parquet``."""
    spec: Any
    """The :class:`~netdyn.orchestration.RunSpec` that ``netdyn.run`` carries out."""
    settings: dict[str, Any] = field(default_factory=dict, compare=False)
    """Every setting of the point as given (fixed ones too), by key; for the record."""


@dataclass(frozen=True)
class SweepDefinition:
    """What a sweep file or the flags say: shared settings, a grid, a list of points."""

    fixed: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    points: list[dict[str, Any]] = field(default_factory=list)

    def merge(self, other: SweepDefinition) -> SweepDefinition:
        """``other`` over this one: its fixed settings and grid axes replace these key by key; lists concatenate."""
        return SweepDefinition(
            fixed={**self.fixed, **other.fixed},
            grid={**self.grid, **other.grid},
            points=[*self.points, *other.points],
        )


# ---------------------------------------------------------------------------------------------- sources
def parse_assignments(texts: Iterable[str], split_values: bool) -> dict[str, Any]:
    """``["depth=2,4", "lr=0.01"]`` -> ``{"depth": ["2", "4"], ...}`` (``split_values``) or ``{"depth": "2,4"}``.

    Keys are checked (:func:`~netdyn.orchestration.settings.canonical_key`); a grid axis must hold at least one value.
    """
    out: dict[str, Any] = {}
    for text in texts:
        key, sep, value = str(text).partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"expected KEY=VALUE, got {text!r}")
        name = canonical_key(key)
        value = value.strip()
        if split_values:
            values = [v.strip() for v in value.split(",")]
            if not value or any(not v for v in values):
                raise ConfigError(f"grid key {key.strip()} has an empty value in {text!r}")
            out[name] = values
        else:
            if not value:
                raise ConfigError(f"--set {key.strip()} has an empty value")
            out[name] = value
    return out


def load_sweep_file(path: str | Path) -> SweepDefinition:
    """Read a TOML sweep file: ``[fixed]`` settings, a ``[grid]`` of value lists, ``[[points]]`` settings.

    In ``[fixed]`` and ``[[points]]`` a list is one value given per hidden layer (``width = [64, 32]``); in
    ``[grid]`` a list holds the axis's values, and a list inside it is one per-layer value.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"no sweep file at {path}") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path} is not a readable TOML sweep file: {exc}") from None
    unknown = sorted(set(raw) - set(FILE_TABLES))
    if unknown:
        raise ConfigError(f"{path}: unknown table(s) {', '.join(unknown)}; a sweep file holds {', '.join(FILE_TABLES)}")
    fixed = raw.get("fixed", {})
    grid = raw.get("grid", {})
    points = raw.get("points", [])
    if not isinstance(fixed, dict) or not isinstance(grid, dict) or not isinstance(points, list):
        raise ConfigError(f"{path}: [fixed] and [grid] are tables, [[points]] an array of tables")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path}: grid key {key} needs a non-empty list of values, got {values!r}")
    if not all(isinstance(p, dict) for p in points):
        raise ConfigError(f"{path}: every [[points]] entry is a table of settings")
    return _canonical(SweepDefinition(fixed=fixed, grid=grid, points=points))


# ---------------------------------------------------------------------------------------------- points
def point_name(settings: Mapping[str, Any]) -> str:
    """A folder name from a point's naming settings: ``depth=2_width=64``; long names end in a hash."""
    if not settings:
        return "point"
    written = "_".join(f"{k}={as_text(v)}" for k, v in settings.items())
    name = _UNSAFE.sub("_", written.replace(",", "+"))
    if len(name) > MAX_NAME:
        digest = hashlib.sha1(written.encode()).hexdigest()[:10]
        name = f"{name[: MAX_NAME - 11]}-{digest}"
    return name


def _combinations(definition: SweepDefinition) -> list[dict[str, Any]]:
    axes = list(definition.grid.items())
    for key, values in axes:
        if not values:
            raise ConfigError(f"grid key {key} has no values")
    grid = [dict(zip([k for k, _ in axes], combo, strict=True)) for combo in itertools.product(*[v for _, v in axes])]
    listed = definition.points or [{}]
    return [{**p, **g} for p in listed for g in grid]


def plan_points(definition: SweepDefinition | None = None, **parts: Any) -> list[SweepPoint]:
    """The points of a sweep definition (or of ``fixed=``, ``grid=``, ``points=`` given directly).

    Every setting is read as its field's value and every point's RunSpec is built here, so a wrong key, an empty
    grid, a value of the wrong type or an impossible configuration is one ConfigError before anything runs.
    """
    definition = _canonical(_definition(definition, parts))
    if not definition.grid and not definition.points:
        raise ConfigError("the sweep is empty: give a grid (--grid KEY=V1,V2) or a list of points")
    points: list[SweepPoint] = []
    seen: dict[str, dict[str, Any]] = {}
    for named in _combinations(definition):
        settings = {**definition.fixed, **named}
        name = point_name(named)
        try:
            parsed = parse_settings(settings)
            spec = spec_from_settings(parsed)
        except ConfigError as exc:
            raise ConfigError(f"sweep point {name}: {exc}") from None
        params = {keys()[k].column: column_value(parsed[k]) for k in named}
        if name in seen:
            if seen[name] == named:
                raise ConfigError(f"sweep point {name} appears twice")
            name = f"{name}-{hashlib.sha1(repr(sorted(named.items())).encode()).hexdigest()[:8]}"
        seen[name] = named
        points.append(SweepPoint(name=name, params=params, spec=spec, settings=settings))
    return points


def _definition(definition: SweepDefinition | None, parts: dict[str, Any]) -> SweepDefinition:
    if definition is None:
        grid = parts.pop("grid", None) or {}
        definition = SweepDefinition(
            fixed=dict(parts.pop("fixed", None) or {}),
            grid={k: list(v) if isinstance(v, (list, tuple)) else [v] for k, v in grid.items()},
            points=list(parts.pop("points", None) or []),
        )
    if parts:
        raise ConfigError(f"plan_points takes a SweepDefinition or fixed=, grid=, points=; got {', '.join(parts)}")
    return definition


def _canonical(definition: SweepDefinition) -> SweepDefinition:
    return SweepDefinition(
        fixed=_by_key(definition.fixed),
        grid={k: list(v) for k, v in _by_key(definition.grid).items()},
        points=[_by_key(p) for p in definition.points],
    )


def _by_key(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` by canonical key; one key written twice (``batch-size`` and ``batch_size``) is a ConfigError."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        name = canonical_key(key)
        if name in out:
            raise ConfigError(f"sweep key {name} is given twice (as {key!r} too)")
        out[name] = value
    return out
