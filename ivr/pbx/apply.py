"""`ivr pbx apply` / `ivr pbx rollback`: edited dialplans onto a running Asterisk.

An admin edits dialplans/, then `ivr pbx apply`:

1. checks the files as `ivr check` does (cross-references, then a throw-away
   sandbox Asterisk loads them); any problem refuses the whole set and
   nothing changes;
2. renders them for the target: the sandbox's own ports and secret, or, for a
   PBX folder (/etc/asterisk, a container's volume), the values the installer
   owns there (AMI and SIP secrets, bind addresses, the carrier's address, the
   RTP range) carried over from the installed copy;
3. shows what changes (a unified diff, secrets masked), keeps the installed
   set in ``.ivr-previous/`` beside it, writes the new files;
4. reloads only what changed, through the Asterisk CLI (`dialplan reload`,
   `module reload res_pjsip.so`, ...): calls in progress are kept.

`ivr pbx rollback` puts ``.ivr-previous/`` back the same way (and keeps what
it replaced, so a second rollback re-applies).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from ..yamlfile import Problem
from .asterisk_conf import get_option, parse_sections, set_in_section_with, set_option, weak_secret
from .sandbox import CONF_FILES, Sandbox

PREVIOUS = ".ivr-previous"

# What to tell Asterisk when a file changed; each keeps calls in progress.
RELOADS = {
    "extensions.conf": ["dialplan reload"],
    "pjsip.conf": ["module reload res_pjsip.so"],
    "queues.conf": ["module reload app_queue.so"],
    "manager.conf": ["manager reload"],
    "rtp.conf": ["module reload res_rtp_asterisk.so"],
    "features.conf": ["module reload features"],
    "indications.conf": ["module reload indications"],
    "musiconhold.conf": ["module reload res_musiconhold.so"],
    "logger.conf": ["logger reload"],
    "cdr.conf": ["module reload cdr"],
    "cel.conf": ["module reload cel"],
}
_FAILED = re.compile(r"No such module|failed|Unable to|Error", re.I)
_SECRET_KEYS = re.compile(r"^(\s*(?:secret|password|md5_cred)\s*=>?\s*)(\S.*?)(\s*;.*)?$", re.I)


class ApplyError(Exception):
    """The set was not installed; ``problems`` says why (nothing changed)."""

    def __init__(self, message: str, problems: list[Problem] | None = None):
        self.problems = problems or []
        super().__init__(message)


@dataclass
class Target:
    """A running Asterisk: the folder it reads its .conf files from, and its CLI."""

    etc: Path
    cli: Callable[[str], str]
    render: Callable[[Path, str], str]  # (dialplans folder, file name) -> installed text
    label: str
    # Run after an install (with the dialplans folder; None after a rollback).
    after: Callable[[Path | None], None] | None = None


def sandbox_target(sandbox: Sandbox) -> Target:
    def render(dialplans: Path, name: str) -> str:
        return dataclasses.replace(sandbox, dialplans=dialplans).render(name)

    def installed(dialplans: Path | None) -> None:
        # New prompt texts are spoken, and a later `ivr pbx up` keeps this PBX running.
        if dialplans is not None:
            dataclasses.replace(sandbox, dialplans=dialplans).install_prompts()
        sandbox.mark_running_config()

    return Target(
        etc=sandbox.host_dir / "etc",
        cli=sandbox.cli,
        render=render,
        label=f"sandbox PBX '{sandbox.instance}'",
        after=installed,
    )


def folder_target(
    etc: Path, cli_prefix: str = "asterisk -rx", env: Mapping[str, str] | None = None
) -> Target:
    """A PBX reading ``etc`` (e.g. /etc/asterisk, or a container's volume on the host),
    reached by ``cli_prefix COMMAND`` (e.g. "docker compose ... exec -T asterisk asterisk -rx")."""
    environ: Mapping[str, str] = os.environ if env is None else env

    def cli(command: str) -> str:
        proc = subprocess.run(
            [*shlex.split(cli_prefix), command], capture_output=True, text=True, timeout=60
        )
        return proc.stdout + proc.stderr

    def render(dialplans: Path, name: str) -> str:
        text = (dialplans / name).read_text(encoding="utf-8")
        installed = etc / name
        return carry_over(
            name, text, installed.read_text(encoding="utf-8") if installed.exists() else "", environ
        )

    return Target(etc=Path(etc), cli=cli, render=render, label=str(etc))


# Per file: (section, key) pairs the installer sets, kept from the installed copy.
_OWNED = {
    "manager.conf": [("general", "bindaddr"), ("general", "port")],
    "extensions.conf": [("globals", "TRUNK_PEER")],
    "rtp.conf": [("general", "rtpstart"), ("general", "rtpend")],
}


def carry_over(name: str, text: str, installed: str, env: Mapping[str, str]) -> str:
    """``text`` with the installation's own values (secrets, addresses) from ``installed``."""
    if not installed:
        return text
    new_sections = parse_sections(text, name)
    old_sections = parse_sections(installed, name)
    for section, key in _OWNED.get(name, []):
        value = get_option(installed, section, key)
        if value is not None and any(s.name == section for s in new_sections):
            text = set_option(text, section, key, value)
    if name == "manager.conf":
        for s in old_sections:
            if (o := s.get("secret")) is not None and any(n.name == s.name for n in new_sections):
                text = set_option(text, s.name, "secret", o.value)
    if name == "pjsip.conf":
        for s in old_sections:
            for key in (
                "bind",
                "external_media_address",
                "external_signaling_address",
                "local_net",
                "match",
            ):
                if (o := s.get(key)) is not None and any(
                    n.name == s.name and n.get(key) for n in new_sections
                ):
                    text = set_in_section_with(text, s.name, key, o.value)
        old_passwords = {
            s.name: o.value for s in old_sections if (o := s.get("password")) is not None
        }
        for s in new_sections:
            if s.get("password") is None:
                continue
            value = old_passwords.get(s.name) or env.get(f"SIP_PASSWORD_{s.name}")
            if not value or (s.name not in old_passwords and weak_secret(value)):
                raise ApplyError(
                    f"pjsip.conf: [{s.name}] is a new SIP user: give its password "
                    f"as SIP_PASSWORD_{s.name} in the environment, 12 characters at "
                    "least (the password "
                    "written in dialplans/ is a sample, never installed here)"
                )
            text = set_in_section_with(text, s.name, "password", value)
    return text


def masked(text: str) -> list[str]:
    """Lines of a .conf with secret values hidden, for showing a diff."""
    out = []
    for line in text.splitlines():
        m = _SECRET_KEYS.match(line)
        out.append(f"{m.group(1)}***{m.group(3) or ''}" if m else line)
    return out


@dataclass
class Change:
    changed: list[str]  # file names whose installed text changes
    diff: str  # unified diff, secrets masked
    reloads: list[str]  # CLI commands run
    outputs: dict[str, str]  # command -> Asterisk's answer
    notes: list[str]  # what needs more than a reload


def _installed(etc: Path) -> dict[str, str]:
    return {n: (etc / n).read_text(encoding="utf-8") for n in CONF_FILES if (etc / n).exists()}


def _diff(old: dict[str, str], new: dict[str, str], label: str) -> tuple[list[str], str]:
    changed: list[str] = []
    out: list[str] = []
    for name in CONF_FILES:
        if old.get(name) == new.get(name) or name not in new:
            continue
        changed.append(name)
        out += difflib.unified_diff(
            masked(old.get(name, "")),
            masked(new[name]),
            f"{label}/{name}",
            f"dialplans/{name}",
            lineterm="",
        )
    return changed, "\n".join(out)


def _modules(text: str) -> set[str]:
    return set(re.findall(r"^\s*load\s*=>?\s*([\w.-]+)", text, re.M))


def _install(target: Target, new: dict[str, str], dry_run: bool) -> Change:
    etc = target.etc
    old = _installed(etc)
    changed, diff = _diff(old, new, str(etc))
    commands: list[str] = []
    notes: list[str] = []
    for name in changed:
        commands += RELOADS.get(name, [])
    if "modules.conf" in changed:
        added = _modules(new["modules.conf"]) - _modules(old.get("modules.conf", ""))
        removed = _modules(old.get("modules.conf", "")) - _modules(new["modules.conf"])
        commands += [f"module load {m}" for m in sorted(added)]
        if removed:
            notes.append(
                f"no longer loaded after the next restart of Asterisk: "
                f"{', '.join(sorted(removed))} (unloading now could drop calls)"
            )
    change = Change(changed, diff, commands, {}, notes)
    if dry_run or not changed:
        return change
    previous = etc / PREVIOUS
    shutil.rmtree(previous, ignore_errors=True)
    previous.mkdir()
    for name, text in old.items():
        _write(previous / name, text, like=etc / name)
    for name in changed:
        _write(etc / name, new[name], like=etc / name if (etc / name).exists() else None)
    for command in commands:
        change.outputs[command] = target.cli(command).strip()
    return change


def _write(path: Path, text: str, like: Path | None) -> None:
    """Write atomically, with the owner and mode of ``like`` (Asterisk reads as its user)."""
    tmp = path.with_name(f".{path.name}.ivr-tmp")
    tmp.write_text(text, encoding="utf-8")
    if like is not None and like.exists():
        st = like.stat()
        os.chmod(tmp, st.st_mode & 0o7777)
        os.chown(tmp, st.st_uid, st.st_gid)
    os.replace(tmp, path)


def failed_reloads(change: Change) -> list[str]:
    return [
        f"{cmd}: {out}"
        for cmd, out in change.outputs.items()
        if _FAILED.search(out) and not cmd.startswith("module load")
    ]


def apply(
    dialplans: Path, target: Target, check: Callable[[Path], list[Problem]], dry_run: bool = False
) -> Change:
    """Check ``dialplans``, then install and reload what changed (see the module doc)."""
    problems = check(dialplans)
    if problems:
        raise ApplyError(f"{len(problems)} problem(s): nothing was installed", problems)
    new = {
        name: target.render(dialplans, name) for name in CONF_FILES if (dialplans / name).exists()
    }
    change = _install(target, new, dry_run)
    if change.changed and not dry_run and target.after is not None:
        target.after(dialplans)
    if failed := failed_reloads(change):
        # Asterisk refused what the sandbox accepted: put the previous set back.
        rollback(target)
        raise ApplyError(
            "Asterisk refused the reload, the previous set is back: " + "; ".join(failed)
        )
    return change


def rollback(target: Target, dry_run: bool = False) -> Change:
    """Put the set that the last apply replaced back (and keep the replaced one)."""
    previous = target.etc / PREVIOUS
    if not previous.is_dir():
        raise ApplyError(f"nothing to roll back: {previous} does not exist (no apply yet)")
    saved = _installed(previous)
    change = _install(target, saved, dry_run)
    if change.changed and not dry_run and target.after is not None:
        target.after(None)
    return change
