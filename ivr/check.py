"""`ivr check`: everything an admin changed, checked before it goes live.

1. the service config (file, line, field, reason);
2. the dialplans, loaded into a throw-away sandbox Asterisk: whatever Asterisk
   rejects or warns about while loading them is reported, and every module
   listed in modules.conf must be running.
"""
from __future__ import annotations

import dataclasses
import re
import socket
from pathlib import Path

from .agents.check import check_agent_groups
from .config import Settings
from .pbx.sandbox import CONF_FILES, Sandbox, SandboxError
from .yamlfile import Problem

# Loader noise about files we deliberately do not ship (Asterisk's defaults are fine).
_IGNORED = re.compile(
    r"Unable to load config file '(acl|udptl|pjproject|ccss|cdr|cel)\.conf'|"
    r"ccss\.conf|udptl config|No music on hold classes|No queuerules\.conf|"
    r"Failed to process CDR configuration|Failed to process CEL configuration|"
    r"CDR simple logging")
_PROBLEM = re.compile(r"\] (ERROR|WARNING)\[\d+\][^:]*: (.*)$")


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def check_dialplans(settings: Settings) -> list[Problem]:
    """Load the dialplans into a temporary sandbox instance and collect complaints."""
    base = Sandbox.from_settings(dataclasses.replace(
        settings, ami=dataclasses.replace(settings.ami, secret=settings.ami.secret or "check")))
    dialplans = base.dialplans
    problems = [Problem(str(dialplans / n), None, "", "missing") for n in CONF_FILES
                if not (dialplans / n).exists()]
    if problems:
        return problems
    problems += check_agent_groups(settings)
    sandbox = dataclasses.replace(
        base, instance="check", sip_host="127.0.0.1", ami_host="127.0.0.1",
        sip_port=free_port(socket.SOCK_DGRAM), ami_port=free_port())
    sandbox.ensure_root()
    log_file = sandbox.host_dir / "log" / "messages"
    if log_file.exists():
        log_file.unlink()
    sandbox.install()
    try:
        sandbox.start(timeout=30)
    except SandboxError as exc:
        problems.append(Problem(str(dialplans), None, "", f"Asterisk would not start: {exc}"))
    try:
        if sandbox.pid() is not None:
            problems += _unloaded_modules(sandbox, dialplans / "modules.conf")
    finally:
        sandbox.stop()
    text = log_file.read_text(errors="replace") if log_file.exists() else ""
    for line in text.splitlines():
        m = _PROBLEM.search(line)
        if not m or _IGNORED.search(line):
            continue
        file, lineno = _where(m.group(2), dialplans)
        problems.append(Problem(file, lineno, "", f"Asterisk {m.group(1).lower()}: {m.group(2)}"))
    return problems


def _where(message: str, dialplans: Path) -> tuple[str, int | None]:
    m = re.search(r"line (\d+) of ([\w./-]+\.conf)", message) or \
        re.search(r"([\w.-]+\.conf)[:, ]+line (\d+)", message)
    if m:
        groups = m.groups()
        if groups[0].isdigit():
            return str(dialplans / Path(groups[1]).name), int(groups[0])
        return str(dialplans / Path(groups[0]).name), int(groups[1])
    m = re.search(r"([\w-]+\.conf)", message)
    if m:
        return str(dialplans / m.group(1)), None
    return str(dialplans), None


def _unloaded_modules(sandbox: Sandbox, modules_conf: Path) -> list[Problem]:
    wanted = []
    for n, line in enumerate(modules_conf.read_text().splitlines(), 1):
        m = re.match(r"\s*load\s*=>?\s*([\w.-]+)", line)
        if m:
            wanted.append((n, m.group(1)))
    running = sandbox.cli("module show")
    problems = []
    for n, module in wanted:
        if not re.search(rf"^{re.escape(module)}\s.*\bRunning\b", running, re.M):
            problems.append(Problem(str(modules_conf), n, module,
                                    "module did not load (see the Asterisk error above)"))
    return problems
