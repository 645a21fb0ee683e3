"""required_phrase: the agent must say one of ``phrases``, by a deadline.

The deadline is ``within`` seconds of the answer; or, with ``after:``, within
seconds of the customer saying one of those phrases (e.g. an apology after a
declined offer); or ``closing.wait`` seconds after the call starts closing (a
closing phrase of either party; e.g. thanks at the close). ``item:`` ties it to a
script checklist item: saying the phrase ticks the item, ticking the item
satisfies the rule. Only the agent's speech satisfies it; ``after:`` and the
customer's closing phrases are what the customer says.

    - id: apology_after_decline
      type: required_phrase
      text: 'The offer did not suit: apologise.'
      after: [too expensive, not interested]
      within: 20
      phrases: [sorry, i apologise]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...yamlfile import DocPath
from ..matcher import PhraseSet
from ..model import AGENT, CUSTOMER, Rule, round_time, show_number
from ..score import CANT_CHECK
from .base import UNHEARABLE, Hears, RuleType, none_heard
from .params import Number, Param, RuleChecker, Text, Texts

if TYPE_CHECKING:
    from ..engine import LiveCall


@dataclass(frozen=True)
class _After(Texts):
    """What the customer says that starts the clock: then ``within`` is needed."""

    def read(self, c: RuleChecker, d: dict, path: DocPath, out: dict[str, Any]) -> None:
        super().read(c, d, path, out)
        if self.key in d and "within" not in d:
            c.add(
                c.line(d, self.key),
                (*path, "within"),
                "missing (seconds after the customer's phrase by which the agent must answer)",
            )


@dataclass(frozen=True)
class _Closing(Param):
    """agent/customer: phrases that show the call is closing; wait: seconds after."""

    def read(self, c: RuleChecker, d: dict, path: DocPath, out: dict[str, Any]) -> None:
        if self.key not in d:
            return
        if "after" in d:
            c.add(
                c.line(d, self.key),
                (*path, self.key),
                "a rule with after: is already timed from the customer's phrase; "
                "closing: cannot be used with it",
            )
            return
        out[self.key] = self.value(c, d, path)

    def value(self, c: RuleChecker, d: dict, path: DocPath) -> dict[str, Any] | None:
        value = d.get(self.key)
        cpath: DocPath = (*path, self.key)
        if not isinstance(value, dict):
            c.add(
                c.line(d, self.key),
                cpath,
                "must be a mapping: agent/customer: [phrases that show the call is closing], "
                "wait: seconds",
            )
            return None
        c.known_keys(value, ("agent", "customer", "wait"), cpath)
        out: dict[str, Any] = {"agent": (), "customer": (), "wait": 5.0}
        for side in ("agent", "customer"):
            if side in value:
                out[side] = c.texts(value, side, cpath, f"what the {side} says when closing")
        if not out["agent"] and not out["customer"]:
            c.add(c.line(value), cpath, "names no closing phrases (give agent: or customer:)")
            return None
        if "wait" in value:
            wait = c.number(value, "wait", cpath)
            if wait is not None:
                out["wait"] = wait
        return out


class RequiredPhrase(RuleType):
    name = "required_phrase"
    rank = 10
    params = (
        Texts("phrases", required="what the agent must say"),
        Number("within"),
        _After("after", what="what the customer says that starts the clock"),
        Text("item"),
        _Closing("closing"),
    )
    placeholders = ("phrase", "within")

    @classmethod
    def listens(cls, rule: Rule) -> tuple[list[str], list[str]]:
        closing = rule.param("closing") or {}
        agent = [*rule.param("phrases", ()), *closing.get("agent", ())]
        customer = [*(rule.param("after", ()) or ()), *closing.get("customer", ())]
        return agent, customer

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        self.phrases = PhraseSet(rule.param("phrases", ()))
        self.after = PhraseSet(rule.param("after")) if rule.param("after") else None
        closing = rule.param("closing")
        self.closing_agent = PhraseSet(closing.get("agent", ())) if closing else None
        self.closing_customer = PhraseSet(closing.get("customer", ())) if closing else None
        self.phrase: str | None = None
        self.via_item = False  # satisfied because its checklist item was done
        self.triggered_at: float | None = None
        self.trigger = ""
        self.closing_at: float | None = None

    def unhearable(self, hears: Hears) -> str | None:
        if self.phrases and none_heard(hears, self.phrases.texts, AGENT):
            return f"{UNHEARABLE} ({', '.join(self.phrases.texts)})"
        if self.after is not None and none_heard(hears, self.after.texts, CUSTOMER):
            return f"{UNHEARABLE}: the customer's {', '.join(self.after.texts)}"
        agent = self.closing_agent.texts if self.closing_agent else []
        customer = self.closing_customer.texts if self.closing_customer else []
        if (
            self.after is None
            and self.rule.param("within") is None
            and (self.closing_agent or self.closing_customer)
            and none_heard(hears, agent, AGENT)
            and none_heard(hears, customer, CUSTOMER)
        ):
            # Timed only from the call's closing, which can never be heard.
            return f"{UNHEARABLE}: the closing ({', '.join([*agent, *customer])})"
        return None

    def agent_said(self, call: "LiveCall", u: Any, said: Any) -> None:
        self._heard(call, said)
        if self.closing_agent and self.closing_at is None:
            hits = self.closing_agent.in_said(said)
            if hits:
                self.closing_at = hits[0].at

    def _heard(self, call: "LiveCall", said: Any) -> None:
        if self.satisfied_at is not None:
            return
        if self.after is not None and self.triggered_at is None:
            return  # an answer to nothing yet
        for h in self.phrases.in_said(said):
            if (
                self.after is not None
                and self.triggered_at is not None
                and h.at < self.triggered_at
            ):
                continue  # said before the customer's trigger
            self.satisfied_at, self.phrase = h.at, h.phrase
            item = call.items.get(self.rule.param("item") or "")
            if item is not None and not item.done:
                call.tick_item(item, h)  # the rule ticks its checklist item
            return

    def customer_said(self, call: "LiveCall", u: Any, said: Any, partial: bool) -> None:
        if partial:
            return
        if self.after is not None and self.triggered_at is None:
            hits = self.after.in_said(said)
            if hits:
                self.triggered_at, self.trigger = hits[0].at, u.text
        if self.closing_customer and self.closing_at is None:
            hits = self.closing_customer.in_said(said)
            if hits:
                self.closing_at = hits[0].at

    def items_changed(self, call: "LiveCall") -> None:
        item = call.items.get(self.rule.param("item") or "")
        if item is None or self.rule.param("after"):
            return
        if item.done and self.satisfied_at is None:
            self.satisfied_at, self.phrase, self.via_item = item.at, item.phrase, True
        elif not item.done and self.via_item:
            self.satisfied_at, self.phrase, self.via_item = None, None, False

    def deadline(self, call: "LiveCall", wall: float) -> None:
        r = self.rule
        if self.satisfied_at is not None:
            return
        item_id = r.param("item")
        if item_id and item_id in call.items and call.items[item_id].done:
            return
        deadline = None
        within = r.param("within")
        if self.after is not None:
            if self.triggered_at is not None:
                deadline = self.triggered_at + within
        elif within is not None:
            deadline = within
        if self.closing_at is not None:
            closing = self.closing_at + r.param("closing", {}).get("wait", 5.0)
            deadline = closing if deadline is None else min(deadline, closing)
        if deadline is None or not call.judge(deadline, wall, self, r.id):
            return
        phrases = r.param("phrases", ())
        if self.after is not None:
            evidence = self.trigger
        elif self.closing_at is not None and (within is None or deadline < within):
            evidence = "the call is closing"
        else:
            evidence = f"not said within {show_number(within)} s"
        call.fire(
            r,
            max(deadline, call.heard_until[AGENT]),
            values={"phrase": phrases[0] if phrases else "", "within": within},
            evidence=evidence,
            item_id=item_id if item_id in call.items else None,
        )

    def record(self) -> dict[str, Any]:
        r = self.rule
        if self.satisfied_at is not None:
            status = "done"
        elif self.cant_check:
            status = CANT_CHECK
        elif r.param("after") and self.triggered_at is None:
            status = "not_triggered"
        else:
            status = "missed"
        return {
            "id": r.id,
            "type": r.type,
            "status": status,
            "at": round_time(self.satisfied_at) if self.satisfied_at is not None else None,
            "phrase": self.phrase,
            "item": r.param("item"),
            "cant_check": self.cant_check if status == CANT_CHECK else None,
        }
