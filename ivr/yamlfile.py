"""YAML loading that remembers where every value came from.

Admins edit the config and the call scripts by hand, so every complaint must
name the file, the line and the field. ``load`` returns plain dicts/lists whose
mappings also carry the line of each key (``LineDict.line_of``).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file an admin wrote."""

    file: str
    line: int | None
    field: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.reason}" if self.field else f"{where}: {self.reason}"


class YamlError(Exception):
    """A file that cannot be used at all; carries every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class LineDict(dict):
    """A mapping that knows the line (1-based) of each of its keys."""

    line: int | None = None

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.key_lines: dict[str, int] = {}

    def line_of(self, key: str) -> int | None:
        return self.key_lines.get(key, self.line)


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    out.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) or key is None:
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be a plain word", key_node.start_mark
            )
        key = str(key)
        if key in out:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_text(text: str, file: str) -> Any:
    """Parse YAML text; syntax errors become a YamlError naming file and line."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        reason = exc.problem or str(exc)
        if exc.context:
            reason = f"{exc.context}: {reason}"
        raise YamlError([Problem(file, line, "", f"YAML syntax: {reason}")]) from None
    except yaml.YAMLError as exc:
        raise YamlError([Problem(file, None, "", f"YAML: {exc}")]) from None


def read_bytes(path: Path) -> bytes:
    """An admin's file; a YamlError when it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise YamlError([Problem(str(path), None, "", f"cannot read: {exc.strerror}")]) from None


def decode(data: bytes, path: Path, encoding: str = "utf-8") -> str:
    """A file's bytes as text; a YamlError when they are not UTF-8."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise YamlError([Problem(str(path), None, "", f"not UTF-8 text: {exc.reason}")]) from None


def read(path: Path) -> str:
    return decode(read_bytes(path), path)


def load(path: Path) -> Any:
    return load_text(read(path), str(path))


# ---------------------------------------------------------------- checking documents
DocPath = tuple[str | int, ...]  # where a value sits in a document: ("steps", 2, "text")


def field_name(path: DocPath) -> str:
    """("checklist", 0, "phrases", "en") -> "checklist[0].phrases.en"."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def scan_nodes(text: str) -> tuple[dict[DocPath, str], dict[DocPath, int]]:
    """Plain (unquoted) scalars exactly as written, and the line of each list item,
    by their place in the document (plain lists do not remember lines)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}, {}
    raw: dict[DocPath, str] = {}
    lines: dict[DocPath, int] = {}

    def walk(node: yaml.Node, path: DocPath, depth: int) -> None:
        if depth > 20:  # aliases can nest deeply; admins' files never do
            return
        if isinstance(node, yaml.ScalarNode):
            if node.style is None:
                raw[path] = node.value
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines[(*path, i)] = item.start_mark.line + 1
                walk(item, (*path, i), depth + 1)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    walk(value, (*path, key.value), depth + 1)

    if root is not None:
        walk(root, (), 0)
    return raw, lines


def kind_of(value: Any, article: bool = False) -> str:
    """What a YAML value is, in an admin's words: "mapping", "a number" ..."""
    for cls, name in (
        (dict, "mapping"),
        (list, "list"),
        (bool, "true/false"),
        ((int, float), "number"),
    ):
        if isinstance(value, cls):
            return f"a {name}" if article and name != "true/false" else name
    return {type(None): "nothing", str: "text"}.get(type(value), type(value).__name__)


class Checker:
    """Collects problems (file, line, field, reason) while a loader turns a YAML
    document into typed values; loaders add their own typed getters."""

    def __init__(self, file: str, text: str):
        self.file = file
        self.raw, self.item_lines = scan_nodes(text)
        self.problems: list[Problem] = []

    def add(self, line: int | None, path: DocPath, reason: str) -> None:
        # A problem with a list item points at the item's own line.
        if path and isinstance(path[-1], int):
            line = self.item_lines.get(path, line)
        self.problems.append(Problem(self.file, line, field_name(path), reason))

    def text(
        self, d: dict, key: str, path: DocPath, required: bool = False, what: str = ""
    ) -> str | None:
        """d[key] as stripped text; None (and a problem) when missing, empty or not text."""
        if key not in d:
            if required:
                self.add(self.line(d), (*path, key), f"missing ({what})" if what else "missing")
            return None
        return self.as_text(d[key], self.line(d, key), (*path, key))

    def as_text(self, value: Any, line: int | None, path: DocPath) -> str | None:
        """A value as text, in the loader's own words (each kind of file has its own)."""
        raise NotImplementedError

    # "not a mapping" (True) or "not mapping" (False) in this file's problems.
    articles = True

    def kind(self, value: Any) -> str:
        return kind_of(value, article=self.articles)

    def number(self, d: dict, key: str, path: DocPath, integer: bool = False) -> float | None:
        """d[key] as a number greater than 0 (an int with ``integer``)."""
        value = d.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.add(self.line(d, key), (*path, key), f"must be a number, not {self.kind(value)}")
            return None
        if value <= 0:
            self.add(self.line(d, key), (*path, key), "must be greater than 0")
            return None
        if integer and int(value) != value:
            self.add(self.line(d, key), (*path, key), "must be a whole number")
            return None
        return int(value) if integer else float(value)

    def flag(self, d: dict, key: str, path: DocPath, default: bool = False) -> bool:
        value = d.get(key, default)
        if not isinstance(value, bool):
            self.add(self.line(d, key), (*path, key), "must be true or false")
            return default
        return value

    @staticmethod
    def line(d: Any, key: str | None = None) -> int | None:
        if isinstance(d, LineDict):
            return d.line_of(key) if key is not None else d.line
        return None

    def known_keys(self, d: dict, known: Iterable[str], path: DocPath, what: str = "") -> None:
        """Unknown keys are problems (a typo must never be silently ignored)."""
        known = tuple(known)
        for key in d:
            if key in known:
                continue
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(known)}"
            self.add(self.line(d, key), (*path, key), f"unknown key{what} ({hint})")
