"""The points of a sweep: a grid and/or a list of ``netdyn train`` settings, each turned into a RunSpec.

A key is any flag of ``netdyn train`` (``depth``, ``width``, ``lr``, ``batch-size``, ``seed``, ``dataset``,
``train-size``, ``batchnorm``, ``analyze``, ...; dashes or underscores). Each point's settings become the argv of
``netdyn train`` and are parsed by that command's own parser and ``run_spec_from_args``, so a sweep key means
exactly what the flag means (``--model-seed`` and ``--data-seed`` follow ``--seed`` unless given) and there is no
second mapping from flag names to RunSpec fields to keep in step.

Three sources, merged:

* ``fixed``: settings shared by every point (TOML ``[fixed]``, flag ``--set KEY=VALUE``);
* ``grid``: the product of value lists (TOML ``[grid]``, flag ``--grid KEY=V1,V2``);
* ``points``: a list of settings (TOML ``[[points]]``); with a grid too, each listed point is crossed with it.

A point is named after its grid and list settings (``depth=2_width=64_seed=0``), so a grown grid keeps the
names, and run folders, of the points it already had.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from netdyn.errors import ConfigError

#: Flags of ``netdyn train`` that are not a point's settings: the sweep itself decides them.
RUN_LEVEL_FLAGS = ("out", "resume", "quiet", "data_root", "download", "help")

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
    """The settings that vary across the sweep (grid and list keys), by ``netdyn train`` flag destination
    (``depth``, ``batch_size``, ``dataset``, ...): the parameter columns of ``sweep.parquet``."""
    spec: Any
    """The :class:`~netdyn.orchestration.RunSpec` that ``netdyn.run`` carries out."""
    settings: dict[str, Any] = field(default_factory=dict, compare=False)
    """Every setting of the point as given (fixed ones too), by flag name; for the record."""


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


# ---------------------------------------------------------------------------------------------- the train parser
@cache
def _train_parser() -> argparse.ArgumentParser:
    from netdyn.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["train"]


@cache
def _train_actions() -> dict[str, argparse.Action]:
    """``netdyn train``'s point-level options by canonical key (flag name without dashes, ``_`` for ``-``)."""
    actions: dict[str, argparse.Action] = {}
    for action in _train_parser()._actions:
        for option in action.option_strings:
            if option.startswith("--no-") and isinstance(action, argparse.BooleanOptionalAction):
                continue
            if option.startswith("--"):
                key = option[2:].replace("-", "_")
                if key not in RUN_LEVEL_FLAGS and action.dest not in RUN_LEVEL_FLAGS:
                    actions[key] = action
    return actions


def sweep_keys() -> list[str]:
    """Every key a sweep point may set: the flags of ``netdyn train`` (dashes), apart from run-level ones."""
    return sorted(k.replace("_", "-") for k in _train_actions())


def canonical_key(key: str) -> str:
    """``batch-size`` / ``batch_size`` / ``--batch-size`` -> ``batch_size``; ConfigError for an unknown key."""
    if not isinstance(key, str) or not key.strip():
        raise ConfigError(f"a sweep key must be a flag name of netdyn train, got {key!r}")
    name = key.strip().lstrip("-").replace("-", "_")
    if name in RUN_LEVEL_FLAGS:
        raise ConfigError(
            f"{key!r} is not a point setting: the sweep decides it (use netdyn sweep's own --{name.replace('_', '-')})"
            if name in ("data_root", "download")
            else f"{key!r} is not a point setting: the sweep decides it"
        )
    if name not in _train_actions():
        raise ConfigError(
            f"unknown sweep key {key!r}: a key is a flag of netdyn train ({', '.join(sweep_keys())})"
        )
    return name


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(_text(v) for v in value)
    return str(value)


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _as_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"sweep key {key} takes true or false, got {value!r}")


def _argv(key: str, value: Any) -> list[str]:
    """The ``netdyn train`` arguments that set ``key`` to ``value``."""
    action = _train_actions()[key]
    flag = "--" + key.replace("_", "-")
    if isinstance(action, argparse.BooleanOptionalAction):
        return [flag] if _as_bool(key, value) else ["--no-" + key.replace("_", "-")]
    if isinstance(action, argparse._StoreTrueAction):
        return [flag] if _as_bool(key, value) else []
    if isinstance(action, argparse._AppendAction):
        values = value if isinstance(value, (list, tuple)) else [value]
        return [arg for v in values for arg in (flag, _text(v))]
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ConfigError(f"sweep key {key} has an empty value")
    return [flag, _text(value)]


def _parse(argv: Sequence[str], what: str):
    from netdyn.cli import UsageError

    try:
        return _train_parser().parse_args(list(argv))
    except UsageError as exc:
        reason = re.sub(r"invalid \S+ value: ", "invalid value: ", str(exc).split("error: ", 1)[-1])
        raise ConfigError(f"{what}: {reason}") from None


def _column(value: Any) -> Any:
    """A parsed setting as a table cell: per-layer tuples and data options as text, the rest as parsed."""
    if isinstance(value, list):  # --data-option, parsed as (key, value) pairs
        return ",".join("=".join(map(str, v)) if isinstance(v, tuple) else _text(v) for v in value)
    if isinstance(value, tuple):
        return _text(value)
    return value


# ---------------------------------------------------------------------------------------------- sources
def parse_assignments(texts: Iterable[str], split_values: bool) -> dict[str, Any]:
    """``["depth=2,4", "lr=0.01"]`` -> ``{"depth": ["2", "4"], ...}`` (``split_values``) or ``{"depth": "2,4"}``.

    Keys are checked against ``netdyn train``'s flags; a grid axis must hold at least one value.
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
    return SweepDefinition(
        fixed={canonical_key(k): v for k, v in fixed.items()},
        grid={canonical_key(k): list(v) for k, v in grid.items()},
        points=[{canonical_key(k): v for k, v in p.items()} for p in points],
    )


# ---------------------------------------------------------------------------------------------- points
def point_name(settings: Mapping[str, Any]) -> str:
    """A folder name from a point's naming settings: ``depth=2_width=64``; long names end in a hash."""
    if not settings:
        return "point"
    text = "_".join(f"{k}={_text(v)}" for k, v in settings.items())
    name = _UNSAFE.sub("_", text.replace(",", "+"))
    if len(name) > MAX_NAME:
        digest = hashlib.sha1(text.encode()).hexdigest()[:10]
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

    Every setting is parsed by ``netdyn train``'s parser and every point's RunSpec is built here, so a wrong key,
    an empty grid, a value of the wrong type or an impossible configuration is one ConfigError before anything
    runs.
    """
    if definition is None:
        definition = SweepDefinition(
            fixed=dict(parts.pop("fixed", None) or {}),
            grid={
                k: list(v) if isinstance(v, (list, tuple)) else [v] for k, v in (parts.pop("grid", None) or {}).items()
            },
            points=list(parts.pop("points", None) or []),
        )
    if parts:
        raise ConfigError(f"plan_points takes a SweepDefinition or fixed=, grid=, points=; got {', '.join(parts)}")
    definition = SweepDefinition(
        fixed={canonical_key(k): v for k, v in definition.fixed.items()},
        grid={canonical_key(k): list(v) for k, v in definition.grid.items()},
        points=[{canonical_key(k): v for k, v in p.items()} for p in definition.points],
    )
    if not definition.grid and not definition.points:
        raise ConfigError("the sweep is empty: give a grid (--grid KEY=V1,V2) or a list of points")
    from netdyn.cli import run_spec_from_args

    points: list[SweepPoint] = []
    seen: dict[str, dict[str, Any]] = {}
    for named in _combinations(definition):
        settings = {**definition.fixed, **named}
        argv = [arg for key, value in settings.items() for arg in _argv(key, value)]
        what = f"sweep point {point_name(named)}"
        args = _parse(argv, what)
        try:
            spec = run_spec_from_args(args)
        except ConfigError as exc:
            raise ConfigError(f"{what}: {exc}") from None
        params = {_train_actions()[k].dest: _column(getattr(args, _train_actions()[k].dest)) for k in named}
        name = point_name(named)
        if name in seen:
            if seen[name] == named:
                raise ConfigError(f"sweep point {name} appears twice")
            name = f"{name}-{hashlib.sha1(repr(sorted(named.items())).encode()).hexdigest()[:8]}"
        seen[name] = named
        points.append(SweepPoint(name=name, params=params, spec=spec, settings=settings))
    return points
