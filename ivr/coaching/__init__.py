"""Live coaching: both parties' speech in, prompts and checklist ticks out.

model.py     what coaching is made of: rules, prompts, ticks, a call's record
types/       the rule types, one module each (parameters, placeholders, phrases,
             what each does on speech and on the clock), found by its registry
rules/       rule files: loader.py (one YAML file, checked) and library.py (a
             folder: extends, defaults, hot reload)
matcher.py   finding phrases in what was said
engine.py    the per-call engine: shared machinery (checklist, audio clock and
             deadlines, speech timing and turns, firing prompts) that drives the types
score.py     the adherence score

See scripts/README.md, "Coaching rules", for the rule-file format.
"""

from .engine import CoachingEngine
from .model import (
    CRITICAL,
    INFO,
    WARNING,
    CallCoaching,
    ChecklistPrompt,
    Prompt,
    Rule,
    RuleSet,
    Tick,
    empty_ruleset,
)
from .rules import RuleLibrary, check_rules, load_ruleset, parse_ruleset
from .score import adherence
from .types import RULE_TYPES, rule_phrases

__all__ = [
    "CoachingEngine",
    "CallCoaching",
    "ChecklistPrompt",
    "Prompt",
    "Rule",
    "RuleSet",
    "Tick",
    "RuleLibrary",
    "RULE_TYPES",
    "INFO",
    "WARNING",
    "CRITICAL",
    "adherence",
    "check_rules",
    "empty_ruleset",
    "load_ruleset",
    "parse_ruleset",
    "rule_phrases",
]
