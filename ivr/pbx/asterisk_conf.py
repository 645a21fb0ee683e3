"""Small edits of Asterisk .conf files, so the admins' files stay the one source.

The sandbox moves the SIP transport and AMI to its own ports and writes the AMI
password in; everything else is installed exactly as the admins wrote it.
``parse_sections`` reads a whole file (sections, templates, options with their
lines) for the checks that cross-reference the files (ivr/pbx/crosscheck.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_SECTION = re.compile(r"^\s*\[([^\]]+)\]")
_OPTION = re.compile(r"^(\s*)([A-Za-z_][\w-]*)(\s*=>?\s*)([^;]*?)(\s*;.*)?$")


def set_option(text: str, section: str, key: str, value: str) -> str:
    """Set ``key`` in the first ``[section]`` of an Asterisk config.

    Replaces the existing line (keeping its comment) or appends the option at
    the end of the section. Raises KeyError if the section does not exist.
    """
    lines = text.splitlines()
    start = None
    for i, line in enumerate(lines):
        m = _SECTION.match(line)
        if m and m.group(1).strip() == section:
            start = i
            break
    if start is None:
        raise KeyError(f"no [{section}] section")
    end = len(lines)
    for i in range(start + 1, len(lines)):
        if _SECTION.match(lines[i]):
            end = i
            break
    for i in range(start + 1, end):
        m = _OPTION.match(lines[i])
        if m and m.group(2).lower() == key.lower() and not lines[i].lstrip().startswith(";"):
            lines[i] = f"{m.group(1)}{m.group(2)}{m.group(3)}{value}{m.group(5) or ''}"
            return "\n".join(lines) + "\n"
    insert = end
    while insert > start + 1 and not lines[insert - 1].strip():
        insert -= 1
    lines.insert(insert, f"{key} = {value}")
    return "\n".join(lines) + "\n"


def set_in_section_with(text: str, section: str, key: str, value: str) -> str:
    """Set ``key`` in the first ``[section]`` that already has it (pjsip.conf has several
    sections of one name: the endpoint, the auth and the aor of a phone)."""
    lines = text.splitlines()
    current = None
    for i, line in enumerate(lines):
        m = _SECTION.match(line)
        if m:
            current = m.group(1).strip()
            continue
        if current == section:
            o = re.match(rf"^(\s*{re.escape(key)}\s*=>?\s*)([^;]*?)(\s*;.*)?$", line, re.I)
            if o:
                lines[i] = f"{o.group(1)}{value}{o.group(3) or ''}"
                return "\n".join(lines) + "\n"
    return text


def weak_secret(value: str) -> str | None:
    """Why a password is not fit for a PBX others can reach (None: it is): the
    service's rule for network-facing secrets (ivr/web/passwords.py: 12 characters
    at least, no example value; docker/entrypoint.sh applies it too), and it must
    fit on one .conf line."""
    from ..web.passwords import weakness

    if why := weakness(value):
        return why
    if ";" in value or value != value.strip() or "\n" in value:
        return "cannot be written into a .conf line (';', line break, or edge spaces)"
    return None


def get_option(text: str, section: str, key: str) -> str | None:
    in_section = False
    for line in text.splitlines():
        m = _SECTION.match(line)
        if m:
            in_section = m.group(1).strip() == section
            continue
        if in_section:
            o = _OPTION.match(line)
            if o and o.group(2).lower() == key.lower() and not line.lstrip().startswith(";"):
                return o.group(4).strip()
    return None


# ------------------------------------------------------------------ reading whole files


@dataclass(frozen=True)
class Option:
    key: str
    value: str
    line: int


@dataclass
class Section:
    """One ``[name](templates)`` block of an Asterisk .conf file."""

    file: str
    line: int
    name: str
    templates: tuple[str, ...] = ()
    is_template: bool = False
    options: list[Option] = field(default_factory=list)

    def get(self, key: str) -> Option | None:
        for o in self.options:
            if o.key.lower() == key.lower():
                return o
        return None

    def all(self, key: str) -> list[Option]:
        return [o for o in self.options if o.key.lower() == key.lower()]


_HEADER = re.compile(r"^\s*\[([^\]]+)\]\s*(?:\(([^)]*)\))?")
_KEY_VALUE = re.compile(r"^\s*([A-Za-z0-9_.+-]+)\s*=>?\s*(.*?)\s*$")


def strip_comment(line: str) -> str:
    """The line without its ``;`` comment (``\\;`` is a literal semicolon)."""
    out = []
    i = 0
    while i < len(line):
        c = line[i]
        if c == "\\" and i + 1 < len(line) and line[i + 1] == ";":
            out.append(";")
            i += 2
            continue
        if c == ";":
            break
        out.append(c)
        i += 1
    return "".join(out)


def parse_sections(text: str, file: str) -> list[Section]:
    """Every section of a .conf file with its options and their lines.

    ``[name](+)`` adds to the section of that name defined before it, as
    Asterisk does; ``#include`` lines are ignored (dialplans/ uses none).
    """
    sections: list[Section] = []
    current: Section | None = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = strip_comment(raw)
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _HEADER.match(line)
        if m:
            flags = [f.strip() for f in (m.group(2) or "").split(",") if f.strip()]
            name = m.group(1).strip()
            if "+" in flags:
                current = next((s for s in reversed(sections) if s.name == name), None)
                if current is not None:
                    continue
            current = Section(
                file=file,
                line=n,
                name=name,
                templates=tuple(f for f in flags if f not in ("!", "+")),
                is_template="!" in flags,
            )
            sections.append(current)
            continue
        o = _KEY_VALUE.match(line)
        if o and current is not None:
            current.options.append(Option(o.group(1), o.group(2), n))
    return sections


def resolved(section: Section, sections: list[Section]) -> list[Option]:
    """The options of a section with those of its templates first, as Asterisk reads them."""
    out: list[Option] = []
    for name in section.templates:
        template = next((s for s in sections if s.name == name and s.is_template), None) or next(
            (s for s in sections if s.name == name and s is not section), None
        )
        if template is not None:
            out += resolved(template, sections)
    return out + section.options
