"""The coaching rule types, one module each; this registry finds them.

Every module of this package (but ``base`` and ``params``) defines one
``RuleType`` subclass: its parameters, placeholders, what it listens for and
what it does on a live call (see base.py). Adding a rule type is adding a
module here (and its test): the rule files, the engine, the spotting grammars
and ``ivr check`` pick it up by its ``name``.
"""

from __future__ import annotations

import importlib
import pkgutil

from ..model import AGENT, CUSTOMER, Rule
from .base import RuleType

_SHARED = {"base", "params"}


def _discover() -> dict[str, type[RuleType]]:
    found: list[type[RuleType]] = []
    for info in pkgutil.iter_modules(__path__):
        if info.name in _SHARED or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found += [
            v
            for v in vars(module).values()
            if isinstance(v, type)
            and issubclass(v, RuleType)
            and v is not RuleType
            and v.__module__ == module.__name__
            and "name" in v.__dict__
        ]
    found.sort(key=lambda t: (t.rank, t.name))
    return {t.name: t for t in found}


TYPES: dict[str, type[RuleType]] = _discover()
RULE_TYPES: tuple[str, ...] = tuple(TYPES)


def rule_type(name: str) -> type[RuleType]:
    return TYPES[name]


def rule_phrases(r: Rule, speaker: str | None = None) -> list[str]:
    """Every phrase a rule listens for in ``speaker``'s speech (either side if None)."""
    agent, customer = TYPES[r.type].listens(r)
    if speaker == AGENT:
        return agent
    if speaker == CUSTOMER:
        return customer
    return agent + customer


__all__ = ["TYPES", "RULE_TYPES", "RuleType", "rule_phrases", "rule_type"]
