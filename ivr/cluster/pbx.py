"""One PBX the service may follow: its AMI client and its call tracker.

A `PbxLink` starts following when this instance holds the PBX's lease
(controller.py) and resyncs from CoreShowChannels after every (re)login, as
one service always did after a reconnect: calls in progress are adopted,
legs gone meanwhile are ended. The tracker's calls carry the PBX's name.

`AmiRouter` is what stages that act on calls (taps, transfers) use when
there are several PBXs: it sends each action to the PBX that has the leg or
channel it names.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Iterable

from ..ami.client import AmiClient, AmiError
from ..ami.message import AmiEvent
from ..calls.events import CallEvent
from ..calls.tracker import CallTracker
from ..config import AmiSettings
from ..resync import reconcile_calls

log = logging.getLogger(__name__)


class PbxLink:
    def __init__(
        self,
        settings: AmiSettings,
        publish: Callable[[CallEvent], None],
        *,
        on_synced: Callable[["PbxLink", bool], Awaitable[None]] | None = None,
        on_ami_event: Callable[["PbxLink", AmiEvent], None] | None = None,
    ):
        """on_synced(link, first): after each resync (first: the first since
        follow()); on_ami_event(link, event): every AMI event, after the tracker."""
        self.name = settings.name
        self.settings = settings
        self.tracker = CallTracker(on_event=publish, pbx=self.name)
        self.on_ami_event = on_ami_event
        self.ami = AmiClient(settings, on_event=self._event, on_connected=self.resync)
        self.on_synced = on_synced
        self.following = False
        self.synced = asyncio.Event()
        self.resyncs = 0
        self.system_name = ""
        self.several = False  # set by the service when it follows several PBXs
        self._first = True  # the first resync since follow()

    def __repr__(self) -> str:
        return f"PbxLink({self.name!r}, {self.settings.host}:{self.settings.port})"

    def _event(self, event: AmiEvent) -> None:
        self.tracker.feed(event)
        if self.on_ami_event is not None:
            self.on_ami_event(self, event)

    @property
    def agents(self) -> tuple[str, ...]:
        return self.settings.agents

    async def follow(self) -> None:
        """Start following the PBX (the lease is ours)."""
        self.following = True
        self._first = True
        self.synced.clear()
        await self.ami.start()

    async def let_go(self) -> None:
        """Stop following (the lease is lost or the service stops). Calls are
        not ended: they go on, and whoever follows the PBX next adopts them."""
        self.following = False
        await self.ami.close()

    async def resync(self, ami: AmiClient) -> None:
        """After every (re)login: reconcile calls with the channels Asterisk has now.

        Calls that ended meanwhile are closed at the moment AMI was lost: a
        PBX that crashed took them down then, and the reconnect time would add
        the whole outage to their talk time."""
        await reconcile_calls(self.tracker, ami, self.name)
        self.resyncs += 1
        first, self._first = self._first, False
        if first:
            await self._check_system_name(ami)
        if self.on_synced is not None:
            await self.on_synced(self, first)
        self.synced.set()

    async def _check_system_name(self, ami: AmiClient) -> None:
        """Call ids are Asterisk's Uniqueids: two PBXs without their own
        systemname (asterisk.conf) can give two calls one id."""
        try:
            reply = await ami.send({"Action": "CoreSettings"}, timeout=5.0)
            self.system_name = str(reply.get("SystemName", "") or "")
        except (AmiError, asyncio.TimeoutError):
            return
        if self.several and not self.system_name:
            log.warning(
                "PBX %s has no systemname in asterisk.conf: with several PBXs, calls "
                "of two PBXs can get the same id. Set a distinct systemname on each.",
                self.name,
            )

    def has_leg(self, uniqueid: str) -> bool:
        return any(uniqueid in c.legs for c in self.tracker.calls.values())

    def has_channel(self, channel: str) -> bool:
        return any(
            leg.channel == channel for c in self.tracker.calls.values() for leg in c.legs.values()
        )


class AmiRouter:
    """The AmiClient interface over several PBXs: an action goes to the PBX
    that has the leg (Exten of a tap Originate) or the channel it names, else
    to the first PBX followed."""

    def __init__(self, links: Iterable[PbxLink]):
        self.links = list(links)

    def _for(self, fields: dict[str, Any]) -> AmiClient:
        channel = str(fields.get("Channel", ""))
        exten = str(fields.get("Exten", ""))
        for link in self.links:
            if link.following and (link.has_leg(exten) or link.has_channel(channel)):
                return link.ami
        for link in self.links:
            if link.following:
                return link.ami
        raise AmiError("no PBX is followed by this instance")

    def for_pbx(self, name: str) -> AmiClient:
        for link in self.links:
            if link.name == name:
                return link.ami
        raise AmiError(f"no PBX {name!r}")

    async def send(self, action: dict, as_list: bool | None = None, timeout: float = 10.0) -> Any:
        return await self._for(action).send(action, as_list=as_list, timeout=timeout)

    async def originate(self, **fields: Any) -> dict:
        return await self._for(fields).originate(**fields)

    @property
    def connected(self) -> bool:
        return any(link.ami.connected for link in self.links)


class ActionsRouter:
    """ami/actions.PbxActions over several PBXs: an agent's queue membership
    and pauses go to the PBX their phone is on (`agents:` of each PBX in the
    config, else the first followed), a transfer to the call's PBX, and the
    queue status is that of every PBX this instance follows."""

    def __init__(self, links: Iterable[PbxLink], actions: dict[str, Any]):
        self.links = list(links)
        self.actions = actions

    def _followed(self) -> list[PbxLink]:
        return [link for link in self.links if link.following] or self.links[:1]

    def for_agent(self, interface: str) -> Any:
        login = interface.partition("/")[2] or interface
        for link in self._followed():
            if login in link.agents:
                return self.actions[link.name]
        return self.actions[self._followed()[0].name]

    async def queue_add(self, queue: str, interface: str, **kw: Any) -> None:
        await self.for_agent(interface).queue_add(queue, interface, **kw)

    async def queue_remove(self, queue: str, interface: str) -> None:
        await self.for_agent(interface).queue_remove(queue, interface)

    async def queue_pause(
        self, interface: str, paused: bool, reason: str = "", queue: str | None = None
    ) -> None:
        await self.for_agent(interface).queue_pause(interface, paused, reason, queue)

    async def queue_status(self) -> Any:
        from ..ami.actions import QueueStatus

        parts = [await self.actions[link.name].queue_status() for link in self._followed()]
        return QueueStatus(
            max(p.at for p in parts),
            tuple(dict.fromkeys(q for p in parts for q in p.queues)),
            tuple(m for p in parts for m in p.members),
            tuple(c for p in parts for c in p.callers),
        )

    async def departments(self) -> list[str]:
        names: set[str] = set()
        for link in self._followed():
            names.update(await self.actions[link.name].departments())
        return sorted(names)

    async def transfer(self, channel: str | None, department: str) -> None:
        """The customer's channel into another queue, on the PBX that has it."""
        link = next(
            (k for k in self._followed() if channel and k.has_channel(channel)), self._followed()[0]
        )
        await self.actions[link.name].transfer(channel, department)

    def __getattr__(self, name: str) -> Any:  # anything else: the first followed PBX
        return getattr(self.actions[self._followed()[0].name], name)
