"""Running a long-lived instance (the service, a speech worker) until it is told to stop."""

from __future__ import annotations

import asyncio
import signal
from typing import Awaitable, Callable


async def run_until_stopped(
    start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]
) -> None:
    await start()
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Ctrl-C, a process manager's TERM, a closed terminal's HUP: a clean stop.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stopped.set)
    try:
        await stopped.wait()
    finally:
        await stop()
