"""Reading one call-script file: YAML -> checked, frozen Script, or every problem.

Admins write these files by hand and the pop reads them aloud to customers, so
the checks are strict and every complaint names file, line and field:
unknown keys (typos) are errors, ids must be unique, checklist items must name
an existing step, and every {variable} in a text must be built in or declared
under `fields:`. Values coming from the customer list or channel variables are
not known when the script is checked, so declaring the field is the contract;
without it `{custmer_name}` would only show up mid-call.

Numbers are taken as written: `did: 0612345` keeps its leading zero and
`version: 1.10` stays "1.10" (plain YAML would turn them into 612345 and 1.1).
"""

from __future__ import annotations

import difflib
import hashlib
import re
from pathlib import Path
from typing import Any, Iterable

from ..calls.model import Direction
from ..yamlfile import Checker, DocPath, Problem, YamlError, decode, kind_of, load_text, read_bytes
from . import template
from .model import (
    BUILTIN_VARIABLES,
    CRITERIA,
    ChecklistItem,
    Criteria,
    Disposition,
    FieldDef,
    Kind,
    Match,
    Reply,
    Script,
    Step,
)

TOP_KEYS = (
    "id",
    "project",
    "title",
    "language",
    "direction",
    "kind",
    "version",
    "company",
    "description",
    "match",
    "fields",
    "steps",
    "checklist",
    "dispositions",
)
STEP_KEYS = ("id", "title", "text", "points", "note", "replies")
REPLY_KEYS = ("when", "say")
ITEM_KEYS = ("id", "label", "step", "weight", "within", "phrases")
DISPOSITION_KEYS = ("id", "label", "needs_callback_time", "needs_note")
FIELD_KEYS = ("default", "description")
MATCH_KEYS = (*CRITERIA, "default")

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_VARIABLE = re.compile(r"^[a-z_][a-z0-9_]*$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
_PREFIX = re.compile(r"^\+?[0-9]+$")

Path_ = DocPath  # where a value sits in the document: ("steps", 2, "text")


class _Checker(Checker):
    """Collects problems while turning loaded YAML into typed values."""

    articles = False

    def mapping(self, value: Any, line: int | None, path: Path_, what: str) -> dict | None:
        if isinstance(value, dict):
            return value
        self.add(line, path, f"must be a mapping ({what})")
        return None

    def items(self, d: dict, key: str, path: Path_, what: str, required: bool) -> list:
        """A list under d[key]; missing -> [] (plus a problem if required)."""
        value = d.get(key)
        if value is None:
            if required:
                self.add(
                    self.line(d, key) if key in d else self.line(d),
                    (*path, key),
                    f"missing ({what})",
                )
            return []
        if not isinstance(value, list):
            self.add(self.line(d, key), (*path, key), f"must be a list ({what})")
            return []
        if required and not value:
            self.add(self.line(d, key), (*path, key), f"must not be empty ({what})")
        return value

    def as_text(self, value: Any, line: int | None, path: Path_) -> str | None:
        """A scalar as text, numbers and yes/no as written; None (with a problem) if not."""
        if isinstance(value, str):
            if not value.strip():
                self.add(line, path, "must not be empty")
                return None
            return value.strip()
        if isinstance(value, (int, float, bool)):
            return self.raw.get(path, str(value))
        if value is None:
            self.add(line, path, "must not be empty")
        elif isinstance(value, dict):
            # The classic YAML trap: "Purpose: say it at once" is a mapping.
            self.add(
                line,
                path,
                "must be text, not a mapping (a ': ' inside a text makes "
                "it one; put the text in quotes)",
            )
        else:
            self.add(line, path, f"must be text, not a {_kind(value)}")
        return None

    def ident(self, d: dict, key: str, path: Path_, what: str) -> str | None:
        value = self.text(d, key, path, required=True, what=what)
        if value is not None and not _ID.match(value):
            self.add(
                self.line(d, key),
                (*path, key),
                "must be one word of letters, digits, '-', '_' or '.'",
            )
            return None
        return value

    def texts(self, value: Any, line: int | None, path: Path_, what: str) -> tuple[str, ...]:
        """A non-empty list of texts (a single text is accepted as a list of one)."""
        if isinstance(value, (str, int, float, bool)):
            got = self.as_text(value, line, path)
            return (got,) if got is not None else ()
        if not isinstance(value, list):
            self.add(line, path, f"must be a list of texts ({what})")
            return ()
        if not value:
            self.add(line, path, f"must not be empty ({what})")
            return ()
        out = [self.as_text(v, line, (*path, i)) for i, v in enumerate(value)]
        return tuple(v for v in out if v is not None)

    def unique(
        self,
        seen: dict[str, int | None],
        value: str | None,
        line: int | None,
        path: Path_,
        what: str,
    ) -> None:
        if value is None:
            return
        if value in seen:
            where = f" (line {seen[value]})" if seen[value] else ""
            self.add(line, path, f"duplicate {what} {value!r}: already used{where}")
        else:
            seen[value] = line


def _kind(value: Any) -> str:
    return kind_of(value, article=False)


def _choice(c: _Checker, d: dict, key: str, options: Iterable[str]) -> str | None:
    options = tuple(options)
    value = c.text(d, key, (key,), required=True, what=" or ".join(options))
    if value is not None and value not in options:
        c.add(c.line(d, key), (key,), f"must be {' or '.join(options)}, not {value!r}")
        return None
    return value


# ------------------------------------------------------------ sections
def _criteria(c: _Checker, d: dict, path: Path_) -> tuple[Criteria | None, bool]:
    c.known_keys(d, MATCH_KEYS, path)
    values: dict[str, tuple[str, ...]] = {}
    for name in CRITERIA:
        if name not in d:
            continue
        got = c.texts(d[name], c.line(d, name), (*path, name), "values, any of which matches")
        if name == "caller_prefix":
            for v in got:
                if not _PREFIX.match(v):
                    c.add(
                        c.line(d, name),
                        (*path, name),
                        f"{v!r} is not a number prefix (digits, optionally a leading +)",
                    )
        if got:
            values[name] = got
    default = c.flag(d, "default", path) if "default" in d else False
    if not values and not default:
        c.add(
            c.line(d),
            path,
            "names no criterion: give e.g. project, campaign, did, queue... or default: true",
        )
        return None, default
    return (Criteria(**values) if values else None), default


def _match(c: _Checker, data: dict) -> Match:
    value = data.get("match")
    line = c.line(data, "match") if "match" in data else c.line(data)
    if value is None:
        c.add(line, ("match",), "missing (which calls pop this script)")
        return Match()
    groups = value if isinstance(value, list) else [value]
    if not groups:
        c.add(line, ("match",), "must not be empty")
    alternatives: list[Criteria] = []
    default = False
    for i, group in enumerate(groups):
        path: Path_ = ("match", i) if isinstance(value, list) else ("match",)
        group = c.mapping(group, c.line(group) or line, path, "criteria such as project: x")
        if group is None:
            continue
        criteria, is_default = _criteria(c, group, path)
        default = default or is_default
        if criteria is not None:
            alternatives.append(criteria)
    return Match(tuple(alternatives), default)


def _fields(c: _Checker, data: dict) -> tuple[FieldDef, ...]:
    value = data.get("fields")
    if value is None:
        return ()
    value = c.mapping(value, c.line(data, "fields"), ("fields",), "name: default or name: {}")
    if value is None:
        return ()
    out = []
    for name, spec in value.items():
        path: Path_ = ("fields", name)
        line = c.line(value, name)
        if not _VARIABLE.match(name):
            c.add(line, path, "must be a lower-case name of letters, digits and _")
            continue
        if name in BUILTIN_VARIABLES:
            c.add(
                line,
                path,
                f"is a built-in variable ({BUILTIN_VARIABLES[name]}); choose another name",
            )
            continue
        default, description = None, ""
        if isinstance(spec, dict):
            c.known_keys(spec, FIELD_KEYS, path)
            if "default" in spec:
                default = c.text(spec, "default", path)
            description = c.text(spec, "description", path) or ""
        elif spec is not None:  # shorthand: `plan: Basic` is the default
            default = c.as_text(spec, line, path)
        out.append(FieldDef(name, default, description))
    return tuple(out)


def _steps(c: _Checker, data: dict, kind: str | None) -> tuple[Step, ...]:
    steps = []
    seen: dict[str, int | None] = {}
    for i, raw in enumerate(c.items(data, "steps", (), "the steps of the call, in order", True)):
        path: Path_ = ("steps", i)
        d = c.mapping(raw, c.line(data, "steps"), path, "id, title, text or points")
        if d is None:
            continue
        c.known_keys(d, STEP_KEYS, path)
        step_id = c.ident(d, "id", path, "a short name, e.g. greeting")
        c.unique(seen, step_id, c.line(d, "id"), (*path, "id"), "step id")
        title = c.text(d, "title", path, required=True, what="what the agent sees")
        text = c.text(d, "text", path)
        points = (
            c.texts(d["points"], c.line(d, "points"), (*path, "points"), "talking points")
            if "points" in d
            else ()
        )
        if kind == Kind.STRICT.value:
            if "points" in d:
                c.add(
                    c.line(d, "points"),
                    (*path, "points"),
                    "a strict script is read word for word: use text, not points",
                )
            elif "text" not in d:
                c.add(c.line(d), (*path, "text"), "missing (strict scripts read text aloud)")
        elif kind == Kind.FLEXIBLE.value:
            if "text" in d:
                c.add(
                    c.line(d, "text"),
                    (*path, "text"),
                    "a flexible script has talking points: use points, not text",
                )
            elif "points" not in d:
                c.add(c.line(d), (*path, "points"), "missing (flexible scripts list points)")
        note = c.text(d, "note", path)
        replies = []
        for j, r in enumerate(c.items(d, "replies", path, "when/say pairs", False)):
            rpath: Path_ = (*path, "replies", j)
            r = c.mapping(r, c.line(d, "replies"), rpath, "when: ..., say: ...")
            if r is None:
                continue
            c.known_keys(r, REPLY_KEYS, rpath)
            when = c.text(r, "when", rpath, required=True, what="what the customer says")
            say = c.text(r, "say", rpath, required=True, what="the answer")
            if when and say:
                replies.append(Reply(when, say))
        if step_id and title:
            steps.append(Step(step_id, title, text, points, note, tuple(replies)))
    return tuple(steps)


def _phrases(c: _Checker, d: dict, path: Path_, language: str | None) -> dict[str, tuple[str, ...]]:
    value = d.get("phrases")
    line = c.line(d, "phrases") if "phrases" in d else c.line(d)
    if value is None:
        c.add(line, (*path, "phrases"), "missing (what the agent says that ticks the item)")
        return {}
    if isinstance(value, list):  # shorthand: phrases in the script's language
        value = {language or "?": value}
        by_lang = False
    elif isinstance(value, dict):
        by_lang = True
    else:
        c.add(line, (*path, "phrases"), "must be a list, or a mapping of language to list")
        return {}
    out: dict[str, tuple[str, ...]] = {}
    for lang, phrases in value.items():
        ppath: Path_ = (*path, "phrases", lang) if by_lang else (*path, "phrases")
        pline = c.line(value, lang) if by_lang else line
        if by_lang and not _LANGUAGE.match(lang):
            c.add(pline, ppath, "must be a language code such as en or ko")
            continue
        got = c.texts(phrases, pline, ppath, "phrases that prove the item was said")
        if got:
            out[lang] = got
    if by_lang and language and value and language not in value:
        c.add(
            line,
            (*path, "phrases"),
            f"no phrases in the script's language {language!r}: the item could never be ticked",
        )
    return out


def _checklist(
    c: _Checker, data: dict, step_ids: set[str], language: str | None
) -> tuple[ChecklistItem, ...]:
    items = []
    seen: dict[str, int | None] = {}
    for i, raw in enumerate(c.items(data, "checklist", (), "items to say", False)):
        path: Path_ = ("checklist", i)
        d = c.mapping(raw, c.line(data, "checklist"), path, "id, label, step, phrases")
        if d is None:
            continue
        c.known_keys(d, ITEM_KEYS, path)
        item_id = c.ident(d, "id", path, "a short name, e.g. named_company")
        c.unique(seen, item_id, c.line(d, "id"), (*path, "id"), "checklist id")
        label = c.text(d, "label", path, required=True, what="what the agent sees")
        step = c.text(d, "step", path, required=True, what="the id of the step it belongs to")
        if step is not None and step_ids and step not in step_ids:
            close = difflib.get_close_matches(step, sorted(step_ids), n=1)
            hint = f"did you mean {close[0]}?" if close else f"steps: {', '.join(sorted(step_ids))}"
            c.add(c.line(d, "step"), (*path, "step"), f"no step {step!r} ({hint})")
        weight = c.number(d, "weight", path) if "weight" in d else 1.0
        within = c.number(d, "within", path) if "within" in d else None
        phrases = _phrases(c, d, path, language)
        if item_id and label and step and weight is not None:
            items.append(ChecklistItem(item_id, label, step, weight, within, phrases))
    return tuple(items)


def _dispositions(c: _Checker, data: dict) -> tuple[Disposition, ...]:
    out = []
    seen: dict[str, int | None] = {}
    for i, raw in enumerate(c.items(data, "dispositions", (), "the wrap-up outcomes", True)):
        path: Path_ = ("dispositions", i)
        d = c.mapping(raw, c.line(data, "dispositions"), path, "id, label")
        if d is None:
            continue
        c.known_keys(d, DISPOSITION_KEYS, path)
        disp_id = c.ident(d, "id", path, "e.g. sale, callback")
        c.unique(seen, disp_id, c.line(d, "id"), (*path, "id"), "disposition id")
        label = c.text(d, "label", path, required=True, what="what the agent sees")
        callback = c.flag(d, "needs_callback_time", path)
        note = c.flag(d, "needs_note", path)
        if disp_id and label:
            out.append(Disposition(disp_id, label, callback, note))
    return tuple(out)


def _check_variables(c: _Checker, data: dict, known: set[str]) -> None:
    """Every text that is filled per call: valid syntax, only known variables."""

    def check(text: Any, line: int | None, path: Path_) -> None:
        if not isinstance(text, str):
            return
        try:
            names = template.variables(text)
        except template.TemplateError as exc:
            c.add(line, path, str(exc))
            return
        for name in dict.fromkeys(names):
            if name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=1)
                hint = f"did you mean {{{close[0]}}}?" if close else "declare it under fields:"
                c.add(line, path, f"unknown variable {{{name}}} ({hint})")

    def each(d: Any, key: str, path: Path_) -> None:
        if not isinstance(d, dict) or key not in d:
            return
        value, line = d[key], c.line(d, key)
        if isinstance(value, list):
            for i, v in enumerate(value):
                check(v, line, (*path, key, i))
        else:
            check(value, line, (*path, key))

    for i, step in enumerate(data.get("steps") or []):
        if not isinstance(step, dict):
            continue
        for key in ("text", "points", "note"):
            each(step, key, ("steps", i))
        replies = step.get("replies")
        for j, reply in enumerate(replies if isinstance(replies, list) else []):
            for key in ("when", "say"):
                each(reply, key, ("steps", i, "replies", j))
    for i, item in enumerate(data.get("checklist") or []):
        phrases = item.get("phrases") if isinstance(item, dict) else None
        if isinstance(phrases, dict):
            for lang in phrases:
                each(phrases, lang, ("checklist", i, "phrases"))
        elif isinstance(phrases, list):
            each(item, "phrases", ("checklist", i))


# ------------------------------------------------------------ entry points
def parse_script(text: str, file: str, digest: str | None = None) -> Script:
    """Check a script's text; YamlError lists every problem (file, line, field, reason)."""
    digest = digest or hashlib.sha256(text.encode("utf-8")).hexdigest()
    data = load_text(text, file)
    if data is None:
        raise YamlError(
            [
                Problem(
                    file,
                    None,
                    "",
                    "the file is empty: a script needs id, "
                    "project, title, language, direction, kind, "
                    "match, steps and dispositions",
                )
            ]
        )
    if not isinstance(data, dict):
        raise YamlError(
            [
                Problem(
                    file,
                    1,
                    "",
                    f"a script must be a mapping (id: ..., title: ...), not a {_kind(data)}",
                )
            ]
        )
    c = _Checker(file, text)
    c.known_keys(data, TOP_KEYS, ())
    script_id = c.ident(data, "id", (), "a unique name, e.g. acme-support")
    project = c.ident(data, "project", (), "the project it belongs to")
    title = c.text(data, "title", (), required=True, what="what the agent sees")
    language = c.text(data, "language", (), required=True, what="e.g. en, ko")
    if language is not None and not _LANGUAGE.match(language):
        c.add(c.line(data, "language"), ("language",), "must be a language code such as en or ko")
        language = None
    direction = _choice(c, data, "direction", ("inbound", "outbound"))
    kind = _choice(c, data, "kind", ("strict", "flexible"))
    version = c.text(data, "version", ()) if "version" in data else digest[:12]
    company = c.text(data, "company", ())
    description = c.text(data, "description", ()) or ""
    fields = _fields(c, data)
    match = _match(c, data)
    steps = _steps(c, data, kind)
    checklist = _checklist(c, data, {s.id for s in steps}, language)
    dispositions = _dispositions(c, data)
    _check_variables(c, data, set(BUILTIN_VARIABLES) | {f.name for f in fields})
    if c.problems:
        raise YamlError(sorted(c.problems, key=lambda p: p.line or 0))
    assert script_id and project and title and language and direction and kind and version
    return Script(
        id=script_id,
        project=project,
        title=title,
        language=language,
        direction=Direction(direction),
        kind=Kind(kind),
        version=version,
        match=match,
        steps=steps,
        dispositions=dispositions,
        checklist=checklist,
        fields=fields,
        company=company,
        description=description,
        source=file,
        digest=digest,
    )


def read_text(path: Path) -> tuple[str, str]:
    """(text, sha256 of the bytes); YamlError if unreadable or not UTF-8."""
    data = read_bytes(path)
    return decode(data, path, "utf-8-sig"), hashlib.sha256(data).hexdigest()


def load_script(path: str | Path) -> Script:
    """Load and check one script file; YamlError lists every problem found."""
    path = Path(path)
    text, digest = read_text(path)
    return parse_script(text, str(path), digest)
