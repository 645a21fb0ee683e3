"""The controller role: follow every PBX whose lease this instance can take.

At start it takes each free lease of its preferred PBXs at once (one
machine: all of them), then polls every `poll` s for PBXs nobody follows
(their holder died): a standby takes such a PBX when it finds it free at two
polls in a row, so within 2 x poll + AMI login + resync, about 2.5 s with the
default poll. In its first seconds (`grace`: 4 polls, at least 2 s) a standby
takes no other PBX: instances started together (a deployment, a test) each
get their own PBXs even when one of them is slow to start. Losing the lease
connection lets go of every PBX at once: another instance may already follow them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Iterable

from .pbx import PbxLink

log = logging.getLogger(__name__)


class Controller:
    def __init__(
        self,
        links: Iterable[PbxLink],
        leases,
        *,
        poll: float = 1.0,
        prefer: Iterable[str] = (),
        on_let_go: Callable[[PbxLink], Awaitable[None]] | None = None,
        on_take: Callable[[PbxLink], Awaitable[None]] | None = None,
    ):
        self.links = list(links)
        self.prefer = set(prefer) or {link.name for link in self.links}
        self._free_seen: dict[str, int] = {}  # standby PBX -> polls in a row found free
        self.leases = leases
        self.poll = poll
        self.on_let_go = on_let_go
        self.on_take = on_take  # before following a PBX taken (e.g. its calls' coaching)
        self._task: asyncio.Task | None = None
        self._closing = False
        self.grace = max(2.0, 4 * poll)
        self._standby_from = 0.0  # loop time after which PBXs of others may be taken

    async def start(self) -> None:
        self.leases.on_lost = self._lost_all
        self._standby_from = asyncio.get_running_loop().time() + self.grace
        await self._take_free()
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.poll)
            try:
                await self._take_free()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("controller: taking free PBXs failed; trying again")

    async def _take_free(self) -> None:
        for link in self.links:
            if link.following or self._closing:
                continue
            if link.name not in self.prefer:
                if asyncio.get_running_loop().time() < self._standby_from:
                    continue
                # A standby waits a poll, so the PBX's own instance takes it at
                # its start; a PBX whose holder died is free at the next poll.
                seen = (await self.leases.holders([link.name])).get(link.name)
                self._free_seen[link.name] = 0 if seen else self._free_seen.get(link.name, 0) + 1
                if self._free_seen[link.name] < 2:
                    continue
            if await self.leases.try_take(link.name):
                log.info(
                    "PBX %s: this instance (%s) follows it now", link.name, self.leases.instance
                )
                if self.on_take is not None:
                    try:
                        await self.on_take(link)
                    except Exception:
                        log.exception("PBX %s: preparing to follow it failed", link.name)
                await link.follow()

    def _lost_all(self) -> None:
        for link in self.links:
            if link.following:
                asyncio.ensure_future(self._let_go(link))

    async def _let_go(self, link: PbxLink) -> None:
        if self.on_let_go is not None:
            try:
                await self.on_let_go(link)
            except Exception:
                log.exception("PBX %s: stopping its dialers failed", link.name)
        await link.let_go()

    @property
    def followed(self) -> list[str]:
        return [link.name for link in self.links if link.following]

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for link in self.links:
            if link.following:
                await self._let_go(link)
            await self.leases.give_up(link.name)
