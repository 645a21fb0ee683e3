"""The service's log: one line per event, with the call (and the agent) it concerns
attached from context, as text or as JSON for log shippers (``log_format``).

The stages do not pass call ids to every log call: whoever starts work on a call
says so once (``with about(call_id, agent):``, or ``about_call`` in a task that
works for one call) and every line logged inside, by any module, carries them.
The call event bus does it for its subscribers, the tap manager and server for
their per-tap tasks, live coaching for speech results, the web console for the
requests of a signed-in agent.

What never goes into the log at INFO: secrets (AMI, console, SIP: they are
``Secret``s, whose str is masked) and tap UUIDs (DEBUG only: a UUID is the key to
a call's audio stream while it waits to be claimed).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
from typing import Iterator

CALL: contextvars.ContextVar[str | None] = contextvars.ContextVar("ivr_call", default=None)
AGENT: contextvars.ContextVar[str | None] = contextvars.ContextVar("ivr_agent", default=None)

FORMATS = ("text", "json")
TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def about(call_id: str | None = None, agent: str | None = None) -> Iterator[None]:
    """Lines logged inside are about this call (and agent); None keeps what was set."""
    tokens = []
    if call_id is not None:
        tokens.append((CALL, CALL.set(call_id)))
    if agent is not None:
        tokens.append((AGENT, AGENT.set(agent)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def about_call(call_id: str | None, agent: str | None = None) -> None:
    """For the rest of the current task (a task that works for one call)."""
    if call_id is not None:
        CALL.set(call_id)
    if agent is not None:
        AGENT.set(agent)


class ContextFilter(logging.Filter):
    """Puts the context's call and agent on every record (``extra=`` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "call_id", None) is None:
            record.call_id = CALL.get()
        if getattr(record, "agent", None) is None:
            record.agent = AGENT.get()
        return True


class TextFormatter(logging.Formatter):
    """The usual line, then ``[call X agent Y]`` when it is about one."""

    def __init__(self) -> None:
        super().__init__(TEXT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        about = [
            f"{k} {v}"
            for k, v in (
                ("call", getattr(record, "call_id", None)),
                ("agent", getattr(record, "agent", None)),
            )
            if v
        ]
        if not about:
            return line
        head, sep, tail = line.partition("\n")  # a traceback stays below the line
        return f"{head} [{' '.join(about)}]{sep}{tail}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, call_id, agent, exception."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("call_id", "agent"):
            value = getattr(record, key, None)
            if value:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup(level: str | int = "INFO", fmt: str = "text") -> None:
    """The root logger: one handler on stderr in ``fmt`` (text | json), with context."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
