"""Settings of the service: one YAML file, secrets from the environment.

Every section is a small frozen dataclass; ``load_settings`` fills them from
the file, checks types, and reports every problem with file, line and field.
Secrets never live in code: ``ami.secret`` may be written in the file (kept
out of version control) but ``IVR_AMI_SECRET`` in the environment wins.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .yamlfile import LineDict, Problem, YamlError, load

CONFIG_ENV = "IVR_CONFIG"
SECRET_ENV = "IVR_AMI_SECRET"


class Secret(str):
    """A string that never shows itself in logs, reprs or tracebacks."""

    def __repr__(self) -> str:
        return "Secret('***')" if self else "Secret('')"


@dataclass(frozen=True)
class AmiSettings:
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "ivr"
    secret: Secret = field(default=Secret(""), repr=False)
    # Reconnect backoff: first retry after reconnect_min s, doubling up to reconnect_max s.
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0


@dataclass(frozen=True)
class WebSettings:
    host: str = "127.0.0.1"
    port: int = 8080


@dataclass(frozen=True)
class StoreSettings:
    # sqlite:///absolute/path.db, sqlite:relative/path.db or postgresql://user@host/db
    url: str = "sqlite:ivr-data/ivr.db"


@dataclass(frozen=True)
class TapSettings:
    """Where the service listens for AudioSocket audio taps from Asterisk."""

    host: str = "127.0.0.1"
    port: int = 9092


@dataclass(frozen=True)
class SpeechSettings:
    # Folder of a Vosk model; "auto" takes the first model `ivr models` knows.
    model: str = "auto"


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


@dataclass(frozen=True)
class Settings:
    ami: AmiSettings = AmiSettings()
    web: WebSettings = WebSettings()
    store: StoreSettings = StoreSettings()
    tap: TapSettings = TapSettings()
    speech: SpeechSettings = SpeechSettings()
    pbx: PbxSettings = PbxSettings()
    scripts: str = "scripts"
    log_level: str = "INFO"
    # The file these came from (None: built-in defaults); relative paths are
    # resolved against its folder.
    source: str | None = None

    def path(self, value: str) -> Path:
        p = Path(value)
        if p.is_absolute() or self.source is None:
            return p
        return Path(self.source).parent / p


_SECTIONS = {
    "ami": AmiSettings,
    "web": WebSettings,
    "store": StoreSettings,
    "tap": TapSettings,
    "speech": SpeechSettings,
    "pbx": PbxSettings,
}
_TOP_LEVEL = {"scripts": str, "log_level": str}


def _check_value(value: Any, kind: Any) -> tuple[Any, str | None]:
    kind = {"str": str, "int": int, "float": float, "Secret": Secret}.get(kind, kind)
    if kind is Secret:
        kind = str
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is int and isinstance(value, bool):
        return value, "must be a whole number"
    if not isinstance(value, kind):
        names = {str: "text", int: "a whole number", float: "a number"}
        return value, f"must be {names.get(kind, kind.__name__)}, not {type(value).__name__}"
    return value, None


def _build_section(cls: type, data: Any, file: str, where: str, line: int | None,
                   problems: list[Problem]) -> Any:
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
            problems.append(Problem(file, kline, f"{where}.{key}",
                                    f"unknown setting (known: {', '.join(known)})"))
            continue
        value, err = _check_value(value, known[key].type)
        if err:
            problems.append(Problem(file, kline, f"{where}.{key}", err))
            continue
        if key.endswith("port") and not 0 < value < 65536:
            problems.append(Problem(file, kline, f"{where}.{key}", "must be a port, 1-65535"))
            continue
        values[key] = Secret(value) if key == "secret" else value
    return cls(**values)


def load_settings(path: str | os.PathLike | None = None,
                  env: dict[str, str] | None = None) -> Settings:
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
        if key in _SECTIONS:
            kwargs[key] = _build_section(_SECTIONS[key], value, file, key, line, problems)
        elif key in _TOP_LEVEL:
            value, err = _check_value(value, _TOP_LEVEL[key])
            if err:
                problems.append(Problem(file, line, key, err))
            else:
                kwargs[key] = value
        else:
            known = ", ".join([*_SECTIONS, *_TOP_LEVEL])
            problems.append(Problem(file, line, key, f"unknown section (known: {known})"))
    if problems:
        raise YamlError(problems)
    settings = Settings(**kwargs, source=str(Path(path).resolve()) if path else None)
    if env.get(SECRET_ENV):
        settings = dataclasses.replace(
            settings, ami=dataclasses.replace(settings.ami, secret=Secret(env[SECRET_ENV])))
    return settings


def require_secret(settings: Settings) -> Secret:
    if not settings.ami.secret:
        where = settings.source or "the config"
        raise YamlError([Problem(where, None, "ami.secret",
                                 f"no AMI password: set {SECRET_ENV} or ami.secret")])
    return settings.ami.secret
