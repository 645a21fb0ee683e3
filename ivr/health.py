"""/api/health: each component's state, read when asked (a container's health check,
a load balancer). The console answers 503 naming what is down (web/app.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import Service


def components(service: "Service") -> dict[str, dict[str, Any]]:
    """{component: {"ok": bool, "detail": text}} for AMI, the store, speech, the taps
    and, between instances, the bus."""
    s = service
    speech_on = s.settings.speech.enabled
    recorder = s.recorder
    out: dict[str, dict[str, Any]] = {}
    if "controller" in s.roles:
        followed = [link for link in s.links if link.following]
        down = [link.name or "Asterisk" for link in followed if not link.ami.connected]
        out["ami"] = {  # a standby following no PBX is healthy: it takes over when needed
            "ok": not down,
            "detail": f"not connected to {', '.join(down)}"
            if down
            else ("connected" if len(s.links) == 1 else f"following {len(followed)} PBXs")
            if followed
            else "standing by: another instance follows the PBXs",
        }
    out["store"] = {
        "ok": not recorder.failing,
        "detail": f"{recorder.pending} writes waiting, failing: retrying"
        if recorder.failing
        else f"{recorder.pending} writes waiting",
    }
    if s.bus_link is not None:
        out["bus"] = {
            "ok": s.bus_link.connected,
            "detail": "connected" if s.bus_link.connected else "reconnecting to NATS",
        }
    if "controller" not in s.roles:
        return out  # a web front: calls, taps and speech are the controllers'
    pool = s.speech_pool
    out["speech"] = {
        "ok": not speech_on or (pool.listening if pool is not None else s.speech is not None),
        "detail": (
            "off (speech.enabled: false)"
            if not speech_on
            else pool.describe()
            if pool is not None
            else "no speech model: calls are not coached"
            if s.speech is None
            else f"capacity level {s.speech.level}, worst lag {s.speech.lag:.1f} s"
        ),
    }
    out["taps"] = {
        "ok": s.tap_server is None or s.tap_server.listening or not speech_on,
        "detail": "off"
        if s.tap_server is None
        else ("listening" if s.tap_server.listening else "not listening"),
    }
    return out
