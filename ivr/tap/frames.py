"""AudioSocket framing: what Asterisk's AudioSocket channel sends us.

Every frame is ``kind`` (1 byte), ``length`` (2 bytes, big-endian), then
``length`` bytes of payload:

====  ==========================================================
0x00  hangup (no payload; Asterisk usually just closes the socket)
0x01  the stream's UUID, 16 bytes; always the first frame
0x03  a DTMF digit, 1 byte
0x10  signed linear 16-bit little-endian mono, 8 kHz (320 bytes = 20 ms)
0x11  ... 12 kHz, 0x12 16 kHz, 0x13 24 kHz, 0x14 32 kHz, 0x15 44.1 kHz,
      0x16 48 kHz, 0x17 96 kHz, 0x18 192 kHz
0xff  error (optional 1-byte code)
====  ==========================================================

Parsing is strict: an unknown kind, a payload longer than ``max_payload``,
a payload of the wrong size for its kind, or a stream that ends inside a
frame raises :class:`FrameError`, and the server closes that one connection.
"""

from __future__ import annotations

import asyncio
import struct
import uuid as uuidlib
from dataclasses import dataclass

KIND_HANGUP = 0x00
KIND_UUID = 0x01
KIND_DTMF = 0x03
KIND_SLIN = 0x10  # 8 kHz
KIND_SLIN12 = 0x11
KIND_SLIN16 = 0x12
KIND_SLIN24 = 0x13
KIND_SLIN32 = 0x14
KIND_SLIN44 = 0x15
KIND_SLIN48 = 0x16
KIND_SLIN96 = 0x17
KIND_SLIN192 = 0x18
KIND_ERROR = 0xFF

#: Audio kinds and their sample rates (Hz); all signed 16-bit little-endian mono.
AUDIO_RATES: dict[int, int] = {
    KIND_SLIN: 8000,
    KIND_SLIN12: 12000,
    KIND_SLIN16: 16000,
    KIND_SLIN24: 24000,
    KIND_SLIN32: 32000,
    KIND_SLIN44: 44100,
    KIND_SLIN48: 48000,
    KIND_SLIN96: 96000,
    KIND_SLIN192: 192000,
}
KNOWN_KINDS = frozenset({KIND_HANGUP, KIND_UUID, KIND_DTMF, KIND_ERROR, *AUDIO_RATES})

HEADER = struct.Struct(">BH")
#: Largest payload we accept. Asterisk sends 20 ms per frame: 320 bytes at
#: 8 kHz, 640 at 16 kHz; 4096 leaves room for 48 kHz and coalesced frames.
MAX_PAYLOAD = 4096


class FrameError(Exception):
    """The peer sent something that is not a valid AudioSocket stream."""


class TruncatedFrame(FrameError):
    """The stream ended inside a frame (header or payload cut short)."""


@dataclass(frozen=True, slots=True)
class Frame:
    kind: int
    payload: bytes = b""

    @property
    def is_audio(self) -> bool:
        return self.kind in AUDIO_RATES

    @property
    def rate(self) -> int:
        """Sample rate of an audio frame (0 for other kinds)."""
        return AUDIO_RATES.get(self.kind, 0)

    @property
    def uuid(self) -> uuidlib.UUID:
        if self.kind != KIND_UUID:
            raise ValueError(f"frame kind 0x{self.kind:02x} carries no UUID")
        return uuidlib.UUID(bytes=self.payload)


def check_frame(kind: int, length: int, max_payload: int = MAX_PAYLOAD) -> None:
    """Validate a header before its payload is read."""
    if kind not in KNOWN_KINDS:
        raise FrameError(f"unknown frame kind 0x{kind:02x} (length {length})")
    if length > max_payload:
        raise FrameError(f"frame kind 0x{kind:02x} too long: {length} bytes > {max_payload}")
    if kind == KIND_UUID and length != 16:
        raise FrameError(f"UUID frame of {length} bytes, expected 16")
    if kind == KIND_HANGUP and length != 0:
        raise FrameError(f"hangup frame with a {length}-byte payload")
    if kind == KIND_DTMF and length != 1:
        raise FrameError(f"DTMF frame of {length} bytes, expected 1")
    if kind in AUDIO_RATES and length % 2:
        raise FrameError(f"audio frame of odd length {length} (16-bit samples)")


def encode_frame(kind: int, payload: bytes = b"") -> bytes:
    """One frame as bytes (for tests, and for anything that talks AudioSocket)."""
    if len(payload) > 0xFFFF:
        raise ValueError("payload longer than 65535 bytes")
    return HEADER.pack(kind, len(payload)) + payload


def encode_uuid(value: uuidlib.UUID | str) -> bytes:
    if not isinstance(value, uuidlib.UUID):
        value = uuidlib.UUID(str(value))
    return encode_frame(KIND_UUID, value.bytes)


class FrameDecoder:
    """Incremental decoder: feed bytes as they come, get whole frames back."""

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self.max_payload = max_payload
        self._buf = bytearray()
        self.error: FrameError | None = None

    def feed(self, data: bytes) -> list[Frame]:
        """Whole frames in the bytes so far; FrameError on a bad header. Frames that came
        before the garbage in the same bytes are returned first (they count), the error
        is then in ``error`` and raised by the next feed."""
        if self.error is not None:
            raise self.error
        buf = self._buf
        buf += data
        frames: list[Frame] = []
        at, size = 0, len(buf)
        while size - at >= HEADER.size:
            kind, length = HEADER.unpack_from(buf, at)
            try:
                check_frame(kind, length, self.max_payload)
            except FrameError as exc:
                if not frames:
                    raise
                self.error = exc
                break
            end = at + HEADER.size + length
            if size < end:
                break
            frames.append(Frame(kind, bytes(buf[at + HEADER.size : end])))
            at = end
        del buf[:at]  # once per read, not once per frame
        return frames

    def close(self) -> None:
        """The stream ended: raise TruncatedFrame if a frame was left half-read."""
        if self._buf:
            n = len(self._buf)
            if n >= HEADER.size:
                kind, length = HEADER.unpack_from(self._buf)
                self._buf.clear()
                raise TruncatedFrame(
                    f"stream ended inside a frame of kind 0x{kind:02x}: "
                    f"{n - HEADER.size} of {length} payload bytes"
                )
            self._buf.clear()
            raise TruncatedFrame(f"stream ended inside a frame header ({n} of {HEADER.size} bytes)")

    @property
    def pending(self) -> int:
        return len(self._buf)


async def read_frame(reader: asyncio.StreamReader, max_payload: int = MAX_PAYLOAD) -> Frame | None:
    """The next frame, or None at a clean end of stream (EOF between frames).

    Raises FrameError on an invalid header, TruncatedFrame when the stream
    ends inside a frame."""
    try:
        header = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise TruncatedFrame(
            f"stream ended inside a frame header ({len(exc.partial)} of {HEADER.size} bytes)"
        ) from None
    kind, length = HEADER.unpack(header)
    check_frame(kind, length, max_payload)
    if not length:
        return Frame(kind)
    try:
        payload = await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise TruncatedFrame(
            f"stream ended inside a frame of kind 0x{kind:02x}: "
            f"{len(exc.partial)} of {length} payload bytes"
        ) from None
    return Frame(kind, payload)
