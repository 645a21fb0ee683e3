"""/metrics for Prometheus: what the service is doing, read at scrape time.

Nothing here sits on a hot path: a collector reads the stages' own counters
(calls in the tracker, the speech stage's audio accounting and lag window,
taps, the recorder's queue) when Prometheus asks, so the audio path pays
nothing for being observable.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

if TYPE_CHECKING:
    from .server import Service

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class Histogram:
    """A cumulative histogram a stage keeps cheaply (a bisect and two adds per value)
    and Prometheus reads at scrape time."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    @property
    def n(self) -> int:
        return sum(self.counts)

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        buckets, acc = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=False):
            acc += n
            buckets.append(("+Inf" if bound == float("inf") else str(bound), acc))
        return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=self.total)


# AMI event in -> the card on the agent's WebSocket (bench/pop_latency.py: ~1-5 ms).
POP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(q * len(v) + 0.999999) - 1))]


class ServiceCollector:
    def __init__(self, service: "Service") -> None:
        self.s = service

    def collect(self) -> Iterator[Metric]:
        s = self.s
        calls = GaugeMetricFamily(
            "ivr_calls", "Calls the tracker follows now, by state", labels=["state"]
        )
        by_state: dict[str, int] = {}
        for call in s.live_calls():  # every PBX this instance follows
            by_state[call.state.value] = by_state.get(call.state.value, 0) + 1
        for state, n in sorted(by_state.items()):
            calls.add_metric([state], n)
        yield calls
        followed = [link for link in s.links if link.following] or s.links[:1]
        yield GaugeMetricFamily(
            "ivr_ami_connected",
            "1 while logged in to every PBX this instance follows",
            value=1.0 if all(link.ami.connected for link in followed) else 0.0,
        )
        pbx = GaugeMetricFamily(
            "ivr_pbx_followed",
            "1 for each PBX this instance follows now (several PBXs: cluster/)",
            labels=["pbx"],
        )
        for link in s.links:
            pbx.add_metric([link.name or "default"], 1.0 if link.following else 0.0)
        yield pbx
        ami_state = GaugeMetricFamily(
            "ivr_ami_state", "The AMI connection's state (1: this one)", labels=["state"]
        )
        ami_state.add_metric([s.ami.state], 1.0)
        yield ami_state
        yield CounterMetricFamily(
            "ivr_ami_logins", "AMI logins (each after the first is a reconnect)", value=s.ami.logins
        )
        yield CounterMetricFamily(
            "ivr_ami_events",
            "AMI events received (rate(): per second)",
            value=s.ami.events_received,
        )
        yield CounterMetricFamily(
            "ivr_pops", "Script cards popped (an agent's phone rang)", value=s.pop.popped
        )
        yield s.view.pop_latency.family(
            "ivr_pop_latency_seconds",
            "AMI event received -> the call's first card written to the agent's console",
        )
        yield GaugeMetricFamily(
            "ivr_console_clients", "Open console WebSockets", value=len(s.hub.clients)
        )
        yield GaugeMetricFamily(
            "ivr_recorder_pending_writes",
            "Store writes waiting or retried",
            value=s.recorder.pending,
        )
        yield CounterMetricFamily(
            "ivr_recorder_write_failures", "Failed store write attempts", value=s.recorder.failures
        )
        prompts = CounterMetricFamily(
            "ivr_prompts", "Prompts raised, by rule and severity", labels=["rule", "severity"]
        )
        for (rule, severity), n in sorted(s.live.prompt_counts.items()):
            prompts.add_metric([rule, severity], n)
        yield prompts
        pool = s.speech_pool
        if pool is not None:
            yield GaugeMetricFamily(
                "ivr_speech_workers", "Speech workers heard on the bus", value=len(pool.workers)
            )
            yield CounterMetricFamily(
                "ivr_taps_moved", "Taps moved off a speech worker that died", value=pool.moved
            )
        if s.tap_server is not None:
            yield GaugeMetricFamily(
                "ivr_taps_connected", "Audio taps streaming now", value=len(s.tap_server.streams)
            )
            yield CounterMetricFamily(
                "ivr_taps_rejected", "Tap connections refused", value=s.tap_server.rejected
            )
        if s.taps is not None:
            taps = CounterMetricFamily(
                "ivr_tap_states",
                "Audio tap status changes, by state (ok: connected, retrying/failed: not)",
                labels=["state"],
            )
            for tap_state, n in sorted(s.taps.counts.items()):
                taps.add_metric([tap_state], n)
            yield taps
        sp = s.speech
        if sp is None:
            return
        st = sp.stats
        audio = CounterMetricFamily(
            "ivr_speech_audio_seconds",
            "Seconds of tap audio, by what became of it",
            labels=["fate"],
        )
        received, processed, shed = sp.accounted()
        audio.add_metric(["received"], received)
        audio.add_metric(["processed"], processed)
        audio.add_metric(["shed"], shed)
        audio.add_metric(["refused"], st.refused_seconds)
        yield audio
        yield CounterMetricFamily(
            "ivr_speech_transcript_held_seconds",
            "Speech spotted but left out of the transcript while its stream caught up",
            value=st.held_seconds,
        )
        yield CounterMetricFamily(
            "ivr_speech_decode_cpu_seconds", "CPU seconds in Vosk and VAD", value=sp.decode_cpu()
        )
        yield GaugeMetricFamily(
            "ivr_speech_streams", "Speech streams being recognised", value=sp.open_streams
        )
        yield GaugeMetricFamily(
            "ivr_speech_capacity_level",
            "0 normal, 1 transcripts off, 2 partials off, 3 paused",
            value=sp.level,
        )
        lags = list(st.lags)
        lag = GaugeMetricFamily(
            "ivr_speech_lag_seconds",
            "Audio arrival -> recognised, over the recent window",
            labels=["quantile"],
        )
        for q in (0.5, 0.95, 1.0):
            lag.add_metric([str(q)], _quantile(lags, q))
        yield lag
        yield st.lag.family(
            "ivr_speech_recognition_lag_seconds", "Audio arrival -> recognised, every decoding job"
        )


def registry_for(service: "Service") -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(service))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
