"""Live coaching: rule files (rules.py), phrase matching (matcher.py), the per-call
engine that turns both sides' speech into prompts and checklist ticks
(engine.py), and the adherence score (score.py). See scripts/README.md,
"Coaching rules", for the rule-file format.
"""
from .engine import CoachingEngine, rule_phrases
from .model import (CRITICAL, INFO, RULE_TYPES, WARNING, CallCoaching, ChecklistPrompt, Prompt,
                    Rule, RuleSet, Tick, empty_ruleset)
from .rules import RuleLibrary, check_rules, load_ruleset, parse_ruleset
from .score import adherence

__all__ = ["CoachingEngine", "CallCoaching", "ChecklistPrompt", "Prompt", "Rule", "RuleSet",
           "Tick", "RuleLibrary", "RULE_TYPES", "INFO", "WARNING", "CRITICAL", "adherence",
           "check_rules", "empty_ruleset", "load_ruleset", "parse_ruleset", "rule_phrases"]
