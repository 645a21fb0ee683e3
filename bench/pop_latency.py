#!/usr/bin/env python3
"""Pop latency: AMI event in -> script card out on the agent's WebSocket.

    python bench/pop_latency.py [--calls N] [--window W] [--agents A] [--rate EV_PER_S]
                                [--wrapup-delay S] [--seed N]

The whole service runs (``ivr.server.Service``: AMI client, call tracker, bus,
script pop with the repository's scripts/, outcome recorder on SQLite in a
temporary folder, web console; not the audio taps and speech, which need a real
Asterisk's audio). A fake Asterisk in its own process replays the
AMI traffic recorded from the sandbox PBX (tests/data/*.ami, as
bench/ami_replay.py does): each recording is copied into many distinct calls
(fresh Uniqueid/Linkedid, channel names, and the agent's extension 1002/1003/
1004 replaced by one of ``--agents`` agents, 2000, 2001, ...), ``--window``
calls in flight at once, events paced at ``--rate``; the next event is always
the next one of a call in flight picked at random (``--seed``), so calls drift
apart as on a real PBX. An agent's phone only gets a new call when it is free,
the one free longest first.

Every agent is a user of the service, signs in (POST /api/login) and holds one
WebSocket (/ws?token=...) from this process, like 200 open agent consoles. The
service and these clients share one asyncio loop (and CPU): the client side
only stamps, parses and counts what arrives.
When a call's card reaches the wrap-up phase, its agent saves a wrap-up
(POST /api/calls/{id}/wrapup) after ``--wrapup-delay`` seconds, as agents do,
so the pop's cards come and go as on a real site.

Latency of a pop: the fake Asterisk notes time.time() just before writing the
event that makes an agent's phone ring (DialBegin, or app_queue's AgentCalled,
whichever the tracker reports ringing on: found by replaying each recording
alone); the agent's client notes time.time() when the first card of that call
(phase "ringing") comes out of its WebSocket. Same machine, same clock. The
card itself carries timing.ami_received_at (the service got the AMI event),
timing.popped_at (the pop started building the card) and sent_at (the
console's writer task took it from the agent's outbox), which split the total.

Checks: every ringing event sent gives exactly one ringing card, on the
socket of the agent it rang; the call events are those of replaying each
recording alone times its copies; no call is left in the tracker, no card in
the pop, every wrap-up is saved. Exit status 1 if not.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import platform
import random
import re
import resource
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from importlib.metadata import version
from multiprocessing.connection import Connection
from pathlib import Path

import aiohttp

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for _p in (ROOT, BENCH):                # run from a checkout without installing
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from ami_replay import (EOL, BenchError, Capture, Replicator, cpu_model,  # noqa: E402
                        fake_asterisk, parse_action, percentile, wire)
from ivr.ami.message import AmiEvent                   # noqa: E402
from ivr.calls.events import AgentRinging, CallEvent   # noqa: E402
from ivr.calls.tracker import CallTracker              # noqa: E402
from ivr.config import (AmiSettings, Secret, Settings, SpeechSettings,  # noqa: E402
                        StoreSettings, User, WebSettings)
from ivr.server import Service                         # noqa: E402

USERNAME = "bench"
FIRST_AGENT = 2000
QUEUES = ("key-accounts", "sales", "support")          # what the sandbox PBX has


# --------------------------------------------------------------------- workload
@dataclass(frozen=True)
class Ring:
    """An event of a recording that makes an agent's phone ring (an AgentRinging)."""

    index: int          # in Capture.messages
    agent: str          # the recording's extension, e.g. '1003'
    call_id: str        # the recording's Linkedid


@dataclass(frozen=True)
class Recording:
    """A capture, and what replaying it alone into a tracker gives."""

    capture: Capture
    rings: tuple[Ring, ...]
    agents: tuple[str, ...]             # extensions rung, renamed per copy
    agent_tokens: re.Pattern | None     # any of them, whole
    kinds: Counter[str]                 # call events

    @classmethod
    def load(cls, path: Path) -> "Recording":
        capture = Capture.load(path)
        tracker = CallTracker()
        rings, kinds = [], Counter()
        for i, message in enumerate(capture.messages):
            for e in tracker.feed(AmiEvent.parse(message)):
                kinds[e.kind] += 1
                if isinstance(e, AgentRinging):
                    rings.append(Ring(i, e.agent, e.call.call_id))
        agents = tuple(sorted({r.agent for r in rings}))
        tokens = (re.compile(r"(?<![\w.])(?:%s)(?![\w.])" % "|".join(map(re.escape, agents)))
                  if agents else None)
        return cls(capture, tuple(rings), agents, tokens, kinds)


class AgentReplicator(Replicator):
    """ami_replay's per-copy renaming, plus the agents' extensions."""

    def copy_for(self, rec: Recording, agents: dict[str, str]) -> tuple[list[str], dict]:
        """(messages, {message index: (call id, agent login)} of the ringing events)."""
        cap = rec.capture
        new = {old: self._fresh_id(old, next(self._ids)) for old in cap.ids}
        for old in cap.channels:
            new[old] = f"{old[:-8]}{next(self._channels):08x}"
        messages = [cap.tokens.sub(lambda m: new[m.group()], m) for m in cap.messages]
        if rec.agent_tokens is not None:
            # After the ids: '1795442225.1003' must stay an id ('.' is not a boundary here).
            messages = [rec.agent_tokens.sub(lambda m: agents[m.group()], m) for m in messages]
        rings = {r.index: (new.get(r.call_id, r.call_id), agents[r.agent]) for r in rec.rings}
        return messages, rings


@dataclass
class _Live:
    messages: list[str]
    rings: dict[int, tuple[str, str]]
    agents: list[str]
    pos: int = 0


def build_stream(recordings: list[Recording], calls: int, window: int, logins: list[str],
                 seed: int) -> list[tuple[bytes, tuple[str, str] | None]]:
    """The events of ``calls`` calls, ``window`` of them in flight at once.

    Call k replays recording k mod len(recordings). Each next event is the next
    one of a call in flight chosen at random (seeded), so calls drift apart as on
    a real PBX; round robin (ami_replay.interleave) keeps copies in lockstep and
    makes their phones ring in bursts. A finished call makes room for the next.
    A call that rings an agent takes the agent free for the longest time, and
    frees it after its last event.
    """
    free = deque(logins)
    replicator = AgentReplicator()

    def start(k: int) -> _Live:
        rec = recordings[k % len(recordings)]
        if len(free) < len(rec.agents):
            raise ValueError(f"no free agent for call {k}: use more --agents than --window")
        agents = {ext: free.popleft() for ext in rec.agents}
        messages, rings = replicator.copy_for(rec, agents)
        return _Live(messages, rings, list(agents.values()))

    rng = random.Random(seed)
    active = [start(k) for k in range(min(window, calls))]
    following = len(active)
    out: list[tuple[bytes, tuple[str, str] | None]] = []
    while active:
        i = rng.randrange(len(active))
        call = active[i]
        out.append((call.messages[call.pos].encode(), call.rings.get(call.pos)))
        call.pos += 1
        if call.pos == len(call.messages):
            free.extend(call.agents)
            if following < calls:
                active[i] = start(following)
                following += 1
            else:
                active[i] = active[-1]
                active.pop()
    return out


# --------------------------------------------------------------------- fake Asterisk
@dataclass(frozen=True)
class ServerConfig:
    captures: list[Path]
    secret: str
    calls: int
    window: int
    logins: list[str]
    rate: float
    seed: int
    max_seconds: float


class FakeAsterisk:
    """Enough AMI for the service (login, resync, Ping, QueueSummary) plus BenchStart.

    ``Action: BenchStart`` streams the calls, paced; its response comes after
    the last event. Then the ringing events' send times go to the parent
    through the pipe: a list of (call id, agent login, time.time()).
    """

    def __init__(self, config: ServerConfig, results: Connection):
        self.config = config
        self.results = results
        recordings = [Recording.load(p) for p in config.captures]
        self.stream = build_stream(recordings, config.calls, config.window, config.logins,
                                   config.seed)
        self.queue_summaries = 0
        self.logged_in: list[asyncio.StreamWriter] = []
        self._finished = asyncio.Event()

    async def run(self) -> None:
        server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.results.send(server.sockets[0].getsockname()[1])      # the port the OS chose
        async with server:
            try:
                await asyncio.wait_for(self._finished.wait(), self.config.max_seconds)
            except asyncio.TimeoutError:
                pass

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(f"Asterisk Call Manager/9.0.0{EOL}".encode())
        tasks: list[asyncio.Task] = []
        try:
            while True:
                try:
                    action = parse_action(await reader.readuntil((EOL + EOL).encode()))
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                name, aid = action.get("action", "").lower(), action.get("actionid", "")
                if name == "login":
                    if (action.get("username"), action.get("secret")) != (USERNAME,
                                                                           self.config.secret):
                        writer.write(wire(("Response", "Error"), ("ActionID", aid),
                                          ("Message", "Authentication failed")))
                        continue
                    writer.write(wire(("Response", "Success"), ("ActionID", aid),
                                      ("Message", "Authentication accepted")))
                    writer.write(wire(("Event", "FullyBooted"), ("Privilege", "system,all"),
                                      ("Uptime", 0), ("LastReload", 0),
                                      ("Status", "Fully Booted")))
                    self.logged_in.append(writer)
                elif name == "coreshowchannels":
                    writer.write(wire(("Response", "Success"), ("ActionID", aid),
                                      ("EventList", "start"),
                                      ("Message", "Channels will follow")))
                    writer.write(wire(("Event", "CoreShowChannelsComplete"), ("ActionID", aid),
                                      ("EventList", "Complete"), ("ListItems", 0)))
                elif name == "queuesummary":             # the console's departments
                    self.queue_summaries += 1
                    writer.write(wire(("Response", "Success"), ("ActionID", aid),
                                      ("EventList", "start"),
                                      ("Message", "Queue summary will follow")))
                    for queue in QUEUES:
                        writer.write(wire(("Event", "QueueSummary"), ("ActionID", aid),
                                          ("Queue", queue), ("LoggedIn", 1), ("Available", 1),
                                          ("Callers", 0), ("HoldTime", 0), ("TalkTime", 0),
                                          ("LongestHoldTime", 0)))
                    writer.write(wire(("Event", "QueueSummaryComplete"), ("ActionID", aid),
                                      ("EventList", "Complete"), ("ListItems", len(QUEUES))))
                elif name == "ping":
                    writer.write(wire(("Response", "Success"), ("ActionID", aid),
                                      ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}")))
                elif name == "benchstart":
                    # "To: others": the events go to the other session (a service in
                    # its own process, bench/scale_out.py); the reply to this one.
                    target = writer if action.get("to", "").lower() != "others" else next(
                        (w for w in self.logged_in if w is not writer), writer)
                    tasks.append(asyncio.create_task(self._stream(target, aid, writer)))
                else:
                    writer.write(wire(("Response", "Error"), ("ActionID", aid),
                                      ("Message", "Invalid/unknown command")))
        finally:
            for task in tasks:
                task.cancel()
            writer.close()
            self._finished.set()

    async def _stream(self, writer: asyncio.StreamWriter, action_id: str,
                      reply_to: asyncio.StreamWriter | None = None) -> None:
        rings: list[tuple[str, str, float]] = []
        try:
            # Event i is due at start + i/rate; asyncio sleeps in ~1 ms ticks, so
            # events due within one tick go out together, like a burst from Asterisk.
            start, interval = time.monotonic(), 1.0 / self.config.rate
            for i, (message, ring) in enumerate(self.stream):
                delay = start + i * interval - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if ring is not None:
                    rings.append((ring[0], ring[1], time.time()))
                writer.write(message + b"\r\n")
                await writer.drain()
            seconds = time.monotonic() - start
            reply_to = reply_to or writer
            reply_to.write(wire(("Response", "Success"), ("ActionID", action_id),
                                ("Events", len(self.stream)), ("Calls", self.config.calls),
                                ("Seconds", f"{seconds:.3f}"),
                                ("QueueSummaries", self.queue_summaries)))
            await reply_to.drain()
        except ConnectionError:
            return
        self.results.send(rings)


def serve(config: ServerConfig, results: Connection) -> None:
    """Entry point of the fake Asterisk process."""
    asyncio.run(FakeAsterisk(config, results).run())


# --------------------------------------------------------------------- agents' consoles
@dataclass
class Pop:
    arrived: float                      # time.time() when the client had the message
    sent_at: float
    ami_received_at: float
    popped_at: float
    login: str


@dataclass
class Consoles:
    """The agents' WebSockets, and what came out of them."""

    base: str
    session: aiohttp.ClientSession
    wrapup_delay: float
    tokens: dict[str, str] = field(default_factory=dict)
    sockets: dict[str, aiohttp.ClientWebSocketResponse] = field(default_factory=dict)
    hellos: dict[str, asyncio.Event] = field(default_factory=dict)
    pops: dict[tuple[str, str], Pop] = field(default_factory=dict)    # (call id, login)
    duplicate_pops: int = 0
    unpopped: int = 0                   # first card of a call on a socket but not 'ringing'
    messages: Counter[str] = field(default_factory=Counter)
    message_bytes: Counter[str] = field(default_factory=Counter)
    wrapups_saved: int = 0
    wrapups_pending: int = 0
    wrapup_errors: list[str] = field(default_factory=list)
    closed_early: list[str] = field(default_factory=list)
    tasks: set[asyncio.Task] = field(default_factory=set)
    _seen: set[tuple[str, str]] = field(default_factory=set)
    _wrapping: set[tuple[str, str]] = field(default_factory=set)
    _closing: bool = False

    async def sign_in(self, user: User) -> None:
        async with self.session.post(f"{self.base}/api/login", headers={"Origin": self.base},
                                     json={"login": user.login,
                                           "secret": str(user.secret)}) as r:
            if r.status != 200:
                raise RuntimeError(f"sign-in of {user.login}: HTTP {r.status} {await r.text()}")
            # The session cookie (the console's only credential), sent by hand:
            # one shared session serves every simulated console.
            self.tokens[user.login] = r.cookies["ivr_session"].value

    def _headers(self, login: str) -> dict[str, str]:
        return {"Cookie": f"ivr_session={self.tokens[login]}", "Origin": self.base}

    async def connect(self, login: str) -> None:
        ws = await self.session.ws_connect(f"{self.base}/ws",
                                           headers=self._headers(login),
                                           max_msg_size=0)
        self.sockets[login] = ws
        self.hellos[login] = asyncio.Event()
        self._spawn(self._read(login, ws))

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _read(self, login: str, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            await self._read_messages(login, ws)
        except Exception as exc:            # a message this client did not expect: say so
            self.closed_early.append(f"{login}: reading failed: {exc!r}")

    async def _read_messages(self, login: str, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            msg = await ws.receive()
            arrived = time.time()                 # before anything else the client does
            if msg.type != aiohttp.WSMsgType.TEXT:
                if not self._closing:
                    self.closed_early.append(f"{login}: {msg.type.name} {msg.data!r}")
                return
            data = json.loads(msg.data)
            kind = data.get("type")
            self.messages[kind] += 1
            self.message_bytes[kind] += len(msg.data)
            if kind == "hello":
                self.hellos[login].set()
            elif kind == "card" and data.get("card") is not None:
                card = data["card"]
                key = (data["call_id"], login)
                if key not in self._seen:
                    self._seen.add(key)
                    if card["phase"] != "ringing":
                        self.unpopped += 1
                    elif key in self.pops:
                        self.duplicate_pops += 1
                    else:
                        t = card["timing"]
                        self.pops[key] = Pop(arrived, data["sent_at"], t["ami_received_at"],
                                             t["popped_at"], login)
                if card["phase"] == "wrapup" and key not in self._wrapping:
                    self._wrapping.add(key)
                    self.wrapups_pending += 1
                    self._spawn(self._wrap_up(login, card))

    async def _wrap_up(self, login: str, card: dict) -> None:
        try:
            await self._save_wrapup(login, card)
        finally:
            self.wrapups_pending -= 1

    async def _save_wrapup(self, login: str, card: dict) -> None:
        """What the agent does after the call: choose a disposition, save."""
        await asyncio.sleep(self.wrapup_delay)
        choices = (card.get("script") or {}).get("dispositions") or [{"id": "resolved"}]
        chosen = next((d for d in choices
                       if not d.get("needs_note") and not d.get("needs_callback_time")),
                      choices[0])
        body = {"disposition": chosen["id"], "notes": "bench" if chosen.get("needs_note") else ""}
        if chosen.get("needs_callback_time"):
            body["callback_at"] = time.time() + 3600
        try:
            async with self.session.post(
                    f"{self.base}/api/calls/{card['call_id']}/wrapup", json=body,
                    headers=self._headers(login)) as r:
                if r.status == 200:
                    self.wrapups_saved += 1
                else:
                    self.wrapup_errors.append(f"{login} {card['call_id']}: HTTP {r.status} "
                                              f"{(await r.text())[:200]}")
        except aiohttp.ClientError as exc:
            self.wrapup_errors.append(f"{login} {card['call_id']}: {exc!r}")

    async def close(self) -> None:
        self._closing = True
        await asyncio.gather(*(ws.close() for ws in self.sockets.values()),
                             return_exceptions=True)
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


# --------------------------------------------------------------------- the run
@dataclass
class Observer:
    """A bus subscriber (subscribed last): call events, calls in flight."""

    service: Service
    kinds: Counter[str] = field(default_factory=Counter)
    peak_calls: int = 0
    calls_at_ring: list[int] = field(default_factory=list)

    def __call__(self, event: CallEvent) -> None:
        self.kinds[event.kind] += 1
        live = len(self.service.tracker.calls)
        self.peak_calls = max(self.peak_calls, live)
        if isinstance(event, AgentRinging):
            self.calls_at_ring.append(live)


class GcPauses:
    """The cyclic garbage collector's pauses in this process (wall time), per generation."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._start = 0.0
        self.on = False

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        elif self.on:
            self.pauses[info["generation"]].append(time.perf_counter() - self._start)


@dataclass
class RunResult:
    web_port: int
    connect_seconds: float
    reply: dict
    rings: list[tuple[str, str, float]]
    consoles: Consoles
    observer: Observer
    cpu_seconds: float
    wall_seconds: float
    gc: GcPauses
    live_calls_after: int
    cards_after: int
    pending_writes_at_end: int
    drain_seconds: float
    settle_seconds: float


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def agent_users(n: int) -> tuple[User, ...]:
    return tuple(User(login=str(FIRST_AGENT + i), name=f"Agent {FIRST_AGENT + i}",
                      secret=Secret(secrets.token_urlsafe(12)), operator_id=str(100 + i),
                      position="customer adviser") for i in range(n))


async def run(a: argparse.Namespace, ami_port: int, ami_secret: str, users: tuple[User, ...],
              results: Connection, stream_timeout: float, store_dir: str) -> RunResult:
    settings = Settings(
        ami=AmiSettings(host="127.0.0.1", port=ami_port, username=USERNAME,
                        secret=Secret(ami_secret), reconnect_min=0.2, reconnect_max=2.0),
        # port 0: the OS picks a free port; every console comes from 127.0.0.1
        web=WebSettings(host="127.0.0.1", port=0, max_connections_per_address=100000),
        store=StoreSettings(url=f"sqlite:///{Path(store_dir) / 'ivr.db'}"),
        # No audio taps and speech: the fake Asterisk has no AudioSocket to give them.
        speech=SpeechSettings(enabled=False),
        scripts=str(ROOT / "scripts"), customers=str(ROOT / "scripts" / "customers.csv"),
        users=users, log_level="WARNING")
    service = Service(settings)
    observer = Observer(service)
    service.bus.subscribe(observer)
    consoles = None
    session = None
    try:
        await service.start()
        try:
            await service.ami.wait_connected(10)
        except asyncio.TimeoutError:
            raise BenchError("the service did not log in to the fake Asterisk within 10 s") \
                from None
        web_port = service._runner.addresses[0][1]       # port 0 in the settings: ask the site
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                        cookie_jar=aiohttp.DummyCookieJar())
        consoles = Consoles(f"http://127.0.0.1:{web_port}", session, a.wrapup_delay)
        t0 = time.monotonic()
        await asyncio.gather(*(consoles.sign_in(u) for u in users))
        await asyncio.gather(*(consoles.connect(u.login) for u in users))
        try:
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in consoles.hellos.values())),
                                   30)
        except asyncio.TimeoutError:
            raise BenchError("not every console got its hello within 30 s") from None
        connect_seconds = time.monotonic() - t0

        gc_pauses = GcPauses()
        gc.callbacks.append(gc_pauses)
        gc_pauses.on = True
        cpu, wall = cpu_seconds(), time.monotonic()
        # The reply comes after the last event: awaiting it awaits the whole stream.
        try:
            reply = await service.ami.send({"Action": "BenchStart"}, timeout=stream_timeout)
        except asyncio.TimeoutError:
            raise BenchError(f"the stream took over {stream_timeout:.0f} s") from None
        if not await asyncio.to_thread(results.poll, 30):
            raise BenchError("the fake Asterisk sent no ringing times")
        rings = await asyncio.to_thread(results.recv)
        # Let the last pops arrive and the last wrap-ups be saved (bounded).
        t_settle = time.monotonic()
        deadline = t_settle + a.wrapup_delay + 15
        while time.monotonic() < deadline and (
                len(consoles.pops) < len(rings) or service.pop.cards or service.tracker.calls
                or consoles.wrapups_pending):
            await asyncio.sleep(0.02)
        settle_seconds = time.monotonic() - t_settle
        cpu, wall = cpu_seconds() - cpu, time.monotonic() - wall
        gc_pauses.on = False
        gc.callbacks.remove(gc_pauses)
        pending = service.recorder.pending
        t_drain = time.monotonic()
        try:
            await asyncio.wait_for(service.recorder.drain(), 30)
        except asyncio.TimeoutError:
            pass
        drain_seconds = time.monotonic() - t_drain
        return RunResult(web_port=web_port, connect_seconds=connect_seconds, reply=dict(reply),
                         rings=rings, consoles=consoles, observer=observer, cpu_seconds=cpu,
                         wall_seconds=wall, gc=gc_pauses,
                         live_calls_after=len(service.tracker.calls),
                         cards_after=len(service.pop.cards), pending_writes_at_end=pending,
                         drain_seconds=drain_seconds, settle_seconds=settle_seconds)
    finally:
        # Whatever happened, stop the service: its SQLite thread would keep the process alive.
        try:
            if consoles is not None:
                await asyncio.wait_for(consoles.close(), 15)
            if session is not None:
                await session.close()
        finally:
            await asyncio.wait_for(service.stop(), 30)


# --------------------------------------------------------------------- report
def row(label: str, values_s: list[float]) -> str:
    v = sorted(values_s)
    ms = [percentile(v, p) * 1e3 for p in (50, 95, 99)] + [v[-1] * 1e3]
    return f"  {label:<38}" + "".join(f"{x:9.2f}" for x in ms)


def check(r: RunResult, expected: Counter[str], calls: int) -> list[str]:
    problems = []
    c = r.consoles
    sent = {(call_id, login) for call_id, login, _ in r.rings}
    if len(sent) != len(r.rings):
        problems.append(f"{len(r.rings) - len(sent)} ringing events repeat a (call, agent)")
    missing = sent - c.pops.keys()
    extra = c.pops.keys() - sent
    if missing:
        problems.append(f"{len(missing)} ringing events gave no ringing card on the agent's "
                        f"socket, e.g. {sorted(missing)[:3]}")
    if extra:
        problems.append(f"{len(extra)} ringing cards without a ringing event for that agent, "
                        f"e.g. {sorted(extra)[:3]}")
    if c.duplicate_pops or c.unpopped:
        problems.append(f"{c.duplicate_pops} repeated pops, {c.unpopped} calls whose first "
                        "card was not 'ringing'")
    if r.observer.kinds["CallEnded"] != calls:
        problems.append(f"{r.observer.kinds['CallEnded']} CallEnded for {calls} calls")
    for kind in sorted(expected | r.observer.kinds):
        if r.observer.kinds[kind] != expected[kind]:
            problems.append(f"{r.observer.kinds[kind]} {kind}, replaying alone gives "
                            f"{expected[kind]}")
    if r.live_calls_after:
        problems.append(f"{r.live_calls_after} calls still live in the tracker")
    if r.cards_after:
        problems.append(f"{r.cards_after} cards still in the pop (wrap-ups not saved)")
    if c.wrapups_saved != len(sent):
        problems.append(f"{c.wrapups_saved} wrap-ups saved for {len(sent)} calls popped")
    problems += [f"wrap-up failed: {e}" for e in c.wrapup_errors[:5]]
    problems += [f"a console closed early: {e}" for e in c.closed_early[:5]]
    if int(r.reply.get("Events", -1)) < 0:
        problems.append(f"odd BenchStart reply {r.reply}")
    return problems


def report(a: argparse.Namespace, r: RunResult, expected: Counter[str]) -> list[str]:
    c = r.consoles
    sent_at = {(call_id, login): t for call_id, login, t in r.rings}
    pops = [(sent_at[k], p) for k, p in c.pops.items() if k in sent_at]
    events, seconds = int(r.reply["Events"]), float(r.reply["Seconds"])
    print(f"service: ivr.server.Service, web console on 127.0.0.1:{r.web_port}, SQLite store in "
          f"a temporary folder, {len(list((ROOT / 'scripts').glob('*.yaml')))} scripts "
          f"from scripts/, speech and audio taps off")
    print(f"consoles: {a.agents} agents signed in (POST /api/login), one WebSocket each, "
          f"all connected in {r.connect_seconds:.2f} s "
          f"({r.reply.get('QueueSummaries', '?')} AMI QueueSummary for their hellos)")
    print(f"load: {a.calls} calls, {events} AMI events paced at {a.rate:,.0f} events/s "
          f"(sent in {seconds:.1f} s), {min(a.window, a.calls)} calls in flight, "
          f"wrap-up {a.wrapup_delay:g} s after each call")
    print(f"  calls in the tracker      peak {r.observer.peak_calls}, at each ring: median "
          f"{statistics.median(r.observer.calls_at_ring or [0]):.0f}, "
          f"min {min(r.observer.calls_at_ring or [0])}")
    print("  call events               " + ", ".join(
        f"{kind} {n}" for kind, n in sorted(r.observer.kinds.items())))
    print("  WebSocket messages in     " + ", ".join(
        f"{kind} {n} (mean {c.message_bytes[kind] / n / 1e3:.1f} kB)"
        for kind, n in sorted(c.messages.items())))
    print(f"  CPU of this process       {r.cpu_seconds:.2f} s user+sys in {r.wall_seconds:.1f} s "
          f"({r.cpu_seconds / r.wall_seconds:.0%} of one CPU; the service and the "
          f"{a.agents} clients; stream and settling)")
    gc_line = ", ".join(f"gen{g} {len(v)}" + (f" (max {max(v) * 1e3:.1f} ms)" if v else "")
                        for g, v in r.gc.pauses.items())
    print(f"  GC pauses in this process {gc_line}")
    print(f"  settling                  last pops and wrap-ups {r.settle_seconds:.2f} s after "
          f"the last event")
    print(f"  wrap-ups saved            {c.wrapups_saved}; outcome writes then waiting "
          f"{r.pending_writes_at_end}, all written {r.drain_seconds:.2f} s later")
    print()
    print(f"pop latency: {len(pops)} pops (first card of a call, phase 'ringing', "
          f"one per ringing event sent)")
    if pops:
        print(f"  {'(ms)':<38}" + "".join(f"{h:>9}" for h in ("p50", "p95", "p99", "max")))
        print(row("AMI event sent -> WebSocket message in", [p.arrived - t for t, p in pops]))
        print(row("server: ami_received_at -> sent_at", [p.sent_at - p.ami_received_at
                                                          for _, p in pops]))
        print("  parts:")
        print(row("  AMI: sent -> ami_received_at", [p.ami_received_at - t for t, p in pops]))
        print(row("  tracker, bus: -> popped_at", [p.popped_at - p.ami_received_at
                                                   for _, p in pops]))
        print(row("  pop, bus, outbox: -> sent_at", [p.sent_at - p.popped_at for _, p in pops]))
        print(row("  WebSocket: sent_at -> client", [p.arrived - p.sent_at for _, p in pops]))
    problems = check(r, expected, a.calls)
    for problem in problems:
        print(f"  WRONG: {problem}")
    print(f"  check                     {'FAILED' if problems else 'ok'} (one ringing card per "
          "ringing event, on that agent's socket; call events as replaying each capture alone; "
          "no call, card or wrap-up left)")
    return problems


# --------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    p.add_argument("--calls", type=int, default=800, help="calls replayed")
    p.add_argument("--window", type=int, default=200, help="calls in flight at once")
    p.add_argument("--agents", type=int, default=200,
                   help="agents, each signed in with one WebSocket (at least --window)")
    p.add_argument("--rate", type=float, default=1000, help="AMI events per second")
    p.add_argument("--wrapup-delay", type=float, default=1.0,
                   help="seconds from a card's wrap-up phase to the agent saving the wrap-up")
    p.add_argument("--seed", type=int, default=1, help="seed of the order of the calls' events")
    p.add_argument("--captures", type=Path, default=ROOT / "tests" / "data",
                   help="folder of *.ami recordings")
    a = p.parse_args(argv)
    if min(a.calls, a.window, a.agents) < 1 or a.rate <= 0 or a.wrapup_delay < 0:
        p.error("--calls, --window, --agents and --rate must be positive")
    if a.agents < a.window:
        p.error("--agents must be at least --window (a call rings at most one agent)")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    paths = sorted(a.captures.glob("*.ami"))
    if not paths:
        p.error(f"no *.ami recordings in {a.captures}")
    recordings = [Recording.load(path) for path in paths]
    expected: Counter[str] = Counter()
    for i, rec in enumerate(recordings):
        copies = len(range(i, a.calls, len(recordings)))
        expected.update({k: v * copies for k, v in rec.kinds.items()})
    events_per_set = sum(len(r.capture.messages) for r in recordings)
    print(f"Python {platform.python_version()} ({platform.python_implementation()}), "
          f"aiohttp {version('aiohttp')}, panoramisk {version('panoramisk')}, {sys.platform}")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical CPUs), load average {load} before the run")
    rung = sorted({ext for r in recordings for ext in r.agents})
    names = ", ".join(r.capture.path.stem for r in recordings)
    print(f"input: {len(recordings)} captures ({names}), {events_per_set} events for "
          f"{len(recordings)} calls; extensions {', '.join(rung)} become agents "
          f"{FIRST_AGENT}-{FIRST_AGENT + a.agents - 1}")

    users = agent_users(a.agents)
    stream_timeout = 60 + a.calls * events_per_set / len(recordings) / a.rate
    ami_secret = secrets.token_urlsafe(24)
    config = ServerConfig(captures=paths, secret=ami_secret, calls=a.calls, window=a.window,
                          logins=[u.login for u in users], rate=a.rate, seed=a.seed,
                          max_seconds=stream_timeout + 120)
    try:
        with fake_asterisk(serve, config) as (port, results), \
                tempfile.TemporaryDirectory(prefix="ivr-bench-") as store_dir:
            result = asyncio.run(run(a, port, ami_secret, users, results, stream_timeout,
                                     store_dir))
    except BenchError as e:
        print(f"the benchmark did not complete: {e}", file=sys.stderr)
        return 1
    print()
    problems = report(a, result, expected)
    print()
    print("FAILED" if problems else "OK")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
