"""What the consoles show of each call: the one owner of per-call view state.

Per call, the card of each agent it popped for (the pop's CallCard: script,
phase, checklist marks) and its coaching as live coaching reports it (prompts,
the transcript's final lines, what speech cannot check, the taps, a capacity
notice, the end-of-call summary). Everything a page gets about a call is built
here, as JSON, from that state: pushed to the agents on the call as it changes,
whole in a (re)connecting console's hello, and as the supervisors' board.

Live coaching talks to the consoles through the CoachingConsole methods below
(ivr/live.py holds the protocol); the script pop through ``card_changed``; the
call event bus through ``call_event``. The state of a call is dropped with its
last card.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ..calls.events import CallEnded, CallEvent
from ..calls.model import Call
from ..metrics import POP_BUCKETS, Histogram
from ..pop import CallCard, ScriptPop
from .hub import Client, ConsoleHub
from .messages import message

if TYPE_CHECKING:
    from ..coaching.model import CallCoaching, CantCheck, Prompt
    from ..speech.recognizer import Utterance
    from ..tap.taps import TapStatus

log = logging.getLogger(__name__)

# Offered when a call popped no script (the wrap-up must still be possible).
FALLBACK_DISPOSITIONS = [
    {"id": "resolved", "label": "Resolved", "needs_callback_time": False, "needs_note": False},
    {"id": "callback", "label": "Call back", "needs_callback_time": True, "needs_note": False},
    {
        "id": "transferred",
        "label": "Transferred",
        "needs_callback_time": False,
        "needs_note": False,
    },
    {"id": "other", "label": "Other", "needs_callback_time": False, "needs_note": True},
]


def dispositions(card: CallCard) -> list[dict[str, Any]]:
    """The outcomes a call's wrap-up may have: its script's, or the fallback ones."""
    return (card.script or {}).get("dispositions") or FALLBACK_DISPOSITIONS


def card_json(card: CallCard) -> dict[str, Any]:
    """A card as the agent's page renders it."""
    c = card.call
    # The customer list (via the filled script) knows names caller ID does not.
    known = (card.script or {}).get("customer") or {}
    return {
        "call_id": card.call_id,
        "phase": card.phase,
        "state": c.state.value,
        "direction": c.direction.value,
        "customer_number": c.customer_num,
        "customer_name": known.get("name") or c.customer_name,
        "did": c.did,
        "dialled": c.dialled,
        "queue": c.queue,
        "ivr_choice": c.ivr_choice,
        "department": c.department,
        "project": c.project,
        "campaign": c.campaign,
        "agent": c.agent,
        "started_at": c.started_at,
        "answered_at": c.answered_at,
        "ended_at": c.ended_at,
        "hold_seconds": c.hold_seconds,
        "hold_started_at": c.hold_started_at,
        "transfers": [dataclasses.asdict(t) for t in c.transfers],
        "result": c.result.value if c.result else None,
        "transferred_to": card.transferred_to,
        "script": card.script,
        "script_reason": card.script_reason,
        "dispositions": dispositions(card),
        "checklist": card.checklist,
        "timing": {"ami_received_at": card.ami_received_at, "popped_at": card.popped_at},
    }


def board_entry(call: Call, script: dict | None) -> dict[str, Any]:
    """One live call as the supervisor sees it."""
    return {
        "call_id": call.call_id,
        "state": call.state.value,
        "direction": call.direction.value,
        "agent": call.agent or (call.agents_rung[-1] if call.agents_rung else None),
        "project": call.project,
        "queue": call.queue,
        "customer_number": call.customer_num,
        "script": script["title"] if script else None,
        "script_id": script["id"] if script else None,
        "started_at": call.started_at,
        "answered_at": call.answered_at,
        "ended_at": call.ended_at,
        "result": call.result.value if call.result else None,
        "hold_seconds": call.hold_seconds,
        "hold_started_at": call.hold_started_at,
        "transfers": [dataclasses.asdict(t) for t in call.transfers],
        # Who listens in now, and whether an agent talks (something to listen to).
        "monitors": [
            {
                "supervisor": m.supervisor,
                "mode": m.mode,
                "agent": m.agent,
                "started_at": m.started_at,
            }
            for m in call.monitors
            if m.ended_at is None
        ],
        "can_monitor": any(
            leg.ended_at is None and leg.answered_at is not None for leg in call.agent_legs()
        ),
    }


@dataclass
class Coaching:
    """A call's coaching as its consoles show it."""

    prompts: list[dict[str, Any]] = field(default_factory=list)
    transcript: list[dict[str, Any]] = field(default_factory=list)  # final lines
    cant_check: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> why
    taps: dict[str, dict[str, Any]] = field(default_factory=dict)  # speaker -> state
    notice: str | None = None
    summary: dict[str, Any] | None = None  # the end-of-call "coaching" message

    def to_json(self, card: CallCard) -> dict[str, Any]:
        done = {k for k, v in card.checklist.items() if v.get("done")}
        return {
            "prompts": self.prompts,
            "transcript": sorted(self.transcript, key=lambda e: (e["start"], e["end"])),
            "cant_check": [
                x for x in self.cant_check.values() if not (x["kind"] == "item" and x["id"] in done)
            ],
            "taps": list(self.taps.values()),
            "notice": self.notice,
            "summary": self.summary,
        }


class ConsoleView:
    """Per-call view state and its JSON; see the module docstring."""

    def __init__(self, hub: ConsoleHub, pop: ScriptPop) -> None:
        self.hub = hub
        self.pop = pop
        self.coaching: dict[str, Coaching] = {}
        # AMI event in -> the first card of a call on the agent's console (/metrics).
        self.pop_latency = Histogram(POP_BUCKETS)
        self._timed: OrderedDict[tuple[str, str], None] = OrderedDict()
        # Told every coaching message (call id, message, keep): a controller of
        # several instances sends them on to the web fronts (cluster/roles.py).
        self._coaching_listeners: list[Callable[[str, dict[str, Any], bool], None]] = []
        hub.on_sent = self._sent

    def subscribe_coaching(self, listener: Callable[[str, dict[str, Any], bool], None]) -> None:
        self._coaching_listeners.append(listener)

    # ------------------------------------------------------------ cards
    def card_changed(self, login: str, call_id: str, card: CallCard | None) -> None:
        self.hub.to_login(
            login, message("card", call_id=call_id, card=card_json(card) if card else None)
        )
        if card is None and not self.pop.cards_of(call_id):
            self.coaching.pop(call_id, None)

    def cards_for(self, login: str) -> list[dict[str, Any]]:
        """An agent's cards with each call's coaching so far (a reload loses nothing)."""
        out = []
        for card in self.pop.cards_for(login):
            coaching = self.coaching.get(card.call_id)
            out.append(
                {**card_json(card), "coaching": coaching.to_json(card) if coaching else None}
            )
        return out

    def _sent(self, client: Client, sent: dict[str, Any]) -> None:
        card = sent.get("card") if sent.get("type") == "card" else None
        if not card or card.get("phase") != "ringing":
            return
        key = (client.login, str(sent.get("call_id")))
        if key in self._timed:
            return
        self._timed[key] = None
        if len(self._timed) > 10_000:
            self._timed.popitem(last=False)
        received = (card.get("timing") or {}).get("ami_received_at")
        if received:
            self.pop_latency.observe(max(0.0, sent["sent_at"] - received))

    # ------------------------------------------------------------ the supervisors' board
    def board_entry(self, call: Call) -> dict[str, Any]:
        return board_entry(call, self.pop.script_of(call.call_id))

    def call_event(self, event: CallEvent) -> None:
        entry = self.board_entry(event.call)
        self.hub.to_supervisors(
            message("board_ended", call=entry)
            if isinstance(event, CallEnded)
            else message("board_call", call=entry)
        )

    # ------------------------------------------------------------ coaching (CoachingConsole)
    def _to_call(self, call_id: str, sent: dict[str, Any]) -> None:
        for login in self.pop.owners(call_id):
            self.hub.to_login(login, sent)

    def _of(self, call_id: str) -> Coaching:
        """The call's coaching state; kept only while the call is on a console."""
        if not self.pop.cards_of(call_id):
            return Coaching()  # nobody to show it to: not kept
        return self.coaching.setdefault(call_id, Coaching())

    def coaching_message(self, call_id: str, sent: dict[str, Any], keep: bool = True) -> None:
        """One coaching message of a call: kept in the call's state when it still
        matters for a console that reloads (``keep``), pushed to the agents on
        the call. Every CoachingConsole method below ends here; a web front of
        several instances gets the controllers' messages through it too."""
        if keep:
            c = self._of(call_id)
            kind = sent["type"]
            if kind == "transcript":
                c.transcript.append(sent)
            elif kind == "prompt":
                c.prompts.append(sent)
            elif kind == "cant_check":
                c.cant_check[sent["id"]] = sent
            elif kind == "tap":
                c.taps[sent["speaker"]] = sent
            elif kind == "capacity":
                c.notice = sent["notice"]
            elif kind == "coaching":
                c.summary = sent
        for listener in self._coaching_listeners:
            try:
                listener(call_id, sent, keep)
            except Exception:
                log.exception("call %s: a coaching listener failed", call_id)
        self._to_call(call_id, sent)

    def transcript(self, u: "Utterance", text: str) -> None:
        line = message(
            "transcript",
            call_id=u.call_id,
            speaker=u.speaker,
            utterance_id=f"{u.source[0]}{u.start:.2f}",
            text=text,
            final=u.final,
            start=u.start,
            end=u.end,
            source=u.source,
        )
        self.coaching_message(u.call_id, line, keep=u.final)  # only final lines are kept

    def prompt(self, prompt: "Prompt") -> None:
        self.coaching_message(prompt.call_id, message("prompt", **prompt.to_dict()))

    def cant_check(self, c: "CantCheck") -> None:
        self.coaching_message(c.call_id, message("cant_check", **c.to_dict()))

    def tap(self, status: "TapStatus", keep: bool) -> None:
        """A party's tap changed; ``keep``: it still matters for a console that reloads."""
        sent = message(
            "tap",
            call_id=status.call_id,
            speaker=status.speaker,
            state=status.state,
            reason=status.reason,
        )
        self.coaching_message(status.call_id, sent, keep)

    def capacity(self, call_id: str, level: int, notice: str, keep: bool) -> None:
        sent = message("capacity", call_id=call_id, level=level, notice=notice)
        self.coaching_message(call_id, sent, keep)

    def coached(self, result: "CallCoaching") -> None:
        sent = message(
            "coaching",
            call_id=result.call_id,
            adherence=result.score,
            checklist=result.checklist_by_id,
            cant_check=result.cant_check,
        )
        self.coaching_message(result.call_id, sent)

    def restored(self, call_id: str, live: dict[str, Any]) -> None:
        """After a service restart: the coaching a call had so far (CoachingEngine.live)."""
        c = self._of(call_id)
        c.prompts = [message("prompt", **p) for p in live.get("prompts") or []]
        c.transcript = [{**line, "call_id": call_id} for line in live.get("transcript") or []]
        c.cant_check = {
            x["id"]: message("cant_check", call_id=call_id, **x)
            for x in live.get("cant_check") or []
        }
