"""Agent groups from the config: who serves which projects and queues."""

from __future__ import annotations

from typing import Iterable

from ..config import AgentGroup


class AgentGroups:
    def __init__(self, groups: Iterable[AgentGroup]):
        self.groups = tuple(groups)
        self._queues: dict[str, dict[str, int]] = {}  # login -> queue -> penalty
        self._projects: dict[str, dict[str, int]] = {}  # project -> login -> penalty
        for g in self.groups:
            for m in g.agents:
                queues = self._queues.setdefault(m.login, {})
                for q in g.queues:
                    queues[q] = min(queues.get(q, m.penalty), m.penalty)
                for p in g.projects:
                    agents = self._projects.setdefault(p, {})
                    agents[m.login] = min(agents.get(m.login, m.penalty), m.penalty)

    @property
    def logins(self) -> list[str]:
        """Every agent of any group, in the config's order."""
        return list(self._queues)

    @property
    def queues(self) -> list[str]:
        return list(dict.fromkeys(q for g in self.groups for q in g.queues))

    def queues_of(self, login: str) -> dict[str, int]:
        """The queues an agent signs in to, with their penalty in each."""
        return dict(self._queues.get(login, {}))

    def has_project(self, project: str) -> bool:
        return project in self._projects

    def agents_of_project(self, project: str) -> dict[str, int]:
        """login -> penalty of the agents serving a project (lowest penalty first)."""
        agents = self._projects.get(project, {})
        return dict(sorted(agents.items(), key=lambda kv: kv[1]))

    def agents_of_queue(self, queue: str) -> dict[str, int]:
        return {login: qs[queue] for login, qs in self._queues.items() if queue in qs}
