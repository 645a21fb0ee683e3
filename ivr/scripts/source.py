"""The script pop's view of the scripts: choose + fill for a call and an agent.

Matches the `ScriptSource` protocol of ivr/pop.py: `pop(call, user)` returns
(the filled script or None, the reason in words).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..calls.model import Call
from .customers import CustomerDirectory
from .fill import fill
from .library import ScriptLibrary

if TYPE_CHECKING:
    from ..users import User


class LibraryScriptSource:
    def __init__(self, library: ScriptLibrary, customers: CustomerDirectory | None = None):
        self.library = library
        # Replaceable at any time (e.g. after the customer list is reloaded).
        self.customers = customers or CustomerDirectory()

    def pop(self, call: Call, user: "User | None") -> tuple[dict | None, str]:
        choice = self.library.choose(call)
        if choice.script is None:
            return None, choice.reason
        filled = fill(choice.script, call, user, self.customers)
        filled["choice"] = {
            "reason": choice.reason,
            "matched_on": list(choice.matched_on),
            "also_matched": list(choice.also_matched),
        }
        return filled, choice.reason
