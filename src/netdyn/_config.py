"""What every configuration dataclass shares: a JSON-ready dict and back, with unknown keys refused."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import typing
from functools import cache
from typing import Any

from netdyn.errors import ConfigError


def to_dict(obj: Any) -> dict[str, Any]:
    """A frozen config dataclass as plain JSON types (tuples become lists)."""
    return _plain(dataclasses.asdict(obj))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@cache
def _tuple_fields(cls: type) -> frozenset[str]:
    hints = typing.get_type_hints(cls)
    return frozenset(name for name, hint in hints.items() if "tuple" in str(hint).lower())


def from_dict(cls: type, values: dict[str, Any] | None, what: str | None = None) -> Any:
    """Build ``cls`` from a dict written by :func:`to_dict` (lists back to tuples where the field is a tuple)."""
    values = dict(values or {})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown {what or cls.__name__} field(s): {', '.join(unknown)}")
    for name in _tuple_fields(cls) & set(values):
        if isinstance(values[name], list):
            values[name] = tuple(values[name])
    return cls(**values)


@cache
def field_docs(cls: type) -> dict[str, str]:
    """The one-line docstrings written under a dataclass's fields (read from its source)."""
    docs: dict[str, str] = {}
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return docs
    body = tree.body[0].body  # type: ignore[attr-defined]
    for node, nxt in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = nxt.value.value.strip()
    return docs


def flag_text(value: Any) -> str:
    """A value as a command-line flag or a sweep key takes it: ``none``, ``true`` / ``false``, comma-separated for a
    sequence."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (tuple, list)):
        return ",".join(flag_text(v) for v in value)
    return str(value)
