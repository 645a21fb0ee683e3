"""Settings of the service: one YAML file, secrets from the environment.

Every section is a small frozen dataclass; ``load_settings`` fills them from
the file, checks types, and reports every problem with file, line and field.
Secrets never live in code: ``ami.secret`` may be written in the file (kept
out of version control) but ``IVR_AMI_SECRET`` in the environment wins. The
``users:`` section is read by users.py, which owns who may sign in.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .secret import Secret
from .users import User, users_from_config
from .yamlfile import LineDict, Problem, YamlError, load

CONFIG_ENV = "IVR_CONFIG"
SECRET_ENV = "IVR_AMI_SECRET"


@dataclass(frozen=True)
class AmiSettings:
    """One PBX the service follows over AMI. `ami:` in the config is one such
    section, or a list of them (several PBXs, each with its own `name`)."""

    name: str = "default"  # how the PBX is known (logs, leases, records)
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "ivr"
    secret: Secret = field(default=Secret(""), repr=False)
    # Reconnect backoff: first retry after reconnect_min s, doubling up to reconnect_max s.
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0
    # Agents (logins) whose phones are on this PBX, for the dialers; empty:
    # every agent (one PBX).
    agents: tuple[str, ...] = ()


@dataclass(frozen=True)
class TlsSettings:
    """HTTPS for the console: PEM files (the certificate chain and its key)."""

    cert: str = ""
    key: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.cert)


@dataclass(frozen=True)
class WebSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    tls: TlsSettings = TlsSettings()
    # Origins (scheme://host[:port]) the pages may be loaded from besides the
    # console's own address, e.g. the public name behind a reverse proxy.
    origins: tuple[str, ...] = ()
    # Reverse proxies (IP addresses) whose X-Forwarded-For / X-Forwarded-Proto
    # are believed; from anyone else those headers are ignored.
    trusted_proxies: tuple[str, ...] = ()
    # A sign-in lasts at most session_hours (24 at most) and ends earlier after
    # idle_minutes without any request or open console.
    session_hours: float = 12.0
    idle_minutes: float = 60.0
    # Seconds a client has to send a request's headers (also how long an idle
    # keep-alive connection stays open), and a JSON body.
    header_timeout: float = 15.0
    body_timeout: float = 30.0
    # Open connections from one client address (a reverse proxy is exempt).
    max_connections_per_address: int = 256
    # Networks (CIDR or addresses) whose clients may read /metrics, besides loopback:
    # e.g. the Prometheus server. Everyone else gets 403.
    metrics_from: tuple[str, ...] = ()


@dataclass(frozen=True)
class StoreSettings:
    # sqlite:///absolute/path.db, sqlite:relative/path.db or postgresql://user@host/db
    url: str = "sqlite:ivr-data/ivr.db"


@dataclass(frozen=True)
class TapSettings:
    """Where the service listens for AudioSocket audio taps from Asterisk."""

    host: str = "127.0.0.1"
    port: int = 9092
    # The address Asterisk connects to, if not `host` (e.g. "ivr" in Docker,
    # where the service listens on 0.0.0.0).
    connect_host: str = ""


@dataclass(frozen=True)
class SpeechSettings:
    # Folder of a Vosk model; "auto" takes the first model `ivr models` knows.
    model: str = "auto"
    # How calls are recognised: "spotting" listens only for the script's and the
    # rules' phrases (a Vosk grammar: ~10x cheaper, more robust on those phrases,
    # no free transcript); "transcript" decodes everything (full transcript, and
    # the cost); "auto" spots for strict scripts (read word for word) and
    # transcribes flexible ones (talking points, where the wording varies).
    mode: str = "auto"
    # false runs the service without taps and speech (e.g. no model installed).
    enabled: bool = True
    # Free decoding's search (the transcript pass): a narrower beam and fewer active
    # states cost less CPU per call for a little accuracy (bench/README.md, "Decoder
    # settings", measures both: on the Korean corpus 8 / 2000 cost 18 % less CPU than
    # the model's 10 / 3000 at the same accuracy); 0 keeps the model's own setting.
    beam: float = 8.0
    max_active: int = 2000
    # Transcript recognizers alive at once (in calls and kept warm): each holds some
    # 20-35 MB of decoding-graph cache (bench/README.md, live_load), so this bounds the
    # service's memory; streams beyond it are spotted without a transcript until one
    # is free (counted: ivr_speech_transcript_held_seconds).
    max_transcripts: int = 16


@dataclass(frozen=True)
class SupervisionSettings:
    """Supervisors listening in on calls (listen, whisper, barge)."""

    # Whether the agent's console says a supervisor is on the line: always,
    # when_heard (whisper and barge only: the agent hears them anyway), never.
    tell_agent: str = "always"
    # How long the supervisor's phone rings before the request is dropped (s).
    ring_seconds: int = 30


@dataclass(frozen=True)
class RejectSettings:
    """Agents whose phone refuses a queue call (486 Busy Here, 603 Decline)."""

    # Paused in every queue this long (s), so the queue does not ring them again
    # every few seconds; then ready again. 0: never paused.
    pause_seconds: float = 60.0


@dataclass(frozen=True)
class ClusterSettings:
    """Several service instances on one PostgreSQL store (ivr/cluster/).

    Each PBX is followed by one instance at a time: the one holding its lease
    (a PostgreSQL advisory lock). The others poll every `lease_poll` s and
    take a PBX over when its holder dies. With SQLite (one machine) every
    PBX is simply this instance's."""

    # This instance's id (logs, claims); empty: host name, process id and a
    # random part, new at every start.
    instance: str = ""
    lease_poll: float = 1.0
    # PBXs this instance takes as soon as they are free (its own); the others
    # it takes only as a standby, once found free at two polls in a row
    # (their holder died). Empty: every PBX is its own.
    prefer: tuple[str, ...] = ()
    # What this instance runs: controller (PBXs, calls, dialers, taps, coaching),
    # speech (the taps' AudioSocket server, VAD and Vosk) and web (consoles,
    # APIs). Empty: all three, in one process. With a bus: web alone, speech
    # alone (a speech worker), controller alone (its calls are decoded by the
    # speech workers) or controller and speech (it decodes its own calls).
    # `ivr serve --role ...` overrides this.
    roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class BusSettings:
    """The bus between instances of different roles (ivr/bus): a NATS server,
    e.g. nats://10.0.0.5:4222. Empty: no bus, everything in one process."""

    url: str = ""


@dataclass(frozen=True)
class PbxSettings:
    """The sandbox Asterisk that `ivr pbx up` runs (tests, demo, testers)."""

    root: str = "/var/cache/ivr/sid-root"
    instance: str = "default"
    sip_host: str = "127.0.0.1"
    sip_port: int = 5060
    # Where the sandbox sends calls to customers (the "carrier").
    trunk_peer: str = "127.0.0.2:5060"
    dialplans: str = "dialplans"
    # Asterisk's systemname: prefixes every Uniqueid, so calls of several PBXs
    # followed by one service never share an id (ivr/cluster).
    system_name: str = ""


@dataclass(frozen=True)
class GroupMember:
    """An agent in a group; a higher penalty is rung (and dialled) only when
    every agent with a lower one is busy (Asterisk's queue member penalty)."""

    login: str
    penalty: int = 0


@dataclass(frozen=True)
class AgentGroup:
    """Which agents serve which projects and queues (departments).

    An agent may be in several groups. Signing in adds the agent to the queues
    of all their groups; the dialers give a call of a project only to agents
    of a group listing that project."""

    name: str
    projects: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()
    agents: tuple[GroupMember, ...] = ()
    # Where the group and its queues are written (for `ivr check`), not settings.
    line: int | None = field(default=None, compare=False, repr=False)
    queue_lines: tuple[int | None, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True)
class ShiftSettings:
    """Agent states: pause reasons, wrap-up time, the wallboard's service level."""

    # What an agent may give as the reason for "not ready".
    not_ready_reasons: tuple[str, ...] = ("break", "lunch", "training", "meeting")
    # Longest wrap-up (s): then the agent is ready again, saved or not.
    wrapup_seconds: float = 120.0
    # Per project: project -> longest wrap-up (s), instead of wrapup_seconds.
    wrapup_by_project: tuple[tuple[str, float], ...] = ()
    # Service level: the share of queue calls answered within this many seconds.
    service_level_seconds: float = 20.0

    def wrapup_limit(self, project: str) -> float:
        return dict(self.wrapup_by_project).get(project, self.wrapup_seconds)


@dataclass(frozen=True)
class Settings:
    ami: AmiSettings = AmiSettings()
    web: WebSettings = WebSettings()
    store: StoreSettings = StoreSettings()
    tap: TapSettings = TapSettings()
    speech: SpeechSettings = SpeechSettings()
    supervision: SupervisionSettings = SupervisionSettings()
    rejects: RejectSettings = RejectSettings()
    pbx: PbxSettings = PbxSettings()
    cluster: ClusterSettings = ClusterSettings()
    bus: BusSettings = BusSettings()
    # Every PBX followed (`ami` is the first): from a list under `ami:`.
    pbxs: tuple[AmiSettings, ...] = ()
    scripts: str = "scripts"
    # Optional CSV (number,name,...) used to fill customer names into scripts.
    customers: str = ""
    users: tuple[User, ...] = ()
    groups: tuple[AgentGroup, ...] = ()
    shift: ShiftSettings = ShiftSettings()
    log_level: str = "INFO"
    log_format: str = "text"  # text | json (one object per line, for log shippers)
    # The file these came from (None: built-in defaults); relative paths are
    # resolved against its folder.
    source: str | None = None

    @property
    def all_pbxs(self) -> tuple[AmiSettings, ...]:
        return self.pbxs or (self.ami,)

    def path(self, value: str) -> Path:
        p = Path(value)
        if p.is_absolute() or self.source is None:
            return p
        return Path(self.source).parent / p

    def user(self, login: str) -> User | None:
        for u in self.users:
            if u.login == login:
                return u
        return None


# Allowed ranges of numeric settings: (section.key) -> (min, max).
_RANGES = {
    "web.session_hours": (0.01, 24.0),
    "web.idle_minutes": (0.05, 24 * 60.0),
    "web.header_timeout": (0.5, 600.0),
    "web.body_timeout": (0.5, 3600.0),
    "web.max_connections_per_address": (1, 100000),
    "cluster.lease_poll": (0.1, 10.0),
}
_NESTED = {"TlsSettings": TlsSettings}

_SECTIONS = {
    "ami": AmiSettings,
    "web": WebSettings,
    "store": StoreSettings,
    "tap": TapSettings,
    "speech": SpeechSettings,
    "supervision": SupervisionSettings,
    "rejects": RejectSettings,
    "pbx": PbxSettings,
    "cluster": ClusterSettings,
    "bus": BusSettings,
}
_TOP_LEVEL = {"scripts": str, "customers": str, "log_level": str, "log_format": str}
_LOG_FORMATS = ("text", "json")


# Words an agent's pause reason may be made of (it travels to Asterisk's
# PausedReason, and "wrap-up" is the service's own).
_REASON = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,39}")
WRAPUP_REASON = "wrap-up"


def _line(d: Any, key: str | None = None, default: int | None = None) -> int | None:
    if isinstance(d, LineDict):
        return d.line_of(key) if key is not None else d.line
    return default


def _build_shift(data: Any, file: str, line: int | None, problems: list[Problem]) -> ShiftSettings:
    if data is None:
        return ShiftSettings()
    if not isinstance(data, dict):
        problems.append(Problem(file, line, "shift", "must be a mapping of settings"))
        return ShiftSettings()
    kwargs: dict[str, Any] = {}
    known = ("not_ready_reasons", "wrapup_seconds", "service_level_seconds", "projects")
    for key, value in data.items():
        kline, where = _line(data, key, line), f"shift.{key}"
        if key in ("wrapup_seconds", "service_level_seconds"):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not 0 < value <= 86400
            ):
                problems.append(Problem(file, kline, where, "must be seconds, 1-86400"))
            else:
                kwargs[key] = float(value)
        elif key == "not_ready_reasons":
            reasons = value if isinstance(value, list) else None
            if not reasons or not all(
                isinstance(r, str) and _REASON.fullmatch(r) and not r.startswith(WRAPUP_REASON)
                for r in reasons
            ):
                problems.append(
                    Problem(
                        file,
                        kline,
                        where,
                        "must be a list of short words "
                        f"(letters, digits, spaces, '-'; not {WRAPUP_REASON!r})",
                    )
                )
            elif len(set(reasons)) != len(reasons):
                problems.append(Problem(file, kline, where, "lists a reason twice"))
            else:
                kwargs[key] = tuple(reasons)
        elif key == "projects":
            if not isinstance(value, dict):
                problems.append(
                    Problem(file, kline, where, "must map each project to {wrapup_seconds: N}")
                )
                continue
            limits = []
            for project, conf in value.items():
                pline = _line(value, project, kline)
                seconds = conf.get("wrapup_seconds") if isinstance(conf, dict) else None
                if (
                    not isinstance(conf, dict)
                    or set(conf) != {"wrapup_seconds"}
                    or isinstance(seconds, bool)
                    or not isinstance(seconds, (int, float))
                    or not 0 < seconds <= 86400
                ):
                    problems.append(
                        Problem(
                            file,
                            pline,
                            f"{where}.{project}",
                            "must be {wrapup_seconds: N} (seconds, 1-86400)",
                        )
                    )
                    continue
                limits.append((str(project), float(seconds)))
            kwargs["wrapup_by_project"] = tuple(limits)
        else:
            problems.append(
                Problem(file, kline, where, f"unknown setting (known: {', '.join(known)})")
            )
    return ShiftSettings(**kwargs)


def _words(value: Any) -> list[str] | None:
    """A list of names (numbers allowed, as YAML reads 1001), or None if it is not one."""
    if not isinstance(value, list):
        return None
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (str, int)) or not str(v).strip():
            return None
        out.append(str(v))
    return out


def _build_groups(
    data: Any, file: str, line: int | None, users: tuple[User, ...], problems: list[Problem]
) -> tuple[AgentGroup, ...]:
    """`groups:` name -> {projects: [...], queues: [...], agents: [login, ...] or
    {login: penalty}}. Unknown agents and empty groups are problems here;
    unknown queues need the dialplans and are `ivr check`'s (ivr.agents.check)."""
    if not isinstance(data, dict):
        problems.append(
            Problem(
                file,
                line,
                "groups",
                "must map each group's name to its projects, queues and agents",
            )
        )
        return ()
    roles = {u.login: u.role for u in users}
    groups = []
    for name, value in data.items():
        gline, where = _line(data, name, line), f"groups.{name}"
        if not isinstance(value, dict):
            problems.append(
                Problem(file, gline, where, "must be a mapping (projects, queues, agents)")
            )
            continue
        for key in value:
            if key not in ("projects", "queues", "agents"):
                problems.append(
                    Problem(
                        file,
                        _line(value, key, gline),
                        f"{where}.{key}",
                        "unknown setting (known: projects, queues, agents)",
                    )
                )
        lists: dict[str, list[str]] = {}
        for key in ("projects", "queues"):
            words = _words(value.get(key, []))
            if words is None:
                problems.append(
                    Problem(
                        file, _line(value, key, gline), f"{where}.{key}", "must be a list of names"
                    )
                )
                words = []
            lists[key] = words
        raw = value.get("agents")
        aline = _line(value, "agents", gline)
        members: list[GroupMember] = []
        malformed = False
        if isinstance(raw, dict):
            for login, penalty in raw.items():
                if (
                    isinstance(penalty, bool)
                    or not isinstance(penalty, int)
                    or not 0 <= penalty <= 1000
                ):
                    problems.append(
                        Problem(
                            file,
                            _line(raw, login, aline),
                            f"{where}.agents.{login}",
                            "penalty must be a whole number, 0-1000",
                        )
                    )
                    malformed = True
                    continue
                members.append(GroupMember(str(login), penalty))
        elif raw is not None:
            words = _words(raw)
            if words is None:
                problems.append(
                    Problem(
                        file,
                        aline,
                        f"{where}.agents",
                        "must be a list of agents' logins, or map each login to a penalty",
                    )
                )
                malformed = True
            members = [GroupMember(w) for w in words or []]
        if not members and not malformed:
            problems.append(
                Problem(file, aline, f"{where}.agents", "empty group: list at least one agent")
            )
        for m in members:
            role = roles.get(m.login)
            if role != "agent":
                mline = _line(raw, m.login, aline) if isinstance(raw, dict) else aline
                problems.append(
                    Problem(
                        file,
                        mline,
                        f"{where}.agents.{m.login}",
                        "unknown agent (not in users)"
                        if role is None
                        else "is a supervisor, not an agent",
                    )
                )
        if len({m.login for m in members}) != len(members):
            problems.append(Problem(file, aline, f"{where}.agents", "lists an agent twice"))
        queue_lines = tuple(_line(value, "queues", gline) for _ in lists["queues"])
        groups.append(
            AgentGroup(
                str(name),
                tuple(lists["projects"]),
                tuple(lists["queues"]),
                tuple(members),
                line=gline,
                queue_lines=queue_lines,
            )
        )
    return tuple(groups)


def _check_value(value: Any, kind: Any) -> tuple[Any, str | None]:
    if kind == "tuple[str, ...]":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return value, "must be a list of text"
        return tuple(value), None
    kind = {"str": str, "int": int, "float": float, "bool": bool, "Secret": Secret}.get(kind, kind)
    if kind is Secret:
        kind = str
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is int and isinstance(value, bool):
        return value, "must be a whole number"
    if not isinstance(value, kind):
        names = {str: "text", int: "a whole number", float: "a number", bool: "true or false"}
        return value, f"must be {names.get(kind, kind.__name__)}, not {type(value).__name__}"
    return value, None


def _build_section(
    cls: type, data: Any, file: str, where: str, line: int | None, problems: list[Problem]
) -> Any:
    if data is None:
        return cls()
    if not isinstance(data, dict):
        problems.append(Problem(file, line, where, "must be a mapping of settings"))
        return cls()
    known = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in data.items():
        kline = data.line_of(key) if isinstance(data, LineDict) else line
        if key not in known:
            problems.append(
                Problem(
                    file, kline, f"{where}.{key}", f"unknown setting (known: {', '.join(known)})"
                )
            )
            continue
        nested = _NESTED.get(str(known[key].type))
        if nested is not None:
            values[key] = _build_section(nested, value, file, f"{where}.{key}", kline, problems)
            continue
        value, err = _check_value(value, known[key].type)
        if err:
            problems.append(Problem(file, kline, f"{where}.{key}", err))
            continue
        if key.endswith("port") and not 0 < value < 65536:
            problems.append(Problem(file, kline, f"{where}.{key}", "must be a port, 1-65535"))
            continue
        low, high = _RANGES.get(f"{where}.{key}", (None, None))
        if low is not None and not low <= value <= high:
            problems.append(Problem(file, kline, f"{where}.{key}", f"must be {low:g}-{high:g}"))
            continue
        values[key] = Secret(value) if key == "secret" else value
    return cls(**values)


def load_settings(
    path: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    roles: list[str] | tuple[str, ...] | None = None,
) -> Settings:
    """Read settings from ``path`` (or $IVR_CONFIG, or ./ivr.yaml if present).

    Raises YamlError listing every problem; never returns half-checked settings.
    """
    env = os.environ if env is None else env
    if path is None:
        path = env.get(CONFIG_ENV) or ("ivr.yaml" if Path("ivr.yaml").exists() else None)
    data: Any = LineDict()
    file = "<defaults>"
    if path is not None:
        file = str(path)
        data = load(Path(path)) or LineDict()
    problems: list[Problem] = []
    if not isinstance(data, dict):
        raise YamlError([Problem(file, 1, "", "the config must be a mapping of sections")])
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        line = data.line_of(key) if isinstance(data, LineDict) else None
        if key == "ami" and isinstance(value, list):
            kwargs["pbxs"] = _build_pbxs(value, file, line, problems)
            kwargs["ami"] = kwargs["pbxs"][0] if kwargs["pbxs"] else AmiSettings()
        elif key in _SECTIONS:
            kwargs[key] = _build_section(_SECTIONS[key], value, file, key, line, problems)
        elif key == "users":
            kwargs["users"] = users_from_config(value, file, line, env, problems)
        elif key == "shift":
            kwargs["shift"] = _build_shift(value, file, line, problems)
        elif key == "groups":
            continue
        elif key in _TOP_LEVEL:
            value, err = _check_value(value, _TOP_LEVEL[key])
            if not err and key == "log_format" and value not in _LOG_FORMATS:
                err = f"must be {' or '.join(_LOG_FORMATS)}, not {value!r}"
            if err:
                problems.append(Problem(file, line, key, err))
            else:
                kwargs[key] = value
        else:
            known = ", ".join([*_SECTIONS, *_TOP_LEVEL, "users", "groups", "shift"])
            problems.append(Problem(file, line, key, f"unknown section (known: {known})"))
    supervision = kwargs.get("supervision")
    if supervision is not None:
        line = data.line_of("supervision") if isinstance(data, LineDict) else None
        if supervision.tell_agent not in ("always", "when_heard", "never"):
            problems.append(
                Problem(file, line, "supervision.tell_agent", "must be always, when_heard or never")
            )
        if not 5 <= supervision.ring_seconds <= 120:
            problems.append(Problem(file, line, "supervision.ring_seconds", "must be 5-120"))
    rejects = kwargs.get("rejects")
    if rejects is not None and not 0 <= rejects.pause_seconds <= 3600:
        line = data.line_of("rejects") if isinstance(data, LineDict) else None
        problems.append(Problem(file, line, "rejects.pause_seconds", "must be 0-3600 seconds"))
    if "groups" in data:  # after the users, whom the groups name
        kwargs["groups"] = _build_groups(
            data["groups"],
            file,
            data.line_of("groups") if isinstance(data, LineDict) else None,
            kwargs.get("users", ()),
            problems,
        )
    speech = kwargs.get("speech")
    if speech is not None:
        line = data.line_of("speech") if isinstance(data, LineDict) else None
        if speech.mode not in ("auto", "spotting", "transcript"):
            problems.append(
                Problem(file, line, "speech.mode", "must be auto, spotting or transcript")
            )
    if roles:  # `ivr serve --role ...` wins over the file
        kwargs["cluster"] = dataclasses.replace(
            kwargs.get("cluster", ClusterSettings()), roles=tuple(roles)
        )
    problems += check_roles(
        kwargs.get("cluster", ClusterSettings()),
        kwargs.get("bus", BusSettings()),
        file,
        data.line_of("cluster") if isinstance(data, LineDict) else None,
    )
    web = kwargs.get("web")
    if web is not None:
        line = data.line_of("web") if isinstance(data, LineDict) else None
        problems += _check_tls(web.tls, Path(path).parent if path else Path("."), file, line)
        section = data.get("web")
        mline = section.line_of("metrics_from") if isinstance(section, LineDict) else line
        for net in web.metrics_from:
            try:
                ipaddress.ip_network(str(net), strict=False)
            except ValueError:
                problems.append(
                    Problem(file, mline, "web.metrics_from", f"not an address or network: {net!r}")
                )
    if problems:
        raise YamlError(problems)
    settings = Settings(**kwargs, source=str(Path(path).resolve()) if path else None)
    if env.get(SECRET_ENV) or settings.pbxs:
        # IVR_AMI_SECRET_<NAME> for one PBX of a list, else IVR_AMI_SECRET.
        def secret(p: AmiSettings) -> Secret:
            own = (
                env.get(f"{SECRET_ENV}_{p.name.upper().replace('-', '_')}", "")
                if settings.pbxs
                else ""
            )
            return Secret(own or env.get(SECRET_ENV) or p.secret)

        pbxs = tuple(dataclasses.replace(p, secret=secret(p)) for p in settings.all_pbxs)
        settings = dataclasses.replace(settings, ami=pbxs[0], pbxs=pbxs if settings.pbxs else ())
    return settings


_PBX_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")


def _build_pbxs(
    data: list, file: str, line: int | None, problems: list[Problem]
) -> tuple[AmiSettings, ...]:
    """`ami:` as a list: one section per PBX, each with its own unique name."""
    pbxs: list[AmiSettings] = []
    if not data:
        problems.append(Problem(file, line, "ami", "an empty list: name at least one PBX"))
    for i, item in enumerate(data):
        where = f"ami[{i}]"
        pbx = _build_section(AmiSettings, item, file, where, line, problems)
        if not isinstance(item, dict) or "name" not in item:
            problems.append(Problem(file, line, where, "each PBX of a list needs a name"))
        elif not _PBX_NAME.fullmatch(pbx.name):
            problems.append(
                Problem(file, line, f"{where}.name", "letters, digits, - and _ only (at most 32)")
            )
        elif any(p.name == pbx.name for p in pbxs):
            problems.append(Problem(file, line, f"{where}.name", f"{pbx.name!r} given twice"))
        pbxs.append(pbx)
    return tuple(pbxs)


ROLES = ("controller", "web", "speech")


def check_roles(
    cluster: ClusterSettings, bus: BusSettings, file: str = "<config>", line: int | None = None
) -> list[Problem]:
    def problem(text: str, key: str = "cluster.roles") -> list[Problem]:
        return [Problem(file, line, key, text)]

    unknown = [r for r in cluster.roles if r not in ROLES]
    if unknown:
        return problem(f"unknown role {unknown[0]!r} (known: {', '.join(ROLES)})")
    roles = set(cluster.roles) or set(ROLES)
    if bus.url and not bus.url.startswith(("nats://", "tls://")):
        return problem("must be nats://host:port", "bus.url")
    if not bus.url and roles != set(ROLES):
        return problem("a single role needs a bus (bus.url: nats://...) to reach the others")
    if bus.url and roles == set(ROLES):
        return problem(
            "with a bus, run each role as its own instance: controller (with or "
            "without speech), speech or web"
        )
    if bus.url and "web" in roles and len(roles) > 1:
        return problem("a web front runs alone (--role web); controller and speech may share")
    return []


def _check_tls(tls: TlsSettings, base: Path, file: str, line: int | None) -> list[Problem]:
    if not tls.cert and not tls.key:
        return []
    if not (tls.cert and tls.key):
        return [Problem(file, line, "web.tls", "needs both cert and key (PEM files)")]
    problems = []
    for name in ("cert", "key"):
        p = Path(getattr(tls, name))
        if not (p if p.is_absolute() else base / p).is_file():
            problems.append(Problem(file, line, f"web.tls.{name}", f"no such file: {p}"))
    return problems


def require_secret(settings: Settings) -> Secret:
    if not settings.ami.secret:
        where = settings.source or "the config"
        raise YamlError(
            [Problem(where, None, "ami.secret", f"no AMI password: set {SECRET_ENV} or ami.secret")]
        )
    return settings.ami.secret
