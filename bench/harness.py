"""What the benchmarks share: the fake Asterisk, AMI recordings copied into many
calls, the simulated agents' consoles, and the figures (CPU, GC pauses, loop
lag, percentiles, the machine).

    from harness import (BenchError, Capture, Consoles, FakeAsterisk, GcPauses, Replicator,
                         fake_asterisk, machine, percentile, row)

A benchmark subclasses ``FakeAsterisk`` for its own ``BenchStart`` (and any AMI
action it needs beyond login, the resync, Ping and QueueSummary), and
``Consoles`` for what it notes of the messages its agents' pages receive. It
measures through what the service exposes: the timestamps messages and
utterances carry (``sent_at``, a card's ``timing``, ``Utterance.at`` and
``closed_at``), bus subscribers and callbacks it is given, ``/metrics``; never
by replacing the service's methods.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import multiprocessing
import os
import platform
import re
import resource
import secrets
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from importlib.metadata import version
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Callable, Iterator

import aiohttp

ROOT = Path(__file__).resolve().parents[1]  # the checkout
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # benchmarks run from a checkout without installing

from ivr.ami.capture import read as read_capture
from ivr.calls.tracker import CallTracker
from ivr.config import AmiSettings, Settings, StoreSettings, WebSettings
from ivr.secret import Secret
from ivr.users import User

EOL = "\r\n"
USERNAME = "bench"  # the fake Asterisk's AMI user
QUEUES = ("key-accounts", "sales", "support")  # what the sandbox PBX has


class BenchError(Exception):
    """The benchmark could not complete (it says why); the figures would be wrong."""


# --------------------------------------------------------------------- AMI recordings
@dataclass(frozen=True)
class Capture:
    """One recorded call: its events as AMI wire text, and the names to rename per copy."""

    path: Path
    messages: tuple[str, ...]  # 'Key: Value\r\n' lines of each event, without the blank line
    ids: frozenset[str]  # Uniqueid, Linkedid, DestUniqueid, BridgeUniqueid ... values
    channels: frozenset[str]  # channel names without the ';1'/';2' of Local channels
    tokens: re.Pattern  # matches any of the above, whole, anywhere in a message

    @classmethod
    def load(cls, path: Path) -> "Capture":
        messages, ids, channels = [], set(), set()
        text = path.read_text(encoding="utf-8").replace("\r\n", "\n")
        for block in text.split("\n\n"):
            # Drop the recorder's 'Received: <unix time>' line; keep the rest verbatim.
            lines = [line for line in block.splitlines() if not line.startswith("Received: ")]
            if not lines or not lines[0].startswith("Event: ") or lines[0] == "Event: FullyBooted":
                continue
            for line in lines:
                key, _, value = line.partition(": ")
                if not value:
                    continue
                if key.endswith(("Uniqueid", "Linkedid")):
                    ids.add(value)
                elif key.endswith("Channel") and (
                    m := re.fullmatch(r"(.+-[0-9a-f]{8})(;\d)?", value)
                ):
                    channels.add(m.group(1))
            messages.append(EOL.join(lines) + EOL)
        # The wire text must carry exactly the events the unit tests read from the file.
        expected = sum(ev.name != "FullyBooted" for ev in read_capture(path))
        if len(messages) != expected:
            raise ValueError(f"{path}: {len(messages)} event blocks but {expected} events")
        names = sorted(ids | channels, key=len, reverse=True)
        tokens = re.compile(r"(?<![\w.])(?:%s)(?![\w.])" % "|".join(map(re.escape, names)))
        return cls(path, tuple(messages), frozenset(ids), frozenset(channels), tokens)

    def call_event_kinds(self) -> Counter[str]:
        """The call events this capture yields when replayed alone (the reference)."""
        tracker = CallTracker()
        return Counter(e.kind for ev in read_capture(self.path) for e in tracker.feed(ev))


def whole_words(names: Any) -> re.Pattern:
    """A pattern matching any of ``names`` whole ('1003' not inside '1795442225.1003')."""
    return re.compile(r"(?<![\w.])(?:%s)(?![\w.])" % "|".join(map(re.escape, names)))


class Replicator:
    """Makes each copy of a capture a distinct call, the way Asterisk would name it.

    '1795442225.0' becomes '1795442225.<n>', 'out-b12d1153d76645459021' becomes
    'out-<n as 20 hex digits>', 'PJSIP/trunk-00000000' 'PJSIP/trunk-<n as 8 hex
    digits>', with n from counters shared by all copies, so no name repeats.
    """

    def __init__(self) -> None:
        self._ids = itertools.count(1_000)
        self._channels = itertools.count(0x1000)

    def names(self, capture: Capture) -> dict[str, str]:
        """A fresh name for every id and channel of the capture (old -> new)."""
        new = {old: self._fresh_id(old, next(self._ids)) for old in capture.ids}
        for old in capture.channels:
            new[old] = f"{old[:-8]}{next(self._channels):08x}"
        return new

    def copy(
        self, capture: Capture, also: dict[str, str] | None = None
    ) -> tuple[list[str], dict[str, str]]:
        """The capture's messages with fresh names, then ``also``'s words replaced
        (extensions, numbers: after the ids, so '1795442225.1003' stays an id);
        and the names given."""
        new = self.names(capture)
        messages = [capture.tokens.sub(lambda m: new[m.group()], m) for m in capture.messages]
        if also:
            words = whole_words(also)
            messages = [words.sub(lambda m: also[m.group()], m) for m in messages]
        return messages, new

    @staticmethod
    def _fresh_id(old: str, n: int) -> str:
        if re.fullmatch(r"\d+\.\d+", old):
            return f"{old.partition('.')[0]}.{n}"
        head, sep, tail = old.rpartition("-")
        return f"{head}-{n:0{len(tail)}x}" if sep else f"{old}-{n}"


# --------------------------------------------------------------------- the fake Asterisk
def wire(*headers: tuple[str, object]) -> bytes:
    return ("".join(f"{k}: {v}{EOL}" for k, v in headers) + EOL).encode()


def list_start(action_id: str, message: str) -> bytes:
    """The Response that opens an AMI event list (QueueStatus, CoreShowChannels ...)."""
    return wire(
        ("Response", "Success"),
        ("ActionID", action_id),
        ("EventList", "start"),
        ("Message", message),
    )


def parse_action(raw: bytes) -> dict[str, str]:
    action = {}
    for line in raw.decode("utf-8", "replace").split(EOL):
        key, sep, value = line.partition(": ")
        if sep:
            action[key.lower()] = value
    return action


class FakeAsterisk:
    """Just enough of Asterisk's AMI for panoramisk and the service: login (as
    ``USERNAME`` with ``secret``), the resync after it (CoreShowChannels, none),
    Ping, QueueSummary (the console's departments). Every other action goes to
    ``action(writer, name, action)``, the benchmark's (e.g. BenchStart); an
    unknown one gets Asterisk's error. Runs in its own process (see
    ``fake_asterisk``) and sends the port it listens on down ``pipe``."""

    def __init__(self, secret: str, max_seconds: float, pipe: Connection):
        self.secret = secret
        self.max_seconds = max_seconds
        self.pipe = pipe
        self.queue_summaries = 0
        self.finished = asyncio.Event()
        self.tasks: set[asyncio.Task] = set()
        self.logged_in: list[asyncio.StreamWriter] = []  # AMI sessions, in login order

    async def run(self) -> None:
        server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.pipe.send(server.sockets[0].getsockname()[1])  # the port the OS chose
        async with server:
            try:
                await asyncio.wait_for(self.finished.wait(), self.max_seconds)
            except asyncio.TimeoutError:
                pass

    def events_to(
        self, writer: asyncio.StreamWriter, action: dict[str, str]
    ) -> asyncio.StreamWriter:
        """The session a benchmark's events go to: the asking one, or with "To:
        others" another logged-in session (a service in its own process,
        bench/scale_out.py), while the reply still goes to the asking one."""
        if action.get("to", "").lower() != "others":
            return writer
        return next((w for w in self.logged_in if w is not writer), writer)

    def spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(f"Asterisk Call Manager/9.0.0{EOL}".encode())
        try:
            while True:
                try:
                    action = parse_action(await reader.readuntil((EOL + EOL).encode()))
                except (asyncio.IncompleteReadError, ConnectionError):
                    break  # the client went away: done
                self._answer(writer, action)
        finally:
            for task in list(self.tasks):
                task.cancel()
            self.closed()
            writer.close()
            self.finished.set()

    def _answer(self, writer: asyncio.StreamWriter, action: dict[str, str]) -> None:
        name, aid = action.get("action", "").lower(), action.get("actionid", "")
        if name == "login":
            if (action.get("username"), action.get("secret")) != (USERNAME, self.secret):
                writer.write(
                    wire(
                        ("Response", "Error"),
                        ("ActionID", aid),
                        ("Message", "Authentication failed"),
                    )
                )
                return
            writer.write(
                wire(
                    ("Response", "Success"),
                    ("ActionID", aid),
                    ("Message", "Authentication accepted"),
                )
            )
            writer.write(
                wire(
                    ("Event", "FullyBooted"),
                    ("Privilege", "system,all"),
                    ("Uptime", 0),
                    ("LastReload", 0),
                    ("Status", "Fully Booted"),
                )
            )
            self.logged_in.append(writer)
        elif name == "coreshowchannels":  # the resync after each login
            writer.write(
                wire(
                    ("Response", "Success"),
                    ("ActionID", aid),
                    ("EventList", "start"),
                    ("Message", "Channels will follow"),
                )
            )
            writer.write(
                wire(
                    ("Event", "CoreShowChannelsComplete"),
                    ("ActionID", aid),
                    ("EventList", "Complete"),
                    ("ListItems", 0),
                )
            )
        elif name == "queuesummary":
            self.queue_summaries += 1
            writer.write(
                wire(
                    ("Response", "Success"),
                    ("ActionID", aid),
                    ("EventList", "start"),
                    ("Message", "Queue summary will follow"),
                )
            )
            for queue in QUEUES:
                writer.write(
                    wire(
                        ("Event", "QueueSummary"),
                        ("ActionID", aid),
                        ("Queue", queue),
                        ("LoggedIn", 1),
                        ("Available", 1),
                        ("Callers", 0),
                        ("HoldTime", 0),
                        ("TalkTime", 0),
                        ("LongestHoldTime", 0),
                    )
                )
            writer.write(
                wire(
                    ("Event", "QueueSummaryComplete"),
                    ("ActionID", aid),
                    ("EventList", "Complete"),
                    ("ListItems", len(QUEUES)),
                )
            )
        elif name == "ping":
            writer.write(
                wire(
                    ("Response", "Success"),
                    ("ActionID", aid),
                    ("Ping", "Pong"),
                    ("Timestamp", f"{time.time():.6f}"),
                )
            )
        elif not self.action(writer, name, action):
            writer.write(
                wire(
                    ("Response", "Error"), ("ActionID", aid), ("Message", "Invalid/unknown command")
                )
            )

    def action(self, writer: asyncio.StreamWriter, name: str, action: dict[str, str]) -> bool:
        """The benchmark's own actions; False: not one of them."""
        return False

    def closed(self) -> None:
        """The service's AMI connection closed (the run is over)."""


@dataclass(frozen=True)
class FakePbx:
    """A running fake Asterisk: its AMI port and secret, and the pipe its results
    (send times ...) come back on."""

    port: int
    secret: str
    results: Connection


@contextlib.contextmanager
def fake_asterisk(serve: Callable[[Any, Connection], None], config: Any) -> Iterator[FakePbx]:
    """Run ``serve(config, pipe)`` in its own interpreter (spawn: its CPU is not the
    benchmark's); yields it once it listens (``config.secret``: its AMI secret), and
    joins it afterwards."""
    ctx = multiprocessing.get_context("spawn")
    pipe, child = ctx.Pipe(duplex=False)
    server = ctx.Process(target=serve, args=(config, child), name="fake-asterisk", daemon=True)
    server.start()
    child.close()
    try:
        if not pipe.poll(60):
            raise BenchError("the fake Asterisk did not start")
        try:
            port = pipe.recv()
        except EOFError:
            raise BenchError("the fake Asterisk failed to start (see above)") from None
        yield FakePbx(port, config.secret, pipe)
    finally:
        server.join(10)
        if server.is_alive():
            server.terminate()
            server.join()


async def results_of(pipe: Connection, what: str, timeout: float = 30) -> Any:
    """What the fake Asterisk sends down the pipe after a run (without blocking the loop)."""
    if not await asyncio.to_thread(pipe.poll, timeout):
        raise BenchError(f"the fake Asterisk sent no {what}")
    return await asyncio.to_thread(pipe.recv)


# --------------------------------------------------------------------- agents' consoles
def agent_users(n: int, first: int, **details: str) -> tuple[User, ...]:
    """``n`` agents, logins ``first``, ``first + 1`` ..., each with a random secret."""
    return tuple(
        User(
            login=str(first + i),
            name=details.get("name", f"Agent {first + i}"),
            secret=Secret(secrets.token_urlsafe(12)),
            operator_id=str(100 + i),
            position=details.get("position", "customer adviser"),
        )
        for i in range(n)
    )


@dataclass
class Consoles:
    """The agents' consoles: each signs in (POST /api/login) and holds one WebSocket,
    from one aiohttp session; ``on_message`` (the benchmark's) sees every message
    with the time.time() it came out of the socket."""

    base: str
    session: aiohttp.ClientSession
    tokens: dict[str, str] = field(default_factory=dict)
    sockets: dict[str, aiohttp.ClientWebSocketResponse] = field(default_factory=dict)
    hellos: dict[str, asyncio.Event] = field(default_factory=dict)
    kinds: Counter[str] = field(default_factory=Counter)
    kind_bytes: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    tasks: set[asyncio.Task] = field(default_factory=set)
    closing: bool = False

    @classmethod
    def open(cls, service: Any, **kw: Any) -> "Consoles":
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), cookie_jar=aiohttp.DummyCookieJar()
        )
        return cls(service.web_url.rstrip("/"), session, **kw)

    async def sign_in_all(self, users: tuple[User, ...], timeout: float = 30) -> None:
        """Every user signs in and connects; returns once every console has its hello."""
        await asyncio.gather(*(self.sign_in(u) for u in users))
        await asyncio.gather(*(self.connect(u.login) for u in users))
        try:
            await asyncio.wait_for(
                asyncio.gather(*(e.wait() for e in self.hellos.values())), timeout
            )
        except asyncio.TimeoutError:
            raise BenchError(f"not every console got its hello within {timeout:.0f} s") from None

    async def sign_in(self, user: User) -> None:
        async with self.session.post(
            f"{self.base}/api/login",
            headers={"Origin": self.base},
            json={"login": user.login, "secret": str(user.secret)},
        ) as r:
            if r.status != 200:
                raise RuntimeError(f"sign-in of {user.login}: HTTP {r.status} {await r.text()}")
            # The session cookie (the console's only credential), sent by hand:
            # one shared session serves every simulated console.
            self.tokens[user.login] = r.cookies["ivr_session"].value

    def headers(self, login: str) -> dict[str, str]:
        return {"Cookie": f"ivr_session={self.tokens[login]}", "Origin": self.base}

    async def connect(self, login: str) -> None:
        ws = await self.session.ws_connect(
            f"{self.base}/ws", headers=self.headers(login), max_msg_size=0
        )
        self.sockets[login] = ws
        self.hellos[login] = asyncio.Event()
        self.spawn(self._read(login, ws))

    def spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _read(self, login: str, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            while True:
                msg = await ws.receive()
                arrived = time.time()  # before anything else the client does
                if msg.type != aiohttp.WSMsgType.TEXT:
                    if not self.closing:
                        self.problems.append(f"{login}: socket {msg.type.name} {msg.data!r}")
                    return
                data = json.loads(msg.data)
                kind = data.get("type")
                self.kinds[kind] += 1
                self.kind_bytes[kind] += len(msg.data)
                if kind == "hello":
                    self.hellos[login].set()
                self.on_message(login, arrived, data)
        except Exception as exc:  # a message this client did not expect: say so
            self.problems.append(f"{login}: reading failed: {exc!r}")

    def on_message(self, login: str, arrived: float, data: dict[str, Any]) -> None:
        """The benchmark's: what it notes of a message."""

    async def close(self) -> None:
        self.closing = True
        await asyncio.gather(*(ws.close() for ws in self.sockets.values()), return_exceptions=True)
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.session.close()


# --------------------------------------------------------------------- figures
def cpu_seconds() -> float:
    """This process's CPU time so far, user + system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class GcPauses:
    """The cyclic garbage collector's pauses in this process (wall time), per generation,
    while ``on`` (``with pauses:`` installs and removes the gc callback)."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._start = 0.0
        self.on = False

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        elif self.on:
            self.pauses[info["generation"]].append(time.perf_counter() - self._start)

    def __enter__(self) -> "GcPauses":
        import gc

        gc.callbacks.append(self)
        self.on = True
        return self

    def __exit__(self, *exc: Any) -> None:
        import gc

        self.on = False
        if self in gc.callbacks:
            gc.callbacks.remove(self)

    def line(self) -> str:
        return ", ".join(
            f"gen{g} {len(v)}" + (f" (max {max(v) * 1e3:.1f} ms)" if v else "")
            for g, v in self.pauses.items()
        )


class LoopLag:
    """How late a 10 ms sleep on the event loop wakes up."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            t = time.monotonic()
            await asyncio.sleep(0.01)
            self.lags.append(time.monotonic() - t - 0.01)

    def start(self) -> None:
        self.task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        if self.task:
            self.task.cancel()


def percentile(sorted_values: list, p: float) -> Any:
    """Nearest-rank percentile of already sorted values."""
    return sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)]


def row(label: str, values_s: list[float], width: int = 38, digits: int = 2) -> str:
    """A report line: p50, p95, p99 and max of ``values_s`` (seconds), in ms."""
    if not values_s:
        return f"  {label:<{width}}      (none)"
    v = sorted(values_s)
    ms = [percentile(v, p) * 1e3 for p in (50, 95, 99)] + [v[-1] * 1e3]
    return f"  {label:<{width}}" + "".join(f"{x:9.{digits}f}" for x in ms)


def header(width: int = 38) -> str:
    return f"  {'(ms)':<{width}}" + "".join(f"{h:>9}" for h in ("p50", "p95", "p99", "max"))


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(*packages: str, load: bool = True) -> str:
    """Python, the packages' versions, the CPU (and the load average before the run)."""
    versions = "".join(f", {p} {version(p)}" for p in packages)
    out = (
        f"Python {platform.python_version()} ({platform.python_implementation()})"
        f"{versions}, {sys.platform}\nCPU: {cpu_model()} ({os.cpu_count()} logical CPUs)"
    )
    if load:
        out += (
            ", load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg()) + " before the run"
        )
    return out


def scrape(url: str) -> dict[str, list[tuple[dict, float]]]:
    """A Prometheus text exposition (the service's /metrics): name -> [(labels, value)]."""
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    out: dict[str, list[tuple[dict, float]]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:]+)(\{[^}]*\})?\s+(\S+)", line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        out.setdefault(m.group(1), []).append((labels, float(m.group(3))))
    return out


# --------------------------------------------------------------------- a benchmark's run
def parser(doc: str) -> argparse.ArgumentParser:
    """A benchmark's command line, described by the first line of its docstring."""
    return argparse.ArgumentParser(description=doc.partition("\n")[0])


def replay_parser(
    doc: str, calls: int, calls_help: str, rate: float, rate_help: str
) -> argparse.ArgumentParser:
    """The command line of a benchmark replaying AMI recordings: --calls, --window
    (calls in flight at once), --rate, --captures (the recordings' folder)."""
    p = parser(doc)
    p.add_argument("--calls", type=int, default=calls, help=calls_help)
    p.add_argument("--window", type=int, default=200, help="calls in flight at once")
    p.add_argument("--rate", type=float, default=rate, help=rate_help)
    p.add_argument(
        "--captures", type=Path, default=ROOT / "tests" / "data", help="folder of *.ami recordings"
    )
    return p


def ami_recordings(folder: Path, parser: Any) -> list[Path]:
    """The AMI recordings (*.ami) of ``folder``; an argparse error if there are none.
    Also sets up the log for a benchmark (warnings only)."""
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    paths = sorted(folder.glob("*.ami"))
    if not paths:
        parser.error(f"no *.ami recordings in {folder}")
    return paths


def ami_settings(port: int, secret: str, **more: Any) -> AmiSettings:
    """How a service or client logs in to a fake Asterisk."""
    return AmiSettings(
        host="127.0.0.1", port=port, username=USERNAME, secret=Secret(secret), **more
    )


def service_settings(pbx: FakePbx, store_dir: str, **more: Any) -> Settings:
    """A service on a fake Asterisk, its web server on a free port of 127.0.0.1 taking
    every console, a fresh SQLite store in ``store_dir``; ``more``: the bench's own."""
    return Settings(
        ami=ami_settings(pbx.port, pbx.secret, reconnect_min=0.2, reconnect_max=2.0),
        # port 0: the OS picks a free port; every console comes from 127.0.0.1
        web=WebSettings(host="127.0.0.1", port=0, max_connections_per_address=100000),
        store=StoreSettings(url=f"sqlite:///{Path(store_dir) / 'ivr.db'}"),
        log_level="WARNING",
        **more,
    )


def checked(problems: list[str], what: str) -> list[str]:
    """Print what went wrong, then the check line saying what was checked."""
    for problem in problems:
        print(f"  WRONG: {problem}")
    print(f"  check                     {'FAILED' if problems else 'ok'} ({what})")
    return problems


def incomplete(error: Exception) -> int:
    print(f"the benchmark did not complete: {error}", file=sys.stderr)
    return 1


def verdict(problems: list[str]) -> int:
    """The last line of a benchmark (OK or FAILED) and its exit status."""
    print()
    print("FAILED" if problems else "OK")
    return 1 if problems else 0
