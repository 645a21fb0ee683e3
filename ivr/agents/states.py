"""Agent states, owned by Asterisk's queues.

Asterisk keeps the truth: an agent is signed in when their phone is a member
of queues (QueueAdd on sign-in, QueueRemove on sign-out), not ready or in
wrap-up when paused in every queue (QueuePause with the reason), ringing or on
a call by their phone's device state. This module asks for those changes,
follows Asterisk's events (QueueMemberAdded/Removed/Pause/Status) and the call
events (which call an agent is on), and derives one state per agent:

    offline    in no queue
    on_call    talking on a call (or the phone is in use, holds a call)
    ringing    a call rings their phone
    wrapup     a wrap-up began, or paused with reason "wrap-up"
    not_ready  paused with another reason (break, lunch ...)
    ready      in queues, not paused, phone free

A wrap-up starts when an agent's answered call ends: the agent is paused in
every queue with reason "wrap-up" (or "wrap-up then lunch" if they chose a
break to follow it), and the pause ends when they save the wrap-up or after
the project's maximum. Because the "then" part travels in Asterisk's pause
reason, a restart of the service loses nothing: ``resync`` rebuilds every
state from QueueStatus, restarts wrap-up clocks from the record (or
Asterisk's LastPause), ends those that ran out while the service was away,
and changes nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

from ..ami.actions import PbxActions, QueueMember, QueueStatus
from ..ami.message import AmiEvent
from ..calls.events import AgentAnswered, AgentLeft, AgentMissed, AgentRinging, CallEnded, CallEvent
from ..config import WRAPUP_REASON, ShiftSettings
from .groups import AgentGroups
from .model import AgentState, AgentStatus, CurrentCall, StateChange

log = logging.getLogger(__name__)

# Asterisk's persistent members cut a reason at a comma: no commas here.
THEN = " then "
_BUSY_DEVICE = frozenset({"inuse", "busy", "onhold", "ringinuse"})
_UNREACHABLE = frozenset({"unavailable", "invalid"})
_MEMBER_EVENTS = frozenset(
    {"QueueMemberAdded", "QueueMemberRemoved", "QueueMemberPause", "QueueMemberStatus"}
)


def pause_reason(wrapup: bool, then: str = "") -> str:
    """The reason given to Asterisk: "lunch", "wrap-up" or "wrap-up then lunch"."""
    if not wrapup:
        return then
    return WRAPUP_REASON + (THEN + then if then else "")


def parse_reason(reason: str) -> tuple[bool, str]:
    """Asterisk's PausedReason -> (in wrap-up, the not-ready reason (after it))."""
    if reason == WRAPUP_REASON:
        return True, ""
    if reason.startswith(WRAPUP_REASON + THEN):
        return True, reason[len(WRAPUP_REASON + THEN) :]
    return False, reason


def interface_of(login: str) -> str:
    """An agent signs in with their phone's extension: its PJSIP endpoint."""
    return f"PJSIP/{login}"


def login_of(interface: str) -> str:
    tech, _, name = interface.partition("/")
    return name if tech.upper() == "PJSIP" else interface


class StateError(Exception):
    """A state change that cannot be made; the message says why (for the console)."""

    def __init__(self, message: str, kind: str = "invalid"):
        super().__init__(message)
        self.kind = kind  # invalid | unknown | conflict | pbx


@dataclass
class _Wrapup:
    call_id: str | None
    project: str
    started: float
    until: float
    timer: asyncio.TimerHandle | None = None


@dataclass
class _Agent:
    login: str
    name: str
    queues: dict[str, QueueMember] = field(default_factory=dict)  # membership, per Asterisk
    paused_in: set[str] = field(default_factory=set)  # queues paused in
    pause_reason: str = ""
    last_pause: float = 0.0
    device: str = "unknown"
    calls: dict[str, str] = field(default_factory=dict)  # call_id -> ringing|talking
    call_info: dict[str, CurrentCall] = field(default_factory=dict)
    wrapup: _Wrapup | None = None
    status: AgentStatus | None = None
    # Who asked for the state Asterisk will report next (its events carry no
    # author): (login, state, reason, until when), matched when it arrives.
    asked: tuple[str, AgentState, str, float] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # a member event came


class AgentStates:
    def __init__(
        self,
        groups: AgentGroups,
        # ami/actions.PbxActions; with several PBXs or on a web front, what routes
        # its queue actions (cluster/pbx.ActionsRouter, cluster/roles.BusQueueActions).
        pbx: PbxActions | Any,
        settings: ShiftSettings,
        *,
        names: Mapping[str, str] | None = None,
        on_change: Callable[[StateChange], None] | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.groups = groups
        self.pbx = pbx
        self.settings = settings
        self.on_change = on_change
        self.clock = clock
        names = names or {}
        self._agents = {login: _Agent(login, names.get(login, login)) for login in groups.logins}
        self._recorded: dict[str, dict[str, Any]] = {}  # login -> last state on record
        self._synced = False
        self._unknown_projects: set[str] = set()
        self._tasks: set[asyncio.Task] = set()
        self.handlers = {name: self._on_member_event for name in _MEMBER_EVENTS}

    # ------------------------------------------------------------ queries
    def status(self, login: str) -> AgentStatus | None:
        agent = self._agents.get(login)
        if agent is None:
            return None
        return agent.status or self._derive(agent, self.clock())

    def all(self) -> list[AgentStatus]:
        return [s for s in (self.status(a) for a in self._agents) if s is not None]

    def ready_agents(self, project: str | None = None, queue: str | None = None) -> list[str]:
        """Agents who may take a call now: ready (not paused, not in wrap-up,
        not ringing, not on a call, phone registered), of the project's groups
        (or the queue's), lowest penalty first. A project no group names may go
        to any ready agent (said once in the log)."""
        if queue is not None:
            candidates = self.groups.agents_of_queue(queue)
        elif project is not None and self.groups.has_project(project):
            candidates = self.groups.agents_of_project(project)
        else:
            if project is not None and project not in self._unknown_projects:
                self._unknown_projects.add(project)
                log.warning(
                    "no agent group serves project %r: its calls go to any ready agent", project
                )
            candidates = {login: 0 for login in self._agents}
        out = []
        for login, _penalty in sorted(candidates.items(), key=lambda kv: kv[1]):
            status = self.status(login)
            if status is not None and status.ready:
                out.append(login)
        return out

    def penalty(self, login: str, project: str) -> int:
        return self.groups.agents_of_project(project).get(login, 0)

    # ------------------------------------------------------------ the record
    def restore(self, recorded: Mapping[str, Mapping[str, Any]]) -> None:
        """The last state of each agent on record (outcomes store), read once at
        start: a state that did not change keeps its start time, and a wrap-up
        knows its call and project again."""
        self._recorded = {k: dict(v) for k, v in recorded.items()}

    # ------------------------------------------------------------ Asterisk's side
    def on_ami_event(self, ev: AmiEvent) -> None:
        handler = self.handlers.get(ev.name)
        if handler is not None:
            handler(ev)

    def _on_member_event(self, ev: AmiEvent) -> None:
        agent = self._agents.get(login_of(ev.get("Interface")))
        if agent is None:
            return
        agent.changed.set()
        member = QueueMember.from_fields(ev.fields)
        known = agent.queues.get(member.queue)
        if (
            known is not None
            and ev.name != "QueueMemberRemoved"
            and (known.paused, known.paused_reason, known.device)
            == (member.paused, member.paused_reason, member.device)
            and agent.device == member.device
        ):
            agent.queues[member.queue] = member
            return  # the same again (one event per queue): nothing to tell
        if ev.name == "QueueMemberRemoved":
            agent.queues.pop(member.queue, None)
            agent.paused_in.discard(member.queue)
        else:
            agent.queues[member.queue] = member
            self._take_pause(agent, member)
            if member.device != "unknown" or ev.name == "QueueMemberStatus":
                agent.device = member.device
        if not agent.queues:
            self._cancel_wrapup(agent)
        self._publish(agent, ev.received, by="pbx")

    @staticmethod
    def _take_pause(agent: _Agent, member: QueueMember) -> None:
        if member.paused:
            agent.paused_in.add(member.queue)
            agent.pause_reason = member.paused_reason
            agent.last_pause = member.last_pause or agent.last_pause
        else:
            agent.paused_in.discard(member.queue)
            if not agent.paused_in:
                agent.pause_reason = ""

    async def resync(self, status: QueueStatus) -> None:
        """After every AMI (re)login: take every agent's membership, pause and
        device state from Asterisk's QueueStatus, then repair only what must be:
        queues of the agent's groups missing (added with the same pause), a
        pause that differs between queues (made the same everywhere), a wrap-up
        whose time ran out (ended) or whose pause never arrived (sent again)."""
        now = status.at
        members: dict[str, list[QueueMember]] = {}
        for m in status.members:
            if login_of(m.interface) in self._agents:
                members.setdefault(login_of(m.interface), []).append(m)
        first = not self._synced
        self._synced = True
        for login, agent in self._agents.items():
            mine = members.get(login, [])
            agent.queues = {m.queue: m for m in mine}
            agent.paused_in = {m.queue for m in mine if m.paused}
            paused = [m for m in mine if m.paused]
            latest = max(paused, key=lambda m: m.last_pause, default=None)
            agent.pause_reason = latest.paused_reason if latest else ""
            agent.last_pause = latest.last_pause if latest else 0.0
            if mine:
                devices = [m.device for m in mine if m.device != "unknown"]
                agent.device = devices[0] if devices else "unknown"
            self._adopt_wrapup(agent, now, first)
            await self._repair(agent, now)
            self._publish(agent, now, by="pbx", resync=True)

    def _adopt_wrapup(self, agent: _Agent, now: float, first: bool) -> None:
        """A wrap-up pause in Asterisk that this service does not time: after a
        restart it gets its clock back (call and project from the record);
        after a reconnect it is one whose end did not reach Asterisk (ends now)."""
        in_wrapup, _ = parse_reason(agent.pause_reason)
        if not agent.queues or not agent.paused_in or not in_wrapup or agent.wrapup is not None:
            return
        if not first:
            agent.wrapup = _Wrapup(None, "", agent.last_pause or now, now)
            return
        rec = self._recorded.get(agent.login) or {}
        recorded = rec.get("state") == AgentState.WRAPUP.value
        call_id = rec.get("call_id") if recorded else None
        project = (rec.get("project") or "") if recorded else ""
        # The record knows when it began; Asterisk's LastPause restarts with Asterisk.
        started = float(rec["started_at"]) if recorded else (agent.last_pause or now)
        agent.wrapup = _Wrapup(
            call_id, project, started, started + self.settings.wrapup_limit(project)
        )

    async def _repair(self, agent: _Agent, now: float) -> None:
        if not agent.queues:
            self._cancel_wrapup(agent)
            return
        interface = interface_of(agent.login)
        in_wrapup, then = parse_reason(agent.pause_reason)
        try:
            wanted = self.groups.queues_of(agent.login)
            for queue in sorted(set(wanted) - set(agent.queues)):
                log.info(
                    "agent %s: adding the missing queue %s (their groups list it)",
                    agent.login,
                    queue,
                )
                await self.pbx.queue_add(
                    queue,
                    interface,
                    member_name=agent.name,
                    penalty=wanted[queue],
                    paused=bool(agent.paused_in),
                    reason=agent.pause_reason,
                )
            stale = set(agent.queues) - set(wanted)
            for queue in sorted(stale & set(self.groups.queues)):
                log.info(
                    "agent %s: leaving queue %s (no group of theirs lists it now)",
                    agent.login,
                    queue,
                )
                await self.pbx.queue_remove(queue, interface)
            mixed = (
                agent.paused_in
                and agent.paused_in != set(agent.queues)
                or len({m.paused_reason for m in agent.queues.values() if m.paused}) > 1
            )
            if agent.wrapup is not None and not in_wrapup:
                # The wrap-up began while AMI was away: its pause never arrived.
                await self.pbx.queue_pause(interface, True, pause_reason(True, agent.pause_reason))
            elif mixed:
                log.warning(
                    "agent %s: paused in some queues only; pausing in all (%s)",
                    agent.login,
                    agent.pause_reason,
                )
                await self.pbx.queue_pause(interface, True, agent.pause_reason)
        except Exception as exc:
            log.warning("agent %s: could not repair their queues now: %s", agent.login, exc)
        if agent.wrapup is not None:
            if agent.wrapup.until <= now:
                log.info(
                    "agent %s: wrap-up ran out while the service was away; ending it", agent.login
                )
                await self._end_wrapup(agent, agent.wrapup.call_id, by="service")
            else:
                self._arm(agent)

    # ------------------------------------------------------------ the calls
    def on_call_event(self, event: CallEvent) -> None:
        call = event.call
        touched: list[_Agent] = []
        if isinstance(event, (AgentRinging, AgentAnswered)):
            agent = self._agents.get(event.agent)
            if agent is not None:
                agent.calls[call.call_id] = (
                    "talking"
                    if isinstance(event, AgentAnswered)
                    else agent.calls.get(call.call_id, "ringing")
                )
                agent.call_info[call.call_id] = CurrentCall(
                    call.call_id,
                    call.customer_num,
                    call.project,
                    call.queue,
                    call.agent_answered_at or call.agent_ring_at or event.at,
                )
                touched.append(agent)
        elif isinstance(event, AgentMissed):
            agent = self._agents.get(event.agent)
            if agent is not None and agent.calls.get(call.call_id) == "ringing":
                self._forget_call(agent, call.call_id)
                touched.append(agent)
        elif isinstance(event, AgentLeft):
            agent = self._agents.get(event.agent)
            if agent is not None and call.call_id in agent.calls:
                self._call_over(agent, call.call_id, call.project, event.at)
                touched.append(agent)
        elif isinstance(event, CallEnded):
            for agent in self._agents.values():
                if call.call_id in agent.calls:
                    self._call_over(agent, call.call_id, call.project, event.at)
                    touched.append(agent)
        for agent in touched:
            self._publish(agent, event.at, by="pbx")

    def _forget_call(self, agent: _Agent, call_id: str) -> None:
        agent.calls.pop(call_id, None)
        agent.call_info.pop(call_id, None)

    def _call_over(self, agent: _Agent, call_id: str, project: str, at: float) -> None:
        talked = agent.calls.get(call_id) == "talking"
        info = agent.call_info.get(call_id)
        self._forget_call(agent, call_id)
        if talked and agent.queues:
            self._start_wrapup(agent, call_id, project or (info.project if info else ""), at)

    # ------------------------------------------------------------ wrap-up
    def _start_wrapup(self, agent: _Agent, call_id: str, project: str, at: float) -> None:
        in_wrapup, then = parse_reason(agent.pause_reason) if agent.paused_in else (False, "")
        self._cancel_wrapup(agent)
        agent.wrapup = _Wrapup(call_id, project, at, at + self.settings.wrapup_limit(project))
        self._arm(agent)
        self._spawn(self._pause(agent, True, pause_reason(True, then)), agent.login)

    def _arm(self, agent: _Agent) -> None:
        w = agent.wrapup
        if w is None:
            return
        if w.timer is not None:
            w.timer.cancel()
        delay = max(0.0, w.until - self.clock())
        w.timer = asyncio.get_running_loop().call_later(
            delay, lambda: self._spawn(self._wrapup_ran_out(agent, w), agent.login)
        )

    def _cancel_wrapup(self, agent: _Agent) -> None:
        if agent.wrapup is not None and agent.wrapup.timer is not None:
            agent.wrapup.timer.cancel()
        agent.wrapup = None

    async def _wrapup_ran_out(self, agent: _Agent, wrapup: _Wrapup) -> None:
        if agent.wrapup is wrapup:
            log.info(
                "agent %s: wrap-up of call %s reached its %.0f s limit",
                agent.login,
                wrapup.call_id,
                wrapup.until - wrapup.started,
            )
            await self._end_wrapup(agent, wrapup.call_id, by="service")

    async def wrapup_saved(self, login: str, call_id: str) -> None:
        """The agent saved the wrap-up of `call_id`: if that is the wrap-up they
        are in, it ends (ready, or the reason they chose to follow it)."""
        agent = self._agents.get(login)
        if agent is None or agent.wrapup is None or agent.wrapup.call_id not in (call_id, None):
            return
        await self._end_wrapup(agent, agent.wrapup.call_id, by=login)

    async def _end_wrapup(self, agent: _Agent, call_id: str | None, by: str) -> None:
        async with agent.lock:
            if agent.wrapup is None or agent.wrapup.call_id != call_id:
                return
            self._cancel_wrapup(agent)
            _, then = parse_reason(agent.pause_reason)
            self._asked(agent, by, AgentState.NOT_READY if then else AgentState.READY, then)
            if agent.queues:
                try:
                    await self.pbx.queue_pause(interface_of(agent.login), bool(then), then)
                except Exception as exc:
                    # Asterisk keeps them paused "wrap-up": safe; the next resync ends it.
                    log.warning("agent %s: could not end the wrap-up pause: %s", agent.login, exc)
            self._publish(agent, self.clock(), by=by)

    async def _pause(self, agent: _Agent, paused: bool, reason: str) -> None:
        try:
            await self.pbx.queue_pause(interface_of(agent.login), paused, reason)
        except Exception as exc:
            log.warning(
                "agent %s: pause (%s) not sent: %s; the next resync sends it",
                agent.login,
                reason or "unpause",
                exc,
            )

    # ------------------------------------------------------------ asked by people
    async def log_in(self, login: str, by: str | None = None) -> AgentStatus:
        """Console sign-in: an offline agent joins their groups' queues, ready.
        An agent already signed in keeps their state (a break stays a break)."""
        status = self.status(login)
        if status is not None and status.state is not AgentState.OFFLINE:
            return status
        return await self.set_state(login, AgentState.READY, by=by or login)

    async def set_state(
        self, login: str, state: AgentState | str, reason: str = "", by: str | None = None
    ) -> AgentStatus:
        """What the agent (or a supervisor) asks: ready, not ready (reason) or
        offline. On a call, ringing or in wrap-up, ready / not ready say what
        comes after it; offline always leaves the queues at once."""
        try:
            state = AgentState(state)
        except ValueError:
            raise StateError(f"unknown state {state!r}: ready, not_ready or offline") from None
        if state not in (AgentState.READY, AgentState.NOT_READY, AgentState.OFFLINE):
            raise StateError(
                f"{state.value} is not chosen, it happens: choose ready, not_ready or offline"
            )
        agent = self._agents.get(login)
        if agent is None:
            raise StateError(f"{login} is in no agent group", "unknown")
        if state is AgentState.NOT_READY and reason not in self.settings.not_ready_reasons:
            raise StateError(f"choose a reason: {', '.join(self.settings.not_ready_reasons)}")
        if state is not AgentState.NOT_READY:
            reason = ""
        by = by or login
        interface = interface_of(login)
        async with agent.lock:
            current = self._derive(agent, self.clock())
            if state is AgentState.OFFLINE or current.state in (
                AgentState.OFFLINE,
                AgentState.READY,
                AgentState.NOT_READY,
            ):
                self._asked(agent, by, state, reason)
            try:
                if state is AgentState.OFFLINE:
                    self._cancel_wrapup(agent)
                    for queue in sorted(agent.queues):
                        await self.pbx.queue_remove(queue, interface)
                    done = lambda: not agent.queues  # noqa: E731
                elif current.state is AgentState.OFFLINE:
                    wanted = self.groups.queues_of(login)
                    if not wanted:
                        raise StateError(f"{login}'s groups list no queue", "conflict")
                    for queue, penalty in wanted.items():
                        await self.pbx.queue_add(
                            queue,
                            interface,
                            member_name=agent.name,
                            penalty=penalty,
                            paused=bool(reason),
                            reason=reason,
                        )
                    done = lambda: set(wanted) <= set(agent.queues)  # noqa: E731
                else:
                    asked = pause_reason(current.state is AgentState.WRAPUP, reason)
                    await self.pbx.queue_pause(interface, bool(asked), asked)
                    done = lambda: all(  # noqa: E731
                        m.paused == bool(asked) and (m.paused_reason == asked or not asked)
                        for m in agent.queues.values()
                    )
                # Asterisk tells what it did in events that follow its answer:
                # answer once they are in, so the reply shows the new state.
                await self._until(agent, done)
            except StateError:
                raise
            except Exception as exc:
                raise StateError(f"the PBX did not take the change: {exc}", "pbx") from None
            self._publish(agent, self.clock(), by=by)
            return self._derive(agent, self.clock())

    # ------------------------------------------------------------ deriving and telling
    async def _until(self, agent: _Agent, done: Callable[[], bool], timeout: float = 2.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not done():
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                log.warning(
                    "agent %s: Asterisk's events for the change did not come within %.0f s",
                    agent.login,
                    timeout,
                )
                return
            agent.changed.clear()
            try:
                await asyncio.wait_for(agent.changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    def _asked(self, agent: _Agent, by: str, state: AgentState, reason: str) -> None:
        agent.asked = (by, state, reason, self.clock() + 5.0)

    def _derive(self, agent: _Agent, now: float) -> AgentStatus:
        wrapup_pause, reason = parse_reason(agent.pause_reason) if agent.paused_in else (False, "")
        talking = [c for c, s in agent.calls.items() if s == "talking"]
        ringing = [c for c, s in agent.calls.items() if s == "ringing"]
        then = ""
        # The calls the service follows come first; the phone's device state
        # covers the others (a call dialled by hand), but not a wrap-up just
        # begun: the phone reports "not in use" a moment after the hang-up.
        if not agent.queues:
            state = AgentState.OFFLINE
        elif talking:
            state, then = AgentState.ON_CALL, reason
        elif ringing:
            state, then = AgentState.RINGING, reason
        elif agent.wrapup is not None:
            state, then = AgentState.WRAPUP, reason
        elif agent.device in _BUSY_DEVICE:
            state, then = AgentState.ON_CALL, reason
        elif agent.device == "ringing":
            state, then = AgentState.RINGING, reason
        elif wrapup_pause:
            state, then = AgentState.WRAPUP, reason
        elif agent.paused_in:
            state = AgentState.NOT_READY
        else:
            state = AgentState.READY
        shown = reason if state is AgentState.NOT_READY else ""
        calls = talking or ringing
        call_id = calls[-1] if calls else None
        prev = agent.status
        if prev is not None and prev.state is state and prev.reason == shown:
            since = prev.since
        else:
            since = now
        logged_in = (
            min((m.login_time for m in agent.queues.values() if m.login_time), default=None)
            if agent.queues
            else None
        )
        return AgentStatus(
            login=agent.login,
            name=agent.name,
            state=state,
            since=since,
            reason=shown,
            then=then,
            queues=tuple(sorted(agent.queues)),
            reachable=agent.device not in _UNREACHABLE,
            call=agent.call_info.get(call_id) if call_id else None,
            wrapup_until=agent.wrapup.until
            if state is AgentState.WRAPUP and agent.wrapup
            else None,
            logged_in_at=logged_in,
        )

    def _publish(self, agent: _Agent, at: float, by: str, resync: bool = False) -> None:
        status = self._derive(agent, at)
        prev = agent.status
        if resync and prev is None:
            status = self._since_on_restart(agent, status, at)
        if prev == status:
            return
        agent.status = status
        author = by
        if agent.asked is not None:
            asker, state, reason, until = agent.asked
            if at > until:
                agent.asked = None
            elif status.state is state and status.reason == reason:
                author, agent.asked = asker, None
        if self.on_change is None:
            return
        w = agent.wrapup
        call_id = status.call.call_id if status.call else (w.call_id if w else None)
        project = status.call.project if status.call else (w.project if w else "")
        try:
            self.on_change(
                StateChange(
                    status=status,
                    previous=prev.state if prev else None,
                    previous_reason=prev.reason if prev else "",
                    by=author,
                    at=status.since,
                    call_id=call_id,
                    project=project,
                )
            )
        except Exception:
            log.exception("agent %s: a state listener failed", agent.login)

    def _since_on_restart(self, agent: _Agent, status: AgentStatus, at: float) -> AgentStatus:
        """First look after a restart: a state that did not change keeps its
        start time from the record; a pause started when Asterisk says."""
        rec = self._recorded.get(agent.login)
        if (
            rec
            and rec.get("state") == status.state.value
            and (rec.get("reason") or "") == status.reason
        ):
            return replace(status, since=float(rec["started_at"]))
        if status.state in (AgentState.NOT_READY, AgentState.WRAPUP) and agent.last_pause:
            return replace(status, since=min(agent.last_pause, at))
        return status

    # ------------------------------------------------------------ tasks
    def _spawn(self, coro: Any, login: str) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for agent in self._agents.values():
            if agent.wrapup is not None and agent.wrapup.timer is not None:
                agent.wrapup.timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
