"""What the service asks of the PBX, in call-centre terms.

Every AMI action beyond logging in and hearing events (client.py) lives here:
queue membership and pauses (agents signing in and out, breaks, wrap-up),
the queues' status (who is a member, paused why, which callers wait), the
departments (queues) a call may be transferred to, and the transfer itself.
Replies come back as small frozen dataclasses; a refusal raises ActionError.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Mapping

from .client import AmiClient, AmiError


class ActionError(Exception):
    """The PBX did not do what was asked; the message says why."""


class NotConnected(ActionError):
    """AMI is down: nothing can be asked of the PBX right now."""


class Refused(ActionError):
    """The PBX answered with an error."""


class CallGone(ActionError):
    """The call (or the party) the action was for has hung up."""


def _int(value: str, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


# Asterisk's device states, as QueueMember/QueueMemberStatus report them.
DEVICE_STATES = {
    0: "unknown",
    1: "not_inuse",
    2: "inuse",
    3: "busy",
    4: "invalid",
    5: "unavailable",
    6: "ringing",
    7: "ringinuse",
    8: "onhold",
}


@dataclass(frozen=True)
class QueueMember:
    """One agent's phone in one queue (QueueMember, QueueMember* events)."""

    queue: str
    interface: str  # PJSIP/1001
    name: str = ""
    state_interface: str = ""
    dynamic: bool = True  # added over AMI/CLI, not written in queues.conf
    penalty: int = 0
    calls_taken: int = 0
    in_call: bool = False
    device: str = "unknown"  # DEVICE_STATES
    paused: bool = False
    paused_reason: str = ""
    last_pause: float = 0.0  # epoch s of the last pause (0: never)
    login_time: float = 0.0  # epoch s the member was added

    @classmethod
    def from_fields(cls, f: Mapping[str, Any]) -> "QueueMember":
        get = f.get
        return cls(
            queue=str(get("Queue", "")),
            interface=str(get("Interface") or get("Location") or ""),
            name=str(get("MemberName") or get("Name") or ""),
            state_interface=str(get("StateInterface", "")),
            dynamic=str(get("Membership", "dynamic")) != "static",
            penalty=_int(get("Penalty", "0")),
            calls_taken=_int(get("CallsTaken", "0")),
            in_call=str(get("InCall", "0")) == "1",
            device=DEVICE_STATES.get(_int(get("Status", "0")), "unknown"),
            paused=str(get("Paused", "0")) == "1",
            paused_reason=str(get("PausedReason", "")),
            last_pause=float(_int(get("LastPause", "0"))),
            login_time=float(_int(get("LoginTime", "0"))),
        )


@dataclass(frozen=True)
class QueueCaller:
    """A caller waiting in a queue (QueueStatus' QueueEntry)."""

    queue: str
    uniqueid: str
    channel: str
    position: int
    joined_at: float  # epoch s, from the wait Asterisk reports


@dataclass(frozen=True)
class QueueStatus:
    """Every queue, its members and its waiting callers, at one moment."""

    at: float
    queues: tuple[str, ...]
    members: tuple[QueueMember, ...]
    callers: tuple[QueueCaller, ...]


class PbxActions:
    """AMI actions of the service, over one AmiClient."""

    def __init__(self, ami: AmiClient, departments_ttl: float = 60.0):
        self.ami = ami
        self.departments_ttl = departments_ttl
        self._departments: tuple[float, list[str]] = (-1e9, [])
        self._departments_asking: asyncio.Future | None = None

    async def _send(
        self, action: dict[str, str], as_list: bool | None = False, timeout: float = 10.0
    ) -> Any:
        try:
            return await self.ami.send(action, as_list=as_list, timeout=timeout)
        except AmiError as exc:
            raise NotConnected(str(exc)) from None
        except asyncio.TimeoutError:
            raise ActionError(
                f"the PBX did not answer {action['Action']} in {timeout:.0f} s"
            ) from None

    async def _do(self, action: dict[str, str]) -> dict[str, str]:
        # as_list=False: panoramisk would wait for a list after "Added interface to queue".
        reply = await self._send(action)
        if reply.get("Response") != "Success":
            raise Refused(f"{action['Action']}: {reply.get('Message') or 'refused'}")
        return dict(reply.items())

    # ------------------------------------------------------------ queues
    async def queue_add(
        self,
        queue: str,
        interface: str,
        *,
        member_name: str = "",
        penalty: int = 0,
        paused: bool = False,
        reason: str = "",
    ) -> None:
        """Add an agent's phone to a queue; its device state (the phone's own
        interface) tells Asterisk when the agent is busy."""
        action = {
            "Action": "QueueAdd",
            "Queue": queue,
            "Interface": interface,
            "StateInterface": interface,
            "Penalty": str(penalty),
            "Paused": "true" if paused else "false",
        }
        if member_name:
            action["MemberName"] = member_name
        if paused and reason:
            action["Reason"] = reason
        await self._do(action)

    async def queue_remove(self, queue: str, interface: str) -> None:
        await self._do({"Action": "QueueRemove", "Queue": queue, "Interface": interface})

    async def queue_pause(
        self, interface: str, paused: bool, reason: str = "", queue: str | None = None
    ) -> None:
        """Pause (with a reason) or unpause an agent's phone in one queue, or
        in every queue it is in (queue=None)."""
        action = {
            "Action": "QueuePause",
            "Interface": interface,
            "Paused": "true" if paused else "false",
        }
        if queue:
            action["Queue"] = queue
        if reason:
            action["Reason"] = reason
        await self._do(action)

    async def queue_status(self) -> QueueStatus:
        replies = await self._send({"Action": "QueueStatus"}, as_list=True, timeout=15.0)
        if not isinstance(replies, list):
            replies = [replies]
        now = time.time()
        if replies and replies[0].get("Response") == "Error":
            raise Refused(f"QueueStatus: {replies[0].get('Message')}")
        queues, members, callers = [], [], []
        for r in replies:
            event = r.get("Event")
            if event == "QueueParams":
                queues.append(str(r.get("Queue")))
            elif event == "QueueMember":
                members.append(QueueMember.from_fields(r))
            elif event == "QueueEntry":
                callers.append(
                    QueueCaller(
                        queue=str(r.get("Queue")),
                        uniqueid=str(r.get("Uniqueid", "")),
                        channel=str(r.get("Channel", "")),
                        position=_int(r.get("Position", "0")),
                        joined_at=now - _int(r.get("Wait", "0")),
                    )
                )
        return QueueStatus(now, tuple(queues), tuple(members), tuple(callers))

    # ------------------------------------------------------------ departments, transfers
    async def departments(self) -> list[str]:
        """The PBX's queues (QueueSummary), cached for a minute; consoles that
        connect together share one request."""
        at, names = self._departments
        if time.monotonic() - at < (self.departments_ttl if names else 5):
            return names
        if self._departments_asking is None or self._departments_asking.done():
            self._departments_asking = asyncio.ensure_future(self._ask_departments())
        return await asyncio.shield(self._departments_asking)

    async def _ask_departments(self) -> list[str]:
        # as_list=None: a refused action resolves at once instead of timing out.
        replies = await self._send({"Action": "QueueSummary"}, as_list=None)
        if not isinstance(replies, list):
            replies = [replies]
        names = sorted(
            {r.get("Queue") for r in replies if r.get("Event") == "QueueSummary" and r.get("Queue")}
        )
        self._departments = (time.monotonic(), names)
        return names

    async def transfer(self, channel: str | None, department: str) -> None:
        """Send the customer (their ``channel``; None: hung up) into another
        department's queue (AMI Redirect)."""
        if not channel:
            raise CallGone("the customer is no longer on the line")
        reply = await self._send(
            {
                "Action": "Redirect",
                "Channel": channel,
                "Context": "to-queue",
                "Exten": department,
                "Priority": "1",
            }
        )
        if reply.get("Response") != "Success":
            raise Refused(f"the PBX refused the transfer: {reply.get('Message')}")
