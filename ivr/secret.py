"""A secret (the AMI password, a console user's secret): a string that never shows
itself in logs, reprs or tracebacks."""

from __future__ import annotations


class Secret(str):
    """A string that never shows itself in logs, reprs or tracebacks."""

    def __repr__(self) -> str:
        return "Secret('***')" if self else "Secret('')"
