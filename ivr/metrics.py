"""/metrics for Prometheus: what the service is doing, read at scrape time.

Nothing here sits on a hot path: a collector reads the stages' own counters
(calls in the tracker, the speech stage's audio accounting and lag window,
taps, the recorder's queue) when Prometheus asks, so the audio path pays
nothing for being observable.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                     HistogramMetricFamily, Metric)

if TYPE_CHECKING:
    from .server import Service

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


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
        calls = GaugeMetricFamily("ivr_calls", "Calls the tracker follows now, by state",
                                  labels=["state"])
        by_state: dict[str, int] = {}
        for call in s.tracker.calls.values():
            by_state[call.state.value] = by_state.get(call.state.value, 0) + 1
        for state, n in sorted(by_state.items()):
            calls.add_metric([state], n)
        yield calls
        yield GaugeMetricFamily("ivr_ami_connected", "1 while logged in to Asterisk",
                                value=1.0 if s.ami.connected else 0.0)
        yield GaugeMetricFamily("ivr_console_clients", "Open console WebSockets",
                                value=len(s.hub.clients))
        yield GaugeMetricFamily("ivr_recorder_pending_writes", "Store writes waiting or retried",
                                value=s.recorder.pending)
        yield CounterMetricFamily("ivr_recorder_write_failures", "Failed store write attempts",
                                  value=s.recorder.failures)
        prompts = CounterMetricFamily("ivr_prompts", "Prompts raised, by rule and severity",
                                      labels=["rule", "severity"])
        for (rule, severity), n in sorted(s.live.prompt_counts.items()):
            prompts.add_metric([rule, severity], n)
        yield prompts
        if s.tap_server is not None:
            yield GaugeMetricFamily("ivr_taps_connected", "Audio taps streaming now",
                                    value=len(s.tap_server.streams))
            yield CounterMetricFamily("ivr_taps_rejected", "Tap connections refused",
                                      value=s.tap_server.rejected)
        sp = s.speech
        if sp is None:
            return
        st = sp.stats
        audio = CounterMetricFamily("ivr_speech_audio_seconds",
                                    "Seconds of tap audio, by what became of it", labels=["fate"])
        received, processed, shed = sp.accounted()
        audio.add_metric(["received"], received)
        audio.add_metric(["processed"], processed)
        audio.add_metric(["shed"], shed)
        audio.add_metric(["refused"], st.refused_seconds)
        yield audio
        yield CounterMetricFamily("ivr_speech_decode_cpu_seconds", "CPU seconds in Vosk and VAD",
                                  value=st.decode_cpu + st.gate_cpu)
        yield GaugeMetricFamily("ivr_speech_streams", "Speech streams being recognised",
                                value=len(sp._open))
        yield GaugeMetricFamily("ivr_speech_capacity_level",
                                "0 normal, 1 transcripts off, 2 partials off, 3 paused",
                                value=sp.level)
        lags = list(st.lags)
        lag = GaugeMetricFamily("ivr_speech_lag_seconds",
                                "Audio arrival -> recognised, over the recent window",
                                labels=["quantile"])
        for q in (0.5, 0.95, 1.0):
            lag.add_metric([str(q)], _quantile(lags, q))
        yield lag
        buckets, acc = [], 0
        for bound, n in zip((*st.lag_buckets, float("inf")), st.lag_counts):
            acc += n
            buckets.append(("+Inf" if bound == float("inf") else str(bound), acc))
        yield HistogramMetricFamily("ivr_speech_recognition_lag_seconds",
                                    "Audio arrival -> recognised, every decoding job",
                                    buckets=buckets, sum_value=st.lag_sum)


def registry_for(service: "Service") -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(service))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
