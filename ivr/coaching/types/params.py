"""A rule's parameters as declared by its type: each kind of value knows how to
read itself from the rule's YAML mapping and says what is wrong with it as
``file:line: field: reason`` (through the rule file's checker).

A rule type lists its parameters::

    params = (Texts("phrases", required="what the agent must say"),
              Number("within"),
              Choice("unit", ("words", "syllables"), default="words"))

and gets them back as a typed mapping (``Rule.param(name)``): phrase lists are
tuples of text, numbers floats (or ints: ``Number(whole=True)``), defaults filled
in. Problems between parameters (one needs another) are the type's own
``check``.

Why not a schema library: what admins read here is the contract (tested word for
word: "did you mean", what each field is for, every problem of a file at once,
also those between fields when one field is already wrong), and a generic
schema's messages and its stop-at-the-first-failing-field validators would have
to be translated back into these anyway.
"""

from __future__ import annotations

import difflib
import string
from dataclasses import dataclass
from typing import Any, Iterable

from ...yamlfile import Checker, DocPath, kind_of


def _kind(value: Any) -> str:
    return kind_of(value, article=True)


class RuleChecker(Checker):
    """The rule file's checker: typed getters that record every problem."""

    def as_text(self, value: Any, line: int | None, path: DocPath) -> str | None:
        if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
            hint = (
                " (a ': ' inside a text makes it a mapping; put the text in quotes)"
                if isinstance(value, dict)
                else ""
            )
            self.add(line, path, f"must be text, not {_kind(value)}{hint}")
            return None
        value = str(value).strip()
        if not value:
            self.add(line, path, "must not be empty")
            return None
        return value

    def texts(self, d: dict, key: str, path: DocPath, what: str) -> tuple[str, ...]:
        value, line = d.get(key), self.line(d, key)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]  # one text is a list of one
        if not isinstance(value, list):
            self.add(line, (*path, key), f"must be a list of texts ({what}), not {_kind(value)}")
            return ()
        if not value:
            self.add(line, (*path, key), f"must not be empty ({what})")
            return ()
        out = [self.as_text(v, line, (*path, key, i)) for i, v in enumerate(value)]
        return tuple(v for v in out if v is not None)

    def choice(
        self, value: str | None, options: Iterable[str], line: int | None, path: DocPath
    ) -> str | None:
        options = tuple(options)
        if value is not None and value not in options:
            close = difflib.get_close_matches(value, options, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            self.add(line, path, f"must be one of {', '.join(options)}; not {value!r}{hint}")
            return None
        return value

    def template(
        self, value: str | None, allowed: Iterable[str], line: int | None, path: DocPath
    ) -> None:
        """A prompt text: only the type's {placeholders}, no stray braces."""
        if value is None:
            return
        allowed = tuple(allowed)
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(value) if f is not None]
        except ValueError as exc:
            self.add(line, path, f"{exc} (write {{{{ and }}}} for literal braces)")
            return
        for name in fields:
            if name not in allowed:
                known = ", ".join("{" + a + "}" for a in allowed) or "none"
                self.add(line, path, f"unknown placeholder {{{name}}} (this type knows: {known})")


@dataclass(frozen=True)
class Param:
    """One parameter of a rule type. ``required``: the reason shown when it is missing
    (None: optional); ``default``: its value when absent (None: absent)."""

    key: str
    required: str | None = None
    default: Any = None

    def read(self, c: RuleChecker, d: dict, path: DocPath, out: dict[str, Any]) -> None:
        if self.key in d:
            out[self.key] = self.value(c, d, path)
        elif self.required is not None:
            c.add(c.line(d), (*path, self.key), f"missing ({self.required})")
        elif self.default is not None:
            out[self.key] = self.default

    def value(self, c: RuleChecker, d: dict, path: DocPath) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class Text(Param):
    def value(self, c: RuleChecker, d: dict, path: DocPath) -> str | None:
        return c.text(d, self.key, path)


@dataclass(frozen=True)
class Texts(Param):
    """A list of texts (one text is a list of one); ``what`` says what they are."""

    what: str = ""

    def value(self, c: RuleChecker, d: dict, path: DocPath) -> tuple[str, ...]:
        return c.texts(d, self.key, path, self.what or self.required or self.key)


@dataclass(frozen=True)
class Number(Param):
    """A number greater than 0 (seconds, counts); ``whole``: an integer."""

    whole: bool = False

    def read(self, c: RuleChecker, d: dict, path: DocPath, out: dict[str, Any]) -> None:
        if self.key in d and self.required is None:
            got = self.value(c, d, path)
            if got is not None:  # a wrong value leaves the default
                out[self.key] = got
            elif self.default is not None:
                out[self.key] = self.default
            return
        super().read(c, d, path, out)

    def value(self, c: RuleChecker, d: dict, path: DocPath) -> float | None:
        return c.number(d, self.key, path, integer=self.whole)


@dataclass(frozen=True)
class Choice(Param):
    options: tuple[str, ...] = ()

    def value(self, c: RuleChecker, d: dict, path: DocPath) -> str | None:
        got = c.choice(
            c.text(d, self.key, path), self.options, c.line(d, self.key), (*path, self.key)
        )
        return got if got is not None else self.default


@dataclass(frozen=True)
class TextMap(Param):
    """A mapping of text to text (e.g. a discouraged word to the brand's word)."""

    what: str = ""

    def value(self, c: RuleChecker, d: dict, path: DocPath) -> dict[str, str] | None:
        value, mpath = d[self.key], (*path, self.key)
        if not isinstance(value, dict) or not value:
            c.add(c.line(d, self.key), mpath, f"must be a mapping of {self.what}")
            return None
        out = {}
        for key, got in value.items():
            text = c.as_text(got, c.line(value, key), (*mpath, key))
            if text is not None:
                out[str(key)] = text
        return out
