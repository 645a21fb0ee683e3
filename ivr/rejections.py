"""Agents whose phone refuses queue calls are paused for a while.

Asterisk's queues re-ring a phone that answered 486 Busy Here (or 603
Decline) every few seconds (`retry`) as long as nobody else is free: 15 rings
in 43 s, each one popping a card on the agent's console. When the tracker
reports such a refusal (AgentRejected) on a queue call, the agent is paused
in every queue (QueuePause, reason REASON) for `rejects.pause_seconds`, then
unpaused, unless the pause is no longer ours by then (the agent went on a
break meanwhile, or a supervisor changed it). Pauses live in Asterisk: after a
service restart or an AMI reconnect, ours that ran out are ended.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

from .calls.events import AgentRejected, CallEvent

log = logging.getLogger(__name__)

REASON = "rejected a call"


def interface_of(agent: str) -> str:
    return f"PJSIP/{agent}"


class RejectPauses:
    """``ami_for(agent)``: the AmiClient (send) of the PBX the agent's phone is on.
    ``pause_seconds`` 0 switches this off."""

    def __init__(
        self,
        ami_for: Callable[[str], Any],
        pause_seconds: float,
        clock: Callable[[], float] = time.time,
        every_ami: Callable[[], list[Any]] | None = None,
    ):
        self.ami_for = ami_for
        # The AMI of every PBX followed (resync looks for our pauses on each).
        self.every_ami = every_ami or (lambda: [ami_for("")])
        self.pause_seconds = pause_seconds
        self.clock = clock
        self._timers: dict[str, asyncio.TimerHandle] = {}  # agent -> unpause
        self._tasks: set[asyncio.Task] = set()
        self.paused: dict[str, float] = {}  # agent -> paused at

    # ------------------------------------------------------------ call events
    def on_call_event(self, event: CallEvent) -> None:
        if not isinstance(event, AgentRejected) or self.pause_seconds <= 0:
            return
        if event.call.queued_at is None:
            return  # a direct call: the caller hears busy, nobody re-rings
        if event.agent in self.paused:
            return
        self.paused[event.agent] = event.at
        self._spawn(self._pause(event.agent, event.call.call_id, event.cause))

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pause(self, agent: str, call_id: str, cause: int) -> None:
        try:
            reply = await self.ami_for(agent).send(
                {
                    "Action": "QueuePause",
                    "Interface": interface_of(agent),
                    "Paused": "true",
                    "Reason": REASON,
                }
            )
        except Exception as exc:
            log.warning(
                "agent %s rejected call %s but could not be paused: %s", agent, call_id, exc
            )
            self.paused.pop(agent, None)
            return
        if reply.get("Response") != "Success":
            log.warning(
                "agent %s rejected call %s; QueuePause refused: %s",
                agent,
                call_id,
                reply.get("Message"),
            )
            self.paused.pop(agent, None)
            return
        log.info(
            "agent %s rejected queue call %s (cause %s): paused %.0f s",
            agent,
            call_id,
            cause,
            self.pause_seconds,
        )
        self._schedule(agent, self.pause_seconds)

    def _schedule(self, agent: str, after: float) -> None:
        old = self._timers.pop(agent, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._timers[agent] = loop.call_later(
            max(0.0, after), lambda: self._spawn(self._unpause(agent))
        )

    async def _unpause(self, agent: str) -> None:
        self._timers.pop(agent, None)
        try:
            still_ours = await self._paused_by_us(agent)
            if still_ours:
                await self.ami_for(agent).send(
                    {"Action": "QueuePause", "Interface": interface_of(agent), "Paused": "false"}
                )
                log.info("agent %s: rejection pause over, ready again", agent)
        except Exception as exc:
            log.warning("agent %s: ending the rejection pause failed (%s); retrying", agent, exc)
            self._schedule(agent, 5.0)
            return
        self.paused.pop(agent, None)

    async def _members(self, agent: str | None = None) -> list[dict[str, str]]:
        action = {"Action": "QueueStatus"}
        if agent is not None:
            action["Member"] = interface_of(agent)
        members = []
        for ami in [self.ami_for(agent)] if agent is not None else self.every_ami():
            replies = await ami.send(action, as_list=True)
            if not isinstance(replies, list):
                replies = [replies]
            members += [dict(r.items()) for r in replies if r.get("Event") == "QueueMember"]
        return members

    async def _paused_by_us(self, agent: str) -> bool:
        members = [
            m
            for m in await self._members(agent)
            if m.get("Name") == interface_of(agent)
            or m.get("Location") == interface_of(agent)
            or m.get("StateInterface") == interface_of(agent)
        ]
        return any(m.get("Paused") == "1" and m.get("PausedReason") == REASON for m in members)

    # ------------------------------------------------------------ after (re)connecting
    async def resync(self) -> None:
        """Our pauses found in Asterisk: end those that ran out, time the others."""
        if self.pause_seconds <= 0:
            return
        now = self.clock()
        for m in await self._members():
            if m.get("Paused") != "1" or m.get("PausedReason") != REASON:
                continue
            agent = (m.get("Location") or m.get("StateInterface") or "").partition("/")[2]
            if not agent or agent in self._timers:
                continue
            since = float(m.get("LastPause") or 0) or now
            self.paused[agent] = since
            self._schedule(agent, since + self.pause_seconds - now)

    async def close(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
