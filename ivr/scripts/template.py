"""The {variable} syntax of script texts: parsing (for checks) and filling (per call).

`{name}` is a variable; `{{` and `}}` are literal braces. Anything else with a
brace is an error, so a typo like `{customer name}` is caught by `ivr check`
instead of being read aloud to a customer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}|[{}]")


@dataclass(frozen=True)
class Var:
    name: str


Part = str | Var


class TemplateError(ValueError):
    pass


def parse(text: str) -> list[Part]:
    """Split a text into literal strings and Vars; TemplateError on a stray brace."""
    parts: list[Part] = []
    pos = 0
    for m in _TOKEN.finditer(text):
        if m.start() > pos:
            parts.append(text[pos : m.start()])
        token = m.group(0)
        if token in ("{{", "}}"):
            parts.append(token[0])
        elif m.group(1):
            parts.append(Var(m.group(1)))
        else:
            raise TemplateError(
                f"stray {token!r} at character {m.start() + 1}: write {{name}} for a "
                f"variable (letters, digits, _) or {token * 2} for a literal brace"
            )
        pos = m.end()
    if pos < len(text):
        parts.append(text[pos:])
    return parts


def variables(text: str) -> list[str]:
    return [p.name for p in parse(text) if isinstance(p, Var)]


def segments(text: str, values: Mapping[str, str | None]) -> list[dict]:
    """Filled text as segments, so a missing value can be shown, never silently blank.

    [{"text": "Hello, "}, {"var": "customer_name", "value": None}, {"text": "!"}]
    """
    out: list[dict] = []
    for part in parse(text):
        if isinstance(part, Var):
            out.append({"var": part.name, "value": values.get(part.name)})
        elif out and "text" in out[-1]:
            out[-1]["text"] += part  # "{{" splits literals; merge them back
        else:
            out.append({"text": part})
    return out


def render(text: str, values: Mapping[str, str | None]) -> str | None:
    """Plain filled text, or None if any variable is missing (e.g. for phrase spotting)."""
    pieces = []
    for part in parse(text):
        if isinstance(part, Var):
            value = values.get(part.name)
            if value is None:
                return None
            pieces.append(value)
        else:
            pieces.append(part)
    return "".join(pieces)
