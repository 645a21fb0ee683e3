"""Listen, whisper, barge: a supervisor's phone joins a live call.

A supervisor clicks a live call on the board and picks a mode; the service
rings the supervisor's own phone (AMI Originate into the dialplan's
[supervisor-monitor] context) and, once it is answered, the PBX runs ChanSpy
on the agent's line in that call:

    listen   the supervisor hears the agent and the customer; nobody hears them
    whisper  the agent (only) hears the supervisor too
    barge    both hear the supervisor

The supervisor's channel gets a Uniqueid of ours (MONITOR_CHANNEL_PREFIX...),
so the call tracker knows it is no party of any call and records the
monitoring with the call from Asterisk's ChanSpyStart/Stop (who, how, when).
This stage only asks for it (and to end it) and tells the agent's console
that a supervisor is on the line, as far as the centre's policy says so.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from .calls.events import CallEnded, CallEvent, MonitorEnded, MonitorStarted
from .calls.model import MONITOR_CHANNEL_PREFIX, MONITOR_MODES, Call, Leg, Monitor
from .config import SupervisionSettings
from .users import User
from .web.messages import message

log = logging.getLogger(__name__)

# The dialplan context the supervisor's phone is sent to (extensions.conf).
MONITOR_CONTEXT = "supervisor-monitor"
# Originate's Reason codes, in words for the supervisor.
_REASONS = {
    "0": "the phone is not registered or could not be called",
    "1": "no answer",
    "3": "the phone rang out",
    "5": "the phone is busy",
    "8": "the phone is not registered or unreachable",
}


class MonitorError(Exception):
    """A monitoring request that cannot be served; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 409):
        super().__init__(message)
        self.status = status


@dataclass
class _Request:
    """A supervisor's phone being rung to monitor a call."""

    channel_id: str
    call_id: str
    supervisor: str
    mode: str
    pbx: str = ""  # the call's PBX: the supervisor's phone is rung there
    task: asyncio.Task | None = None


def agent_line(call: Call) -> Leg | None:
    """The line to spy on: the answered, live phone of the call's current agent
    (else of any agent still on the call)."""
    legs = [lg for lg in call.agent_legs() if lg.ended_at is None and lg.answered_at is not None]
    for leg in sorted(legs, key=lambda lg: lg.answered_at or 0.0, reverse=True):
        if leg.endpoint == call.agent:
            return leg
    return legs[-1] if legs else None


def agent_is_told(policy: str, mode: str) -> bool:
    """Whether the agent's console says a supervisor is on the line.
    when_heard: only when the agent can hear the supervisor (whisper, barge)."""
    return policy == "always" or (policy == "when_heard" and mode != "listen")


class Supervision:
    """Monitoring of calls by supervisors. ``ami_for(pbx)``: the AMI (originate, send)
    of the PBX a call is on (several PBXs: cluster/pbx.py; on a web front: through the
    controller that follows it, cluster/roles.py)."""

    def __init__(
        self,
        ami_for: Callable[[str], Any],
        settings: SupervisionSettings,
        users: dict[str, User],
        push_agent: Callable[[str, dict[str, Any]], None],
        push_supervisor: Callable[[str, dict[str, Any]], None],
        live_call: Callable[[str], Call | None],
    ):
        self.ami_for = ami_for
        self.settings = settings
        self.users = users
        self.push_agent = push_agent
        self.push_supervisor = push_supervisor
        self.live_call = live_call
        self._requests: dict[str, _Request] = {}  # channel id -> request (ringing or on)
        self._active: dict[str, list[Monitor]] = {}  # call_id -> monitors going on

    # ------------------------------------------------------------ requests
    async def start(self, call_id: str, supervisor: User, mode: str) -> str:
        """Ring the supervisor's phone to monitor the call; returns the request's id
        at once (the phone rings in the background: the board hears how it goes)."""
        if not supervisor.is_supervisor:
            raise MonitorError("only supervisors may listen in", 403)
        if mode not in MONITOR_MODES:
            raise MonitorError(f"mode must be one of {', '.join(MONITOR_MODES)}", 400)
        if not supervisor.phone:
            raise MonitorError(
                f"no phone is set for {supervisor.login} "
                f"(users: {supervisor.login}: phone: in the config)"
            )
        call = self.live_call(call_id)
        if call is None:
            raise MonitorError("no such live call", 404)
        leg = agent_line(call)
        if leg is None:
            raise MonitorError("no agent is talking on this call yet")
        for r in self._requests.values():
            if r.supervisor == supervisor.login:
                raise MonitorError("you are already listening to a call: hang up or stop first")
        channel_id = f"{MONITOR_CHANNEL_PREFIX}{uuid.uuid4().hex[:16]}"
        request = _Request(channel_id, call_id, supervisor.login, mode, call.pbx)
        self._requests[channel_id] = request
        request.task = asyncio.ensure_future(self._ring(request, supervisor.phone, leg))
        log.info(
            "supervisor %s asks to %s call %s (agent %s) on phone %s",
            supervisor.login,
            mode,
            call_id,
            leg.endpoint,
            supervisor.phone,
        )
        return channel_id

    async def _ring(self, r: _Request, phone: str, leg: Leg) -> None:
        try:
            reply = await self.ami_for(r.pbx).originate(
                Channel=f"PJSIP/{phone}",
                Context=MONITOR_CONTEXT,
                Exten=r.mode,
                Priority="1",
                ChannelId=r.channel_id,
                Timeout=str(int(self.settings.ring_seconds * 1000)),
                CallerID=f'"{r.mode.capitalize()} {leg.endpoint}" <{phone}>',
                Variable=[f"MONITOR_TARGET={leg.uniqueid}", f"MONITOR_BY={r.supervisor}"],
            )
        except Exception as exc:  # AMI down, refused
            self._failed(r, str(exc))
            return
        if reply.get("Response") != "Success":
            self._failed(r, _REASONS.get(str(reply.get("Reason", "")), "the phone did not answer"))

    def _failed(self, r: _Request, why: str) -> None:
        if self._requests.pop(r.channel_id, None) is None:
            return
        log.info("monitoring of call %s by %s did not start: %s", r.call_id, r.supervisor, why)
        self.push_supervisor(
            r.supervisor, message("monitor_failed", call_id=r.call_id, mode=r.mode, reason=why)
        )

    async def stop(self, call_id: str, supervisor: User) -> bool:
        """Hang up the supervisor's monitoring line of this call (ringing or on)."""
        found = [
            r
            for r in self._requests.values()
            if r.supervisor == supervisor.login and r.call_id == call_id
        ]
        for r in found:
            # Asterisk finds a channel by its Uniqueid too.
            reply = await self.ami_for(r.pbx).send({"Action": "Hangup", "Channel": r.channel_id})
            if reply.get("Response") != "Success" and r.task is not None and not r.task.done():
                # Still being placed: the Originate's own timeout ends it.
                log.info("monitoring line %s not up yet: %s", r.channel_id, reply.get("Message"))
        return bool(found)

    # ------------------------------------------------------------ call events
    def on_call_event(self, event: CallEvent) -> None:
        call = event.call
        if isinstance(event, MonitorStarted):
            m = event.monitor
            self._active.setdefault(call.call_id, []).append(m)
            self._tell_agent(call.call_id, m, True)
        elif isinstance(event, MonitorEnded):
            m = event.monitor
            self._drop(call.call_id, m.spyer)
            self._requests.pop(m.spyer, None)
            self._tell_agent(call.call_id, m, False)
        elif isinstance(event, CallEnded):
            for m in self._active.pop(call.call_id, []):
                self._requests.pop(m.spyer, None)
                self._tell_agent(call.call_id, m, False)
            for key, r in list(self._requests.items()):
                if r.call_id == call.call_id and (r.task is None or r.task.done()):
                    del self._requests[key]

    def _drop(self, call_id: str, spyer: str) -> None:
        left = [m for m in self._active.get(call_id, []) if m.spyer != spyer]
        if left:
            self._active[call_id] = left
        else:
            self._active.pop(call_id, None)

    def _tell_agent(self, call_id: str, m: Monitor, on: bool) -> None:
        if m.agent and agent_is_told(self.settings.tell_agent, m.mode):
            self.push_agent(m.agent, self._notice(call_id, m, on))

    def _notice(self, call_id: str, m: Monitor, on: bool) -> dict[str, Any]:
        who = self.users.get(m.supervisor)
        return message(
            "monitor",
            call_id=call_id,
            active=on,
            mode=m.mode,
            supervisor=who.name if who else m.supervisor,
        )

    def notices_for(self, login: str) -> list[dict[str, Any]]:
        """What a (re)connecting agent console must be told about monitoring going on."""
        return [
            self._notice(call_id, m, True)
            for call_id, ms in self._active.items()
            for m in ms
            if m.agent == login and agent_is_told(self.settings.tell_agent, m.mode)
        ]

    def active(self, call_id: str) -> list[Monitor]:
        return list(self._active.get(call_id, []))

    def pending(self, call_id: str) -> list[dict[str, str]]:
        """Requests whose phone still rings (for the board)."""
        started = {m.spyer for m in self._active.get(call_id, [])}
        return [
            {"supervisor": r.supervisor, "mode": r.mode}
            for r in self._requests.values()
            if r.call_id == call_id and r.channel_id not in started
        ]

    async def close(self) -> None:
        tasks = [r.task for r in self._requests.values() if r.task is not None]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
