"""Reading what clients send: JSON bodies and messages, numbers, times.

Every malformed value is a 400 with a reason, never a 500: JSON that is not
an object, nested deeper than MAX_DEPTH, or holds NaN, Infinity or a number
too large for a float; query numbers that are not finite or out of range;
times outside 1970-2100. Bodies that trickle in slower than the body timeout
get a 408.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
from typing import Any

from aiohttp import web

MAX_DEPTH = 16
MAX_INT = 2**53  # integers a browser's JSON can hold exactly
# Any time a client names: after the epoch, before 2100.
TIME_MIN, TIME_MAX = 0.0, 4102444800.0


class BadInput(ValueError):
    """A client sent a value we refuse; the message says why (for the 400)."""


def _constant(name: str) -> Any:
    raise BadInput(f"numbers must be finite, not {name}")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadInput(f"number {text[:20]} is out of range")
    return value


def _int(text: str) -> int:
    if len(text) > 20 or abs(value := int(text)) > MAX_INT:
        raise BadInput(f"number {text[:20]} is out of range")
    return value


def parse_json(raw: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """JSON with finite numbers and at most `max_depth` levels of nesting."""
    try:
        data = json.loads(raw, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except BadInput:
        raise
    except RecursionError:
        raise BadInput(f"JSON nested deeper than {max_depth} levels")
    except (ValueError, UnicodeDecodeError):
        raise BadInput("body must be JSON")
    # Depth, without recursion: (value, depth) pairs still to look at.
    todo = [(data, 1)]
    while todo:
        value, depth = todo.pop()
        if isinstance(value, (dict, list)):
            if depth > max_depth:
                raise BadInput(f"JSON nested deeper than {max_depth} levels")
            items = value.values() if isinstance(value, dict) else value
            todo.extend((v, depth + 1) for v in items if isinstance(v, (dict, list)))
    return data


async def read_json(request: web.Request, timeout: float = 30.0) -> dict[str, Any]:
    """The request's body: a JSON object (400 otherwise, 408 if it is too slow)."""
    try:
        async with asyncio.timeout(timeout):
            raw = await request.read()
    except TimeoutError:
        raise web.HTTPRequestTimeout(text="the request body took too long")
    try:
        data = parse_json(raw or b"{}")
    except BadInput as exc:
        raise web.HTTPBadRequest(text=str(exc))
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return data


def text(data: dict[str, Any], key: str, *, limit: int = 200, default: str = "") -> str:
    """A text field of a JSON body (numbers are taken as their text)."""
    value = data.get(key, default)
    if value is None:
        return default
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise web.HTTPBadRequest(text=f"{key} must be text")
    if len(value) > limit:
        raise web.HTTPBadRequest(text=f"{key} is limited to {limit} characters")
    return value


def number(value: str | None, what: str, default: float, low: float, high: float) -> float:
    """A query number, finite and within [low, high]."""
    if value in (None, ""):
        return default
    try:
        n = float(value)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{what} must be a number")
    if not math.isfinite(n) or not low <= n <= high:
        raise web.HTTPBadRequest(text=f"{what} must be a number from {low:g} to {high:g}")
    return n


def whole(value: str | None, what: str, default: int, low: int, high: int) -> int:
    n = number(value, what, default, low, high)
    if n != int(n):
        raise web.HTTPBadRequest(text=f"{what} must be a whole number")
    return int(n)


def instant(value: Any, what: str, tz: dt.tzinfo | None = None) -> float | None:
    """Epoch seconds, or an ISO 8601 date / date and time (without an offset:
    in `tz`, or the server's local time); None if empty. 1970-2100 only."""
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        raise web.HTTPBadRequest(text=f"{what} must be a time")
    if isinstance(value, (int, float)):
        t = float(value)
    else:
        s = str(value)[:64]
        try:
            t = float(s)
        except ValueError:
            try:
                d = dt.datetime.fromisoformat(s)
            except ValueError:
                raise web.HTTPBadRequest(text=f"{what}: epoch seconds or ISO 8601, not {s[:40]!r}")
            if d.tzinfo is None:
                d = d.replace(tzinfo=tz) if tz is not None else d.astimezone()
            try:
                t = d.timestamp()
            except (OverflowError, OSError, ValueError):
                raise web.HTTPBadRequest(text=f"{what} is out of range")
    if not math.isfinite(t) or not TIME_MIN <= t <= TIME_MAX:
        raise web.HTTPBadRequest(text=f"{what} must be between 1970 and 2100")
    return t
