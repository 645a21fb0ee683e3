"""`ivr check` for agent groups: every queue a group names must exist in the
dialplans' queues.conf (unknown agents and empty groups are config errors,
reported when the config loads)."""

from __future__ import annotations

import re
from pathlib import Path

from ..config import Settings
from ..yamlfile import Problem

_SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*(\(([^)]*)\))?")


def queues_in(queues_conf: Path) -> set[str]:
    """Queue names defined in a queues.conf (not [general], not templates "(!)")."""
    names = set()
    for line in queues_conf.read_text(encoding="utf-8", errors="replace").splitlines():
        m = _SECTION.match(line)
        if m and m.group(1).strip() != "general" and "!" not in (m.group(3) or ""):
            names.add(m.group(1).strip())
    return names


def check_agent_groups(settings: Settings) -> list[Problem]:
    conf = settings.path(settings.pbx.dialplans) / "queues.conf"
    where = settings.source or "<config>"
    if not conf.exists():
        return [Problem(str(conf), None, "", "missing (agent groups name its queues)")]
    defined = queues_in(conf)
    problems = []
    for group in settings.groups:
        for i, queue in enumerate(group.queues):
            if queue not in defined:
                line = group.queue_lines[i] if i < len(group.queue_lines) else group.line
                problems.append(
                    Problem(
                        where,
                        line,
                        f"groups.{group.name}.queues",
                        f"unknown queue {queue!r}: {conf} defines "
                        f"{', '.join(sorted(defined)) or 'none'}",
                    )
                )
    return problems
