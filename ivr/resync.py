"""After every AMI (re)login: what the service knows is made to match the PBX again.

``reconcile_calls``: a PBX's tracker reconciles its calls with the channels
Asterisk has now (calls that ended meanwhile are closed at the moment AMI was
lost: a PBX that crashed took them down then, and the reconnect time would add
the whole outage to their talk time); cluster/pbx.py's PbxLink runs it for its
PBX. Then ``Resync``: the queue board and the agent states take the queues'
status (of every PBX followed), the rejection pauses theirs. ``synced`` is set
after the first one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from .ami.client import AmiClient
from .calls.tracker import CallTracker

log = logging.getLogger(__name__)


def creation_order(channel: Any) -> tuple[float, int, str]:
    """A CoreShowChannel entry's place in the order Asterisk made the channels: its
    Uniqueid is "[systemname-]<epoch>.<sequence>"."""
    uid = str(channel.get("Uniqueid") or "")
    epoch, _, seq = uid.rpartition("-")[2].partition(".")
    try:
        return float(epoch), int(seq), uid
    except ValueError:
        return float("inf"), 0, uid


async def reconcile_calls(tracker: CallTracker, ami: AmiClient, pbx: str = "") -> None:
    tracker.resync_begin()
    channels = await ami.channels()
    # Each call's channels in the order they were made (Asterisk lists them in any
    # order): an inbound call's caller first, so the answer replayed with the agent's
    # channel already knows who called (the script, the taps, the coaching follow it).
    for channel in sorted(channels, key=creation_order):
        tracker.resync_channel(channel)
    now = time.time()
    lost = ami.lost_at if ami.logins > 1 and ami.lost_at is not None else now
    restarted = ami.pbx_started_at is not None and ami.pbx_started_at > lost - 1.0
    why = (
        "the PBX restarted" if restarted and ami.logins > 1 else "ended while AMI was disconnected"
    )
    tracker.resync_end(lost, why, now=now)
    log.info(
        "%sAMI resync: %d live channels, %d calls in progress%s",
        f"PBX {pbx}: " if pbx else "",
        len(channels),
        len(tracker.calls),
        f"; calls gone since {now - lost:.1f} s ago ({why})" if lost < now else "",
    )


class Resync:
    def __init__(self, pbx: Any, queue_board: Any, agent_states: Any, rejects: Any) -> None:
        self.pbx = pbx  # ami/actions.PbxActions, or cluster/pbx.ActionsRouter
        self.queue_board = queue_board
        self.agent_states = agent_states
        self.rejects = rejects
        self.synced = asyncio.Event()

    async def __call__(self) -> None:
        try:
            status = await self.pbx.queue_status()
            self.queue_board.resync(status)
            await self.agent_states.resync(status)
        except Exception:
            log.exception("AMI resync: queue status unavailable; agent states kept as they were")
        self.synced.set()
        try:
            await self.rejects.resync()
        except Exception as exc:
            log.warning("rejection pauses not resynced: %s", exc)
