"""Commands to and from JSON-safe dicts, so a fact can be stored exactly as it arrived."""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, TypeVar

from .commands import JOURNAL_COMMANDS, Command, PersonRef, Provenance, Signoff

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


_Convert = Callable[[Any], Any]


def _converter(hint: Any) -> _Convert | None:
    """How to turn a stored JSON value back into ``hint`` (None: as it is)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _converter(options[0])
    if origin is tuple:
        return _tuple_converter(typing.get_args(hint))
    if hint is datetime:
        return datetime.fromisoformat
    if hint is date:
        return date.fromisoformat
    if isinstance(hint, type) and hint in _NESTED:
        return functools.partial(from_json_as, hint)
    return None


def _tuple_converter(args: tuple[Any, ...]) -> _Convert:
    """A JSON list back into a tuple, its items converted too (a tuple of tuples stays one,
    so a stored command compares equal to the one recorded)."""
    if len(args) == 2 and args[1] is Ellipsis:
        item = _converter(args[0])
        if item is None:
            return tuple
        return lambda items: tuple(x if x is None else item(x) for x in items)
    parts = [_converter(arg) for arg in args]
    if not any(parts):
        return tuple
    return lambda items: tuple(x if x is None or convert is None else convert(x)
                               for convert, x in zip(parts, items, strict=True))


_MISSING = object()


@functools.cache
def _plan(cls: type) -> tuple[tuple[tuple[str, _Convert | None, Any], ...], bool]:
    """Per field: name, converter, default (``_MISSING`` when required); and whether the
    class may be built without its ``__init__``. Worked out once per class: decoding a
    journal is most of what loading a person costs."""
    hints = _hints(cls)
    plan = []
    for spec in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not spec.init:
            continue
        default = spec.default if spec.default is not dataclasses.MISSING else _MISSING
        plan.append((spec.name, _converter(hints[spec.name]), default))
    return tuple(plan), not hasattr(cls, "__post_init__")


def from_json_as(cls: type[T], data: dict[str, Any]) -> T:
    fields, direct = _plan(cls)
    values: dict[str, Any] = {}
    for name, convert, default in fields:
        raw = data.get(name, default)
        if raw is _MISSING:
            raise TypeError(f"{cls.__name__} needs {name!r}")
        values[name] = raw if raw is None or convert is None else convert(raw)
    if not direct:
        return cls(**values)
    # Without a __post_init__, skipping the frozen __init__ (an object.__setattr__ per field)
    # builds the same value at a fraction of the cost.
    instance = object.__new__(cls)
    instance.__dict__.update(values)
    return instance


def command_from_json(kind: str, data: dict[str, Any]) -> Command:
    return from_json_as(JOURNAL_COMMANDS[kind], data)
