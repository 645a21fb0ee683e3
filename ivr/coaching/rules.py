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
from __future__ import annotations

import asyncio
import difflib
import logging
import re
import string
from pathlib import Path
from typing import Any, Callable, Iterable


from ..yamlfile import Checker, DocPath, Problem, YamlError, kind_of, load_text
from .model import (CUSTOMER_PHRASE, DEAD_AIR, DEFAULT_CHECKLIST_PROMPT, DIRECTIONS,
                    FORBIDDEN_PHRASE, MONOLOGUE, PLACEHOLDERS, REQUIRED_PHRASE, RULE_TYPES,
                    SEVERITIES, SPEAKING_RATE, TALK_OVER, ChecklistPrompt, Rule, RuleSet,
                    empty_ruleset)

log = logging.getLogger(__name__)

TOP_KEYS = ("id", "language", "default", "projects", "extends", "description", "checklist",
            "rules")
CHECKLIST_KEYS = ("text", "severity", "reason", "items")
PROMPT_KEYS = ("text", "severity", "reason")
COMMON_KEYS = ("id", "type", "text", "severity", "reason", "repeat_after", "directions", "spot",
               "enabled")
# Per type: its parameters and their defaults (None: no default).
TYPE_KEYS: dict[str, tuple[str, ...]] = {
    REQUIRED_PHRASE: ("phrases", "within", "after", "item", "closing"),
    FORBIDDEN_PHRASE: ("phrases", "replace", "names", "patterns"),
    CUSTOMER_PHRASE: ("phrases", "department"),
    TALK_OVER: ("overlap",),
    DEAD_AIR: ("seconds",),
    MONOLOGUE: ("seconds", "max_pause", "backchannel"),
    SPEAKING_RATE: ("max", "unit", "window", "min_count"),
}
DEFAULTS: dict[str, dict[str, Any]] = {
    TALK_OVER: {"overlap": 1.0},
    DEAD_AIR: {"seconds": 8.0},
    MONOLOGUE: {"seconds": 45.0, "max_pause": 2.0, "backchannel": 1.5},
    SPEAKING_RATE: {"unit": "words", "window": 30.0, "min_count": 12},
}
CLOSING_KEYS = ("agent", "customer", "wait")
RATE_UNITS = ("words", "syllables")
PATTERNS = ("*.yaml", "*.yml")

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")

Path_ = DocPath


def _kind(value: Any) -> str:
    return kind_of(value, article=True)


class _Checker(Checker):
    def text(self, d: dict, key: str, path: Path_, required: bool = False,
             what: str = "") -> str | None:
        if key not in d:
            if required:
                self.add(self.line(d), (*path, key), f"missing ({what})" if what else "missing")
            return None
        return self.as_text(d[key], self.line(d, key), (*path, key))

    def as_text(self, value: Any, line: int | None, path: Path_) -> str | None:
        if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
            hint = (" (a ': ' inside a text makes it a mapping; put the text in quotes)"
                    if isinstance(value, dict) else "")
            self.add(line, path, f"must be text, not {_kind(value)}{hint}")
            return None
        value = str(value).strip()
        if not value:
            self.add(line, path, "must not be empty")
            return None
        return value

    def number(self, d: dict, key: str, path: Path_, integer: bool = False) -> float | None:
        value = d.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.add(self.line(d, key), (*path, key), f"must be a number, not {_kind(value)}")
            return None
        if value <= 0:
            self.add(self.line(d, key), (*path, key), "must be greater than 0")
            return None
        if integer and int(value) != value:
            self.add(self.line(d, key), (*path, key), "must be a whole number")
            return None
        return int(value) if integer else float(value)

    def flag(self, d: dict, key: str, path: Path_, default: bool) -> bool:
        value = d.get(key, default)
        if not isinstance(value, bool):
            self.add(self.line(d, key), (*path, key), "must be true or false")
            return default
        return value

    def texts(self, d: dict, key: str, path: Path_, what: str) -> tuple[str, ...]:
        value, line = d.get(key), self.line(d, key)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]                      # one text is a list of one
        if not isinstance(value, list):
            self.add(line, (*path, key), f"must be a list of texts ({what}), not {_kind(value)}")
            return ()
        if not value:
            self.add(line, (*path, key), f"must not be empty ({what})")
            return ()
        out = [self.as_text(v, line, (*path, key, i)) for i, v in enumerate(value)]
        return tuple(v for v in out if v is not None)

    def choice(self, value: str | None, options: Iterable[str], line: int | None,
               path: Path_) -> str | None:
        options = tuple(options)
        if value is not None and value not in options:
            close = difflib.get_close_matches(value, options, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            self.add(line, path, f"must be one of {', '.join(options)}; not {value!r}{hint}")
            return None
        return value

    def template(self, value: str | None, allowed: Iterable[str], line: int | None,
                 path: Path_) -> None:
        """A prompt text: only the type's {placeholders}, no stray braces."""
        if value is None:
            return
        allowed = tuple(allowed)
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(value) if f is not None]
        except ValueError as exc:
            self.add(line, path, f"{exc} (write {{{{ and }}}} for literal braces)")
            return
        for name in fields:
            if name not in allowed:
                known = ", ".join("{" + a + "}" for a in allowed) or "none"
                self.add(line, path, f"unknown placeholder {{{name}}} (this type knows: {known})")


def _prompt(c: _Checker, d: dict, path: Path_, base: ChecklistPrompt,
            required_text: bool) -> ChecklistPrompt:
    text = c.text(d, "text", path, required=required_text, what="the prompt the agent sees")
    allowed = PLACEHOLDERS["checklist"]
    c.template(text, allowed, c.line(d, "text"), (*path, "text"))
    severity = c.choice(c.text(d, "severity", path), SEVERITIES, c.line(d, "severity"),
                        (*path, "severity"))
    reason = c.text(d, "reason", path)
    c.template(reason, allowed, c.line(d, "reason"), (*path, "reason"))
    return ChecklistPrompt(text or base.text, severity or base.severity,
                           reason if reason is not None else base.reason)


def _checklist(c: _Checker, data: dict) -> tuple[ChecklistPrompt, dict[str, ChecklistPrompt]]:
    value = data.get("checklist")
    if value is None:
        return DEFAULT_CHECKLIST_PROMPT, {}
    path: Path_ = ("checklist",)
    if not isinstance(value, dict):
        c.add(c.line(data, "checklist"), path, "must be a mapping (text, severity, reason, items)")
        return DEFAULT_CHECKLIST_PROMPT, {}
    c.known_keys(value, CHECKLIST_KEYS, path)
    base = _prompt(c, value, path, DEFAULT_CHECKLIST_PROMPT, required_text=False)
    items: dict[str, ChecklistPrompt] = {}
    raw = value.get("items")
    if raw is not None:
        if not isinstance(raw, dict):
            c.add(c.line(value, "items"), (*path, "items"),
                  "must be a mapping of checklist item id to {text, severity, reason}")
        else:
            for item_id, spec in raw.items():
                ipath: Path_ = (*path, "items", item_id)
                if not isinstance(spec, dict):
                    c.add(c.line(raw, item_id), ipath, "must be a mapping (text, severity, reason)")
                    continue
                c.known_keys(spec, PROMPT_KEYS, ipath)
                items[item_id] = _prompt(c, spec, ipath, base, required_text=False)
    return base, items


def _closing(c: _Checker, d: dict, path: Path_) -> dict | None:
    value = d.get("closing")
    cpath: Path_ = (*path, "closing")
    if not isinstance(value, dict):
        c.add(c.line(d, "closing"), cpath,
              "must be a mapping: agent/customer: [phrases that show the call is closing], "
              "wait: seconds")
        return None
    c.known_keys(value, CLOSING_KEYS, cpath)
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


def _params(c: _Checker, d: dict, rtype: str, path: Path_) -> dict[str, Any]:
    p: dict[str, Any] = dict(DEFAULTS.get(rtype, {}))
    line = c.line(d)
    if rtype == REQUIRED_PHRASE:
        if "phrases" not in d:
            c.add(line, (*path, "phrases"), "missing (what the agent must say)")
        else:
            p["phrases"] = c.texts(d, "phrases", path, "what the agent must say")
        if "within" in d:
            p["within"] = c.number(d, "within", path)
        if "after" in d:
            p["after"] = c.texts(d, "after", path, "what the customer says that starts the clock")
            if "within" not in d:
                c.add(c.line(d, "after"), (*path, "within"),
                      "missing (seconds after the customer's phrase by which the agent must "
                      "answer)")
        if "item" in d:
            p["item"] = c.text(d, "item", path)
        if "closing" in d:
            if "after" in d:
                c.add(c.line(d, "closing"), (*path, "closing"),
                      "a rule with after: is already timed from the customer's phrase; "
                      "closing: cannot be used with it")
            else:
                p["closing"] = _closing(c, d, path)
    elif rtype == FORBIDDEN_PHRASE:
        if not any(k in d for k in ("phrases", "replace", "names")):
            c.add(line, (*path, "phrases"),
                  "missing: give phrases (never say), replace (word: preferred word) or "
                  "names (another organisation's names)")
        if "phrases" in d:
            p["phrases"] = c.texts(d, "phrases", path, "what the agent must never say")
        if "replace" in d:
            value = d["replace"]
            rpath: Path_ = (*path, "replace")
            if not isinstance(value, dict) or not value:
                c.add(c.line(d, "replace"), rpath,
                      "must be a mapping of discouraged word to the brand's word")
            else:
                repl = {}
                for word, preferred in value.items():
                    got = c.as_text(preferred, c.line(value, word), (*rpath, word))
                    if got is not None:
                        repl[str(word)] = got
                p["replace"] = repl
        if "names" in d:
            p["names"] = c.texts(d, "names", path, "names of other organisations")
        if "patterns" in d:
            pats = c.texts(d, "patterns", path, "how presenting as {name} sounds")
            for i, pat in enumerate(pats):
                if "{name}" not in pat:
                    c.add(c.line(d, "patterns"), (*path, "patterns", i),
                          f"{pat!r} has no {{name}} (where the organisation's name goes)")
            if "names" not in d:
                c.add(c.line(d, "patterns"), (*path, "names"),
                      "missing (patterns need names to fill {name})")
            p["patterns"] = pats
    elif rtype == CUSTOMER_PHRASE:
        if "phrases" not in d:
            c.add(line, (*path, "phrases"), "missing (what the customer says)")
        else:
            p["phrases"] = c.texts(d, "phrases", path, "what the customer says")
        if "department" in d:
            p["department"] = c.text(d, "department", path)
    elif rtype in (TALK_OVER, DEAD_AIR, MONOLOGUE):
        for key in TYPE_KEYS[rtype]:
            if key in d:
                got = c.number(d, key, path)
                if got is not None:
                    p[key] = got
    elif rtype == SPEAKING_RATE:
        if "max" not in d:
            c.add(line, (*path, "max"), "missing (the most words or syllables per minute)")
        else:
            p["max"] = c.number(d, "max", path)
        if "unit" in d:
            p["unit"] = c.choice(c.text(d, "unit", path), RATE_UNITS, c.line(d, "unit"),
                                 (*path, "unit")) or "words"
        for key in ("window",):
            if key in d:
                got = c.number(d, key, path)
                if got is not None:
                    p[key] = got
        if "min_count" in d:
            got = c.number(d, "min_count", path, integer=True)
            if got is not None:
                p["min_count"] = got
    return p


def _rule(c: _Checker, raw: Any, path: Path_, parent_line: int | None) -> Rule | None | bool:
    """A Rule; False for `enabled: false` (drops an inherited rule); None if broken."""
    if not isinstance(raw, dict):
        c.add(parent_line, path, f"must be a mapping (id, type, text, ...), not {_kind(raw)}")
        return None
    before = len(c.problems)
    rule_id = c.text(raw, "id", path, required=True, what="a short name, e.g. negative_phrasing")
    if rule_id is not None and not _ID.match(rule_id):
        c.add(c.line(raw, "id"), (*path, "id"), "must be one word of letters, digits, '-', '_' "
                                                "or '.'")
    if rule_id is not None and rule_id.startswith("checklist."):
        c.add(c.line(raw, "id"), (*path, "id"),
              "ids starting with 'checklist.' are the script checklist's own; choose another")
    enabled = c.flag(raw, "enabled", path, True)
    if not enabled:
        c.known_keys(raw, COMMON_KEYS + tuple(k for keys in TYPE_KEYS.values() for k in keys),
                     path)
        return False if len(c.problems) == before else None
    rtype = c.text(raw, "type", path, required=True, what=" | ".join(RULE_TYPES))
    rtype = c.choice(rtype, RULE_TYPES, c.line(raw, "type"), (*path, "type"))
    known = COMMON_KEYS + (TYPE_KEYS[rtype] if rtype else ())
    if rtype:
        c.known_keys(raw, known, path, f" for a {rtype} rule")
    text = c.text(raw, "text", path, required=True, what="the prompt the agent sees")
    reason = c.text(raw, "reason", path) or ""
    if rtype:
        c.template(text, PLACEHOLDERS[rtype], c.line(raw, "text"), (*path, "text"))
        c.template(reason, PLACEHOLDERS[rtype], c.line(raw, "reason"), (*path, "reason"))
    severity = "warning"
    if "severity" in raw:
        severity = c.choice(c.text(raw, "severity", path), SEVERITIES, c.line(raw, "severity"),
                            (*path, "severity")) or "warning"
    repeat = c.number(raw, "repeat_after", path) if "repeat_after" in raw else None
    directions: tuple[str, ...] = ()
    if "directions" in raw:
        directions = c.texts(raw, "directions", path, "inbound, outbound")
        for i, dname in enumerate(directions):
            c.choice(dname, DIRECTIONS, c.line(raw, "directions"), (*path, "directions", i))
    spot = c.flag(raw, "spot", path, True)
    params = _params(c, raw, rtype, path) if rtype else {}
    if len(c.problems) != before or rule_id is None or rtype is None or text is None:
        return None
    return Rule(rule_id, rtype, text, severity, reason, params, repeat, directions, spot,
                c.file, c.line(raw))


def parse_ruleset(text: str, file: str) -> tuple[RuleSet | None, list[Problem]]:
    """One rule file's text -> (unresolved RuleSet or None, problems)."""
    rs, problems, _ = _parse(text, file)
    return rs, problems


def _parse(text: str, file: str) -> tuple[RuleSet | None, list[Problem], dict[str, int | None]]:
    rs, problems, lines = None, [], {}
    try:
        rs, problems, lines = _parse_inner(text, file)
    except YamlError as exc:
        problems = exc.problems
    return rs, problems, lines


def _parse_inner(text: str, file: str
                 ) -> tuple[RuleSet | None, list[Problem], dict[str, int | None]]:
    try:
        data = load_text(text, file)
    except YamlError as exc:
        return None, exc.problems, {}
    if data is None:
        return None, [Problem(file, None, "", "the file is empty: a rule set needs id, "
                                              "language and rules")], {}
    if not isinstance(data, dict):
        return None, [Problem(file, 1, "", f"a rule set must be a mapping (id: ..., language: "
                                           f"..., rules: [...]), not {_kind(data)}")], {}
    c = _Checker(file, text)
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
        c.add(c.line(data), ("projects",),
              "missing: name the projects this set is for, or say default: true")
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
        path: Path_ = ("rules", i)
        rid = raw.get("id") if isinstance(raw, dict) else None
        if isinstance(rid, str):
            if rid in seen:
                where = f" (line {seen[rid]})" if seen[rid] else ""
                c.add(c.line(raw, "id"), (*path, "id"), f"duplicate rule id {rid!r}: already "
                                                        f"used{where}")
            else:
                seen[rid] = c.line(raw, "id")
        got = _rule(c, raw, path, c.line(data, "rules"))
        if got is False:
            dropped.append(str(rid))
        elif got is not None:
            rules.append(got)
    lines = {key: c.line(data, key) for key in TOP_KEYS}
    if c.problems or set_id is None or language is None:
        return None, sorted(c.problems, key=lambda p: p.line or 0), lines
    return RuleSet(set_id, language, tuple(rules), checklist, items, projects, default, extends,
                   file, tuple(dropped)), [], lines


def load_ruleset(path: str | Path) -> RuleSet:
    """One file on its own (no extends resolved); YamlError with every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise YamlError([Problem(str(path), None, "", f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError as exc:
        raise YamlError([Problem(str(path), None, "", f"not UTF-8 text: {exc.reason}")]) from None
    rs, problems = parse_ruleset(text, str(path))
    if problems or rs is None:
        raise YamlError(problems)
    return rs


def _merge(base: RuleSet, child: RuleSet) -> RuleSet:
    """``child`` on top of ``base``: same id replaces in place, dropped ids go, new ones last."""
    dropped = set(child.dropped)
    replaced = {r.id: r for r in child.rules}
    out = [replaced.pop(r.id, r) for r in base.rules if r.id not in dropped]
    out += [r for r in child.rules if r.id in replaced]
    checklist = child.checklist if child.checklist is not DEFAULT_CHECKLIST_PROMPT \
        else base.checklist
    return RuleSet(child.id, child.language, tuple(out), checklist,
                   {**base.items, **child.items}, child.projects, child.default, child.extends,
                   child.file, child.dropped)


class RuleLibrary:
    """Every rule set of a folder (not its subfolders), resolved; ``ruleset_for`` picks one.

    ``RuleLibrary.load(folder)`` raises YamlError listing every problem;
    ``RuleLibrary(folder).reload()`` keeps what loads and lists the rest in
    ``problems()`` (a broken file never takes the other sets down).
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.sets: dict[str, RuleSet] = {}
        self._problems: list[Problem] = []
        # Per file: the last version that parsed (a broken edit keeps serving it).
        self._good: dict[str, tuple[RuleSet, dict[str, int | None]]] = {}
        self._seen: tuple = ()

    @classmethod
    def load(cls, folder: str | Path) -> "RuleLibrary":
        lib = cls(folder)
        lib.reload()
        if lib._problems:
            raise YamlError(lib._problems)
        return lib

    def problems(self) -> list[Problem]:
        return list(self._problems)

    def files(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        names = {p for pat in PATTERNS for p in self.folder.glob(pat)}
        return sorted(p for p in names if p.is_file() and not p.name.startswith((".", "#", "~")))

    def reload(self) -> list[Problem]:
        problems: list[Problem] = []
        if not self.folder.is_dir():
            self._problems = [Problem(str(self.folder), None, "",
                                      "the rules folder does not exist")]
            self.sets = {}
            return self._problems
        raw: dict[str, RuleSet] = {}
        lines: dict[str, dict[str, int | None]] = {}

        def at(rs: RuleSet, key: str) -> int | None:
            return lines.get(rs.file, {}).get(key)

        self._seen = self._signature()
        files = self.files()
        for gone in set(self._good) - {str(p) for p in files}:
            del self._good[gone]
        for path in files:
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(Problem(str(path), None, "", f"cannot read: {exc}"))
                continue
            rs, probs, file_lines = _parse(text, str(path))
            problems += probs
            if rs is None and str(path) in self._good:
                # Keep coaching with the last good version until the file is fixed.
                rs, file_lines = self._good[str(path)]
                problems.append(Problem(str(path), None, "",
                                        "the last good version of this file is still in use"))
            elif rs is not None:
                self._good[str(path)] = (rs, file_lines)
            if rs is None:
                continue
            lines[rs.file] = file_lines
            if rs.id in raw:
                problems.append(Problem(str(path), file_lines.get("id"), "id",
                                        f"duplicate rule set id {rs.id!r}: already used in "
                                        f"{raw[rs.id].file}"))
                continue
            raw[rs.id] = rs
        resolved: dict[str, RuleSet] = {}

        def resolve(set_id: str, chain: tuple[str, ...]) -> RuleSet | None:
            if set_id in resolved:
                return resolved[set_id]
            rs = raw[set_id]
            if rs.extends is None:
                resolved[set_id] = rs
                return rs
            if rs.extends in chain or rs.extends == set_id:
                problems.append(Problem(rs.file, at(rs, "extends"), "extends",
                                        f"circular: {' -> '.join((*chain, set_id, rs.extends))}"))
                return None
            if rs.extends not in raw:
                close = difflib.get_close_matches(rs.extends, sorted(raw), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                problems.append(Problem(rs.file, at(rs, "extends"), "extends",
                                        f"no rule set {rs.extends!r}{hint}"))
                return None
            base = resolve(rs.extends, (*chain, set_id))
            if base is None:
                return None
            for rid in rs.dropped:
                if base.rule(rid) is None:
                    problems.append(Problem(rs.file, at(rs, "rules"), "rules",
                                            f"{rid!r} has enabled: false but {rs.extends!r} "
                                            f"has no such rule to drop"))
            if base.language != rs.language:
                problems.append(Problem(rs.file, at(rs, "extends"), "extends",
                                        f"{rs.extends!r} is in {base.language!r}, this set in "
                                        f"{rs.language!r}: prompts would mix languages"))
                return None
            resolved[set_id] = _merge(base, rs)
            return resolved[set_id]

        for set_id in raw:
            resolve(set_id, ())
        # one default per language, one set per (project, language)
        defaults: dict[str, RuleSet] = {}
        claims: dict[tuple[str, str], RuleSet] = {}
        for rs in resolved.values():
            if rs.default:
                if rs.language in defaults:
                    problems.append(Problem(rs.file, at(rs, "default"), "default",
                                            f"a second default for {rs.language!r} (the first "
                                            f"is {defaults[rs.language].file})"))
                else:
                    defaults[rs.language] = rs
            for project in rs.projects:
                key = (project, rs.language)
                if key in claims:
                    problems.append(Problem(rs.file, at(rs, "projects"), "projects",
                                            f"{project!r} in {rs.language!r} is already "
                                            f"covered by {claims[key].file}"))
                else:
                    claims[key] = rs
        self.sets = resolved
        self._problems = problems
        for p in problems:
            log.warning("coaching rules: %s", p)
        return problems

    def _signature(self) -> tuple:
        out = []
        for path in self.files():
            try:
                st = path.stat()
            except OSError:
                continue
            out.append((str(path), st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(out)

    def changed(self) -> bool:
        """Whether any rule file was added, removed or written since the last reload."""
        return self._signature() != self._seen

    async def watch(self, interval: float = 1.0,
                    on_change: "Callable[[list[Problem]], Any] | None" = None) -> None:
        """Poll the rules folder forever; reload and call ``on_change(problems)`` on a change.
        Rule files are hot-reloaded on their own, not only when a script changes."""
        while True:
            await asyncio.sleep(interval)
            try:
                if not self.changed():
                    continue
                problems = self.reload()
            except Exception:              # never let the watcher die
                log.exception("coaching rules: reload failed")
                continue
            log.info("coaching rules reloaded: %d sets, %d problems", len(self.sets),
                     len(problems))
            if on_change is not None:
                try:
                    on_change(problems)
                except Exception:
                    log.exception("coaching rules: on_change failed")

    def ruleset_for(self, project: str | None, language: str | None) -> RuleSet:
        language = (language or "en").strip()
        for lang in dict.fromkeys([language, language.split("-")[0]]):
            for rs in self.sets.values():
                if rs.language == lang and project and project in rs.projects:
                    return rs
            for rs in self.sets.values():
                if rs.language == lang and rs.default:
                    return rs
        return empty_ruleset(language)


def check_rules(folder: str | Path) -> list[Problem]:
    """`ivr check` for a rules folder: every problem, nothing raised."""
    lib = RuleLibrary(folder)
    problems = lib.reload()
    if not problems and not lib.files():
        problems = [Problem(str(folder), None, "", "no rule sets (*.yaml) in this folder")]
    return problems
