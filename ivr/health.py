"""/api/health: each component's state, read when asked (a container's health check,
a load balancer). The console answers 503 naming what is down (web/app.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import Service


def components(service: "Service") -> dict[str, dict[str, Any]]:
    """{component: {"ok": bool, "detail": text}} for AMI, the store, speech and the taps."""
    s = service
    speech_on = s.settings.speech.enabled
    recorder = s.recorder
    return {
        "ami": {
            "ok": s.ami.connected,
            "detail": "connected" if s.ami.connected else "not connected to Asterisk",
        },
        "store": {
            "ok": not recorder.failing,
            "detail": f"{recorder.pending} writes waiting, failing: retrying"
            if recorder.failing
            else f"{recorder.pending} writes waiting",
        },
        "speech": {
            "ok": s.speech is not None or not speech_on,
            "detail": (
                "off (speech.enabled: false)"
                if not speech_on
                else "no speech model: calls are not coached"
                if s.speech is None
                else f"capacity level {s.speech.level}, worst lag {s.speech.lag:.1f} s"
            ),
        },
        "taps": {
            "ok": s.tap_server is None or s.tap_server.listening or not speech_on,
            "detail": "off"
            if s.tap_server is None
            else ("listening" if s.tap_server.listening else "not listening"),
        },
    }
