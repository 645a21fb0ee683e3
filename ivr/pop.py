"""Script pop: which call is on which agent's console, with which script.

When an agent's phone rings, the call's script is chosen from the call's data
(the pop follows the call, not the agent) and filled in for this call and
agent: a CallCard. The card then follows the call (answered, on hold,
transferred, ended) until the agent saves the wrap-up, and keeps the
checklist's marks. Who listens is told explicitly: ``subscribe_cards`` (a card
came, changed or went: the web console's view, web/view.py, turns it into
JSON) and ``subscribe_marks`` (a checklist item was marked, by an agent or by
speech: live coaching takes an agent's, the cluster roles send them across).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

from .calls.events import (
    AgentAnswered,
    AgentLeft,
    AgentMissed,
    AgentMoved,
    AgentRinging,
    CallEnded,
    CallEvent,
    CallTransferred,
)
from .calls.model import Call
from .users import User

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
    phase: str = "ringing"  # ringing | live | wrapup
    checklist: dict[str, dict] = field(default_factory=dict)  # item id -> {done, by, at}
    ami_received_at: float = 0.0  # when the AMI event that popped it reached us
    popped_at: float = 0.0  # when the card was built
    transferred_to: str = ""


CardListener = Callable[[str, str, "CallCard | None"], None]  # (login, call_id, card or None)
MarkListener = Callable[[str, str, str, bool, str], None]  # (login, call_id, item, done, by)


class ScriptPop:
    def __init__(
        self, scripts: ScriptSource, users: dict[str, User], on_card: CardListener | None = None
    ):
        self.scripts = scripts
        self.users = users
        self._card_listeners: list[CardListener] = [on_card] if on_card else []
        self._mark_listeners: list[MarkListener] = []
        self.cards: dict[tuple[str, str], CallCard] = {}  # (login, call_id) -> card
        self.popped = 0  # cards built, ever

    def subscribe_cards(self, listener: CardListener) -> None:
        """``listener(login, call_id, card)`` whenever a card comes or changes, and
        ``(login, call_id, None)`` when it goes."""
        self._card_listeners.append(listener)

    def subscribe_marks(self, listener: MarkListener) -> None:
        """``listener(login, call_id, item, done, by)`` when a checklist item changes:
        ``by`` says who marked it ("agent", "speech", ...)."""
        self._mark_listeners.append(listener)

    def _card_changed(self, login: str, call_id: str, card: CallCard | None) -> None:
        for listener in self._card_listeners:
            try:
                listener(login, call_id, card)
            except Exception:
                log.exception("call %s: a card listener failed", call_id)

    # ------------------------------------------------------------ queries
    def cards_for(self, login: str) -> list[CallCard]:
        return [c for (lg, _), c in self.cards.items() if lg == login]

    def cards_of(self, call_id: str) -> list[CallCard]:
        """Every card of a call (one per agent it popped for)."""
        return [c for (_, cid), c in self.cards.items() if cid == call_id]

    def card(self, login: str, call_id: str) -> CallCard | None:
        return self.cards.get((login, call_id))

    def customer_number(self, call_id: str) -> str | None:
        """The customer's number of a call on a console (e.g. for a wrap-up's DNC)."""
        return next((c.call.customer_num for c in self.cards_of(call_id)), None)

    # ------------------------------------------------------------ call events
    def on_call_event(self, event: CallEvent) -> None:
        call = event.call
        if isinstance(event, AgentRinging):
            self._pop(event.agent, call, event.at)
        elif isinstance(event, AgentAnswered):
            answered = self.cards.get((event.agent, call.call_id)) or self._pop(
                event.agent, call, event.at
            )
            answered.phase = "live"
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

    def _script_for(self, login: str, call: Call) -> tuple[dict | None, str]:
        try:
            return self.scripts.pop(call, self.users.get(login))
        except Exception as exc:  # a broken script must never stop the pop
            log.exception("call %s: script pop failed", call.call_id)
            return None, f"script could not be filled: {exc}"

    def _pop(self, login: str, call: Call, at: float) -> CallCard:
        t0 = time.time()
        script, reason = self._script_for(login, call)
        card = CallCard(
            call_id=call.call_id,
            login=login,
            call=call,
            script=script,
            script_reason=reason,
            ami_received_at=at,
            popped_at=t0,
        )
        self.cards[(login, call.call_id)] = card
        self.popped += 1
        return card

    def _refresh(self, call: Call) -> None:
        for (login, call_id), card in self.cards.items():
            if call_id == call.call_id:
                card.call = call
                self._card_changed(login, call_id, card)

    def _drop(self, login: str, call_id: str) -> None:
        self.cards.pop((login, call_id), None)
        self._card_changed(login, call_id, None)

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
        self._card_changed(login, call_id, card)
        for listener in self._mark_listeners:
            try:
                listener(login, call_id, item, done, by)
            except Exception:
                log.exception("call %s: a checklist listener failed", call_id)
        return True

    def owners(self, call_id: str) -> list[str]:
        """Agents whose console shows this call past ringing (who talk on it)."""
        return [
            login
            for (login, cid), card in self.cards.items()
            if cid == call_id and card.phase != "ringing"
        ]

    def script_of(self, call_id: str) -> dict | None:
        """The filled script a call popped (None: none, or not on a console)."""
        return next((c.script for c in self.cards_of(call_id) if c.script), None)

    def script_version_of(self, call_id: str) -> tuple[str, str] | None:
        """(script id, version) of a call's script, for its record."""
        script = self.script_of(call_id)
        return (script["id"], str(script["version"])) if script else None

    def wrapped_up(self, login: str, call_id: str) -> None:
        if (login, call_id) in self.cards:
            self._drop(login, call_id)

    def restore_wrapup(self, login: str, call: Call) -> None:
        """After a restart: a call that ended while we were down still needs its wrap-up."""
        if (login, call.call_id) in self.cards:
            return
        script, reason = self._script_for(login, call)
        self.cards[(login, call.call_id)] = CallCard(
            call_id=call.call_id,
            login=login,
            call=call,
            script=script,
            script_reason=reason,
            phase="wrapup",
        )
