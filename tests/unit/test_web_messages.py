"""Every WebSocket message is defined once (ivr/web/messages.py) and the pages follow
that list: what each page handles, what the pages send, what the service builds."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from ivr.web.messages import AGENT, MESSAGES, SERVICE, SUPERVISOR, message, types_to

IVR = Path(__file__).resolve().parents[2] / "ivr"
STATIC = IVR / "web" / "static"


def handled(page: str) -> set[str]:
    """The message types a page's ``const ON = {...}`` table handles."""
    text = (STATIC / page).read_text(encoding="utf-8")
    table = text[text.index("const ON = {"):]
    table = table[:table.index("\n};\n")]
    return set(re.findall(r"^  ([a-z_]+)\(msg\)", table, re.M))


@pytest.mark.parametrize("page,role", [("agent.js", AGENT), ("supervisor.js", SUPERVISOR)])
def test_each_page_handles_exactly_what_its_role_is_sent(page, role):
    assert handled(page) == types_to(role)


def test_pages_send_only_what_the_service_takes():
    sent = set()
    for js in STATIC.glob("*.js"):
        text = js.read_text(encoding="utf-8")
        sent |= set(re.findall(r"send\(\{\s*type: \"([a-z_]+)\"", text))
    assert sent == types_to(SERVICE) == {"ping", "checklist"}


def test_the_service_builds_every_message_through_the_definitions():
    """No message dict is written by hand ({"type": "card", ...}): each comes from
    message(type, ...), which checks it against the definitions."""
    called = set()
    for path in IVR.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict) and path.name != "messages.py":
                typed = [v for k, v in zip(node.keys, node.values)
                         if isinstance(k, ast.Constant) and k.value == "type"]
                assert not any(isinstance(v, ast.Constant) and isinstance(v.value, str)
                               and v.value in MESSAGES for v in typed), \
                    f"{path}:{node.lineno}: a message written by hand"
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "message" \
                    and node.args and isinstance(node.args[0], ast.Constant):
                called.add(node.args[0].value)
    assert called <= set(MESSAGES) and not called & types_to(SERVICE)
    assert called == types_to(AGENT) | types_to(SUPERVISOR)      # none defined and unused


def test_a_type_or_field_not_defined_is_refused():
    assert message("card", call_id="c1", card=None) == {"type": "card", "call_id": "c1",
                                                        "card": None}
    with pytest.raises(ValueError, match="no console message 'cards'"):
        message("cards", call_id="c1")
    with pytest.raises(ValueError, match="message 'tap' has no field speeker"):
        message("tap", call_id="c1", speeker="agent")
    with pytest.raises(ValueError):
        message("ping")                       # the pages send it, the service does not
