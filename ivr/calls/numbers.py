"""Phone numbers in one normal form, for everything that compares them: the
customer list, script matching, the do-not-call list, the dialers.

Digits only, without the international prefix's "+" or "00", separators
(spaces, dashes, brackets, dots, slashes) dropped: "+36 (20) 123-4567",
"0036201234567" and "36201234567" are one number. A phone number has 3 to 20
digits (E.164 has at most 15; PBX extensions at least 3); anything else
normalises to "" (not a number). A prefix (a script's ``caller_prefix``) may be
shorter.
"""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s\-().\/]")
MIN_DIGITS = 3
MAX_DIGITS = 20


def normalise(raw: str | None, *, prefix: bool = False) -> str:
    """'+36 (20) 123-4567' / '0036201234567' -> '36201234567'; '' if it is not a phone
    number (``prefix``: the start of one, 1 to 20 digits)."""
    s = _SEPARATORS.sub("", raw or "")
    if s.startswith("+"):
        s = s[1:]
    elif s.startswith("00"):
        s = s[2:]
    low = 1 if prefix else MIN_DIGITS
    return s if s.isascii() and s.isdigit() and low <= len(s) <= MAX_DIGITS else ""
