"""One coaching rule file: YAML text -> a checked RuleSet, or every problem as
``file:line: field: reason``. A rule's common keys are read here; its type's
parameters by the type (ivr/coaching/types/). Resolving ``extends`` and picking
a set for a call is library.py's.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ...yamlfile import DocPath, Problem, YamlError, kind_of, load_text, read
from ..model import (
    CHECKLIST_PLACEHOLDERS,
    CHECKLIST_RULE_PREFIX,
    DEFAULT_CHECKLIST_PROMPT,
    DIRECTIONS,
    SEVERITIES,
    ChecklistPrompt,
    Rule,
    RuleSet,
)
from ..types import TYPES
from ..types.params import RuleChecker

TOP_KEYS = ("id", "language", "default", "projects", "extends", "description", "checklist", "rules")
CHECKLIST_KEYS = ("text", "severity", "reason", "items")
PROMPT_KEYS = ("text", "severity", "reason")
COMMON_KEYS = (
    "id",
    "type",
    "text",
    "severity",
    "reason",
    "repeat_after",
    "directions",
    "spot",
    "enabled",
)

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")

Lines = dict[str, "int | None"]  # top-level key -> its line in the file


def _kind(value: Any) -> str:
    return kind_of(value, article=True)


def _prompt(
    c: RuleChecker, d: dict, path: DocPath, base: ChecklistPrompt, required_text: bool
) -> ChecklistPrompt:
    text = c.text(d, "text", path, required=required_text, what="the prompt the agent sees")
    allowed = CHECKLIST_PLACEHOLDERS
    c.template(text, allowed, c.line(d, "text"), (*path, "text"))
    severity = c.choice(
        c.text(d, "severity", path), SEVERITIES, c.line(d, "severity"), (*path, "severity")
    )
    reason = c.text(d, "reason", path)
    c.template(reason, allowed, c.line(d, "reason"), (*path, "reason"))
    return ChecklistPrompt(
        text or base.text, severity or base.severity, reason if reason is not None else base.reason
    )


def _checklist(c: RuleChecker, data: dict) -> tuple[ChecklistPrompt, dict[str, ChecklistPrompt]]:
    value = data.get("checklist")
    if value is None:
        return DEFAULT_CHECKLIST_PROMPT, {}
    path: DocPath = ("checklist",)
    if not isinstance(value, dict):
        c.add(c.line(data, "checklist"), path, "must be a mapping (text, severity, reason, items)")
        return DEFAULT_CHECKLIST_PROMPT, {}
    c.known_keys(value, CHECKLIST_KEYS, path)
    base = _prompt(c, value, path, DEFAULT_CHECKLIST_PROMPT, required_text=False)
    items: dict[str, ChecklistPrompt] = {}
    raw = value.get("items")
    if raw is not None:
        if not isinstance(raw, dict):
            c.add(
                c.line(value, "items"),
                (*path, "items"),
                "must be a mapping of checklist item id to {text, severity, reason}",
            )
        else:
            for item_id, spec in raw.items():
                ipath: DocPath = (*path, "items", item_id)
                if not isinstance(spec, dict):
                    c.add(c.line(raw, item_id), ipath, "must be a mapping (text, severity, reason)")
                    continue
                c.known_keys(spec, PROMPT_KEYS, ipath)
                items[item_id] = _prompt(c, spec, ipath, base, required_text=False)
    return base, items


def _rule(c: RuleChecker, raw: Any, path: DocPath, parent_line: int | None) -> Rule | None | bool:
    """A Rule; False for `enabled: false` (drops an inherited rule); None if broken."""
    if not isinstance(raw, dict):
        c.add(parent_line, path, f"must be a mapping (id, type, text, ...), not {_kind(raw)}")
        return None
    before = len(c.problems)
    rule_id = c.text(raw, "id", path, required=True, what="a short name, e.g. negative_phrasing")
    if rule_id is not None and not _ID.match(rule_id):
        c.add(
            c.line(raw, "id"), (*path, "id"), "must be one word of letters, digits, '-', '_' or '.'"
        )
    if rule_id is not None and rule_id.startswith(CHECKLIST_RULE_PREFIX):
        c.add(
            c.line(raw, "id"),
            (*path, "id"),
            "ids starting with 'checklist.' are the script checklist's own; choose another",
        )
    enabled = c.flag(raw, "enabled", path, True)
    if not enabled:
        c.known_keys(raw, COMMON_KEYS + tuple(k for t in TYPES.values() for k in t.keys()), path)
        return False if len(c.problems) == before else None
    names = tuple(TYPES)
    rtype = c.text(raw, "type", path, required=True, what=" | ".join(names))
    rtype = c.choice(rtype, names, c.line(raw, "type"), (*path, "type"))
    kind = TYPES[rtype] if rtype else None
    known = COMMON_KEYS + (kind.keys() if kind else ())
    if rtype:
        c.known_keys(raw, known, path, f" for a {rtype} rule")
    text = c.text(raw, "text", path, required=True, what="the prompt the agent sees")
    reason = c.text(raw, "reason", path) or ""
    if kind:
        c.template(text, kind.placeholders, c.line(raw, "text"), (*path, "text"))
        c.template(reason, kind.placeholders, c.line(raw, "reason"), (*path, "reason"))
    severity = "warning"
    if "severity" in raw:
        severity = (
            c.choice(
                c.text(raw, "severity", path),
                SEVERITIES,
                c.line(raw, "severity"),
                (*path, "severity"),
            )
            or "warning"
        )
    repeat = c.number(raw, "repeat_after", path) if "repeat_after" in raw else None
    directions: tuple[str, ...] = ()
    if "directions" in raw:
        directions = c.texts(raw, "directions", path, "inbound, outbound")
        for i, dname in enumerate(directions):
            c.choice(dname, DIRECTIONS, c.line(raw, "directions"), (*path, "directions", i))
    spot = c.flag(raw, "spot", path, True)
    params = kind.parse(c, raw, path) if kind else {}
    if len(c.problems) != before or rule_id is None or rtype is None or text is None:
        return None
    return Rule(
        rule_id,
        rtype,
        text,
        severity,
        reason,
        params,
        repeat,
        directions,
        spot,
        c.file,
        c.line(raw),
    )


def parse_ruleset(text: str, file: str) -> tuple[RuleSet | None, list[Problem]]:
    """One rule file's text -> (unresolved RuleSet or None, problems)."""
    rs, problems, _ = parse_lines(text, file)
    return rs, problems


def parse_lines(text: str, file: str) -> tuple[RuleSet | None, list[Problem], Lines]:
    """``parse_ruleset``, and the line of each top-level key (for the library's problems)."""
    rs: RuleSet | None = None
    problems: list[Problem] = []
    lines: Lines = {}
    try:
        rs, problems, lines = _parse_inner(text, file)
    except YamlError as exc:
        problems = exc.problems
    return rs, problems, lines


def _parse_inner(text: str, file: str) -> tuple[RuleSet | None, list[Problem], Lines]:
    try:
        data = load_text(text, file)
    except YamlError as exc:
        return None, exc.problems, {}
    if data is None:
        return (
            None,
            [Problem(file, None, "", "the file is empty: a rule set needs id, language and rules")],
            {},
        )
    if not isinstance(data, dict):
        return (
            None,
            [
                Problem(
                    file,
                    1,
                    "",
                    f"a rule set must be a mapping (id: ..., language: "
                    f"..., rules: [...]), not {_kind(data)}",
                )
            ],
            {},
        )
    c = RuleChecker(file, text)
    c.known_keys(data, TOP_KEYS, ())
    set_id = c.text(data, "id", (), required=True, what="a unique name, e.g. seed.en")
    if set_id is not None and not _ID.match(set_id):
        c.add(c.line(data, "id"), ("id",), "must be one word of letters, digits, '-', '_' or '.'")
    language = c.text(data, "language", (), required=True, what="e.g. en, ko")
    if language is not None and not _LANGUAGE.match(language):
        c.add(c.line(data, "language"), ("language",), "must be a language code such as en or ko")
    default = c.flag(data, "default", (), False)
    projects = c.texts(data, "projects", (), "project names") if "projects" in data else ()
    if not default and not projects and "projects" not in data:
        c.add(
            c.line(data),
            ("projects",),
            "missing: name the projects this set is for, or say default: true",
        )
    extends = c.text(data, "extends", ()) if "extends" in data else None
    checklist, items = _checklist(c, data)
    rules: list[Rule] = []
    dropped: list[str] = []
    seen: dict[str, int | None] = {}
    raw_rules = data.get("rules")
    if raw_rules is None:
        raw_rules = []
        if extends is None:
            c.add(c.line(data), ("rules",), "missing (the list of rules)")
    elif not isinstance(raw_rules, list):
        c.add(c.line(data, "rules"), ("rules",), f"must be a list of rules, not {_kind(raw_rules)}")
        raw_rules = []
    for i, raw in enumerate(raw_rules):
        path: DocPath = ("rules", i)
        rid = raw.get("id") if isinstance(raw, dict) else None
        if isinstance(rid, str):
            if rid in seen:
                where = f" (line {seen[rid]})" if seen[rid] else ""
                c.add(
                    c.line(raw, "id"),
                    (*path, "id"),
                    f"duplicate rule id {rid!r}: already used{where}",
                )
            else:
                seen[rid] = c.line(raw, "id")
        got = _rule(c, raw, path, c.line(data, "rules"))
        if isinstance(got, Rule):
            rules.append(got)
        elif got is False:
            dropped.append(str(rid))
    lines = {key: c.line(data, key) for key in TOP_KEYS}
    if c.problems or set_id is None or language is None:
        return None, sorted(c.problems, key=lambda p: p.line or 0), lines
    return (
        RuleSet(
            set_id,
            language,
            tuple(rules),
            checklist,
            items,
            projects,
            default,
            extends,
            file,
            tuple(dropped),
        ),
        [],
        lines,
    )


def load_ruleset(path: str | Path) -> RuleSet:
    """One file on its own (no extends resolved); YamlError with every problem."""
    path = Path(path)
    rs, problems = parse_ruleset(read(path), str(path))
    if problems or rs is None:
        raise YamlError(problems)
    return rs
