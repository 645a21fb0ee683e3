"""Call-script format: every shipped script loads; broken ones say file:line: field: reason."""
from pathlib import Path

import pytest

from ivr.calls.model import Direction
from ivr.scripts import Kind, check_customers, check_folder, load_script, parse_script
from ivr.yamlfile import YamlError

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
SHIPPED = sorted(SCRIPTS.glob("*.yaml"))

BASE = """\
id: demo
project: demo
title: Demo script
language: en
direction: inbound
kind: strict
match:
  project: demo
fields:
  plan: Basic
steps:
  - id: greeting
    title: Greeting
    text: "{company}, {agent_name} speaking. How can I help you?"
  - id: close
    title: Close
    text: Thank you for calling, {customer_name}. Your plan is {plan}.
checklist:
  - id: offered_help
    label: Offered help
    step: greeting
    weight: 2
    within: 10
    phrases: {en: [how can i help]}
dispositions:
  - {id: resolved, label: Resolved}
  - {id: callback, label: Call back, needs_callback_time: true}
"""


def write(tmp_path: Path, text: str, name: str = "demo.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def problems(tmp_path: Path, text: str) -> list[str]:
    p = write(tmp_path, text)
    with pytest.raises(YamlError) as err:
        load_script(p)
    return [str(x).replace(str(p), "F") for x in err.value.problems]


# ------------------------------------------------------------ shipped scripts
def test_examples_are_shipped():
    names = {p.stem for p in SHIPPED}
    assert {"acme-support", "acme-sales", "acme-telesales", "acme-b2b", "acme-key-accounts",
            "acme-support-ko"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_script_loads(path):
    s = load_script(path)
    assert s.id == path.stem and s.source == str(path)
    assert s.steps and s.dispositions and s.checklist
    assert s.match.alternatives or s.match.default
    for step in s.steps:
        assert (step.text is not None) if s.kind is Kind.STRICT else step.points
    for item in s.checklist:
        assert item.phrases.get(s.language), item.id


def test_shipped_folder_and_customers_check_clean():
    assert [str(p) for p in check_folder(SCRIPTS)] == []
    assert check_customers(SCRIPTS / "customers.csv") == []


def test_one_default_per_direction_and_the_kinds_follow_the_seeds():
    scripts = {p.stem: load_script(p) for p in SHIPPED}
    defaults = {(s.direction, s.id) for s in scripts.values() if s.match.default}
    assert defaults == {(Direction.INBOUND, "acme-support"),
                        (Direction.OUTBOUND, "acme-telesales")}
    assert scripts["acme-telesales"].kind is Kind.STRICT      # B2C: word for word
    assert scripts["acme-b2b"].kind is Kind.FLEXIBLE          # B2B: talking points
    steps = [s.id for s in scripts["acme-telesales"].steps]
    assert steps.index("introduction") < steps.index("convenience") < steps.index("offer")
    assert "objections" in steps and steps[-1] == "close"


def test_korean_script_uses_short_common_korean_phrases():
    ko = load_script(SCRIPTS / "acme-support-ko.yaml")
    assert ko.language == "ko" and ko.direction is Direction.INBOUND
    phrases = {p for item in ko.checklist for p in item.phrases["ko"]}
    assert {"안녕하세요", "감사합니다", "무엇을 도와드릴까요", "에이스 텔레콤"} <= phrases
    assert "안녕하세요" in ko.step("greeting").text


# ------------------------------------------------------------ the format
def test_base_parses_into_frozen_dataclasses(tmp_path):
    s = load_script(write(tmp_path, BASE))
    assert (s.id, s.project, s.language, s.direction, s.kind) == \
        ("demo", "demo", "en", Direction.INBOUND, Kind.STRICT)
    assert s.match.alternatives[0].project == ("demo",) and not s.match.default
    assert [f.name for f in s.fields] == ["plan"] and s.fields[0].default == "Basic"
    item = s.checklist[0]
    assert (item.weight, item.within, item.phrases) == (2.0, 10.0, {"en": ("how can i help",)})
    assert s.dispositions[1].needs_callback_time and not s.dispositions[1].needs_note
    assert len(s.version) == 12 and s.version == s.digest[:12]
    with pytest.raises(AttributeError):
        s.id = "other"          # type: ignore[misc]


def test_version_changes_with_content_unless_given(tmp_path):
    v1 = load_script(write(tmp_path, BASE)).version
    v2 = load_script(write(tmp_path, BASE.replace("Demo script", "Demo"))).version
    assert v1 != v2
    assert load_script(write(tmp_path, "version: 1.10\n" + BASE)).version == "1.10"


def test_numbers_are_taken_as_written(tmp_path):
    text = BASE.replace("  project: demo\n", "  did: 0612345\n  caller_prefix: [0036, 82]\n")
    m = load_script(write(tmp_path, text)).match.alternatives[0]
    assert m.did == ("0612345",) and m.caller_prefix == ("0036", "82")


def test_match_may_list_alternatives_and_phrases_a_plain_list(tmp_path):
    text = BASE.replace("  project: demo\n", "  - {project: demo, caller_prefix: '82'}\n"
                                             "  - {did: '5550111'}\n  - default: true\n")
    text = text.replace("phrases: {en: [how can i help]}", "phrases: [how can i help]")
    s = load_script(write(tmp_path, text))
    assert [a.names() for a in s.match.alternatives] == [["project", "caller_prefix"], ["did"]]
    assert s.match.default and s.checklist[0].phrases == {"en": ("how can i help",)}


# ------------------------------------------------------------ broken scripts
def test_unknown_keys_are_errors_with_a_suggestion(tmp_path):
    got = problems(tmp_path, BASE.replace("title: Demo script", "titel: Demo script")
                   .replace("    within: 10", "    withn: 10"))
    assert got == ["F:1: title: missing (what the agent sees)",
                   "F:3: titel: unknown key (did you mean title?)",
                   "F:23: checklist[0].withn: unknown key (did you mean within?)"]


def test_wrong_types_and_bad_weights(tmp_path):
    got = problems(tmp_path, BASE.replace("weight: 2", "weight: -1")
                   .replace("within: 10", "within: soon")
                   .replace("needs_callback_time: true", "needs_callback_time: maybe")
                   .replace("direction: inbound", "direction: sideways"))
    assert got == ["F:5: direction: must be inbound or outbound, not 'sideways'",
                   "F:22: checklist[0].weight: must be greater than 0",
                   "F:23: checklist[0].within: must be a number, not text",
                   "F:27: dispositions[1].needs_callback_time: must be true or false"]


def test_duplicate_ids_and_unknown_step(tmp_path):
    text = BASE.replace("  - id: close", "  - id: greeting").replace("step: greeting",
                                                                     "step: greting")
    text += "  - {id: resolved, label: Again}\n"
    assert problems(tmp_path, text) == [
        "F:15: steps[1].id: duplicate step id 'greeting': already used (line 12)",
        "F:21: checklist[0].step: no step 'greting' (did you mean greeting?)",
        "F:28: dispositions[2].id: duplicate disposition id 'resolved': already used (line 26)"]


def test_phrases_must_not_be_empty_and_must_cover_the_script_language(tmp_path):
    assert problems(tmp_path, BASE.replace("{en: [how can i help]}", "{en: []}")) == [
        "F:24: checklist[0].phrases.en: must not be empty (phrases that prove the item was said)"]
    # Other languages are fine, but without the script's own the item can never tick.
    assert problems(tmp_path, BASE.replace("{en: [how can i help]}", "{ko: [안녕하세요]}")) == [
        "F:24: checklist[0].phrases: no phrases in the script's language 'en': "
        "the item could never be ticked"]


def test_undefined_variables_and_stray_braces(tmp_path):
    text = BASE.replace("{agent_name} speaking", "{agent_nme} speaking") \
        .replace("Your plan is {plan}.", "Your tariff is {tariff} {oops.")
    assert problems(tmp_path, text) == [
        "F:14: steps[0].text: unknown variable {agent_nme} (did you mean {agent_name}?)",
        "F:17: steps[1].text: stray '{' at character 65: write {name} for a variable "
        "(letters, digits, _) or {{ for a literal brace"]
    assert problems(tmp_path, BASE.replace("{plan}.", "{tariff}.")) == [
        "F:17: steps[1].text: unknown variable {tariff} (declare it under fields:)"]


def test_strict_needs_text_flexible_needs_points(tmp_path):
    text = BASE.replace('    text: "{company}, {agent_name} speaking. How can I help you?"',
                        "    points: [say hello]")
    assert problems(tmp_path, text) == [
        "F:14: steps[0].points: a strict script is read word for word: use text, not points"]
    assert problems(tmp_path, BASE.replace("kind: strict", "kind: flexible")) == [
        "F:14: steps[0].text: a flexible script has talking points: use points, not text",
        "F:17: steps[1].text: a flexible script has talking points: use points, not text"]


def test_missing_sections_match_without_criteria_and_builtin_fields(tmp_path):
    text = BASE.replace("  project: demo\n", "  default: false\n").replace(
        "  plan: Basic\n", "  plan: Basic\n  company: Other Corp\n")
    text = text[:text.index("dispositions:")]
    assert problems(tmp_path, text) == [
        "F:1: dispositions: missing (the wrap-up outcomes)",
        "F:8: match: names no criterion: give e.g. project, campaign, did, queue... "
        "or default: true",
        "F:11: fields.company: is a built-in variable (the script's `company:`, else the "
        "call's COMPANY channel variable); choose another name"]


def test_text_with_a_colon_becomes_a_mapping_and_says_so(tmp_path):
    text = BASE.replace("kind: strict", "kind: flexible").replace(
        '    text: "{company}, {agent_name} speaking. How can I help you?"',
        "    points:\n      - Say {company}\n      - Purpose: say it at once").replace(
        "    text: Thank you for calling, {customer_name}. Your plan is {plan}.",
        "    points: [thank them]")
    assert problems(tmp_path, text) == [
        "F:16: steps[0].points[1]: must be text, not a mapping (a ': ' inside a text makes "
        "it one; put the text in quotes)"]


def test_syntax_errors_and_non_scripts(tmp_path):
    got = problems(tmp_path, BASE.replace("  - id: close", "  - id: close: [").rstrip())
    assert len(got) == 1 and got[0].startswith("F:15: YAML syntax")
    assert problems(tmp_path, "") == [
        "F: the file is empty: a script needs id, project, title, language, direction, kind, "
        "match, steps and dispositions"]
    assert problems(tmp_path, "- a\n- b\n") == [
        "F:1: a script must be a mapping (id: ..., title: ...), not a list"]


def test_every_problem_is_reported_at_once(tmp_path):
    text = BASE.replace("id: demo", "id: two words").replace("language: en", "language: English")
    text = text.replace("    label: Offered help\n", "")
    assert problems(tmp_path, text) == [
        "F:1: id: must be one word of letters, digits, '-', '_' or '.'",
        "F:4: language: must be a language code such as en or ko",
        "F:19: checklist[0].label: missing (what the agent sees)"]


def test_the_readme_example_is_a_valid_script():
    import re
    text = (SCRIPTS / "README.md").read_text(encoding="utf-8")
    example = re.search(r"```yaml\n(.*?)```", text, re.S).group(1)
    s = parse_script(example, "README.md")
    assert s.id == "acme-support" and s.match.default and s.checklist[0].within == 15
