"""The AudioSocket tap server with fake Asterisk clients on loopback."""
from __future__ import annotations

import asyncio
import logging
import uuid

import pytest

from ivr.tap.frames import KIND_SLIN, KIND_SLIN16, encode_frame, encode_uuid
from ivr.tap.server import TapRegistry, TapServer, TapStream, TapTarget

pytestmark = pytest.mark.asyncio


class Sink:
    def __init__(self, stream: TapStream) -> None:
        self.stream = stream
        self.chunks: list[tuple[bytes, int]] = []
        self.ended: str | None = None
        self.done = asyncio.Event()

    def audio(self, pcm: bytes, rate: int) -> None:
        self.chunks.append((pcm, rate))

    def end(self, reason: str) -> None:
        self.ended = reason
        self.done.set()

    @property
    def data(self) -> bytes:
        return b"".join(c for c, _ in self.chunks)


class Harness:
    def __init__(self, **kw) -> None:
        self.registry = TapRegistry()
        self.sinks: dict[str, Sink] = {}
        self.events: list[tuple[str, str, str]] = []
        self.server = TapServer("127.0.0.1", 0, registry=self.registry,
                                sink_factory=self._sink, **kw)

    def _sink(self, stream: TapStream) -> Sink:
        sink = Sink(stream)
        self.sinks[stream.uuid] = sink
        return sink

    def expect(self, call_id: str = "c1", speaker: str = "agent") -> uuid.UUID:
        u = uuid.uuid4()
        self.registry.expect(u, TapTarget(
            call_id, speaker, f"leg-{speaker}",
            on_connected=lambda s: self.events.append(("connected", s.uuid, "")),
            on_closed=lambda s, r: self.events.append(("closed", s.uuid, r))))
        return u

    async def connect(self):
        return await asyncio.open_connection("127.0.0.1", self.server.port)

    async def wait_end(self, u: uuid.UUID, timeout: float = 3.0) -> Sink:
        for _ in range(int(timeout / 0.01)):
            if str(u) in self.sinks:
                break
            await asyncio.sleep(0.01)
        sink = self.sinks[str(u)]
        await asyncio.wait_for(sink.done.wait(), timeout)
        return sink


async def eof(reader: asyncio.StreamReader, timeout: float = 3.0) -> bool:
    """True once the server has closed the connection."""
    try:
        data = await asyncio.wait_for(reader.read(100), timeout)
    except ConnectionResetError:
        return True
    return data == b""


def frame(i: int, n: int = 320) -> bytes:
    return encode_frame(KIND_SLIN, bytes([i % 256]) * n)


@pytest.fixture
async def h():
    h = Harness()
    await h.server.start()
    yield h
    await h.server.close()


async def test_good_stream_is_delivered_and_ends_at_eof(h: Harness):
    u = h.expect("call-1", "customer")
    reader, writer = await h.connect()
    writer.write(encode_uuid(u) + b"".join(frame(i) for i in range(5)))
    await writer.drain()
    await asyncio.sleep(0.05)
    assert h.server.find("call-1")[0].speaker == "customer"
    writer.close()
    sink = await h.wait_end(u)
    assert sink.data == b"".join(bytes([i]) * 320 for i in range(5))
    assert {r for _, r in sink.chunks} == {8000}
    assert sink.ended == "closed by Asterisk"
    assert sink.stream.call_id == "call-1" and sink.stream.target.leg == "leg-customer"
    assert sink.stream.frames == 5 and sink.stream.audio_seconds == pytest.approx(0.1)
    assert sink.stream.first_audio_at is not None
    assert [e[0] for e in h.events] == ["connected", "closed"]
    assert h.server.streams == {} and u not in h.registry


async def test_16khz_frames_carry_their_rate(h: Harness):
    u = h.expect()
    _, writer = await h.connect()
    writer.write(encode_uuid(u) + encode_frame(KIND_SLIN16, bytes(640)))
    writer.close()
    sink = await h.wait_end(u)
    assert sink.chunks == [(bytes(640), 16000)]


async def test_garbage_closes_only_that_connection(h: Harness, caplog):
    caplog.set_level(logging.WARNING, "ivr.tap.server")
    good, bad = h.expect("call-A", "agent"), h.expect("call-B", "agent")
    r1, w1 = await h.connect()
    w1.write(encode_uuid(good) + frame(1) + frame(2))
    r2, w2 = await h.connect()
    w2.write(encode_uuid(bad) + frame(9) + b"\x99\x00\x05hello")
    await w2.drain()
    assert await eof(r2)                              # the server hung up on the bad one
    bad_sink = await h.wait_end(bad)
    assert bad_sink.ended.startswith("bad frame: unknown frame kind 0x99")
    assert bad_sink.data == bytes([9]) * 320          # what came before the garbage counted
    # ... while the good stream goes on.
    w1.write(frame(3))
    await w1.drain()
    await asyncio.sleep(0.05)
    assert list(h.server.streams) == [str(good)]
    w1.close()
    good_sink = await h.wait_end(good)
    assert good_sink.data == b"".join(bytes([i]) * 320 for i in (1, 2, 3))
    assert good_sink.ended == "closed by Asterisk"
    assert h.server.broken == 1
    lines = [r.getMessage() for r in caplog.records]
    assert any("call-B" in m and "unknown frame kind 0x99" in m for m in lines), lines


async def test_oversized_frame_closes_the_connection(h: Harness):
    u = h.expect()
    r, w = await h.connect()
    w.write(encode_uuid(u) + b"\x10\x40\x00")           # claims 16 KB
    assert await eof(r)
    sink = await h.wait_end(u)
    assert "too long" in sink.ended


async def test_truncated_frame_at_eof_is_logged(h: Harness, caplog):
    caplog.set_level(logging.WARNING, "ivr.tap.server")
    u = h.expect()
    _, w = await h.connect()
    w.write(encode_uuid(u) + frame(1) + frame(2)[:100])
    w.close()
    sink = await h.wait_end(u)
    assert sink.data == bytes([1]) * 320
    assert sink.ended.startswith("bad frame: stream ended inside a frame")
    assert any("97 of 320 payload bytes" in r.getMessage() for r in caplog.records)


async def test_unknown_uuid_is_closed(h: Harness, caplog):
    caplog.set_level(logging.WARNING, "ivr.tap.server")
    h.expect()
    stranger = uuid.uuid4()
    r, w = await h.connect()
    w.write(encode_uuid(stranger) + frame(1))
    assert await eof(r)
    assert h.sinks == {} and h.server.rejected == 1
    assert any("unknown or already connected UUID" in m.getMessage() for m in caplog.records)


async def test_first_frame_must_be_the_uuid(h: Harness):
    h.expect()
    r, w = await h.connect()
    w.write(frame(1))
    assert await eof(r)
    assert h.sinks == {} and h.server.rejected == 1


async def test_silent_connection_is_dropped_after_the_uuid_timeout():
    h = Harness(uuid_timeout=0.2)
    await h.server.start()
    try:
        r, _ = await h.connect()
        assert await eof(r, 2.0)
        assert h.server.rejected == 1
    finally:
        await h.server.close()


async def test_a_uuid_connects_once(h: Harness):
    u = h.expect()
    r1, w1 = await h.connect()
    w1.write(encode_uuid(u))
    await asyncio.sleep(0.05)
    r2, w2 = await h.connect()
    w2.write(encode_uuid(u))
    assert await eof(r2)
    assert list(h.server.streams) == [str(u)]
    w1.close()
    await h.wait_end(u)


async def test_server_side_kill_ends_that_tap(h: Harness):
    a, b = h.expect("call-1", "agent"), h.expect("call-1", "customer")
    ra, wa = await h.connect()
    wa.write(encode_uuid(a) + frame(1))
    rb, wb = await h.connect()
    wb.write(encode_uuid(b) + frame(2))
    await asyncio.sleep(0.05)
    assert h.server.kill("call-1", "agent") == 1
    assert await eof(ra)
    sink = await h.wait_end(a)
    assert sink.ended == "closed by the service"
    assert ("closed", str(a), "closed by the service") in h.events
    assert [s.speaker for s in h.server.streams.values()] == ["customer"]
    wb.close()
    await h.wait_end(b)


async def test_a_failing_consumer_does_not_break_the_tap(h: Harness):
    u = h.expect()

    class Broken(Sink):
        def audio(self, pcm, rate):
            raise RuntimeError("boom")

    h.server.sink_factory = lambda s: h.sinks.setdefault(s.uuid, Broken(s))
    r, w = await h.connect()
    w.write(encode_uuid(u) + frame(1) + frame(2))
    await asyncio.sleep(0.05)
    assert str(u) in h.server.streams             # still connected
    assert h.server.streams[str(u)].frames == 2
    w.close()
    sink = await h.wait_end(u)
    assert sink.ended == "closed by Asterisk"


async def test_close_ends_every_stream():
    h = Harness()
    await h.server.start()
    u = h.expect()
    r, w = await h.connect()
    w.write(encode_uuid(u) + frame(1))
    await asyncio.sleep(0.05)
    await h.server.close()
    assert await eof(r)
    assert h.sinks[str(u)].ended is not None
    assert not h.server.listening
