"""Test phones: SIPp agents and customers that call through the sandbox PBX.

Every phone is one ``sipp`` process running a scenario from ``ivr/testing/sipp/``:

================================  ==========================================
``AgentPhone(answer=True)``       agent_register.xml, then agent_answer.xml
``AgentPhone(answer=False)``      agent_register.xml, then agent_noanswer.xml
``AgentPhone(reject=486)``        agent_register.xml, then agent_reject.xml
``AgentPhone.hold()/resume()``    dialog_reinvite.xml: re-INVITE sendonly /
                                  inactive / sendrecv in the phone's call
``AgentPhone.call(exten)``        agent_call.xml: the agent dials (e.g. the
                                  consultation call of a transfer)
``AgentPhone.transfer_attended``  dialog_refer.xml: REFER with Replaces
``CustomerPhone``                 customer_uas.xml (or agent_noanswer.xml):
                                  the carrier side of outbound calls
``call_customer()``               customer_ivr.xml: a customer calls a DID
``abandon_call()``                customer_abandon.xml: ... and gives up
================================  ==========================================

Example (synchronous; the sandbox PBX listens for SIP on 127.0.0.1:26060)::

    from ivr.testing.phones import AgentPhone, call_customer

    with AgentPhone("127.0.0.1:26060", "1003", log_dir=tmp_path) as agent:
        call = call_customer("127.0.0.1:26060", "5550100", digit="2",
                             talk_ms=8000, log_dir=tmp_path)
        call.wait(30).check()           # exit code 0: the call went as planned
    agent.uas.check()                   # the agent side went as planned too

From asyncio tests the same objects work; use ``await run.wait_async(30)`` and
``await phone.astart()`` / ``await phone.astop()``, which never block the loop.

Ports: every port is passed to sipp explicitly, chosen by ``free_port()``,
which asks the OS for a free one (so parallel test runs do not collide), or
picks from ``IVR_TEST_PORT_RANGE=26000-26999`` when that is set.

Logs: each sipp run gets its own folder under the ``log_dir`` you pass
(``<log_dir>/<name>/``), which is also sipp's working directory:
``stdout.log``, ``errors.log`` (unexpected messages), ``messages.log`` (every
SIP message), ``stats.csv`` (counters, see ``SippRun.stats()``), ``screen.log``
(sipp's final screen) and ``audio.ulaw`` (a link to the audio it plays).
``SippError`` messages quote the useful parts.

Audio: SIPp 3.6.1 ``rtp_stream`` only takes a literal file name, so the
scenarios play ``audio.ulaw`` from their working directory and this module
links the wanted file there. ``speech_ulaw()`` makes such files (speech.py: espeak-ng
and sox; raw u-law, 8 kHz, mono), cached in the temp folder.
"""

from __future__ import annotations

import asyncio
import atexit
import csv
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO, Any, Self

from .dialogs import Dialog, dialogs, parse_messages
from .speech import SynthError, tone_ulaw, ulaw_file

__all__ = [
    "SCENARIO_DIR",
    "SippError",
    "SippTimeout",
    "SippRun",
    "AgentPhone",
    "CustomerPhone",
    "call_customer",
    "abandon_call",
    "free_port",
    "speech_ulaw",
    "tone_ulaw",
    "stop_all",
    "Dialog",
]

SCENARIO_DIR = Path(__file__).resolve().parent / "sipp"

# The carrier's address: the PBX identifies calls from it as inbound trunk calls
# (pjsip.conf [trunk-identify]) and sends outbound calls there (TRUNK_PEER).
CARRIER_IP = "127.0.0.2"
# Agents are identified by username, so any loopback address does.
AGENT_IP = "127.0.0.1"
# A caller number that is no PJSIP endpoint name: the PBX identifies by
# username first, and a From user such as "1001" would be taken for an agent.
DEFAULT_CALLER = "36201234567"

PORT_RANGE_ENV = "IVR_TEST_PORT_RANGE"
# A sipp that is never stopped (a crashed test) ends itself after this long.
DEFAULT_LIFETIME_S = 900

CUSTOMER_TEXT = (
    "Hello, this is the customer speaking. I am calling about my last invoice, "
    "it seems too high to me."
)
AGENT_TEXT = "Good morning, this is the agent speaking. How can I help you today?"


class SippError(RuntimeError):
    """A sipp run failed, or could not be started; the message says why."""


class SippTimeout(SippError, TimeoutError):
    """A sipp run did not end in time (it is left running: stop() it)."""


# ---------------------------------------------------------------- helpers

# Ports handed out recently: (kind, port) -> time.monotonic() of hand-out.
_handed_out: dict[tuple[str, int], float] = {}
# Long enough for a sipp to bind what it was given; after that a port in use
# shows as taken anyway, and a long test session can reuse the range.
_HAND_OUT_HOLD_S = 60.0


def free_port(kind: str = "udp", ip: str = "127.0.0.1", *, span: int = 1) -> int:
    """A port number on ``ip`` that is free right now for ``kind`` ("udp"/"tcp").

    With ``span=n`` the ports p .. p+n-1 are all free (sipp's media port uses
    p and p+2). The OS picks the port (bind to port 0), or, when the
    environment variable IVR_TEST_PORT_RANGE=LOW-HIGH is set, a random port
    of that range. A port handed out by this process is not handed out again
    for a minute (whatever the address: 0.0.0.0:p and 127.0.0.2:p clash),
    so phones started in a row never get the same port.
    """
    if kind not in ("udp", "tcp"):
        raise ValueError(f"kind must be 'udp' or 'tcp', not {kind!r}")
    sock_type = socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
    port_range = _port_range()
    now = time.monotonic()
    for key in [k for k, t in _handed_out.items() if now - t > _HAND_OUT_HOLD_S]:
        del _handed_out[key]
    for _ in range(500):
        if port_range:
            first = random.randint(port_range[0], port_range[1] - span + 1)
        else:
            first = _os_port(sock_type, ip)
            if first + span - 1 > 65535:
                continue
        ports = range(first, first + span)
        if any((kind, p) in _handed_out for p in ports):
            continue
        if all(_is_free(sock_type, ip, p) for p in ports):
            _handed_out.update(((kind, p), now) for p in ports)
            return first
    raise SippError(
        f"no free {kind} port (span {span}) on {ip}"
        + (f" in {PORT_RANGE_ENV}={os.environ[PORT_RANGE_ENV]}" if port_range else "")
    )


def _port_range() -> tuple[int, int] | None:
    value = os.environ.get(PORT_RANGE_ENV, "").strip()
    if not value:
        return None
    try:
        low, high = (int(x) for x in value.split("-"))
    except ValueError:
        raise SippError(f"{PORT_RANGE_ENV} must look like 26000-26999, not {value!r}") from None
    if not 1024 <= low < high <= 65535:
        raise SippError(f"{PORT_RANGE_ENV}={value!r}: need 1024 <= LOW < HIGH <= 65535")
    return low, high


def _os_port(sock_type: int, ip: str) -> int:
    with socket.socket(socket.AF_INET, sock_type) as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def _is_free(sock_type: int, ip: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, sock_type) as s:
        try:
            s.bind((ip, port))
        except OSError:
            return False
    return True


def speech_ulaw(text: str) -> Path:
    """``text`` spoken in English into a raw u-law 8 kHz file (cached), as the
    scenarios play it (see speech.py)."""
    try:
        return ulaw_file(text, voice="en")
    except SynthError as exc:
        raise SippError(str(exc)) from None


def _split_addr(addr: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {addr!r}")
    return host, int(port)


def _one_call(pbx: str, ip: str, port: int) -> list[str]:
    """sipp's options for a single call to ``pbx`` from ``ip:port`` (any control port)."""
    return [pbx, "-m", "1", "-i", ip, "-p", str(port), "-cp", str(free_port("udp", "0.0.0.0"))]


def _once(run: "SippRun", timeout: float) -> "SippRun":
    """Run a one-shot sipp (a REGISTER, an in-dialog request) to its end; SippError if
    it failed, SippTimeout if it did not end within ``timeout``."""
    # A lost request is retransmitted; give up well within the timeout.
    run.cmd += ["-recv_timeout", f"{max(1, int(timeout * 1000) - 500)}"]
    run.start()
    try:
        run.wait(timeout)
    except SippTimeout:
        run.stop(grace=0.5)
        raise
    return run.check()


def _wait_bound_udp(run: "SippRun", ip: str, port: int, timeout: float) -> None:
    """Wait until ``run`` listens on ip:port (binding it then fails)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not run.running:
            raise SippError(f"{run.name} exited at start\n{run.diagnostics()}")
        if not _is_free(socket.SOCK_DGRAM, ip, port):
            return
        time.sleep(0.02)
    raise SippTimeout(
        f"{run.name} did not listen on {ip}:{port} within {timeout:.0f} s\n{run.diagnostics()}"
    )


# ---------------------------------------------------------------- one sipp process

_running: set["SippRun"] = set()


class SippRun:
    """One sipp process: start it, wait for it or stop it, read its results.

    ``returncode`` is sipp's exit code once it has ended (None before): 0 all
    calls successful (for a phone stopped by stop(): also when it had no call),
    1 at least one call failed, 97 stopped by command, 99 a calling sipp ended
    without any call, 255/254 fatal error / could not bind a socket.
    ``forced`` is True when stop() had to SIGTERM/SIGKILL it because calls were
    still open after the grace period; its exit code then says nothing about
    those calls (sipp exits 0 on SIGTERM), so check() fails such a run.
    """

    def __init__(
        self,
        name: str,
        scenario: str,
        args: list[str],
        log_dir: str | os.PathLike,
        audio: str | os.PathLike | None = None,
        lifetime_s: float = DEFAULT_LIFETIME_S,
    ) -> None:
        self.name = name
        self.scenario = SCENARIO_DIR / scenario
        self.log_dir = _unique_dir(Path(log_dir), name)
        self.audio = Path(audio) if audio is not None else None
        self.cmd = [
            _sipp(),
            *args,
            "-sf",
            str(self.scenario),
            "-nostdin",
            # Redraw the screen (into stdout.log) every 10 s, not every second.
            "-f",
            "10",
            # Answer INFO, NOTIFY, OPTIONS and UPDATE outside the scenario with 200.
            "-aa",
            # Safety net: a phone nobody stops ends by itself.
            "-timeout",
            f"{int(lifetime_s)}s",
            "-trace_err",
            "-error_file",
            "errors.log",
            "-trace_msg",
            "-message_file",
            "messages.log",
            "-trace_stat",
            "-stf",
            "stats.csv",
            "-fd",
            "1",
            "-trace_screen",
            "-screen_file",
            "screen.log",
        ]
        self.proc: subprocess.Popen | None = None
        self.forced = False
        self._stdout: IO[bytes] | None = None

    # -------------------------------------------------------- lifecycle
    def start(self) -> "SippRun":
        if self.proc is not None:
            raise SippError(f"{self.name} was already started")
        if self.audio is not None:
            if not self.audio.is_file():
                raise SippError(f"{self.name}: audio file {self.audio} does not exist")
            link = self.log_dir / "audio.ulaw"
            link.unlink(missing_ok=True)
            link.symlink_to(self.audio.resolve())
        (self.log_dir / "command.txt").write_text(" ".join(self.cmd) + "\n")
        self._stdout = open(self.log_dir / "stdout.log", "wb")
        # Same process group as the tests: a Ctrl-C stops the phones too.
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=self.log_dir,
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=subprocess.STDOUT,
        )
        _running.add(self)
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def wait(self, timeout: float | None = None) -> "SippRun":
        """Wait until sipp ends by itself; SippTimeout (sipp left running) if not in time."""
        if self.proc is None:
            raise SippError(f"{self.name} was never started")
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise SippTimeout(
                f"{self.name} still running after {timeout} s\n{self.diagnostics()}"
            ) from None
        self._ended()
        return self

    async def wait_async(self, timeout: float | None = None) -> "SippRun":
        """wait() for asyncio tests: polls, so the event loop keeps running."""
        if self.proc is None:
            raise SippError(f"{self.name} was never started")
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.proc.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise SippTimeout(
                    f"{self.name} still running after {timeout} s\n{self.diagnostics()}"
                )
            await asyncio.sleep(0.05)
        self._ended()
        return self

    def stop(self, grace: float = 5.0) -> int | None:
        """End sipp: SIGUSR1 (no new calls, finish the current ones), after
        ``grace`` s SIGTERM, then SIGKILL. Returns the exit code."""
        if self.proc is None:
            return None
        for sig, wait_s in ((signal.SIGUSR1, grace), (signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
            if self.proc.poll() is not None:
                break
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                break
            self.forced = sig != signal.SIGUSR1
            try:
                self.proc.wait(wait_s)
            except subprocess.TimeoutExpired:
                continue
        self._ended()
        return self.proc.returncode

    async def stop_async(self, grace: float = 5.0) -> int | None:
        return await asyncio.to_thread(self.stop, grace)

    def _ended(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            _running.discard(self)
            if self._stdout is not None:
                self._stdout.close()
                self._stdout = None

    def __enter__(self) -> "SippRun":
        return self if self.proc else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -------------------------------------------------------- results
    def check(self, ok_codes: tuple[int, ...] = (0,), allow_forced: bool = False) -> "SippRun":
        """Raise SippError (with the logs' gist) unless sipp ended with one of
        ok_codes, and (unless allow_forced) without calls cut off by stop()."""
        code = self.returncode
        if code is None:
            raise SippError(f"{self.name} is still running\n{self.diagnostics()}")
        if self.forced and not allow_forced:
            raise SippError(
                f"{self.name} had calls still open when stopped and was killed\n"
                f"{self.diagnostics()}"
            )
        if code not in ok_codes:
            raise SippError(
                f"{self.name} exited with {code} (wanted {ok_codes})\n{self.diagnostics()}"
            )
        return self

    def stats(self) -> dict[str, str]:
        """sipp's latest counters (stats.csv, written every second and at exit).

        Useful keys: "SuccessfulCall(C)", "FailedCall(C)", "TotalCallCreated",
        "CurrentCall", "FailedCallRejected(C)" ... ("(C)": cumulated, "(P)":
        last period). Empty before the first dump.
        """
        path = self.log_dir / "stats.csv"
        try:
            rows = list(csv.reader(path.read_text(errors="replace").splitlines(), delimiter=";"))
        except FileNotFoundError:
            return {}
        rows = [r for r in rows if r]
        if len(rows) < 2:
            return {}
        return {k: v for k, v in zip(rows[0], rows[-1], strict=False) if k}

    def counts(self) -> tuple[int, int]:
        """(successful calls, failed calls) so far."""
        s = self.stats()
        return int(s.get("SuccessfulCall(C)") or 0), int(s.get("FailedCall(C)") or 0)

    def errors(self) -> str:
        """sipp's error log: unexpected messages, aborted calls ('' if none)."""
        path = self.log_dir / "errors.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def messages(self) -> str:
        """Every SIP message sent and received, as sipp logged them."""
        path = self.log_dir / "messages.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def dialogs(self) -> list[Dialog]:
        """The confirmed dialogs of this run (see ivr/testing/dialogs.py), oldest first."""
        return dialogs(parse_messages(self.messages()))

    def diagnostics(self, max_chars: int = 3000) -> str:
        """A short report for assertion messages: command, exit code, counts, errors."""
        lines = [
            f"  command: {' '.join(self.cmd)}",
            f"  exit code: {self.returncode}" + (" (killed by stop())" if self.forced else ""),
            f"  logs: {self.log_dir}",
        ]
        if self.stats():
            ok, failed = self.counts()
            lines.append(f"  calls: {ok} successful, {failed} failed")
        errors = self.errors().strip()
        if errors:
            lines.append("  errors.log (end):\n" + _indent(errors[-max_chars:]))
        out = self.log_dir / "stdout.log"
        if out.exists():
            text = out.read_text(errors="replace")
            # sipp's screens are long; its own complaints come at the very end.
            tail = "\n".join(line for line in text.splitlines()[-6:] if line.strip())
            if tail and self.returncode not in (None, 0):
                lines.append("  stdout (end):\n" + _indent(tail[-max_chars:]))
        return "\n".join(lines)

    def __repr__(self) -> str:
        state = "running" if self.running else f"exit {self.returncode}"
        return f"<SippRun {self.name} pid={self.pid} {state} logs={self.log_dir}>"


def stop_all() -> None:
    """Stop every sipp this module started that still runs (also done at exit)."""
    for run in list(_running):
        run.stop(grace=1.0)


atexit.register(stop_all)


def _sipp() -> str:
    path = shutil.which("sipp")
    if path is None:
        raise SippError("sipp is not installed (apt-get install -y sip-tester)")
    return path


def _unique_dir(base: Path, name: str) -> Path:
    """Make and return base/name, or base/name-2, -3 ... if taken."""
    base.mkdir(parents=True, exist_ok=True)
    n = 1
    while True:
        path = base / (name if n == 1 else f"{name}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            n += 1


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


# ---------------------------------------------------------------- phones


class _AnsweringPhone:
    """What both kinds of phone share: the address they answer on, how they answer
    (ring for ``ring_ms``, play ``audio``, hang up after ``talk_ms`` if > 0), and the
    answering sipp (``uas``)."""

    DEFAULT_IP = AGENT_IP

    def __init__(
        self,
        *,
        log_dir: str | os.PathLike,
        local_ip: str | None = None,
        local_port: int | None = None,
        media_port: int | None = None,
        answer: bool = True,
        ring_ms: int = 1000,
        talk_ms: int = 0,
        audio: str | os.PathLike | None = None,
        lifetime_s: float = DEFAULT_LIFETIME_S,
    ) -> None:
        self.log_dir = Path(log_dir)
        self.local_ip = local_ip or self.DEFAULT_IP
        self.local_port = local_port or free_port("udp", self.local_ip)
        self.media_port = media_port or free_port("udp", self.local_ip, span=3)
        self.answer = answer
        self.ring_ms = ring_ms
        self.talk_ms = talk_ms
        self.audio = audio
        self.lifetime_s = lifetime_s
        self.uas: SippRun | None = None

    def _answering(self) -> list[str]:
        """sipp arguments of an answering phone: its media address, ring and talk times."""
        return [
            "-mi",
            self.local_ip,
            "-mp",
            str(self.media_port),
            "-set",
            "ring_ms",
            str(self.ring_ms),
            "-set",
            "talk_ms",
            str(self.talk_ms),
        ]

    def _serve(
        self,
        name: str,
        scenario: str,
        args: list[str],
        audio: str | os.PathLike | None,
        timeout: float,
    ) -> "SippRun":
        """Start answering on ``local_ip:local_port``; listening when this returns."""
        ip, port = self.local_ip, self.local_port
        run = SippRun(
            name,
            scenario,
            ["-i", ip, "-p", str(port), "-cp", str(free_port("udp", "0.0.0.0")), *args],
            self.log_dir,
            audio=audio,
            lifetime_s=self.lifetime_s,
        )
        run.start()
        _wait_bound_udp(run, ip, port, timeout)
        self.uas = run
        return run

    def start(self, timeout: float = 10.0) -> Self:
        raise NotImplementedError

    def stop(self) -> int | None:
        raise NotImplementedError

    async def astart(self, timeout: float = 10.0) -> Self:
        """``start`` without blocking the event loop."""
        return await asyncio.to_thread(self.start, timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class AgentPhone(_AnsweringPhone):
    """An agent's phone: registers as ``ext``, then answers (or just rings).

    ``start()`` sends the REGISTER (and waits for its 200 OK) from
    ``local_ip:local_port``, then starts the answering sipp on that very port:
    the PBX (rewrite_contact = yes) delivers calls to where the REGISTER came
    from. ``stop()`` stops it and unregisters. One phone takes any number of
    concurrent calls (as far as the PBX offers them: queues do not ring a busy
    agent, Dial() does).

    answer=True: agent_answer.xml, picks up after ``ring_ms``, plays ``audio``,
    talks until the PBX hangs up, or hangs up itself after ``talk_ms`` (> 0).
    answer=False: agent_noanswer.xml, rings until the PBX cancels.
    reject=486 or 603: agent_reject.xml, rings ``ring_ms`` then answers 486
    Busy Here (the agent pressed "busy") or 603 Decline ("reject").

    In a call the phone answered: ``hold()`` / ``resume()`` send the
    re-INVITE a hold button sends; ``call(exten)`` places a second call (the
    consultation of an attended transfer) and ``transfer_attended(consult)``
    then sends REFER with Replaces, as a phone's "transfer" button does.
    """

    def __init__(
        self,
        pbx: str,
        ext: str,
        password: str | None = None,
        *,
        expires: int = 3600,
        reject: int | None = None,
        **answering: Any,
    ) -> None:
        """``answering``: log_dir (required), local_ip, local_port, media_port, answer,
        ring_ms, talk_ms, audio, lifetime_s (see _AnsweringPhone)."""
        super().__init__(**answering)
        self.pbx = pbx
        _split_addr(pbx)
        self.ext = str(ext)
        # The sandbox's dialplans give agent NNNN the password agentNNNN.
        self.password = password if password is not None else f"agent{self.ext}"
        self.expires = expires
        self.reject = reject
        self.registered = False
        self._dialogs: dict[str, Dialog] = {}  # Call-ID -> dialog, with our CSeq/SDP counters

    @property
    def contact(self) -> str:
        """Where the PBX sends this agent's calls."""
        return f"{self.local_ip}:{self.local_port}"

    def _auth(self, service: str) -> list[str]:
        """sipp's options to call ``service`` (-s) as this phone's SIP user."""
        return ["-s", service, "-au", self.ext, "-ap", self.password]

    def register(self, expires: int | None = None, timeout: float = 10.0) -> SippRun:
        """REGISTER (or unregister with expires=0) from the phone's port; SippError on failure.

        The answering sipp holds that port while it runs, so call this only
        while the phone is stopped (start() and stop() do)."""
        expires = self.expires if expires is None else expires
        what = "register" if expires else "unregister"
        run = SippRun(
            f"agent-{self.ext}-{what}",
            "agent_register.xml",
            [
                *_one_call(self.pbx, self.local_ip, self.local_port),
                *self._auth(self.ext),
                *("-set", "expires", str(expires)),
            ],
            self.log_dir,
            lifetime_s=timeout + 5,
        )
        _once(run, timeout)
        self.registered = bool(expires)
        return run

    def unregister(self, timeout: float = 10.0) -> SippRun:
        return self.register(expires=0, timeout=timeout)

    def start(self, timeout: float = 10.0) -> Self:
        """Register, then start answering; returns once the phone listens."""
        if self.uas is not None and self.uas.running:
            raise SippError(f"agent {self.ext} already started")
        self.register(timeout=timeout)
        if self.reject is not None:
            name, scenario = f"agent-{self.ext}-reject", "agent_reject.xml"
            if self.reject not in (486, 603):
                raise SippError(f"reject must be 486 (busy) or 603 (decline), not {self.reject}")
            args = ["-set", "code", str(self.reject), "-set", "ring_ms", str(self.ring_ms)]
            audio = None
        elif self.answer:
            name, scenario = f"agent-{self.ext}-answer", "agent_answer.xml"
            args = self._answering()
            audio = self.audio or speech_ulaw(AGENT_TEXT)
        else:
            name, scenario = f"agent-{self.ext}-noanswer", "agent_noanswer.xml"
            args, audio = [], None
        self._serve(name, scenario, args, audio, timeout)
        return self

    def stop(self, unregister: bool = True, grace: float = 5.0) -> int | None:
        """Stop answering (calls in progress get ``grace`` s to end), then
        unregister. Returns the answering sipp's exit code (0: all its calls,
        if any, went as planned); ``uas.check()`` tells more."""
        code = self.uas.stop(grace) if self.uas is not None else None
        if unregister and self.registered:
            self.unregister()
        return code

    async def astop(self, unregister: bool = True, grace: float = 5.0) -> int | None:
        return await asyncio.to_thread(self.stop, unregister, grace)

    # -------------------------------------------------------- in-call buttons
    def dialog(self, run: SippRun | None = None, call_id: str | None = None) -> Dialog:
        """A dialog of the answering sipp (or of ``run``): the given Call-ID or the
        newest. Kept across calls so CSeq and SDP versions keep growing."""
        run = run or self.uas
        if run is None:
            raise SippError(f"agent {self.ext} has no call")
        found = run.dialogs()
        if call_id is not None:
            found = [d for d in found if d.call_id == call_id]
        if not found:
            raise SippError(f"agent {self.ext}: no answered call in {run.log_dir}")
        d = found[-1]
        return self._dialogs.setdefault(d.call_id, d)

    def hold(
        self, direction: str = "sendonly", dialog: Dialog | None = None, timeout: float = 10.0
    ) -> SippRun:
        """Press hold: a re-INVITE with a=sendonly (or a=inactive) in the call."""
        if direction not in ("sendonly", "inactive", "sendrecv"):
            raise ValueError(f"direction must be sendonly, inactive or sendrecv, not {direction!r}")
        d = dialog or self.dialog()
        if d.media is None:
            raise SippError(f"agent {self.ext}: no media address in call {d.call_id}")
        return self._in_dialog(
            "reinvite",
            "dialog_reinvite.xml",
            d,
            timeout,
            [
                "-set",
                "media_ip",
                d.media[0],
                "-set",
                "media_port",
                str(d.media[1]),
                "-set",
                "sdp_version",
                str(d.next_sdp_version()),
                "-set",
                "direction",
                direction,
            ],
        )

    def resume(self, dialog: Dialog | None = None, timeout: float = 10.0) -> SippRun:
        """Press hold again: a re-INVITE with a=sendrecv."""
        return self.hold("sendrecv", dialog, timeout)

    def call(
        self,
        exten: str,
        *,
        talk_ms: int = 0,
        audio: str | os.PathLike | None = None,
        lifetime_s: float | None = None,
    ) -> SippRun:
        """Dial ``exten`` from this phone (agent_call.xml); returns the started run.
        talk_ms 0: stay until the PBX hangs up (e.g. a transfer completes)."""
        media_port = free_port("udp", self.local_ip, span=3)
        run = SippRun(
            f"agent-{self.ext}-calls-{exten}",
            "agent_call.xml",
            [
                *_one_call(self.pbx, self.local_ip, free_port("udp", self.local_ip)),
                *("-mi", self.local_ip, "-mp", str(media_port)),
                *self._auth(str(exten)),
                *("-set", "agent", self.ext, "-set", "talk_ms", str(talk_ms)),
            ],
            self.log_dir,
            audio=audio or speech_ulaw(AGENT_TEXT),
            lifetime_s=lifetime_s or self.lifetime_s,
        )
        return run.start()

    def transfer_attended(
        self, consult: SippRun, dialog: Dialog | None = None, timeout: float = 10.0
    ) -> SippRun:
        """Press transfer after consulting: REFER in the customer's call (the
        newest answered one, or ``dialog``) naming the consultation call of
        ``consult`` (a run of call()) in Replaces."""
        d = dialog or self.dialog()
        other = self.dialog(consult)
        target = _uri(other.remote)  # sip:1002@pbx
        refer_to = f"<{target}?Replaces={other.replaces()}>"
        host = self.pbx
        return self._in_dialog(
            "refer",
            "dialog_refer.xml",
            d,
            timeout,
            ["-set", "refer_to", refer_to, "-set", "referred_by", f"<sip:{self.ext}@{host}>"],
        )

    def _in_dialog(
        self, what: str, scenario: str, d: Dialog, timeout: float, args: list[str]
    ) -> SippRun:
        run = SippRun(
            f"agent-{self.ext}-{what}",
            scenario,
            [
                *_one_call(self.pbx, self.local_ip, free_port("udp", self.local_ip)),
                "-set",
                "ruri",
                d.remote_target,
                "-set",
                "from",
                d.local,
                "-set",
                "to",
                d.remote,
                # The run's own Call-ID is the dialog's: sipp matches responses by it.
                "-cid_str",
                d.call_id.replace("%", "%%"),
                "-set",
                "cseq",
                str(d.next_cseq()),
                "-set",
                "contact",
                d.local_contact,
                *args,
            ],
            self.log_dir,
            lifetime_s=timeout + 5,
        )
        return _once(run, timeout)

    async def ahold(self, direction: str = "sendonly") -> SippRun:
        return await asyncio.to_thread(self.hold, direction)

    async def aresume(self) -> SippRun:
        return await asyncio.to_thread(self.resume)

    async def atransfer_attended(self, consult: SippRun) -> SippRun:
        return await asyncio.to_thread(self.transfer_attended, consult)

    def __repr__(self) -> str:
        return f"<AgentPhone {self.ext} at {self.contact} uas={self.uas!r}>"


def _uri(header: str) -> str:
    start, end = header.find("<"), header.find(">")
    return header[start + 1 : end] if 0 <= start < end else header.split(";")[0].strip()


class CustomerPhone(_AnsweringPhone):
    """A customer's phone behind the carrier, for outbound calls (UAS).

    The PBX sends calls to customers to TRUNK_PEER, so run this at that
    address (``address``, default 127.0.0.2 with a free port; give the
    sandbox that trunk_peer). answer=True: customer_uas.xml, picks up after
    ``ring_ms``, plays ``audio``, talks until the PBX hangs up or hangs up
    after ``talk_ms`` (> 0). answer=False: rings until cancelled.
    """

    DEFAULT_IP = CARRIER_IP

    @property
    def address(self) -> str:
        """HOST:PORT to use as the PBX's TRUNK_PEER."""
        return f"{self.local_ip}:{self.local_port}"

    def start(self, timeout: float = 10.0) -> Self:
        if self.uas is not None and self.uas.running:
            raise SippError(f"customer phone at {self.address} already started")
        if self.answer:
            name, scenario = "customer-answer", "customer_uas.xml"
            args = self._answering()
            audio = self.audio or speech_ulaw(CUSTOMER_TEXT)
        else:
            name, scenario = "customer-noanswer", "agent_noanswer.xml"
            args, audio = [], None
        self._serve(name, scenario, args, audio, timeout)
        return self

    def stop(self, grace: float = 5.0) -> int | None:
        """Stop (calls in progress get ``grace`` s to end); returns the exit code."""
        return self.uas.stop(grace) if self.uas is not None else None

    async def astop(self, grace: float = 5.0) -> int | None:
        return await asyncio.to_thread(self.stop, grace)

    def __repr__(self) -> str:
        return f"<CustomerPhone at {self.address} uas={self.uas!r}>"


def _customers(
    pbx: str,
    did: str,
    scenario: str,
    name: str,
    extra: list[str],
    *,
    log_dir: str | os.PathLike,
    caller: str = DEFAULT_CALLER,
    audio: str | os.PathLike | None = None,
    local_ip: str = CARRIER_IP,
    local_port: int | None = None,
    media_port: int | None = None,
    calls: int = 1,
    rate: float | None = None,
    limit: int | None = None,
    lifetime_s: float = DEFAULT_LIFETIME_S,
) -> SippRun:
    """Customers calling ``did`` through the carrier (UAC): ``calls`` > 1 places that
    many, ``rate`` new calls per second (default: all at once), at most ``limit`` open
    at once (default: all); each plays ``audio``. Returns the started run."""
    _split_addr(pbx)
    local_port = local_port or free_port("udp", local_ip)
    media_port = media_port or free_port("udp", local_ip, span=3)
    args = [
        pbx,
        "-i",
        local_ip,
        "-mi",
        local_ip,
        "-p",
        str(local_port),
        "-mp",
        str(media_port),
        "-cp",
        str(free_port("udp", "0.0.0.0")),
        "-s",
        str(did),
        "-m",
        str(calls),
    ]
    if calls > 1 or rate is not None:
        # -r calls per -rp ms; -l caps the calls open at once.
        args += [
            "-r",
            str(rate if rate is not None else calls),
            "-rp",
            "1000",
            "-l",
            str(limit if limit is not None else calls),
        ]
    args += ["-set", "caller", caller, *extra]
    run = SippRun(
        name,
        scenario,
        args,
        log_dir,
        audio=audio or speech_ulaw(CUSTOMER_TEXT),
        lifetime_s=lifetime_s,
    )
    return run.start()


def call_customer(
    pbx: str,
    did: str,
    *,
    digit: str | None = None,
    talk_ms: int = 8000,
    dtmf_delay_ms: int = 1500,
    password: str | None = None,
    caller: str = DEFAULT_CALLER,
    name: str | None = None,
    **options: Any,
) -> SippRun:
    """Customers call ``did`` through the carrier (customer_ivr.xml); returns the started run.

    ``options``: log_dir (required), audio, local_ip, local_port, media_port, calls,
    rate, limit, lifetime_s (see _customers).

    With ``password`` the caller is a registered softphone rather than the
    carrier: ``caller`` is its SIP user (e.g. "customer") and the INVITE is
    sent again with credentials when the PBX challenges it.

    Each call: wait for the answer, press ``digit`` (SIP INFO) ``dtmf_delay_ms``
    after it if given, play ``audio``, hang up ``talk_ms`` after the answer
    (and key), unless the PBX hangs up first (also a success). Wait for it with
    ``run.wait(timeout).check()``: exit code 0 = every call went as planned.
    """
    if digit is not None and (len(str(digit)) != 1 or str(digit) not in "0123456789*#ABCD"):
        raise ValueError(f"digit must be one key of 0-9 * # A-D, not {digit!r}")
    extra = [
        "-set",
        "digit",
        "none" if digit is None else str(digit),
        "-set",
        "dtmf_delay_ms",
        str(dtmf_delay_ms),
        "-set",
        "talk_ms",
        str(talk_ms),
    ]
    if password is not None:
        extra += ["-au", caller, "-ap", password]
    return _customers(
        pbx, did, "customer_ivr.xml", name or f"customer-{did}", extra, caller=caller, **options
    )


def abandon_call(
    pbx: str, did: str, *, patience_ms: int = 4000, name: str | None = None, **options: Any
) -> SippRun:
    """Customers call ``did`` and hang up ``patience_ms`` after dialling
    (customer_abandon.xml): CANCEL if still unanswered, BYE if answered
    meanwhile (e.g. by the IVR). ``options`` as call_customer's. Returns the
    started run; exit code 0 = all calls went as planned (whether the PBX counts
    them as abandoned is for the test to check)."""
    return _customers(
        pbx,
        did,
        "customer_abandon.xml",
        name or f"abandon-{did}",
        ["-set", "patience_ms", str(patience_ms)],
        **options,
    )
