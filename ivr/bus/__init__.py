"""The bus between service instances (roles): NATS, or in-process for one box.

    bus = create_bus(settings.bus.url, name)   # "" -> LocalBus, nats://... -> NatsBus
    await bus.start()
    bus.publish("ivr.call.east.1700000000_12", {...})
    await bus.subscribe("ivr.call.>", handler)     # handler(subject, data)

Subjects (subjects.py) go per PBX, call and agent. codec.py turns call
events into JSON and back.
"""

from .base import BusError, LocalBus, matches, token
from .nats import NatsBus


def create_bus(url: str, name: str = "ivr") -> LocalBus | NatsBus:
    if not url:
        return LocalBus()
    if not url.startswith(("nats://", "tls://")):
        raise ValueError(f"bus.url {url!r}: use nats://host:4222")
    return NatsBus(url, name)


__all__ = ["BusError", "LocalBus", "NatsBus", "create_bus", "matches", "token"]
