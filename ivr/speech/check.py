"""`ivr check` for speech: which script and rule phrases the installed model cannot hear.

A phrase whose words are not in the model's vocabulary (whole, or split into
known pieces) can never come out of the recogniser: the checklist item or rule
that needs it is shown as "can't check" on every call (never "missed"). An admin
should know that before going live, once per script, not as a warning per
phrase per call: this is that summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..coaching.rules import RuleLibrary
from ..coaching.types import rule_phrases
from ..scripts.library import ScriptLibrary
from .recognizer import SpeechModel


@dataclass
class ScriptHearing:
    script: str  # script id
    file: str
    language: str
    phrases: int = 0  # distinct phrases its coaching listens for
    unheard: list[str] = field(default_factory=list)
    cant_check: list[str] = field(default_factory=list)  # items / rules with none heard

    def __str__(self) -> str:
        if not self.unheard:
            return (
                f"{self.file}: {self.script} ({self.language}): all {self.phrases} phrases "
                f"can be heard"
            )
        head = (
            f"{self.file}: {self.script} ({self.language}): {len(self.unheard)} of "
            f"{self.phrases} phrases are not in the model's vocabulary "
            f"({', '.join(self.unheard[:8])}{', ...' if len(self.unheard) > 8 else ''})"
        )
        if self.cant_check:
            head += f"; can't check: {', '.join(self.cant_check)}"
        return head


def check_hearing(scripts_dir: Path, model: SpeechModel) -> list[ScriptHearing]:
    library = ScriptLibrary(scripts_dir)
    library.reload()
    rules = RuleLibrary(scripts_dir / "rules")
    rules.reload()
    out = []
    for script in library.scripts():
        lang = script.language
        ruleset = rules.ruleset_for(script.project, lang)
        direction = str(getattr(script.direction, "value", script.direction))
        report = ScriptHearing(
            script.id, Path(script.source).name if script.source else script.id, lang
        )
        needs: dict[str, list[str]] = {}
        for item in script.checklist:
            phrases = [p for p in item.phrases.get(lang, ()) if "{" not in p]
            if phrases:
                needs[f"item {item.id}"] = phrases
        for rule in ruleset.rules:
            if rule.applies_to(direction) and rule_phrases(rule):
                needs[f"rule {rule.id}"] = rule_phrases(rule)
        heard: dict[str, bool] = {}
        for phrases in needs.values():
            for p in phrases:
                if p not in heard:
                    heard[p] = model.can_hear(p)
        report.phrases = len(heard)
        report.unheard = [p for p, ok in heard.items() if not ok]
        report.cant_check = [
            what for what, phrases in needs.items() if not any(heard[p] for p in phrases)
        ]
        out.append(report)
    return out
