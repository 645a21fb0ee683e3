"""AMI events as small immutable values, independent of the AMI library.

Asterisk omits fields freely (an originated channel's DialBegin has no Channel
or Uniqueid), so ``get`` returns '' for anything missing, never raises.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

_EMPTY: Mapping[str, str] = MappingProxyType({})


def _vars(values: Any) -> dict[str, str]:
    """ChanVariable headers ('NAME=value', repeated) into a dict."""
    if not values:
        return {}
    if isinstance(values, str):
        values = [values]
    out = {}
    for item in values:
        name, sep, value = str(item).partition("=")
        if sep:
            out[name.strip()] = value
    return out


@dataclass(frozen=True, slots=True)
class AmiEvent:
    name: str
    fields: Mapping[str, str]
    # Channel variables listed in manager.conf `channelvars`, of the event's
    # channel and (DialBegin, DialEnd...) of its destination channel.
    chan_vars: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    dest_chan_vars: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    # Wall-clock time the service received the event.
    received: float = 0.0
    # Channel variables of the other channels an event names, by prefix
    # (ChanSpyStart: "Spyer", "Spyee"; AttendedTransfer: "Transferee" ...).
    other_vars: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def get(self, key: str, default: str = "") -> str:
        return self.fields.get(key, default)

    def vars_of(self, prefix: str) -> Mapping[str, str]:
        """The channel variables of the channel named by ``prefix`` ("" for the event's own)."""
        if prefix == "":
            return self.chan_vars
        if prefix == "Dest":
            return self.dest_chan_vars
        return self.other_vars.get(prefix, _EMPTY)

    @classmethod
    def from_headers(cls, headers: Mapping[str, Any], received: float | None = None) -> "AmiEvent":
        fields: dict[str, str] = {}
        chan_vars: dict[str, str] = {}
        dest_vars: dict[str, str] = {}
        other: dict[str, dict[str, str]] = {}
        for key, value in headers.items():
            if key == "ChanVariable":
                chan_vars.update(_vars(value))
            elif key == "DestChanVariable":
                dest_vars.update(_vars(value))
            elif key.endswith("ChanVariable") and key[0].isalpha():
                other.setdefault(key[: -len("ChanVariable")], {}).update(_vars(value))
            elif isinstance(value, list):
                fields[key] = str(value[0]) if value else ""
            else:
                fields[key] = str(value)
        return cls(
            name=fields.get("Event", ""),
            fields=fields,
            chan_vars=chan_vars,
            dest_chan_vars=dest_vars,
            received=time.time() if received is None else received,
            other_vars=other or {},
        )

    @classmethod
    def parse(cls, block: str, received: float | None = None) -> "AmiEvent | None":
        """One AMI message as sent on the wire ('Key: Value' lines)."""
        headers: dict[str, Any] = {}
        for line in block.splitlines():
            key, sep, value = line.partition(": ")
            if not sep:
                key, sep, value = line.partition(":")
                if not sep:
                    continue
            if key in headers:
                prev = headers[key]
                headers[key] = (prev if isinstance(prev, list) else [prev]) + [value]
            else:
                headers[key] = value
        if "Event" not in headers:
            return None
        return cls.from_headers(headers, received)
