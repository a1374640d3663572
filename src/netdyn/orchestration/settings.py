"""A run as flat settings: each field of a RunSpec under one key, named as ``netdyn train`` names its flag.

A key is a field of :class:`~netdyn.models.ModelSpec`, :class:`~netdyn.data.DataSpec`,
:class:`~netdyn.training.TrainConfig` or :class:`~netdyn.analysis.AnalysisConfig` under its own name where that
is unambiguous (``depth``, ``width``, ``lr``, ``batch_size``, ``train_size``, ``repeats``), and under the name of
its ``netdyn train`` flag where the field's name is not (``dataset`` is DataSpec.name, ``model_seed`` and
``data_seed`` the model's and the data's seeds, ``data_option`` an entry of DataSpec.options). ``seed`` is the
training's, and the model's and data's seeds follow it unless given. ``analyze`` says whether the run is analysed;
the analysis fields apply when it is, with the training's seed, device and dtype. Dashes stand for underscores
(``batch-size``) and ``PART.FIELD`` names any field (``data.name``, ``model.seed``, ``train.lr``).

A value is what the field holds (the dataclasses check it) or text read by the field's annotation: a whole
number, a number, true or false, "none" where the field may be None, comma-separated values where it holds one
per hidden layer (``width=64,32``); a data-set option is ``KEY=VALUE``.
"""

from __future__ import annotations

import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from functools import cache
from typing import Any

from netdyn.analysis.config import AnalysisConfig
from netdyn.data.spec import DataSpec
from netdyn.errors import ConfigError
from netdyn.models.spec import ModelSpec
from netdyn.orchestration.runs import RunSpec
from netdyn.training.config import TrainConfig

#: The parts of a RunSpec and their dataclasses, in the order they are built (the training's seed comes first).
PARTS: dict[str, type] = {"train": TrainConfig, "model": ModelSpec, "data": DataSpec, "analysis": AnalysisConfig}

#: Fields whose key is the name of their ``netdyn train`` flag.
FLAG_NAMES = {
    ("model", "seed"): "model_seed",
    ("data", "name"): "dataset",
    ("data", "seed"): "data_seed",
    ("data", "options"): "data_option",
}

#: Fields that are no key: the data decides the model's sizes; the analysis follows the training's seed, device
#: and dtype.
NOT_KEYS = {
    ("model", "in_features"): "the data decides it",
    ("model", "num_classes"): "the data decides it",
    ("model", "input_shape"): "the data decides it",
    ("analysis", "seed"): "the analysis follows the training's seed (key seed)",
    ("analysis", "device"): "the analysis follows the training's device (key device)",
    ("analysis", "dtype"): "the analysis follows the training's dtype (key dtype)",
}

#: Settings of a run's place and process, not of the run: the caller decides them (netdyn sweep's own flags).
RUN_LEVEL = ("out", "resume", "quiet", "verbose", "data_root", "download", "help")

ANALYZE = "analyze"
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_WHAT = {bool: "true or false", int: "a whole number", float: "a finite number", str: "text"}


@dataclass(frozen=True)
class Key:
    """What a key sets: ``field`` of the RunSpec's ``part`` (None for ``analyze``, the analysis itself)."""

    name: str
    """The key as points are named after it (``depth``, ``batch_size``, ``dataset``, ``model_seed``)."""
    part: str
    field: str | None
    column: str
    """The parameter column of ``sweep.parquet`` (the key, but ``data_options`` for ``data_option``)."""


@cache
def keys() -> dict[str, Key]:
    """Every key, by name: the fields of each part, then ``analyze``."""
    found: dict[str, Key] = {}
    for part, cls in PARTS.items():
        for f in fields(cls):
            if (part, f.name) in NOT_KEYS:
                continue
            name = FLAG_NAMES.get((part, f.name), f.name)
            found[name] = Key(name, part, f.name, "data_options" if name == "data_option" else name)
    found[ANALYZE] = Key(ANALYZE, "analysis", None, ANALYZE)
    return found


@cache
def _aliases() -> dict[str, str]:
    names = {name: name for name in keys()}
    names.update({f"{k.part}.{k.field}": name for name, k in keys().items() if k.field is not None})
    names["data_options"] = "data_option"  # netdyn train's --data-option lands there
    return names


def sweep_keys() -> list[str]:
    """Every key a point may set, with dashes (``batch-size``), sorted."""
    return sorted(name.replace("_", "-") for name in keys())


def canonical_key(key: Any) -> str:
    """``batch-size`` / ``batch_size`` / ``--batch-size`` / ``train.batch_size`` -> ``batch_size``; ConfigError for
    a key that sets nothing of a run."""
    if not isinstance(key, str) or not key.strip():
        raise ConfigError(f"a sweep key names a RunSpec field or a flag of netdyn train, got {key!r}")
    name = key.strip().lstrip("-").replace("-", "_")
    if name in _aliases():
        return _aliases()[name]
    if name in RUN_LEVEL:
        own = f" (use netdyn sweep's own --{name.replace('_', '-')})" if name in ("data_root", "download") else ""
        raise ConfigError(f"{key!r} is not a point setting: the sweep decides it{own}")
    part, _, field_name = name.partition(".")
    if (part, field_name) in NOT_KEYS:
        raise ConfigError(f"{key!r} is not a setting: {NOT_KEYS[part, field_name]}")
    raise ConfigError(
        f"unknown sweep key {key!r}: a key is a RunSpec field or a flag of netdyn train ({', '.join(sweep_keys())})"
    )


# ---------------------------------------------------------------------------------------------- values
def as_bool(text: Any) -> bool:
    """true / yes / on / 1 or false / no / off / 0 (a bool as it is); ValueError otherwise."""
    if isinstance(text, bool):
        return text
    word = str(text).strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(f"takes true or false, got {text!r}")


def option_value(text: str) -> Any:
    """A data-set option's value from text: None, a whole number, a finite number, or the text itself."""
    if text.lower() == "none":
        return None
    for cast in (int, float):
        try:
            value = cast(text)
        except ValueError:
            continue
        return value if math.isfinite(value) else text
    return text


def _option(entry: Any) -> tuple[str, Any]:
    if isinstance(entry, tuple) and len(entry) == 2:
        return str(entry[0]), entry[1]
    key, sep, value = str(entry).partition("=")
    if not sep or not key.strip():
        raise ValueError(f"takes KEY=VALUE, got {entry!r}")
    return key.strip().replace("-", "_"), option_value(value.strip())


def _options(value: Any) -> dict[str, Any]:
    """Data-set options from a dict, one ``KEY=VALUE``, or a list of ``KEY=VALUE`` texts and (key, value) pairs."""
    if isinstance(value, Mapping):
        return dict(value)
    entries = value if isinstance(value, (list, tuple)) else [value]
    return dict(_option(entry) for entry in entries)


@cache
def _hint(part: str, field_name: str) -> tuple[bool, tuple[type, ...], type | None]:
    """A field's annotation as (None allowed, scalar types, the element type of its tuple form or None)."""
    hint = typing.get_type_hints(PARTS[part])[field_name]
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    args = typing.get_args(hint) if union else (hint,)
    scalars = tuple(a for a in (bool, int, float, str) if a in args)
    inner = next((typing.get_args(a)[0] for a in args if typing.get_origin(a) is tuple), None)
    return type(None) in args, scalars, inner


def _scalar(text: str, allowed: tuple[type, ...]) -> Any:
    if bool in allowed:
        return as_bool(text)
    if int in allowed and re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    if float in allowed:
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if math.isfinite(number):
            return int(text) if re.fullmatch(r"[+-]?\d+", text) else number
    if str in allowed:
        return text
    raise ValueError(f"takes {' or '.join(_WHAT[t] for t in allowed if t is not str)}, got {text!r}")


def _from_text(text: str, part: str, field_name: str) -> Any:
    optional, scalars, inner = _hint(part, field_name)
    if optional and text.lower() == "none":
        return None
    if inner is not None and ("," in text or not scalars):
        try:
            return tuple(_scalar(item.strip(), (inner,)) for item in text.split(","))
        except ValueError:
            raise ValueError(f"takes comma-separated values, {_WHAT[inner]} each, got {text!r}") from None
    return _scalar(text, scalars)


def _field_value(value: Any, part: str, field_name: str) -> Any:
    if isinstance(value, str):
        return _from_text(value.strip(), part, field_name)
    _, scalars, inner = _hint(part, field_name)
    if isinstance(value, (list, tuple)) and inner is not None:
        return tuple(_scalar(v.strip(), (inner,)) if isinstance(v, str) else v for v in value)
    if inner is not None and not scalars and value is not None:
        return (value,)  # one value where the field holds a tuple of them
    if scalars == (bool,) and value is not None:
        return as_bool(value)
    return value


def _parse(name: str, value: Any) -> Any:
    """``value`` (text, or what the field holds) as the value of key ``name``'s field; ValueError saying why not."""
    k = keys()[name]
    if k.field is None:
        return as_bool(value)
    if k.name == "data_option":
        return _options(value)
    return _field_value(value, k.part, k.field)


def parse_settings(settings: Mapping[str, Any], blame: Callable[[str], str] | None = None) -> dict[str, Any]:
    """Every setting by its key's name, text read as the field's type (the dataclasses check the values
    themselves). Text that does not read, or a key given twice (``batch-size`` and ``batch_size``), is a
    ConfigError naming the key (``blame(key)`` where given)."""
    name_of = _namer(blame)
    parsed: dict[str, Any] = {}
    for key, value in settings.items():
        name = canonical_key(key)
        if name in parsed:
            raise ConfigError(f"sweep key {name} is given twice (as {key!r} too)")
        try:
            parsed[name] = _parse(name, value)
        except ValueError as exc:
            raise ConfigError(name_of(name, str(exc))) from None
    return parsed


def _namer(blame: Callable[[str], str] | None) -> Callable[[str, str], str]:
    """How an error names the key at fault: ``blame(key)``, else the key where the message does not begin with it."""

    def name_of(key: str, message: str) -> str:
        if blame is not None:
            return f"{blame(key)}: {message}"
        return message if message.startswith(f"{key} ") else f"{key}: {message}"

    return name_of


def column_value(value: Any) -> Any:
    """A parsed setting as a cell of ``sweep.parquet``: tuples and data-set options as text, the rest as is."""
    if isinstance(value, dict):
        return ",".join(f"{k}={as_text(v)}" for k, v in value.items())
    if isinstance(value, tuple):
        return as_text(value)
    return value


def as_text(value: Any) -> str:
    """A setting as written in a point's name or a table cell: booleans as true / false, tuples comma-separated."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(as_text(v) for v in value)
    return str(value)


# ---------------------------------------------------------------------------------------------- the spec
def spec_from_settings(settings: Mapping[str, Any], blame: Callable[[str], str] | None = None) -> RunSpec:
    """The :class:`~netdyn.orchestration.RunSpec` that ``settings`` describe; fields not set keep their defaults.

    ``model_seed`` and ``data_seed`` follow ``seed`` unless given (None follows too); the analysis is made when
    ``analyze`` is true, of the analysis fields given and the training's seed, device and dtype. A value that a
    dataclass refuses on its own is a ConfigError prefixed with ``blame(key)`` (default: the key itself, where the
    message does not begin with it).
    """
    name_of = _namer(blame)
    parsed = parse_settings(settings, blame)
    given: dict[str, dict[str, tuple[str, Any]]] = {part: {} for part in PARTS}
    for name, value in parsed.items():
        k = keys()[name]
        if k.field is not None:
            given[k.part][k.field] = (name, value)
    train = _build(TrainConfig, given["train"], name_of)
    for part, key in (("model", "model_seed"), ("data", "data_seed")):
        if given[part].get("seed", (key, None))[1] is None:
            given[part]["seed"] = (key, train.seed)
    model = _build(ModelSpec, given["model"], name_of)
    data = _build(DataSpec, given["data"], name_of)
    analysis = None
    if parsed.get(ANALYZE):
        follow = {name: (name, getattr(train, name)) for name in ("seed", "device", "dtype")}
        analysis = _build(AnalysisConfig, {**given["analysis"], **follow}, name_of)
    return RunSpec(model=model, data=data, train=train, analysis=analysis)


def _build(cls: type, given: dict[str, tuple[str, Any]], name_of: Callable[[str, str], str]) -> Any:
    values = {field_name: value for field_name, (_, value) in given.items()}
    try:
        return cls(**values)
    except ConfigError as exc:
        culprit = refused_field(cls, values, str(exc))
        if culprit is None:
            raise
        raise ConfigError(name_of(given[culprit][0], str(exc))) from None


def refused_field(cls: type, values: dict[str, Any], message: str) -> str | None:
    """The field whose value alone is refused with ``message`` (None when no single value is)."""
    for field_name, value in values.items():
        try:
            cls(**{field_name: value})
        except ConfigError as solo:
            if str(solo) == message:
                return field_name
        except Exception:  # a value that fails alone for another reason is not the one to blame
            continue
    return None
