"""Fan-out of call events to the stages that follow calls.

A subscriber that raises is logged and skipped: one broken consumer (or one
call's broken pipeline) must never stop the others from hearing about calls.
What subscribers log while they handle an event carries its call (and agent).
"""

from __future__ import annotations

import logging
from typing import Callable

from ..logs import about
from .events import CallEvent, describe

log = logging.getLogger(__name__)

Subscriber = Callable[[CallEvent], None]


class CallEventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)

    def publish(self, event: CallEvent) -> None:
        agent = getattr(event, "agent", None) or event.call.agent
        with about(event.call.call_id, agent):
            for subscriber in list(self._subscribers):
                try:
                    subscriber(event)
                except Exception:
                    log.exception("call event subscriber %r failed on %s", subscriber, event.kind)


def log_event(event: CallEvent) -> None:
    """A bus subscriber: one INFO line per call event (events.describe)."""
    if log.isEnabledFor(logging.INFO):
        log.info("%s", describe(event))
