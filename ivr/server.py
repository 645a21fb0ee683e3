"""The service's lifecycle: connect to Asterisk, follow calls, stop cleanly.

Each stage is built here and wired to the next through the call event bus;
no stage knows the others.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import time

from .ami.client import AmiClient
from .calls.bus import CallEventBus
from .calls.events import CallEnded, CallEvent
from .calls.tracker import CallTracker
from .config import Settings

log = logging.getLogger(__name__)


def describe(event: CallEvent) -> str:
    """One log line per call event, in call-centre terms."""
    c = event.call
    parts = [f"call {c.call_id}", event.kind, c.direction.value, f"state={c.state.value}"]
    for label, value in (("did", c.did), ("dialled", c.dialled), ("customer", c.customer_num),
                         ("ivr", c.ivr_choice), ("queue", c.queue), ("project", c.project),
                         ("campaign", c.campaign), ("agent", getattr(event, "agent", None) or c.agent)):
        if value:
            parts.append(f"{label}={value}")
    if isinstance(event, CallEnded):
        parts.append(f"result={c.result.value if c.result else '?'}")
        parts.append(f"cause={c.cause}({c.cause_txt})")
        if c.talk_seconds is not None:
            parts.append(f"talk={c.talk_seconds:.1f}s")
    return " ".join(parts)


class Service:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.bus = CallEventBus()
        self.tracker = CallTracker(on_event=self.bus.publish)
        self.ami = AmiClient(settings.ami, on_event=self.tracker.feed,
                             on_connected=self.resync)
        self.bus.subscribe(lambda e: log.info("%s", describe(e)))

    async def resync(self, ami: AmiClient) -> None:
        """After every (re)login: reconcile calls with the channels Asterisk has now."""
        self.tracker.resync_begin()
        channels = await ami.channels()
        for channel in channels:
            self.tracker.resync_channel(channel)
        self.tracker.resync_end(time.time())
        log.info("AMI resync: %d live channels, %d calls in progress",
                 len(channels), len(self.tracker.calls))

    async def start(self) -> None:
        await self.ami.start()

    async def stop(self) -> None:
        await self.ami.close()

    async def run_forever(self) -> None:
        await self.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await self.stop()
