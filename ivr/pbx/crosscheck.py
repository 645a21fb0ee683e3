"""What Asterisk loads without a word but breaks calls: the dialplans' cross-references.

Asterisk accepts `type = endpointz` (the section is simply not an endpoint, so
that phone never registers), an endpoint whose `context` does not exist
(its calls are rejected), a `Goto` to a missing label, a queue member that is
no phone. ``crosscheck()`` reads dialplans/ as text and reports each such
problem as ``file:line: reason``:

- pjsip.conf: every section's `type` is one Asterisk knows; every endpoint's
  `context` is a context of extensions.conf, its `auth`/`aors`/`transport`
  name sections of that type; every `identify` names an endpoint;
- extensions.conf: every `Goto`/`GotoIf`/`Gosub` target (context, extension,
  priority or label), every `Dial` to a PJSIP endpoint or a Local channel,
  every `Queue`, every `include`, every `ivr/...` prompt resolves; targets
  built from variables (`${EXTEN}`) are left to run time;
- queues.conf: every member's interface is a PJSIP endpoint;
- the service's config: every agent (a user who is not a supervisor) is a
  PJSIP endpoint, and every DID a call script matches on has a route of its
  own in the inbound context (not just a catch-all pattern).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..yamlfile import LineDict, Problem, YamlError, load
from .asterisk_conf import Section, parse_sections, resolved, strip_comment

# Object types of res_pjsip and its modules (Asterisk 22).
PJSIP_TYPES = frozenset(
    {
        "endpoint",
        "auth",
        "aor",
        "identify",
        "transport",
        "global",
        "system",
        "registration",
        "acl",
        "contact",
        "domain_alias",
        "outbound-publish",
        "inbound-publish",
        "resource_list",
        "phoneprov",
        "subscription_persistence",
        "asterisk-publication",
    }
)
# Contexts Asterisk reserves in extensions.conf (not dialplan contexts).
NOT_CONTEXTS = frozenset({"general", "globals"})
SPECIAL = re.compile(r"\$\{|\$\[")


@dataclass
class Extension:
    name: str
    line: int
    priorities: int = 0
    labels: set[str] = field(default_factory=set)


@dataclass
class Context:
    name: str
    line: int
    extensions: list[Extension] = field(default_factory=list)
    includes: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class AppCall:
    """One application in the dialplan, e.g. Goto(to-queue,sales,1) at line 46."""

    context: str
    extension: str
    app: str
    args: str
    line: int


class Dialplan:
    """extensions.conf as contexts, extensions (with priorities and labels) and app calls."""

    def __init__(self, text: str, file: str):
        self.file = file
        self.contexts: dict[str, Context] = {}
        self.calls: list[AppCall] = []
        current: Context | None = None
        ext: Extension | None = None
        for n, raw in enumerate(text.splitlines(), 1):
            line = strip_comment(raw).strip()
            if not line or line.startswith("#"):
                continue
            m = re.match(r"\[([^\]]+)\]", line)
            if m:
                name = m.group(1).strip()
                current = (
                    None
                    if name in NOT_CONTEXTS
                    else self.contexts.setdefault(name, Context(name, n))
                )
                ext = None
                continue
            if current is None:
                continue
            m = re.match(r"(exten|same|include)\s*=>?\s*(.*)$", line, re.I)
            if not m:
                continue
            kind, rest = m.group(1).lower(), m.group(2)
            if kind == "include":
                current.includes.append((rest.strip(), n))
                continue
            if kind == "exten":
                name, _, rest = rest.partition(",")
                ext = next((e for e in current.extensions if e.name == name.strip()), None)
                if ext is None:
                    ext = Extension(name.strip(), n)
                    current.extensions.append(ext)
            elif ext is None:
                continue
            priority, _, app = rest.partition(",")
            lm = re.match(r"\s*(\w+|n)(?:\(([^)]*)\))?", priority)
            if lm:
                p = lm.group(1)
                ext.priorities = int(p) if p.isdigit() else ext.priorities + 1
                if lm.group(2):
                    ext.labels.add(lm.group(2).strip())
            am = re.match(r"\s*(\w+)\s*(?:\((.*)\))?\s*$", app, re.S)
            if am:
                self.calls.append(
                    AppCall(current.name, ext.name, am.group(1), am.group(2) or "", n)
                )

    def extensions(self, context: str, _seen: frozenset[str] = frozenset()) -> list[Extension]:
        """The extensions of a context, with those of the contexts it includes."""
        c = self.contexts.get(context)
        if c is None or context in _seen:
            return []
        out = list(c.extensions)
        for included, _ in c.includes:
            out += self.extensions(included, _seen | {context})
        return out

    def find(self, context: str, exten: str) -> list[Extension]:
        """The extensions of ``context`` that a call to ``exten`` would run (literal or pattern)."""
        return [e for e in self.extensions(context) if e.name == exten or matches(e.name, exten)]


def matches(pattern: str, exten: str) -> bool:
    """Does extension ``pattern`` (literal or ``_`` pattern) take the number ``exten``?"""
    if not pattern.startswith("_"):
        return pattern == exten
    regex = ""
    p = pattern[1:]
    i = 0
    while i < len(p):
        c = p[i]
        if c in "Xx":
            regex += "[0-9]"
        elif c in "Zz":
            regex += "[1-9]"
        elif c in "Nn":
            regex += "[2-9]"
        elif c == ".":
            regex += ".+"
        elif c == "!":
            regex += ".*"
        elif c == "[":
            end = p.find("]", i)
            if end < 0:
                return False
            regex += "[" + p[i + 1 : end].replace("\\", "\\\\") + "]"
            i = end
        else:
            regex += re.escape(c)
        i += 1
    return re.fullmatch(regex, exten) is not None


def split_top(text: str, sep: str) -> list[str]:
    """``text`` split at each ``sep`` outside ${...}, $[...] and (...)."""
    out, depth, cur = [], 0, ""
    for c in text:
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if c == sep and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += c
    out.append(cur)
    return [part.strip() for part in out]


def split_args(args: str) -> list[str]:
    """Application arguments split at top-level commas."""
    return split_top(args, ",")


def goto_branches(args: str) -> list[str]:
    """The targets of GotoIf(cond?a:b) / GosubIf: the parts after the top-level '?'."""
    parts = split_top(args, "?")
    if len(parts) < 2:
        return []
    return [p for p in split_top("?".join(parts[1:]), ":") if p]


class _Checker:
    def __init__(self, dialplans: Path):
        self.dialplans = dialplans
        self.problems: list[Problem] = []
        self.pjsip = self._sections("pjsip.conf")
        self.queues = self._sections("queues.conf")
        ext = dialplans / "extensions.conf"
        self.dialplan = (
            Dialplan(ext.read_text(encoding="utf-8"), str(ext))
            if ext.exists()
            else Dialplan("", str(ext))
        )
        self.types: dict[int, str] = {}  # id(section) -> effective type
        for s in self.pjsip:
            t = [o for o in resolved(s, self.pjsip) if o.key.lower() == "type"]
            self.types[id(s)] = t[-1].value.strip().lower() if t else ""

    def _sections(self, name: str) -> list[Section]:
        path = self.dialplans / name
        if not path.exists():
            return []
        return parse_sections(path.read_text(encoding="utf-8"), str(path))

    def report(self, file: str, line: int | None, reason: str) -> None:
        self.problems.append(Problem(file, line, "", reason))

    def pjsip_of(self, kind: str) -> dict[str, Section]:
        return {s.name: s for s in self.pjsip if not s.is_template and self.types[id(s)] == kind}

    # ------------------------------------------------------------ pjsip.conf
    def check_pjsip(self) -> None:
        for s in self.pjsip:
            for o in s.all("type"):
                if o.value.strip().lower() not in PJSIP_TYPES:
                    self.report(
                        s.file,
                        o.line,
                        f"[{s.name}]: unknown type '{o.value}' "
                        f"(PJSIP knows {', '.join(sorted(PJSIP_TYPES))}); "
                        "Asterisk ignores this section",
                    )
            if not s.is_template and not self.types[id(s)]:
                self.report(
                    s.file,
                    s.line,
                    f"[{s.name}]: no type (endpoint, auth, aor ...); Asterisk ignores this section",
                )
        endpoints = self.pjsip_of("endpoint")
        refs = {"auth": "auth", "outbound_auth": "auth", "aors": "aor", "transport": "transport"}
        for s in endpoints.values():
            options = resolved(s, self.pjsip)
            for o in options:
                key = o.key.lower()
                if key == "context" and not SPECIAL.search(o.value):
                    if o.value not in self.dialplan.contexts:
                        self.report(
                            s.file,
                            o.line,
                            f"[{s.name}]: context '{o.value}' is not a "
                            "context of extensions.conf: its calls would be rejected",
                        )
                elif key in refs:
                    wanted = self.pjsip_of(refs[key])
                    for name in filter(None, (v.strip() for v in o.value.split(","))):
                        if name not in wanted:
                            self.report(
                                s.file,
                                o.line,
                                f"[{s.name}]: {key} '{name}' is no "
                                f"{refs[key]} section of pjsip.conf",
                            )
        for s in self.pjsip_of("identify").values():
            found = next(
                (o for o in reversed(resolved(s, self.pjsip)) if o.key == "endpoint"), None
            )
            if found is not None and found.value not in endpoints:
                self.report(
                    s.file, found.line, f"[{s.name}]: endpoint '{found.value}' is no endpoint"
                )

    # ------------------------------------------------------------ extensions.conf
    def check_dialplan(self) -> None:
        d = self.dialplan
        for c in d.contexts.values():
            for included, line in c.includes:
                if included not in d.contexts:
                    self.report(d.file, line, f"[{c.name}]: include '{included}' is no context")
        endpoints = self.pjsip_of("endpoint")
        queues = {s.name for s in self.queues if not s.is_template and s.name != "general"}
        prompts = self.dialplans / "prompts"
        for call in d.calls:
            app = call.app.lower()
            where = f"[{call.context}] {call.extension}: {call.app}({call.args})"
            if app in ("goto", "gosub"):
                self._target(call, call.args, where)
            elif app in ("gotoif", "gosubif"):
                for branch in goto_branches(call.args):
                    self._target(call, branch.split("(")[0], where)
            elif app == "dial":
                for dest in split_args(call.args)[0].split("&"):
                    self._dial(call, dest.strip(), endpoints, where)
            elif app == "queue":
                name = split_args(call.args)[0]
                if name and not SPECIAL.search(name) and name not in queues:
                    self.report(d.file, call.line, f"{where}: no queue '{name}' in queues.conf")
            elif app in ("playback", "background") and prompts.is_dir():
                for sound in split_args(call.args)[0].split("&"):
                    if sound.startswith("ivr/") and not SPECIAL.search(sound):
                        stem = sound[4:]
                        if not any((prompts / f"{stem}{x}").exists() for x in (".txt", ".wav")):
                            self.report(
                                d.file,
                                call.line,
                                f"{where}: no prompt {stem}.txt or {stem}.wav in {prompts}",
                            )

    def _target(self, call: AppCall, target: str, where: str) -> None:
        parts = split_args(target)
        if not parts or SPECIAL.search(parts[0] if len(parts) == 3 else ""):
            return
        context, exten, prio = call.context, call.extension, parts[-1]
        if len(parts) == 2:
            exten = parts[0]
        elif len(parts) == 3:
            context, exten = parts[0], parts[1]
        elif len(parts) > 3:
            self.report(self.dialplan.file, call.line, f"{where}: too many parts in the target")
            return
        d = self.dialplan
        if context not in d.contexts:
            self.report(d.file, call.line, f"{where}: no context '{context}'")
            return
        if SPECIAL.search(exten):
            return
        found = d.find(context, exten)
        if not found:
            self.report(d.file, call.line, f"{where}: no extension '{exten}' in [{context}]")
            return
        if SPECIAL.search(prio):
            return
        if prio.isdigit():
            if not any(int(prio) <= e.priorities for e in found):
                self.report(
                    d.file,
                    call.line,
                    f"{where}: extension '{exten}' of [{context}] has no priority {prio}",
                )
        elif not any(prio in e.labels for e in found):
            self.report(
                d.file,
                call.line,
                f"{where}: extension '{exten}' of [{context}] has no label '{prio}'",
            )

    def _dial(self, call: AppCall, dest: str, endpoints: dict[str, Section], where: str) -> None:
        tech, _, resource = dest.partition("/")
        if tech.upper() == "PJSIP":
            name = resource.split("/")[0]
            if name and not SPECIAL.search(name) and ":" not in name and name not in endpoints:
                self.report(
                    self.dialplan.file,
                    call.line,
                    f"{where}: no PJSIP endpoint '{name}' in pjsip.conf",
                )
        elif tech.lower() == "local" and not SPECIAL.search(resource):
            exten, _, context = resource.partition("@")
            context = context.split("/")[0]
            if context not in self.dialplan.contexts:
                self.report(self.dialplan.file, call.line, f"{where}: no context '{context}'")
            elif not self.dialplan.find(context, exten):
                self.report(
                    self.dialplan.file, call.line, f"{where}: no extension '{exten}' in [{context}]"
                )

    # ------------------------------------------------------------ queues.conf
    def check_queues(self) -> None:
        endpoints = self.pjsip_of("endpoint")
        for s in self.queues:
            for o in s.all("member"):
                interface = o.value.split(",")[0].strip()
                tech, _, name = interface.partition("/")
                if tech.upper() == "PJSIP" and not SPECIAL.search(name) and name not in endpoints:
                    self.report(
                        s.file,
                        o.line,
                        f"[{s.name}]: member {interface} is no PJSIP "
                        "endpoint of pjsip.conf: that member can never be rung",
                    )

    # ------------------------------------------------------------ the service's files
    def inbound_contexts(self) -> set[str]:
        """Contexts where carrier calls start: those of endpoints named by an identify."""
        endpoints = self.pjsip_of("endpoint")
        out = set()
        for s in self.pjsip_of("identify").values():
            o = next((o for o in reversed(resolved(s, self.pjsip)) if o.key == "endpoint"), None)
            if o is not None and o.value in endpoints:
                ctx = next(
                    (
                        c
                        for c in reversed(resolved(endpoints[o.value], self.pjsip))
                        if c.key == "context"
                    ),
                    None,
                )
                if ctx is not None:
                    out.add(ctx.value)
        return out

    def check_agents(self, config: str | None, agents: Iterable[str]) -> None:
        lines = _user_lines(config)
        endpoints = self.pjsip_of("endpoint")
        for login in agents:
            if login not in endpoints:
                self.report(
                    config or "<config>",
                    lines.get(login),
                    f"users.{login}: agent {login} has no PJSIP endpoint [{login}] in "
                    f"{self.dialplans / 'pjsip.conf'}: their calls can never pop",
                )

    def check_dids(self, scripts: Path) -> None:
        inbound = self.inbound_contexts()
        if not inbound:
            return
        for path in sorted(scripts.glob("*.yaml")):
            for did, line in _script_dids(path):
                literal = [
                    c for c in inbound if any(e.name == did for e in self.dialplan.extensions(c))
                ]
                if not literal:
                    where = ", ".join(f"[{c}]" for c in sorted(inbound))
                    caught = [e.name for c in inbound for e in self.dialplan.find(c, did)]
                    how = (
                        f"only the catch-all {caught[0]} takes it"
                        if caught
                        else "calls to it are rejected"
                    )
                    self.report(
                        str(path),
                        line,
                        f"DID {did} has no route of its own in extensions.conf {where}: {how}",
                    )


def _user_lines(config: str | None) -> dict[str, int | None]:
    if not config:
        return {}
    try:
        data = load(Path(config))
    except (YamlError, OSError):
        return {}
    users = data.get("users") if isinstance(data, dict) else None
    if not isinstance(users, LineDict):
        return {}
    return {str(k): users.line_of(k) for k in users}


def _script_dids(path: Path) -> list[tuple[str, int | None]]:
    try:
        data = load(path)
    except (YamlError, OSError):
        return []  # the scripts check reports a broken file
    match = data.get("match") if isinstance(data, dict) else None
    entries = match if isinstance(match, list) else [match]
    out = []
    for entry in entries:
        if isinstance(entry, dict) and entry.get("did") not in (None, ""):
            line = entry.line_of("did") if isinstance(entry, LineDict) else None
            out.append((str(entry["did"]), line))
    return out


def crosscheck(
    dialplans: Path,
    *,
    config: str | None = None,
    agents: Iterable[str] = (),
    scripts: Path | None = None,
) -> list[Problem]:
    """Every cross-reference problem of the dialplans (and the service's files), in file order."""
    c = _Checker(dialplans)
    c.check_pjsip()
    c.check_dialplan()
    c.check_queues()
    c.check_agents(config, agents)
    if scripts is not None and scripts.is_dir():
        c.check_dids(scripts)
    return c.problems
