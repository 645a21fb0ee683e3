"""`ivr check` for call scripts: every problem of a scripts folder, before it goes live."""

from __future__ import annotations

from pathlib import Path

from ..yamlfile import Problem
from .library import ScriptLibrary


def check_folder(path: str | Path) -> list[Problem]:
    """Load every script of `path` as the service would; list what is wrong.

    Besides each file's own problems: duplicate script ids, two defaults for one
    direction, scripts that match exactly the same calls, and an empty folder.
    """
    library = ScriptLibrary(path)
    library.reload()
    problems = library.problems()
    if not problems and not library.files():
        problems.append(Problem(str(path), None, "", "no call scripts (*.yaml) in this folder"))
    return problems
