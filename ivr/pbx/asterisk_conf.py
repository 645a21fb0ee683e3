"""Small edits of Asterisk .conf files, so the admins' files stay the one source.

The sandbox moves the SIP transport and AMI to its own ports and writes the AMI
password in; everything else is installed exactly as the admins wrote it.
"""
from __future__ import annotations

import re

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
