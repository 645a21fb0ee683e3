"""Coaching rule files: the shipped ones load, and every mistake is file:line: field: reason."""
from __future__ import annotations

from pathlib import Path

import pytest

from ivr.coaching import CoachingEngine, RuleLibrary, check_rules, load_ruleset, parse_ruleset
from ivr.coaching.model import (CUSTOMER_PHRASE, DEAD_AIR, FORBIDDEN_PHRASE, MONOLOGUE,
                                REQUIRED_PHRASE, RULE_TYPES, SPEAKING_RATE, TALK_OVER)
from ivr.scripts.library import ScriptLibrary
from ivr.yamlfile import YamlError

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"
RULES = SCRIPTS / "rules"


def problems(text: str) -> list[str]:
    rs, probs = parse_ruleset(text, "F")
    assert (rs is None) == bool(probs)
    return [str(p) for p in probs]


# ------------------------------------------------------------ the shipped files
def test_shipped_rule_files_load_without_problems():
    lib = RuleLibrary.load(RULES)
    assert lib.problems() == [] and check_rules(RULES) == []
    assert set(lib.sets) >= {"seed.en", "seed.ko", "acme.en", "acme.ko"}
    for set_id in ("seed.en", "seed.ko"):
        rs = lib.sets[set_id]
        assert rs.default and {r.type for r in rs.rules} == set(RULE_TYPES), set_id


def test_each_language_has_a_default_and_projects_get_their_own():
    lib = RuleLibrary.load(RULES)
    assert lib.ruleset_for("acme-support", "en").id == "acme.en"
    assert lib.ruleset_for("some-other-project", "en").id == "seed.en"
    assert lib.ruleset_for("acme-support", "ko").id == "acme.ko"
    assert lib.ruleset_for("", "ko").id == "seed.ko"
    assert lib.ruleset_for("acme-sales", "en-GB").id == "acme.en"       # base language
    empty = lib.ruleset_for("acme-support", "hu")
    assert empty.rules == () and empty.language == "hu"


def test_project_sets_extend_the_seed_and_add_brand_rules():
    lib = RuleLibrary.load(RULES)
    seed, acme = lib.sets["seed.en"], lib.sets["acme.en"]
    ids = [r.id for r in acme.rules]
    assert ids[:len(seed.rules)] == [r.id for r in seed.rules]
    assert {"other_organisation", "brand_vocabulary"} <= set(ids)
    other = acme.rule("other_organisation")
    assert other.type == FORBIDDEN_PHRASE and "Vodafone" in other.param("names")
    assert acme.rule("brand_vocabulary").param("replace")["cheap"] == "great value"
    # the checklist prompts come with the seed
    assert acme.item_prompt("named_company").text == "You have not named the company yet."
    assert acme.item_prompt("unknown_item").text == "Not yet: {label}"


def test_korean_seed_prompts_are_korean_and_spots_only_the_reliable_phrases():
    lib = RuleLibrary.load(RULES)
    ko = lib.sets["seed.ko"]
    assert ko.rule("customer_abusive").param("phrases") == ("바보", "멍청이", "꺼져")
    assert "침착하고 정중하게" in ko.rule("customer_abusive").text
    assert ko.rule("speaking_rate").param("unit") == "syllables"
    engine = CoachingEngine(lib.ruleset_for, lambda p: None, lambda t: None)
    spotted = engine.spotting_phrases({"project": "acme-support", "language": "ko",
                                       "direction": "inbound", "checklist": []})
    assert spotted == ["바보", "멍청이", "꺼져"]


def test_script_library_does_not_read_the_rules_subfolder():
    lib = ScriptLibrary(SCRIPTS)
    report = lib.reload()
    assert lib.problems() == []
    assert all(p.parent == SCRIPTS for p in lib.files())
    assert not any("rules" in f for f in report.changed)
    assert "seed.en" not in {s.id for s in lib.scripts()}


# ------------------------------------------------------------ the format
BASE = """\
id: demo
language: en
default: true
checklist:
  text: "Not yet: {label}"
  items:
    named_company: {text: Say the company name, severity: critical}
rules:
  - id: rude
    type: customer_phrase
    text: Stay calm.
    severity: critical
    reason: Composure.
    phrases: [idiot, stupid]
    repeat_after: 60
  - id: apology
    type: required_phrase
    text: Apologise.
    after: [too expensive]
    within: 20
    phrases: [sorry]
  - id: close
    type: required_phrase
    text: Thank them.
    phrases: [thank you]
    item: thanked
    closing: {customer: [goodbye], wait: 3}
  - id: words
    type: forbidden_phrase
    text: 'Say "{preferred}", not "{phrase}".'
    replace: {cheap: great value}
    directions: [outbound]
    spot: false
  - {id: over, type: talk_over, text: Let them finish, overlap: 1.5}
  - {id: quiet, type: dead_air, text: Say something}
  - {id: long, type: monologue, text: Ask a question, seconds: 30}
  - {id: fast, type: speaking_rate, text: Slow down, max: 170}
"""


def test_base_parses_into_typed_rules():
    rs, probs = parse_ruleset(BASE, "F")
    assert probs == [] and rs.id == "demo" and rs.default
    by_id = {r.id: r for r in rs.rules}
    assert [r.type for r in rs.rules] == [CUSTOMER_PHRASE, REQUIRED_PHRASE, REQUIRED_PHRASE,
                                          FORBIDDEN_PHRASE, TALK_OVER, DEAD_AIR, MONOLOGUE,
                                          SPEAKING_RATE]
    assert by_id["rude"].severity == "critical" and by_id["rude"].repeat_after == 60.0
    assert by_id["rude"].param("phrases") == ("idiot", "stupid") and by_id["rude"].line == 9
    assert by_id["apology"].param("after") == ("too expensive",)
    assert by_id["close"].param("closing") == {"agent": (), "customer": ("goodbye",), "wait": 3.0}
    assert by_id["words"].directions == ("outbound",) and by_id["words"].spot is False
    assert by_id["over"].param("overlap") == 1.5
    assert by_id["quiet"].param("seconds") == 8.0                     # defaults filled in
    assert by_id["long"].param("max_pause") == 2.0
    assert by_id["fast"].param("unit") == "words" and by_id["fast"].param("max") == 170.0
    assert rs.item_prompt("named_company").severity == "critical"


def test_every_mistake_names_file_line_and_field():
    text = BASE.replace("    severity: critical\n    reason: Composure.",
                        "    severity: urgent\n    reason: Composure for {name}.") \
        .replace("    within: 20\n", "") \
        .replace("type: dead_air", "type: dead_aire") \
        .replace("seconds: 30", "seconds: -3") \
        .replace("max: 170", "max: 170, unit: letters") \
        .replace("    item: thanked\n", "    item: thanked\n    repeat: 5\n")
    assert problems(text) == [
        "F:12: rules[0].severity: must be one of info, warning, critical; not 'urgent'",
        "F:13: rules[0].reason: unknown placeholder {name} (this type knows: {phrase}, "
        "{department})",
        "F:19: rules[1].within: missing (seconds after the customer's phrase by which the "
        "agent must answer)",
        "F:26: rules[2].repeat: unknown key for a required_phrase rule (did you mean "
        "repeat_after?)",
        "F:35: rules[5].type: must be one of required_phrase, forbidden_phrase, "
        "customer_phrase, talk_over, dead_air, monologue, speaking_rate; not 'dead_aire' "
        "(did you mean dead_air?)",
        "F:36: rules[6].seconds: must be greater than 0",
        "F:37: rules[7].unit: must be one of words, syllables; not 'letters'"]


def test_phrase_lists_duplicates_and_broken_items():
    text = BASE.replace("phrases: [idiot, stupid]", "phrases: [idiot, {oops: x}]") \
        .replace("  - id: apology", "  - id: rude") \
        + "  - just a text\n  - {id: x, type: customer_phrase, text: Hi, phrases: []}\n"
    assert problems(text) == [
        "F:14: rules[0].phrases[1]: must be text, not a mapping (a ': ' inside a text makes "
        "it a mapping; put the text in quotes)",
        "F:16: rules[1].id: duplicate rule id 'rude': already used (line 9)",
        "F:38: rules[8]: must be a mapping (id, type, text, ...), not text",
        "F:39: rules[9].phrases: must not be empty (what the customer says)"]


def test_missing_parameters_per_type():
    text = """\
id: t
language: en
projects: [p]
rules:
  - {id: a, type: required_phrase, text: x}
  - {id: b, type: customer_phrase, text: x}
  - {id: c, type: forbidden_phrase, text: x}
  - {id: d, type: speaking_rate, text: x}
  - {id: e, type: forbidden_phrase, text: x, patterns: ["this is it"]}
  - {id: checklist.x, type: dead_air}
  - {id: f, type: required_phrase, text: x, phrases: [a], after: [b], within: 5,
     closing: {customer: [bye]}}
"""
    assert problems(text) == [
        "F:5: rules[0].phrases: missing (what the agent must say)",
        "F:6: rules[1].phrases: missing (what the customer says)",
        "F:7: rules[2].phrases: missing: give phrases (never say), replace (word: preferred "
        "word) or names (another organisation's names)",
        "F:8: rules[3].max: missing (the most words or syllables per minute)",
        "F:9: rules[4].phrases: missing: give phrases (never say), replace (word: preferred "
        "word) or names (another organisation's names)",
        "F:9: rules[4].patterns[0]: 'this is it' has no {name} (where the organisation's "
        "name goes)",
        "F:9: rules[4].names: missing (patterns need names to fill {name})",
        "F:10: rules[5].id: ids starting with 'checklist.' are the script checklist's own; "
        "choose another",
        "F:10: rules[5].text: missing (the prompt the agent sees)",
        "F:12: rules[6].closing: a rule with after: is already timed from the customer's "
        "phrase; closing: cannot be used with it"]


def test_top_level_mistakes():
    assert problems("") == ["F: the file is empty: a rule set needs id, language and rules"]
    assert problems("- a\n- b\n") == [
        "F:1: a rule set must be a mapping (id: ..., language: ..., rules: [...]), not a list"]
    assert problems("id: x\nlanguage: english\nrules: []\nlanguages: [en]\n") == [
        "F:1: projects: missing: name the projects this set is for, or say default: true",
        "F:2: language: must be a language code such as en or ko",
        "F:4: languages: unknown key (did you mean language?)"]
    assert problems("id: x\nlanguage: en\ndefault: true\nrules: [\n") == [
        "F:5: YAML syntax: while parsing a flow node: expected the node content, "
        "but found '<stream end>'"]
    assert problems("id: x\nlanguage: en\ndefault: true\nchecklist:\n  text: 'Hi {nme}'\n"
                    "rules: []\n") == [
        "F:5: checklist.text: unknown placeholder {nme} (this type knows: {label}, {within}, "
        "{item})"]


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_folder_extends_overrides_and_drops(tmp_path):
    write(tmp_path, "base.yaml", BASE)
    write(tmp_path, "proj.yaml", """\
id: proj
language: en
extends: demo
projects: [sales]
rules:
  - {id: rude, type: customer_phrase, text: Breathe., phrases: [moron]}
  - {id: quiet, enabled: false}
  - {id: extra, type: customer_phrase, text: "Transfer to {department}", phrases: [refund],
     department: billing}
""")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "ignored.yaml", "not: a rule set\n")
    lib = RuleLibrary.load(tmp_path)
    proj = lib.ruleset_for("sales", "en")
    assert [r.id for r in proj.rules] == ["rude", "apology", "close", "words", "over", "long",
                                          "fast", "extra"]
    assert proj.rule("rude").text == "Breathe." and proj.rule("rude").param("phrases") == \
        ("moron",)
    assert proj.item_prompt("named_company").text == "Say the company name"   # inherited
    assert lib.ruleset_for("support", "en").id == "demo"


def test_folder_level_problems_name_the_file_and_line(tmp_path):
    write(tmp_path, "a.yaml", BASE)
    write(tmp_path, "b.yaml", BASE.replace("id: demo", "id: other"))
    write(tmp_path, "c.yaml", "id: c\nlanguage: en\nextends: demoo\nprojects: [p]\n")
    write(tmp_path, "d.yaml", "id: d\nlanguage: ko\nextends: demo\nprojects: [p]\n")
    write(tmp_path, "e.yaml", "id: e\nlanguage: en\nprojects: [p]\nextends: f\n")
    write(tmp_path, "f.yaml", "id: f\nlanguage: en\nprojects: [q]\nextends: e\n")
    write(tmp_path, "g.yaml", "id: g\nlanguage: en\nextends: demo\nprojects: [s]\n"
                              "rules:\n  - {id: nothing, enabled: false}\n")
    with pytest.raises(YamlError) as err:
        RuleLibrary.load(tmp_path)
    got = sorted(str(p).replace(str(tmp_path) + "/", "") for p in err.value.problems)
    assert got == [
        "b.yaml:3: default: a second default for 'en' (the first is a.yaml)",
        "c.yaml:3: extends: no rule set 'demoo' (did you mean demo?)",
        "d.yaml:3: extends: 'demo' is in 'en', this set in 'ko': prompts would mix languages",
        "e.yaml:4: extends: circular: f -> e -> f",
        "f.yaml:4: extends: circular: e -> f -> e",
        "g.yaml:5: rules: 'nothing' has enabled: false but 'demo' has no such rule to drop",
    ]


def test_load_one_file_and_missing_folder(tmp_path):
    path = write(tmp_path, "x.yaml", BASE)
    assert load_ruleset(path).id == "demo"
    with pytest.raises(YamlError, match="cannot read"):
        load_ruleset(tmp_path / "nope.yaml")
    assert [str(p) for p in check_rules(tmp_path / "nope")] == [
        f"{tmp_path / 'nope'}: the rules folder does not exist"]
    (tmp_path / "empty").mkdir()
    assert [str(p) for p in check_rules(tmp_path / "empty")] == [
        f"{tmp_path / 'empty'}: no rule sets (*.yaml) in this folder"]


async def test_rule_files_hot_reload_on_their_own_and_keep_the_last_good_version(tmp_path):
    import asyncio

    from ivr.coaching.rules import RuleLibrary
    rules = tmp_path / "rules"
    rules.mkdir()
    f = rules / "seed.en.yaml"
    f.write_text("id: seed.en\nlanguage: en\ndefault: true\nrules:\n"
                 "  - {id: calm, type: customer_phrase, text: Stay calm, phrases: [idiot]}\n")
    lib = RuleLibrary(rules)
    assert lib.reload() == []
    seen: list[list] = []
    task = asyncio.ensure_future(lib.watch(interval=0.05, on_change=seen.append))
    try:
        f.write_text(f.read_text().replace("Stay calm", "Keep your voice low"))
        for _ in range(60):
            await asyncio.sleep(0.05)
            if lib.ruleset_for("p", "en").rule("calm").text == "Keep your voice low":
                break
        assert lib.ruleset_for("p", "en").rule("calm").text == "Keep your voice low"
        assert seen and seen[-1] == []
        f.write_text("id: seed.en\nlanguage: en\ndefault: true\nrules:\n  - {id: calm, type: nope}\n")
        for _ in range(60):
            await asyncio.sleep(0.05)
            if lib.problems():
                break
        problems = [str(p) for p in lib.problems()]
        assert any("type" in p for p in problems) and any("last good" in p for p in problems)
        # ... while calls keep the last good rules
        assert lib.ruleset_for("p", "en").rule("calm").text == "Keep your voice low"
    finally:
        task.cancel()
