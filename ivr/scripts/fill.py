"""A script filled in for one call and one agent, as JSON for the agent's page.

Texts become lists of segments so a value we do not have is shown as missing
(the agent sees a marked gap and asks or skips it) instead of being read aloud
as an empty string:  [{"text": "Hello, "}, {"var": "customer_name", "value": null}].

Where values come from (first non-empty wins):
  company          script's `company:` > channel variable COMPANY
  department       call.department
  agent_name, operator_id, agent_position   the signed-in agent (User)
  customer_name    customer list > channel variable CUSTOMER_NAME > caller ID
                   name (only if it has letters and is not just the number)
  customer_number  call.customer_num (outbound: the number dialled)
  campaign         call.campaign
  declared fields  channel variable (name as is or upper-case) > customer list
                   column > the field's default

The shape (Segments = [{"text": str} | {"var": str, "value": str | None}]):
  {"id", "title", "project", "version", "description": str,
   "kind": "strict" | "flexible", "language": "en", "direction": "inbound" | "outbound",
   "steps": [{"id", "title", "text": Segments | None, "points": [Segments],
              "note": Segments | None, "replies": [{"when": Segments, "say": Segments}]}],
   "checklist": [{"id", "label", "step", "weight": float, "within": float | None,
                  "phrases": {"en": [str]}}],
   "dispositions": [{"id", "label", "needs_callback_time": bool, "needs_note": bool}],
   "variables": {name: str | None},     # every variable the texts use
   "missing": [name],                   # those without a value, in reading order
   "customer": {"number", "name", <other columns>} | None}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..calls.model import Call
from ..calls.numbers import normalise
from . import template
from .customers import Customer, CustomerDirectory
from .model import BUILTIN_VARIABLES, Script

if TYPE_CHECKING:
    from ..users import User


def _clean(value: Any) -> str | None:
    """Empty or blank counts as missing: an empty string must never reach the agent."""
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def _channel_var(call: Call, name: str) -> str | None:
    return _clean(call.variables.get(name)) or _clean(call.variables.get(name.upper()))


def _caller_id_name(call: Call) -> str | None:
    name = _clean(call.customer_name)
    if not name or not any(ch.isalpha() for ch in name):
        return None
    if normalise(name) and normalise(name) == normalise(call.customer_num):
        return None
    return name


def variable_values(
    script: Script, call: Call, user: "User | None", customer: Customer | None
) -> dict[str, str | None]:
    """Every variable the script may use, with its value for this call (None: missing)."""
    extra = customer.fields if customer else {}
    values: dict[str, str | None] = {
        "company": _clean(script.company) or _channel_var(call, "COMPANY"),
        "department": _clean(call.department),
        "agent_name": _clean(getattr(user, "name", None)),
        "operator_id": _clean(getattr(user, "operator_id", None)),
        "agent_position": _clean(getattr(user, "position", None)),
        "customer_name": (
            _clean(customer.name if customer else None)
            or _channel_var(call, "CUSTOMER_NAME")
            or _caller_id_name(call)
        ),
        "customer_number": _clean(call.customer_num) or _clean(call.dialled),
        "campaign": _clean(call.campaign),
    }
    assert values.keys() == BUILTIN_VARIABLES.keys()
    for f in script.fields:
        values[f.name] = (
            _channel_var(call, f.name) or _clean(extra.get(f.name)) or _clean(f.default)
        )
    return values


def fill(
    script: Script, call: Call, user: "User | None", customers: CustomerDirectory | None
) -> dict:
    """The script for this call, JSON-serialisable (shape: see the module docstring)."""
    number = call.customer_num or call.dialled
    customer = customers.lookup(number) if customers is not None and number else None
    values = variable_values(script, call, user, customer)
    used: dict[str, None] = {}  # ordered set: missing ones in reading order

    def segs(text: str | None) -> list[dict] | None:
        if text is None:
            return None
        out = template.segments(text, values)
        for seg in out:
            if "var" in seg:
                used[seg["var"]] = None
        return out

    steps = [
        {
            "id": s.id,
            "title": s.title,
            "text": segs(s.text),
            "points": [segs(p) for p in s.points],
            "note": segs(s.note),
            "replies": [{"when": segs(r.when), "say": segs(r.say)} for r in s.replies],
        }
        for s in script.steps
    ]
    checklist = [
        {
            "id": item.id,
            "label": item.label,
            "step": item.step,
            "weight": item.weight,
            "within": item.within,
            # Filled phrases to listen for; one whose variable is missing cannot be
            # heard as written, so it is left out (others of the item still count).
            "phrases": {
                lang: [t for t in (template.render(p, values) for p in phrases) if t is not None]
                for lang, phrases in item.phrases.items()
            },
        }
        for item in script.checklist
    ]
    return {
        "id": script.id,
        "title": script.title,
        "project": script.project,
        "version": script.version,
        "kind": script.kind.value,
        "language": script.language,
        "direction": script.direction.value,
        "description": script.description,
        "steps": steps,
        "checklist": checklist,
        "dispositions": [
            {
                "id": d.id,
                "label": d.label,
                "needs_callback_time": d.needs_callback_time,
                "needs_note": d.needs_note,
            }
            for d in script.dispositions
        ],
        "variables": {name: values[name] for name in used},
        "missing": [name for name in used if values[name] is None],
        "customer": customer.to_dict() if customer else None,
    }
