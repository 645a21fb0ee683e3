"""The AudioSocket server that receives the audio taps from Asterisk.

Each tap is one TCP connection that Asterisk's AudioSocket channel opens: it
first sends the UUID we put in the channel name, then 20 ms audio frames of
the one party ChanSpy listens to, and closes the socket when the tap ends.

The UUID is looked up in a :class:`TapRegistry` of taps we asked for (call,
speaker, leg); a connection with an unknown UUID, or one that sends anything
else first, is closed. Audio goes to a per-stream :class:`StreamSink` made by
``sink_factory``. Garbage or truncated frames close that connection only, with
one log line; every other stream goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from ..logs import about_call
from .frames import (
    KIND_DTMF,
    KIND_ERROR,
    KIND_HANGUP,
    KIND_UUID,
    MAX_PAYLOAD,
    Frame,
    FrameDecoder,
    FrameError,
    read_frame,
)

READ_SIZE = 65536

log = logging.getLogger(__name__)

# Anyone who reaches the tap port can open connections: rejections are counted
# and logged at most once a minute per address. Tap UUIDs are capabilities (the
# first connection with one gets the call's audio): they are logged at DEBUG only.
REJECT_LOG_EVERY = 60.0

AGENT = "agent"
CUSTOMER = "customer"
SPEAKERS = (AGENT, CUSTOMER)


@dataclass
class TapTarget:
    """What a tap UUID stands for: whose voice, on which call and leg."""

    call_id: str
    speaker: str  # "agent" | "customer"
    leg: str  # Uniqueid of the spied channel
    # Called on the event loop when the connection arrives / ends.
    on_connected: Callable[["TapStream"], None] | None = None
    on_closed: Callable[["TapStream", str], None] | None = None
    expected_at: float = field(default_factory=time.time)


def connect_address(host: str, port: int) -> str:
    """Where Asterisk reaches a tap server listening on ``host`` (a wildcard address:
    this machine's loopback)."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"{host}:{port}"


class TapUnplaced(Exception):
    """Nobody can take a tap now (e.g. no speech worker is up): the tap is retried."""


class TapPlacer(Protocol):
    """Where taps are placed: a TapServer here, or the speech workers' pool."""

    host: str
    port: int
    registry: Any  # forget(uuid)

    async def place(self, uuid: str, target: TapTarget) -> tuple[str, str] | None: ...


class TapRegistry:
    """Tap UUIDs we have asked Asterisk for and not yet seen end."""

    def __init__(self) -> None:
        self._expected: dict[str, TapTarget] = {}
        self._claimed: set[str] = set()

    @staticmethod
    def _key(uuid: uuidlib.UUID | str) -> str:
        return str(uuid).lower()

    def expect(self, uuid: uuidlib.UUID | str, target: TapTarget) -> None:
        self._expected[self._key(uuid)] = target

    def forget(self, uuid: uuidlib.UUID | str) -> TapTarget | None:
        key = self._key(uuid)
        self._claimed.discard(key)
        return self._expected.pop(key, None)

    def claim(self, uuid: uuidlib.UUID | str) -> TapTarget | None:
        """The target of a connecting UUID; None if unknown or already connected."""
        key = self._key(uuid)
        if key in self._claimed:
            return None
        target = self._expected.get(key)
        if target is not None:
            self._claimed.add(key)
        return target

    def get(self, uuid: uuidlib.UUID | str) -> TapTarget | None:
        return self._expected.get(self._key(uuid))

    def __len__(self) -> int:
        return len(self._expected)

    def __contains__(self, uuid: object) -> bool:
        return self._key(uuid) in self._expected  # type: ignore[arg-type]


class StreamSink(Protocol):
    """Receives one tap stream's audio (called on the event loop; must not block)."""

    def audio(self, pcm: bytes, rate: int) -> None: ...

    def end(self, reason: str) -> None: ...


@dataclass(eq=False)
class TapStream:
    """One live tap connection."""

    uuid: str
    target: TapTarget
    peer: str
    opened_at: float  # time.time() when the UUID arrived
    first_audio_at: float | None = None
    frames: int = 0
    audio_bytes: int = 0
    rate: int = 0
    closed_reason: str | None = None
    killed: bool = False
    _writer: asyncio.StreamWriter | None = field(default=None, repr=False)

    @property
    def call_id(self) -> str:
        return self.target.call_id

    @property
    def speaker(self) -> str:
        return self.target.speaker

    @property
    def audio_seconds(self) -> float:
        return self.audio_bytes / (2 * self.rate) if self.rate else 0.0

    def close(self) -> None:
        """Drop this connection from our side (Asterisk then ends just the tap channel)."""
        if self._writer is not None and not self.killed:
            self.killed = True
            transport = self._writer.transport
            if transport is not None:
                transport.abort()


SinkFactory = Callable[[TapStream], "StreamSink | None"]


class TapServer:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9092,
        *,
        registry: TapRegistry | None = None,
        sink_factory: SinkFactory | None = None,
        max_payload: int = MAX_PAYLOAD,
        uuid_timeout: float = 5.0,
    ) -> None:
        self.host = host
        self.port = port
        self.registry = registry if registry is not None else TapRegistry()
        self.sink_factory = sink_factory
        self.max_payload = max_payload
        self.uuid_timeout = uuid_timeout
        self.streams: dict[str, TapStream] = {}
        self.rejected = 0  # connections closed for a bad or unknown UUID
        self.broken = 0  # connections closed for bad frames
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._rejections: dict[str, list] = {}  # address -> [last logged, not logged since]

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> int:
        """Listen; returns the port (useful with port=0)."""
        self._server = await asyncio.start_server(self._on_connection, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("audio tap server listening on %s:%s", self.host, self.port)
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for stream in list(self.streams.values()):
            stream.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def place(self, uuid: str, target: TapTarget) -> tuple[str, str] | None:
        """Be ready for the tap ``uuid``. Returns where Asterisk must connect for it
        and a description (None: here, at the address the TapManager was given).
        The speech workers' pool (cluster/speech_pool.py) places taps elsewhere."""
        self.registry.expect(uuid, target)
        return None

    @property
    def listening(self) -> bool:
        return self._server is not None and self._server.is_serving()

    # ------------------------------------------------------------ queries
    def find(self, call_id: str, speaker: str | None = None) -> list[TapStream]:
        return [
            s
            for s in self.streams.values()
            if s.call_id == call_id and (speaker is None or s.speaker == speaker)
        ]

    def kill(self, call_id: str, speaker: str | None = None) -> int:
        """Close the live taps of a call (or of one speaker) from our side."""
        streams = self.find(call_id, speaker)
        for s in streams:
            s.close()
        return len(streams)

    # ------------------------------------------------------------ connections
    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _peer(writer)
        try:
            first = await asyncio.wait_for(read_frame(reader, self.max_payload), self.uuid_timeout)
        except asyncio.TimeoutError:
            self._reject(peer, f"sent no UUID within {self.uuid_timeout:.0f} s")
            return
        except FrameError as exc:
            self._reject(peer, str(exc))
            return
        except (ConnectionError, OSError) as exc:
            log.debug("audio tap from %s: connection lost before its UUID (%s)", peer, exc)
            return
        if first is None:
            log.debug("audio tap from %s closed before sending its UUID", peer)
            return
        if first.kind != KIND_UUID:
            self._reject(peer, f"first frame is kind 0x{first.kind:02x}, not the UUID")
            return
        uuid = str(first.uuid)
        target = self.registry.claim(uuid)
        if target is None:
            self._reject(peer, "unknown or already connected UUID")
            log.debug("audio tap from %s: the refused UUID was %s", peer, uuid)
            return
        about_call(target.call_id)  # this connection's log lines are about the call
        stream = TapStream(
            uuid=uuid, target=target, peer=peer, opened_at=time.time(), _writer=writer
        )
        self.streams[uuid] = stream
        log.info(
            "audio tap connected: call %s %s (leg %s)", target.call_id, target.speaker, target.leg
        )
        log.debug("audio tap %s is call %s %s", uuid, target.call_id, target.speaker)
        sink = self._make_sink(stream)
        sink_ok = sink is not None
        _safe(target.on_connected, stream)
        reason = "closed by Asterisk"
        decoder = FrameDecoder(self.max_payload)
        try:
            # Whatever the socket has, at once: a loop turn per read, not per 20 ms frame
            # (100 taps cost a sixth of a core in per-frame reads alone).
            ended = False
            while not ended:
                data = await reader.read(READ_SIZE)
                if not data:
                    decoder.close()  # TruncatedFrame if it ended mid-frame
                    break
                audio: list[Frame] = []
                for frame in decoder.feed(data):
                    if frame.is_audio:
                        audio.append(frame)
                    elif frame.kind == KIND_HANGUP:
                        reason, ended = "hangup frame", True
                        break
                    elif frame.kind == KIND_ERROR:
                        reason = f"error frame from Asterisk ({frame.payload.hex() or 'no code'})"
                        ended = True
                        break
                    elif frame.kind == KIND_DTMF:
                        continue
                    else:
                        raise FrameError(f"unexpected frame kind 0x{frame.kind:02x} mid-stream")
                if audio:
                    sink_ok = self._deliver(stream, sink if sink_ok else None, audio)
                if decoder.error is not None:
                    raise decoder.error
        except FrameError as exc:
            self.broken += 1
            reason = f"bad frame: {exc}"
            log.warning(
                "audio tap of call %s %s from %s: %s: connection closed",
                target.call_id,
                target.speaker,
                peer,
                exc,
            )
        except (ConnectionError, OSError) as exc:
            reason = f"connection lost: {exc}"
        except asyncio.CancelledError:
            reason = "server closing"
            raise
        finally:
            if stream.killed and reason == "closed by Asterisk":
                reason = "closed by the service"
            stream.closed_reason = reason
            self.streams.pop(uuid, None)
            self.registry.forget(uuid)
            log.info(
                "audio tap ended: call %s %s, %.1f s of audio (%s)",
                target.call_id,
                target.speaker,
                stream.audio_seconds,
                reason,
            )
            if sink is not None:
                _safe(sink.end, reason)
            _safe(target.on_closed, stream, reason)

    def _reject(self, peer: str, why: str) -> None:
        """Count a refused connection; log it at most once a minute per address."""
        self.rejected += 1
        address = peer.rsplit(":", 1)[0]
        now = time.monotonic()
        seen = self._rejections.get(address)
        if seen is not None and now - seen[0] < REJECT_LOG_EVERY:
            seen[1] += 1
            return
        if len(self._rejections) > 10000:
            self._rejections.clear()
        more = f" ({seen[1]} more refused since the last line)" if seen and seen[1] else ""
        self._rejections[address] = [now, 0]
        log.warning("audio tap connection from %s refused: %s%s", address, why, more)

    def _make_sink(self, stream: TapStream) -> StreamSink | None:
        if self.sink_factory is None:
            return None
        try:
            return self.sink_factory(stream)
        except Exception:
            log.exception("audio tap: no consumer for call %s %s", stream.call_id, stream.speaker)
            return None

    def _deliver(self, stream: TapStream, sink: StreamSink | None, frames: list[Frame]) -> bool:
        """Count audio frames and hand them on in one piece; False once the consumer
        has failed."""
        if stream.first_audio_at is None:
            stream.first_audio_at = time.time()
        rate = frames[-1].rate
        pcm = (
            frames[0].payload
            if len(frames) == 1
            else b"".join(f.payload for f in frames if f.rate == rate)
        )
        stream.frames += len(frames)
        stream.audio_bytes += len(pcm)
        stream.rate = rate
        if sink is None:
            return False
        try:
            sink.audio(pcm, rate)
            return True
        except Exception:
            # A broken consumer loses its audio; the tap itself stays up.
            log.exception(
                "audio tap of call %s %s: consumer failed; its audio is dropped from now on",
                stream.call_id,
                stream.speaker,
            )
            return False


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


def _safe(fn: Callable | None, *args) -> None:
    if fn is None:
        return
    try:
        fn(*args)
    except Exception:
        log.exception("audio tap callback %r failed", fn)
