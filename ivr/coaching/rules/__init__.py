"""Coaching rule files: YAML in ``scripts/rules/``, checked strictly, every
complaint as ``file:line: field: reason``.

One file is one rule set for one language::

    id: seed.en
    language: en
    default: true                 # the set for English calls of projects without their own
    # projects: [acme-support]    # or: the projects this set is for
    # extends: seed.en            # start from another set: same id replaces, enabled: false drops
    checklist:                    # prompts for the script's checklist items that have `within`
      text: "Not yet: {label}"
      items:
        named_company: {text: You have not named the company yet, severity: critical}
    rules:
      - id: negative_phrasing
        type: forbidden_phrase
        text: Say what you CAN do instead.
        severity: warning
        reason: Negative phrasing makes the customer feel refused.
        phrases: [i can't, impossible, no idea]

Which set a call gets (``RuleLibrary.ruleset_for(project, language)``): the
set naming the call's project in that language, else the language's default
set, else (for "en-GB") the same for "en", else an empty set.
"""

from .library import RuleLibrary, check_rules
from .loader import load_ruleset, parse_ruleset

__all__ = ["RuleLibrary", "check_rules", "load_ruleset", "parse_ruleset"]
