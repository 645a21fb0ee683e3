#!/usr/bin/env python3
"""Replay real AMI traffic into the call tracker over a socket, as fast as it goes.

    python bench/ami_replay.py [--calls N] [--window W] [--rate EV_PER_S] [--latency-calls N]

The AMI traffic recorded from the sandbox Asterisk (tests/data/*.ami) is
replicated into many distinct calls (fresh Uniqueid/Linkedid values and channel
names per copy), interleaved so that ``--window`` calls are in flight at once
like on a busy site, and sent by a fake Asterisk running in its own process, so
that only the service's side is measured. The service side is the real AMI
path, wired as ``ivr.server.Service`` wires it (login, resync of the live
channels after login, then every event):

    TCP -> panoramisk (parsing) -> AmiClient -> AmiEvent -> CallTracker -> CallEventBus

The stages behind the bus (script pop, outcome store, web console) are not
part of it: this measures following calls, not what is done with them.

Phase 1 (throughput) sends every event as fast as the socket takes them and
reports events per second (first to last event handled) and the client's CPU
time per event (getrusage, independent of wall time). Phase 2 (latency) paces
the events at ``--rate`` and stamps each with ``BenchSent: <monotonic ns>``;
the latency of an event is the time from that stamp until the tracker (and the
bus subscribers it feeds) returned. CLOCK_MONOTONIC is system-wide on Linux,
so the two processes' clocks compare directly.

Both phases check the result: every call ends (at least one CallEnded per call
replayed; a recording of a transfer holds the consultation call too),
the tracker ends with no live call, and each kind of call event occurs as
often as replaying every capture alone says it should. Exit status 1 if not.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Iterable, Iterator

from harness import (  # noqa: E402 (it puts the checkout on sys.path)
    EOL,
    BenchError,
    Capture,
    FakeAsterisk,
    Replicator,
    ami_recordings,
    ami_settings,
    checked,
    cpu_seconds,
    fake_asterisk,
    machine,
    percentile,
    replay_parser,
    verdict,
    wire,
)

from ivr.ami.client import AmiClient, AmiError  # noqa: E402
from ivr.ami.message import AmiEvent  # noqa: E402
from ivr.calls.bus import CallEventBus  # noqa: E402
from ivr.calls.tracker import CallTracker  # noqa: E402

STAMP = "BenchSent"  # header the fake Asterisk adds in the latency phase
PHASES = ("throughput", "latency")


# --------------------------------------------------------------------- workload
def interleave(calls: Iterable[list[str]], window: int) -> Iterator[str]:
    """Round robin over ``window`` calls in flight; a finished call makes room for the next."""
    waiting = iter(calls)
    active = deque(iter(c) for c in itertools.islice(waiting, window))
    while active:
        call = active.popleft()
        message = next(call, None)
        if message is None:
            following = next(waiting, None)
            if following is not None:
                active.append(iter(following))
            continue
        yield message
        active.append(call)


def copies_per_capture(captures: list[Capture], calls: int) -> list[int]:
    """Call k of a phase replays capture k mod len(captures)."""
    return [len(range(i, calls, len(captures))) for i in range(len(captures))]


def build_stream(
    captures: list[Capture], calls: int, window: int, replicator: Replicator
) -> list[bytes]:
    copies = (replicator.copy(captures[k % len(captures)])[0] for k in range(calls))
    return [m.encode() for m in interleave(copies, window)]


# --------------------------------------------------------------------- fake Asterisk
@dataclass(frozen=True)
class ServerConfig:
    captures: list[Path]
    secret: str
    calls: dict[str, int]  # phase -> calls to replay
    window: int
    rate: float
    max_seconds: float  # the process ends by itself after this, whatever happens


class ReplayAsterisk(FakeAsterisk):
    """``Action: BenchStart`` / ``Phase: throughput|latency`` streams that phase's
    events; its response (Events, Calls) comes after the last event, so the
    client's action completes exactly when the phase has been delivered.
    """

    def __init__(self, config: ServerConfig, ready: Connection):
        super().__init__(config.secret, config.max_seconds, ready)
        self.config = config
        captures = [Capture.load(p) for p in config.captures]
        replicator = Replicator()  # shared: the phases' calls never share a name
        self.streams = {
            phase: build_stream(captures, config.calls[phase], config.window, replicator)
            for phase in PHASES
        }

    def action(self, writer: asyncio.StreamWriter, name: str, action: dict[str, str]) -> bool:
        if name != "benchstart" or action.get("phase") not in PHASES:
            return False
        self.spawn(self._stream(writer, action["phase"], action.get("actionid", "")))
        return True

    async def _stream(self, writer: asyncio.StreamWriter, phase: str, action_id: str) -> None:
        messages = self.streams[phase]
        try:
            if phase == "throughput":
                # As fast as the socket takes them: big writes, waiting only for the
                # kernel buffer (drain) so the process' memory stays bounded.
                for i in range(0, len(messages), 256):
                    writer.write(EOL.encode().join(messages[i : i + 256]) + EOL.encode())
                    await writer.drain()
            else:
                # Paced: event i is due at start + i/rate and stamped as it is written.
                # asyncio sleeps in ~1 ms ticks, so events due within a tick go out together.
                start, interval = time.monotonic(), 1.0 / self.config.rate
                for i, message in enumerate(messages):
                    delay = start + i * interval - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    writer.write(
                        b"%s%s: %d\r\n\r\n" % (message, STAMP.encode(), time.monotonic_ns())
                    )
                    await writer.drain()
            writer.write(
                wire(
                    ("Response", "Success"),
                    ("ActionID", action_id),
                    ("Events", len(messages)),
                    ("Calls", self.config.calls[phase]),
                )
            )
            await writer.drain()
        except ConnectionError:
            pass


def serve(config: ServerConfig, ready: Connection) -> None:
    """Entry point of the fake Asterisk process."""
    asyncio.run(ReplayAsterisk(config, ready).run())


# --------------------------------------------------------------------- the service side
class Probe:
    """The AMI client's event handler: feeds the tracker, times every event."""

    def __init__(self, tracker: CallTracker):
        self._feed = tracker.feed
        self._calls = tracker.calls
        self.reset()

    def reset(self) -> None:
        self.events = self.errors = self.peak_calls = 0
        self.first_ns = self.last_ns = 0
        self.latencies_ns: list[int] = []

    def __call__(self, ev: AmiEvent) -> None:
        if not self.events:
            self.first_ns = time.monotonic_ns()
        try:
            self._feed(ev)  # the tracker, and through the bus its subscribers
        except Exception:
            self.errors += 1  # AmiClient logs it and carries on; we count it
            raise
        self.last_ns = done = time.monotonic_ns()
        self.events += 1
        stamp = ev.fields.get(STAMP)
        if stamp is not None:
            self.latencies_ns.append(done - int(stamp))
        self.peak_calls = max(self.peak_calls, len(self._calls))


class Pipeline:
    """The service's AMI path, wired as ivr.server.Service wires it."""

    def __init__(self, port: int, secret: str):
        self.bus = CallEventBus()
        self.tracker = CallTracker(on_event=self.bus.publish)
        self.probe = Probe(self.tracker)
        self.call_events: Counter[str] = Counter()
        self.bus.subscribe(lambda e: self.call_events.update((e.kind,)))
        self.ami = AmiClient(
            ami_settings(port, secret), on_event=self.probe, on_connected=self._resync
        )
        self.resynced = asyncio.Event()

    async def _resync(self, ami: AmiClient) -> None:
        # What Service.resync does after every login: reconcile with the live channels.
        self.tracker.resync_begin()
        for channel in await ami.channels():
            self.tracker.resync_channel(channel)
        self.tracker.resync_end(time.time())
        self.resynced.set()


@dataclass
class PhaseResult:
    name: str
    calls: int
    sent: int  # events the fake Asterisk says it sent
    handled: int  # events that reached the tracker
    errors: int
    seconds: float  # first to last event handled
    cpu_seconds: float  # client process, user + system, during the phase
    peak_calls: int
    live_calls_after: int
    call_events: Counter[str]
    latencies_ns: list[int]


async def run_phases(port: int, secret: str, timeouts: dict[str, float]) -> list[PhaseResult]:
    p = Pipeline(port, secret)
    results = []
    await p.ami.start()
    try:
        try:
            await asyncio.wait_for(p.resynced.wait(), 10)  # logged in, resync done
        except asyncio.TimeoutError:
            raise BenchError("no AMI login and resync within 10 s") from None
        for phase in PHASES:
            p.probe.reset()
            p.call_events.clear()
            cpu = cpu_seconds()
            # The reply comes after the phase's last event: awaiting it awaits the phase.
            try:
                reply = await p.ami.send(
                    {"Action": "BenchStart", "Phase": phase}, timeout=timeouts[phase]
                )
            except asyncio.TimeoutError:
                raise BenchError(f"the {phase} phase took over {timeouts[phase]:.0f} s") from None
            cpu = cpu_seconds() - cpu
            results.append(
                PhaseResult(
                    name=phase,
                    calls=int(reply["Calls"]),
                    sent=int(reply["Events"]),
                    handled=p.probe.events,
                    errors=p.probe.errors,
                    seconds=(p.probe.last_ns - p.probe.first_ns) / 1e9,
                    cpu_seconds=cpu,
                    peak_calls=p.probe.peak_calls,
                    live_calls_after=len(p.tracker.calls),
                    call_events=p.call_events.copy(),
                    latencies_ns=p.probe.latencies_ns,
                )
            )
    finally:
        await p.ami.close()
    return results


# --------------------------------------------------------------------- report
def check(result: PhaseResult, expected: Counter[str]) -> list[str]:
    problems = []
    if result.handled != result.sent or result.errors:
        problems.append(f"{result.handled} of {result.sent} events handled, {result.errors} raised")
    if result.call_events["CallEnded"] < result.calls:
        problems.append(f"{result.call_events['CallEnded']} CallEnded for {result.calls} calls")
    if result.live_calls_after:
        problems.append(f"{result.live_calls_after} calls still live in the tracker")
    for kind in sorted(expected | result.call_events):
        if result.call_events[kind] != expected[kind]:
            problems.append(
                f"{result.call_events[kind]} {kind}, replaying alone gives {expected[kind]}"
            )
    return problems


def report(result: PhaseResult, expected: Counter[str], window: int, rate: float) -> list[str]:
    n = result.handled
    if result.name == "throughput":
        print(
            f"throughput: {result.calls} calls, {result.sent} events, "
            f"{window} calls in flight, sent as fast as the socket takes them"
        )
        print(
            f"  events/s                  {n / result.seconds:12,.0f}   "
            f"({n} events in {result.seconds:.3f} s)"
        )
    else:
        print(f"latency: {result.calls} calls, {result.sent} events, paced at {rate:,.0f} events/s")
        lat = sorted(result.latencies_ns)
        if lat:
            figures = "  ".join(
                f"{label} {percentile(lat, p) / 1e3:,.0f}"
                for label, p in (("p50", 50), ("p95", 95), ("p99", 99))
            )
            print(
                f"  latency (us)              {figures}  max {lat[-1] / 1e3:,.0f}  "
                f"({len(lat)} events, stamp -> tracker done)"
            )
    print(
        f"  client CPU per event      {result.cpu_seconds / max(n, 1) * 1e6:12.1f} us   "
        f"({result.cpu_seconds:.3f} s user+sys)"
    )
    print(f"  peak live calls           {result.peak_calls:12}")
    print(f"  live calls at the end     {result.live_calls_after:12}")
    print(
        "  call events               "
        + ", ".join(f"{kind} {count}" for kind, count in sorted(result.call_events.items()))
    )
    return checked(
        check(result, expected),
        "every call ended, none left, call events as replaying each capture alone",
    )


# --------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = replay_parser(
        __doc__, 1000, "calls in the throughput phase", 2000, "events/s in the latency phase"
    )
    p.add_argument("--latency-calls", type=int, default=300, help="calls in the latency phase")
    a = p.parse_args(argv)
    if min(a.calls, a.window, a.latency_calls) < 1 or a.rate <= 0:
        p.error("--calls, --window, --latency-calls and --rate must be positive")
    paths = ami_recordings(a.captures, p)
    captures = [Capture.load(path) for path in paths]
    calls = {"throughput": a.calls, "latency": a.latency_calls}
    # What each phase must yield: each capture's call events, times its copies.
    reference = [c.call_event_kinds() for c in captures]
    expected = {}
    for phase, n in calls.items():
        expected[phase] = Counter()
        for kinds, copies in zip(reference, copies_per_capture(captures, n), strict=False):
            expected[phase].update({k: v * copies for k, v in kinds.items()})

    events_per_set = sum(len(c.messages) for c in captures)
    print(machine("panoramisk", load=False))
    print(
        f"input: {len(captures)} captures ({', '.join(c.path.stem for c in captures)}), "
        f"{events_per_set} events for {len(captures)} calls, FullyBooted left out"
    )

    # Bounded: generous limits (1,000 events/s at least, the rate when paced), then give up.
    per_call = events_per_set / len(captures)
    timeouts = {
        "throughput": 60 + a.calls * per_call / 1000,
        "latency": 60 + a.latency_calls * per_call / a.rate,
    }
    # The fake Asterisk gets its own interpreter (spawn): its CPU is not the client's.
    secret = secrets.token_urlsafe(24)
    config = ServerConfig(
        captures=paths,
        secret=secret,
        calls=calls,
        window=a.window,
        rate=a.rate,
        max_seconds=sum(timeouts.values()) + 30.0,
    )
    try:
        with fake_asterisk(serve, config) as pbx:
            results = asyncio.run(run_phases(pbx.port, pbx.secret, timeouts))
    except (BenchError, AmiError) as e:
        print(f"the replay did not complete: {e}", file=sys.stderr)
        return 1

    print()
    problems = []
    for result in results:
        problems += report(result, expected[result.name], a.window, a.rate)
    return verdict(problems)


if __name__ == "__main__":
    raise SystemExit(main())
