"""Every message on the consoles' WebSocket, defined once: its type, its fields and
who it goes to (or comes from).

The service builds each message with ``message(type, **fields)``, which refuses a
type or a field not defined here (a typo would otherwise reach the pages as a
message they ignore). The pages follow the same list: agent.js and supervisor.js
handle exactly the types sent to their role, and send only those from pages
(tests/unit/test_web_messages.py holds the three to it). Every message the
service sends also carries ``sent_at`` (the hub's clock when it was written; the
pages use it for the skew between their clock and the service's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

AGENT = "agent"  # pushed to an agent's console
SUPERVISOR = "supervisor"  # pushed to a supervisor's console
SERVICE = "service"  # sent by a page to the service


@dataclass(frozen=True)
class Message:
    type: str
    to: tuple[str, ...]
    fields: tuple[str, ...]
    doc: str


_ALL = (
    # ---- both consoles
    Message(
        "hello",
        (AGENT, SUPERVISOR),
        (
            "user",
            "problems",
            "cards",
            "departments",
            "agents",
            "agent_state",
            "reasons",
            "board",
            "can_monitor",
            "wallboard",
        ),
        "The first message on a socket: who signed in, the scripts' problems; an agent's "
        "cards (each with its coaching so far), departments, consult targets, state and "
        "pause reasons; a supervisor's board of live calls and wallboard.",
    ),
    Message(
        "problems",
        (AGENT, SUPERVISOR),
        ("problems",),
        "The scripts' and rules' problems changed (file:line: reason, one a line).",
    ),
    # ---- the agent's console: cards and their coaching
    Message(
        "card",
        (AGENT,),
        ("call_id", "card"),
        "A call's card on this console (None: it went: wrapped up, rang elsewhere).",
    ),
    Message(
        "transcript",
        (AGENT,),
        ("call_id", "speaker", "utterance_id", "text", "final", "start", "end", "source"),
        "What a party said (partials replaced by their final, same utterance_id).",
    ),
    Message(
        "prompt",
        (AGENT,),
        (
            "call_id",
            "rule_id",
            "kind",
            "text",
            "severity",
            "reason",
            "at",
            "evidence",
            "phrase",
            "item_id",
        ),
        "A coaching rule fired (coaching/model.py Prompt).",
    ),
    Message(
        "cant_check",
        (AGENT,),
        ("call_id", "id", "kind", "reason"),
        "Speech cannot judge this checklist item or rule on this call, and why.",
    ),
    Message(
        "tap",
        (AGENT,),
        ("call_id", "speaker", "state", "reason"),
        "Whether a party's audio is being heard (starting, ok, retrying, failed, ended).",
    ),
    Message(
        "capacity",
        (AGENT,),
        ("call_id", "level", "notice"),
        "Speech recognition gave something up for this call (capacity).",
    ),
    Message(
        "coaching",
        (AGENT,),
        ("call_id", "adherence", "checklist", "cant_check"),
        "The call ended: its adherence score and checklist results.",
    ),
    # ---- the agent's console: their state, consultations, supervisors on the line
    Message(
        "agent_state",
        (AGENT,),
        ("agent",),
        "This agent's state changed (agents/model.py AgentStatus).",
    ),
    Message(
        "consult",
        (AGENT,),
        ("call_id", "target", "kind", "state", "started_at"),
        "An attended transfer of this agent's call (transfers.py).",
    ),
    Message(
        "monitor",
        (AGENT,),
        ("call_id", "active", "mode", "supervisor"),
        "A supervisor listens (whispers, barges) on this agent's call, or stopped.",
    ),
    # ---- the supervisor's console
    Message("board_call", (SUPERVISOR,), ("call",), "A live call changed (the board's entry)."),
    Message("board_ended", (SUPERVISOR,), ("call",), "A call ended (its last board entry)."),
    Message(
        "wallboard_agent", (SUPERVISOR,), ("agent",), "An agent's state changed (AgentStatus)."
    ),
    Message(
        "wallboard_queue",
        (SUPERVISOR,),
        ("queue",),
        "A queue's live figures changed (calls/queues.py QueueFigures).",
    ),
    Message(
        "monitor_failed",
        (SUPERVISOR,),
        ("call_id", "mode", "reason"),
        "Listening in on a call did not start, and why.",
    ),
    # ---- from the pages
    Message("ping", (SERVICE,), (), "Keeps the socket (and the sign-in session) alive."),
    Message(
        "checklist",
        (SERVICE,),
        ("call_id", "item", "done"),
        "The agent ticked or unticked a checklist item by hand.",
    ),
)

MESSAGES: dict[str, Message] = {m.type: m for m in _ALL}


def types_to(role: str) -> set[str]:
    """The message types that go to ``role`` (AGENT, SUPERVISOR or SERVICE)."""
    return {m.type for m in _ALL if role in m.to}


def message(type_: str, **fields: Any) -> dict[str, Any]:
    """A message the service sends; ValueError for a type or field not defined above."""
    m = MESSAGES.get(type_)
    if m is None or SERVICE in m.to:
        raise ValueError(f"no console message {type_!r} (see ivr/web/messages.py)")
    unknown = set(fields) - set(m.fields)
    if unknown:
        raise ValueError(f"message {type_!r} has no field {', '.join(sorted(unknown))}")
    return {"type": type_, **fields}
