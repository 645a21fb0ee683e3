"""Script pop: what each agent's console shows, call by call.

When an agent's phone rings, the call's script is chosen from the call's data
(the pop follows the call, not the agent), filled in for this call and agent,
and handed to the web console as a CallCard. The card then follows the call
(answered, on hold, transferred, ended) until the agent saves the wrap-up.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from .calls.events import (AgentAnswered, AgentLeft, AgentMissed, AgentMoved, AgentRinging,
                           CallEnded, CallEvent, CallTransferred)
from .calls.model import Call
from .config import User

log = logging.getLogger(__name__)


class ScriptSource(Protocol):
    """Chooses and fills the script for a call (see ivr/scripts)."""

    def pop(self, call: Call, user: User | None) -> tuple[dict | None, str]:
        """(filled script or None, the reason it was chosen or why none was)."""


@dataclass
class CallCard:
    """One call on one agent's console."""

    call_id: str
    login: str
    call: Call
    script: dict | None
    script_reason: str
    phase: str = "ringing"            # ringing | live | wrapup
    checklist: dict[str, dict] = field(default_factory=dict)   # item id -> {done, by, at}
    ami_received_at: float = 0.0      # when the AMI event that popped it reached us
    popped_at: float = 0.0            # when the card was built
    transferred_to: str = ""

    def to_json(self) -> dict[str, Any]:
        c = self.call
        # The customer list (via the filled script) knows names caller ID does not.
        known = (self.script or {}).get("customer") or {}
        return {
            "call_id": self.call_id,
            "phase": self.phase,
            "state": c.state.value,
            "direction": c.direction.value,
            "customer_number": c.customer_num,
            "customer_name": known.get("name") or c.customer_name,
            "did": c.did, "dialled": c.dialled, "queue": c.queue, "ivr_choice": c.ivr_choice,
            "department": c.department, "project": c.project, "campaign": c.campaign,
            "agent": c.agent,
            "started_at": c.started_at, "answered_at": c.answered_at, "ended_at": c.ended_at,
            "hold_seconds": c.hold_seconds, "hold_started_at": c.hold_started_at,
            "transfers": [dataclasses.asdict(t) for t in c.transfers],
            "result": c.result.value if c.result else None,
            "transferred_to": self.transferred_to,
            "script": self.script,
            "script_reason": self.script_reason,
            "checklist": self.checklist,
            "timing": {"ami_received_at": self.ami_received_at, "popped_at": self.popped_at},
        }


CardListener = Callable[[str, str, "CallCard | None"], None]   # (login, call_id, card or None)


class ScriptPop:
    def __init__(self, scripts: ScriptSource, users: dict[str, User], on_card: CardListener):
        self.scripts = scripts
        self.users = users
        self.on_card = on_card
        self.cards: dict[tuple[str, str], CallCard] = {}   # (login, call_id) -> card
        # Told of every checklist mark (login, call_id, item, done, by), e.g. for coaching.
        self.on_mark: Callable[[str, str, str, bool, str], None] | None = None

    # ------------------------------------------------------------ queries
    def cards_for(self, login: str) -> list[CallCard]:
        return [c for (lg, _), c in self.cards.items() if lg == login]

    def card(self, login: str, call_id: str) -> CallCard | None:
        return self.cards.get((login, call_id))

    # ------------------------------------------------------------ call events
    def on_call_event(self, event: CallEvent) -> None:
        call = event.call
        if isinstance(event, AgentRinging):
            self._pop(event.agent, call, event.at)
        elif isinstance(event, AgentAnswered):
            card = self.cards.get((event.agent, call.call_id)) or self._pop(event.agent, call,
                                                                            event.at)
            card.phase = "live"
            # Ring-all queues: the others stop ringing.
            for (login, call_id), other in list(self.cards.items()):
                if call_id == call.call_id and login != event.agent and other.phase == "ringing":
                    self._drop(login, call_id)
        elif isinstance(event, AgentMissed):
            card = self.cards.get((event.agent, call.call_id))
            if card is not None and card.phase == "ringing":
                self._drop(event.agent, call.call_id)
                return
        elif isinstance(event, AgentLeft):
            # The agent's part is over (transferred on, or left a conference): wrap up now.
            card = self.cards.get((event.agent, call.call_id))
            if card is not None and card.phase == "live":
                card.phase = "wrapup"
        elif isinstance(event, CallTransferred):
            by = call.transfers[-1].by_agent if call.transfers else None
            for (login, call_id), card in self.cards.items():
                # The agent who transferred, not the one who took the call.
                if call_id == call.call_id and card.phase == "live" and login == (by or login):
                    card.transferred_to = event.target
        elif isinstance(event, AgentMoved):
            # The consultation call's line joined the customer's call: that card goes.
            if (event.agent, call.call_id) in self.cards:
                self._drop(event.agent, call.call_id)
                return
        if isinstance(event, CallEnded):
            for (login, call_id), card in list(self.cards.items()):
                if call_id != call.call_id:
                    continue
                if card.phase == "ringing":
                    self._drop(login, call_id)
                else:
                    card.phase = "wrapup"
        self._refresh(call)

    def _pop(self, login: str, call: Call, at: float) -> CallCard:
        t0 = time.time()
        try:
            script, reason = self.scripts.pop(call, self.users.get(login))
        except Exception as exc:   # a broken script must never stop the pop
            log.exception("call %s: script pop failed", call.call_id)
            script, reason = None, f"script could not be filled: {exc}"
        card = CallCard(call_id=call.call_id, login=login, call=call, script=script,
                        script_reason=reason, ami_received_at=at, popped_at=t0)
        self.cards[(login, call.call_id)] = card
        return card

    def _refresh(self, call: Call) -> None:
        for (login, call_id), card in self.cards.items():
            if call_id == call.call_id:
                card.call = call
                self.on_card(login, call_id, card)

    def _drop(self, login: str, call_id: str) -> None:
        self.cards.pop((login, call_id), None)
        self.on_card(login, call_id, None)

    # ------------------------------------------------------------ agent actions
    def mark_item(self, login: str, call_id: str, item: str, done: bool, by: str = "agent") -> bool:
        card = self.cards.get((login, call_id))
        if card is None or card.script is None:
            return False
        if item not in {i["id"] for i in card.script.get("checklist", [])}:
            return False
        if card.checklist.get(item, {}).get("done") == done:
            return True
        card.checklist[item] = {"done": done, "by": by, "at": time.time()}
        self.on_card(login, call_id, card)
        if self.on_mark is not None and by != "speech":
            self.on_mark(login, call_id, item, done, by)
        return True

    def owners(self, call_id: str) -> list[str]:
        """Agents whose console shows this call past ringing (who talk on it)."""
        return [login for (login, cid), card in self.cards.items()
                if cid == call_id and card.phase != "ringing"]

    def script_of(self, call_id: str) -> dict | None:
        for (_, cid), card in self.cards.items():
            if cid == call_id and card.script:
                return card.script
        return None

    def wrapped_up(self, login: str, call_id: str) -> None:
        if (login, call_id) in self.cards:
            self._drop(login, call_id)

    def restore_wrapup(self, login: str, call: Call, script: dict | None, reason: str) -> None:
        """After a restart: a call that ended while we were down still needs its wrap-up."""
        if (login, call.call_id) not in self.cards:
            self.cards[(login, call.call_id)] = CallCard(
                call_id=call.call_id, login=login, call=call, script=script,
                script_reason=reason, phase="wrapup")
