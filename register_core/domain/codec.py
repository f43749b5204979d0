"""Commands to and from JSON-safe dicts, so a fact can be stored exactly as it arrived."""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from datetime import date, datetime
from typing import Any, TypeVar

from .commands import SOURCE_COMMANDS, Command, PersonRef, Provenance, Signoff

T = TypeVar("T")

_NESTED: dict[type, type] = {PersonRef: PersonRef, Provenance: Provenance, Signoff: Signoff}


def to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # Keep None: some fields are required yet may be None (a one-sided ending has no ICB
        # sign-off), and such a fact must load back exactly as stored.
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [to_json(v) for v in value]
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _decode(hint: Any, raw: Any) -> Any:
    if raw is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _decode(options[0], raw)
    if origin is tuple:
        return tuple(raw)
    if hint is datetime:
        return datetime.fromisoformat(raw)
    if hint is date:
        return date.fromisoformat(raw)
    if isinstance(hint, type) and hint in _NESTED:
        return from_json_as(hint, raw)
    return raw


def from_json_as(cls: type[T], data: dict[str, Any]) -> T:
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: _decode(hints[k], v) for k, v in data.items() if k in names})


def command_from_json(kind: str, data: dict[str, Any]) -> Command:
    return from_json_as(SOURCE_COMMANDS[kind], data)
