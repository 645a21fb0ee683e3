"""Call events as JSON for the bus, and back: the same dataclasses on both sides.

Decoding follows the dataclasses' own type hints (enums, nested dataclasses,
lists and dicts of them), so a field added to Call, Leg or an event travels
without touching this file.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from typing import Any

from ..calls import events as events_module
from ..calls.events import CallEvent
from ..calls.model import Call

EVENT_TYPES: dict[str, type] = {
    name: cls
    for name, cls in vars(events_module).items()
    if isinstance(cls, type) and issubclass(cls, CallEvent) and cls is not CallEvent
}


def encode(value: Any) -> Any:
    """A dataclass (or anything inside one) as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    return value


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, vars(__import__(cls.__module__, fromlist=["_"])))


def decode(kind: Any, value: Any) -> Any:
    """Plain JSON values back into `kind` (a type hint)."""
    if value is None:
        return None
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(kind) if a is not type(None)]
        return decode(inner[0], value) if len(inner) == 1 else value
    if origin in (list, tuple, set, frozenset):
        (item, *_) = typing.get_args(kind) or (Any,)
        return origin(decode(item, v) for v in value)
    if origin is dict:
        _, item = typing.get_args(kind) or (Any, Any)
        return {k: decode(item, v) for k, v in value.items()}
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return kind(value)
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        hints = _hints(kind)
        known = {f.name for f in dataclasses.fields(kind) if f.init}
        return kind(**{k: decode(hints[k], v) for k, v in value.items() if k in known})
    return value


def encode_event(event: CallEvent) -> dict[str, Any]:
    return {"kind": event.kind, **encode(event)}


def decode_event(data: dict[str, Any]) -> CallEvent:
    cls = EVENT_TYPES.get(data.get("kind", ""))
    if cls is None:
        raise ValueError(f"unknown call event {data.get('kind')!r}")
    return decode(cls, {k: v for k, v in data.items() if k != "kind"})


def decode_call(data: dict[str, Any]) -> Call:
    return decode(Call, data)
