"""AudioSocket frame parsing: valid streams, garbage and truncation."""
from __future__ import annotations

import asyncio
import uuid

import pytest

from ivr.tap.frames import (KIND_DTMF, KIND_ERROR, KIND_HANGUP, KIND_SLIN, KIND_SLIN16, KIND_UUID,
                            MAX_PAYLOAD, Frame, FrameDecoder, FrameError, TruncatedFrame,
                            encode_frame, encode_uuid, read_frame)

U = uuid.UUID("0f5c3f3e-9a52-4f53-8d3c-2a4a1f0e6b11")
AUDIO = bytes(range(256)) + bytes(64)          # 320 bytes = 20 ms at 8 kHz


def stream_bytes() -> bytes:
    return (encode_uuid(U) + encode_frame(KIND_SLIN, AUDIO) + encode_frame(KIND_SLIN16, AUDIO * 2)
            + encode_frame(KIND_DTMF, b"5") + encode_frame(KIND_HANGUP))


def test_header_is_kind_then_big_endian_length():
    assert encode_frame(KIND_SLIN, b"\x01\x02") == b"\x10\x00\x02\x01\x02"
    assert encode_frame(KIND_SLIN, bytes(320))[:3] == b"\x10\x01\x40"
    assert encode_uuid(U) == b"\x01\x00\x10" + U.bytes


def test_decoder_yields_every_frame_whatever_the_chunking():
    data = stream_bytes()
    expected = [Frame(KIND_UUID, U.bytes), Frame(KIND_SLIN, AUDIO), Frame(KIND_SLIN16, AUDIO * 2),
                Frame(KIND_DTMF, b"5"), Frame(KIND_HANGUP, b"")]
    assert FrameDecoder().feed(data) == expected
    for size in (1, 2, 3, 7, 320, 1000):
        dec = FrameDecoder()
        frames = []
        for i in range(0, len(data), size):
            frames += dec.feed(data[i:i + size])
        dec.close()
        assert frames == expected, size
    assert expected[0].uuid == U
    assert expected[1].is_audio and expected[1].rate == 8000 and expected[2].rate == 16000
    assert not expected[0].is_audio and expected[0].rate == 0


@pytest.mark.parametrize("data, message", [
    (b"\x42\x00\x00", "unknown frame kind 0x42"),
    (b"GET / HTTP/1.1\r\n", "unknown frame kind 0x47"),
    (encode_frame(KIND_SLIN, bytes(MAX_PAYLOAD + 2)), "too long"),
    (b"\x10\xff\xff", "too long"),
    (encode_frame(KIND_UUID, bytes(15)), "expected 16"),
    (encode_frame(KIND_SLIN, bytes(321)), "odd length"),
    (encode_frame(KIND_HANGUP, b"x"), "hangup frame with"),
    (encode_frame(KIND_DTMF, b"12"), "DTMF frame of 2 bytes"),
])
def test_garbage_is_rejected_at_the_header(data, message):
    with pytest.raises(FrameError, match=message):
        FrameDecoder().feed(data)


def test_oversized_header_rejected_before_waiting_for_its_payload():
    # Only the 3-byte header has arrived: no need to wait for 64 KB of payload.
    with pytest.raises(FrameError, match="too long"):
        FrameDecoder().feed(b"\x10\xf0\x00")


def test_custom_payload_limit():
    dec = FrameDecoder(max_payload=320)
    assert dec.feed(encode_frame(KIND_SLIN, bytes(320)))
    with pytest.raises(FrameError):
        dec.feed(encode_frame(KIND_SLIN, bytes(322)))


@pytest.mark.parametrize("cut", [1, 2, 3, 10, 3 + 16 + 3 + 100])
def test_truncation_is_an_error_at_close(cut):
    data = encode_uuid(U) + encode_frame(KIND_SLIN, AUDIO)
    dec = FrameDecoder()
    dec.feed(data[:cut])
    assert dec.pending
    with pytest.raises(TruncatedFrame):
        dec.close()


def test_clean_end_between_frames_is_no_error():
    dec = FrameDecoder()
    dec.feed(encode_uuid(U))
    dec.close()
    assert dec.pending == 0


def _reader(data: bytes) -> asyncio.StreamReader:
    r = asyncio.StreamReader()
    r.feed_data(data)
    r.feed_eof()
    return r


async def test_read_frame_reads_a_stream_then_none_at_eof():
    r = _reader(stream_bytes())
    kinds = []
    while (f := await read_frame(r)) is not None:
        kinds.append(f.kind)
    assert kinds == [KIND_UUID, KIND_SLIN, KIND_SLIN16, KIND_DTMF, KIND_HANGUP]


@pytest.mark.parametrize("data, message", [
    (b"\x10", "inside a frame header"),
    (b"\x10\x01", "inside a frame header"),
    (b"\x10\x01\x40" + bytes(100), "100 of 320 payload bytes"),
])
async def test_read_frame_truncated(data, message):
    with pytest.raises(TruncatedFrame, match=message):
        await read_frame(_reader(data))


async def test_read_frame_garbage():
    with pytest.raises(FrameError, match="unknown frame kind"):
        await read_frame(_reader(b"\x77\x00\x00"))


def test_error_frame_may_carry_a_code():
    assert FrameDecoder().feed(encode_frame(KIND_ERROR, b"\x01")) == [Frame(KIND_ERROR, b"\x01")]
