"""`ivr check`: everything an admin changed, checked before it goes live.

1. the service config (file, line, field, reason);
2. the dialplans' cross-references (ivr/pbx/crosscheck.py): what Asterisk
   loads without a word but breaks calls (unknown types, missing contexts,
   Goto/Dial/Queue targets, queue members, agents, DIDs);
3. the dialplans, loaded into a throw-away sandbox Asterisk: whatever Asterisk
   rejects or warns about while loading them is reported, and every module
   listed in modules.conf must be running.

Every problem is one line, ``file:line: reason``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import socket
from pathlib import Path

from .agents.check import check_agent_groups
from .config import Settings
from .pbx.crosscheck import crosscheck
from .pbx.sandbox import CONF_FILES, Sandbox, SandboxError
from .secret import Secret
from .yamlfile import Problem

# Loader noise about files we deliberately do not ship (Asterisk's defaults are fine).
_IGNORED = re.compile(
    r"Unable to load config file '(acl|udptl|pjproject|ccss|cdr|cel)\.conf'|"
    r"ccss\.conf|udptl config|No music on hold classes|No queuerules\.conf|"
    r"Failed to process CDR configuration|Failed to process CEL configuration|"
    r"CDR simple logging"
)
_PROBLEM = re.compile(r"\] (ERROR|WARNING)\[(\d+)\][^:]*: (.*)$")


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def check_references(settings: Settings, dialplans: Path | None = None) -> list[Problem]:
    """The cross-reference checks of the dialplans against each other and the service's files."""
    dialplans = dialplans or settings.path(settings.pbx.dialplans)
    return crosscheck(
        dialplans,
        config=settings.source,
        agents=[u.login for u in settings.users if not u.is_supervisor],
        scripts=settings.path(settings.scripts),
    )


def check_dialplans(settings: Settings, dialplans: Path | None = None) -> list[Problem]:
    """Load the dialplans into a temporary sandbox instance and collect complaints.

    The instance is this process's own (two checks at once never share one) and
    its folder is removed afterwards."""
    base = Sandbox.from_settings(
        dataclasses.replace(
            settings,
            ami=dataclasses.replace(settings.ami, secret=settings.ami.secret or Secret("check")),
        )
    )
    if dialplans is not None:
        base = dataclasses.replace(base, dialplans=dialplans)
    dialplans = base.dialplans
    problems = [
        Problem(str(dialplans / n), None, "", "missing")
        for n in CONF_FILES
        if not (dialplans / n).exists()
    ]
    if problems:
        return problems
    problems += check_agent_groups(settings)
    sandbox = dataclasses.replace(
        base,
        instance=f"check-{os.getpid()}",
        sip_host="127.0.0.1",
        ami_host="127.0.0.1",
        sip_port=free_port(socket.SOCK_DGRAM),
        ami_port=free_port(),
    )
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
        shutil.rmtree(sandbox.host_dir, ignore_errors=True)
    problems += asterisk_problems(log_entries(text), dialplans)
    return problems


def asterisk_problems(entries: list[str], dialplans: Path) -> list[Problem]:
    """Asterisk's complaints, each as one problem with its file and line.

    Asterisk often says one thing in several messages of one thread, only the
    last naming the file: "Cannot allow unknown format 'alawz'", "Error parsing
    allow=ulaw,alawz at line 32 of" (no file), "Could not create an object of
    type 'endpoint' with id '1001' from configuration file 'pjsip.conf'". Such
    a run is joined into one problem at pjsip.conf:32."""
    problems: list[Problem] = []
    run: list[tuple[str, str]] = []  # (level, message) not yet placed in a file
    run_thread, run_line = "", None

    def place(file: str | None, line: int | None) -> None:
        nonlocal run, run_line
        if run:
            level = "error" if any(lv == "ERROR" for lv, _ in run) else "warning"
            text = "; ".join(
                re.sub(r" at line (\d+) of\s*$", r" at line \1", msg) for _, msg in run
            )
            problem = Problem(
                file or str(dialplans), line or run_line, "", f"Asterisk {level}: {text}"
            )
            if problem not in problems:
                problems.append(problem)
        run, run_line = [], None

    for entry in entries:
        m = _PROBLEM.search(entry)
        if not m or _IGNORED.search(entry):
            place(None, None)
            continue
        level, thread, message = m.groups()
        if run and thread != run_thread:
            place(None, None)
        run_thread = thread
        run.append((level, message))
        file, line = _where(message, dialplans)
        run_line = line or run_line
        if file is not None:
            place(file, line)
    place(None, None)
    return problems


def log_entries(text: str) -> list[str]:
    """Asterisk's log, one entry per message: a message that spans lines ("Error
    parsing allow=ulaw,alawz at line 32 of" / "/srv/.../pjsip.conf") is joined,
    so that it keeps its file."""
    entries: list[str] = []
    for line in text.splitlines():
        if line.startswith("[") or not entries:
            entries.append(line)
        elif line.strip():
            entries[-1] += " " + line.strip()
    return entries


def _where(message: str, dialplans: Path) -> tuple[str | None, int | None]:
    """The admin file (in dialplans/) and line a message names; None where it names none."""
    m = re.search(r"line (\d+) of ([\w./-]+\.conf)", message)
    if m:
        return str(dialplans / Path(m.group(2)).name), int(m.group(1))
    m = re.search(r"([\w.-]+\.conf)[:, ]+line (\d+)", message)
    if m:
        return str(dialplans / Path(m.group(1)).name), int(m.group(2))
    line = re.search(r"at line (\d+)", message)
    m = re.search(r"([\w-]+\.conf)", message)
    if m:
        return str(dialplans / m.group(1)), int(line.group(1)) if line else None
    return None, int(line.group(1)) if line else None


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
            problems.append(
                Problem(
                    str(modules_conf),
                    n,
                    module,
                    "module did not load (see the Asterisk error above)",
                )
            )
    return problems
