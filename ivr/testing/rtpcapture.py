"""What a test phone hears: the RTP the PBX sends to it, captured on loopback.

SIPp plays audio but throws away what it receives. To check who hears whom
(a supervisor listening, whispering, barging in), ``RtpCapture`` reads every
UDP packet on the loopback interface with a raw socket (root only, as the
sandbox PBX itself) and keeps the RTP payloads sent to the addresses it is
told to watch; ``tone_level`` says how strongly a frequency is in them. Each
party of a test call plays a steady tone of its own (``phones.tone_ulaw``), so
"the agent hears the supervisor" is "the supervisor's tone is in the audio
sent to the agent's phone".
"""

from __future__ import annotations

import math
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4  # loopback shows each packet twice: keep the copy as received


def _ulaw_table() -> list[int]:
    out = []
    for byte in range(256):
        u = ~byte & 0xFF
        sign, exponent, mantissa = u & 0x80, (u >> 4) & 0x07, u & 0x0F
        sample = ((mantissa << 3) + 0x84) << exponent
        sample -= 0x84
        out.append(-sample if sign else sample)
    return out


ULAW = _ulaw_table()


def ulaw_to_samples(data: bytes) -> list[int]:
    return [ULAW[b] for b in data]


def tone_level(samples: list[int], frequency: float, rate: int = 8000) -> float:
    """Amplitude (in 16-bit sample units) of ``frequency`` in ``samples``: a
    Goertzel filter over Hann-windowed blocks of 100 ms, median over the blocks
    (a steady tone scores its amplitude, a tone that is not there about 0)."""
    block = rate // 10
    levels = []
    k = 2 * math.cos(2 * math.pi * frequency / rate)
    window = [0.5 - 0.5 * math.cos(2 * math.pi * i / (block - 1)) for i in range(block)]
    for start in range(0, len(samples) - block + 1, block):
        s1 = s2 = 0.0
        for i in range(block):
            s0 = samples[start + i] * window[i] + k * s1 - s2
            s2, s1 = s1, s0
        power = s1 * s1 + s2 * s2 - k * s1 * s2
        # Hann window: coherent gain 0.5, so amplitude = 2 * |X| / (0.5 N).
        levels.append(4 * math.sqrt(max(power, 0.0)) / block)
    if not levels:
        return 0.0
    levels.sort()
    return levels[len(levels) // 2]


@dataclass
class _Stream:
    packets: list[tuple[float, bytes]] = field(default_factory=list)  # (time, u-law payload)


class RtpCapture:
    """RTP sent to watched (ip, port) addresses on loopback, with arrival times."""

    def __init__(self) -> None:
        self._watch: dict[tuple[str, int], _Stream] = {}
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def watch(self, ip: str, port: int) -> None:
        with self._lock:
            self._watch.setdefault((ip, port), _Stream())

    def start(self) -> "RtpCapture":
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        sock.bind(("lo", 0))
        sock.settimeout(0.2)
        self._sock = sock
        self._thread = threading.Thread(target=self._run, name="rtp-capture", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        if self._sock is not None:
            self._sock.close()

    def __enter__(self) -> "RtpCapture":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                frame, addr = self._sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            if addr[2] == PACKET_OUTGOING or len(frame) < 14 + 20 + 8 + 12:
                continue
            if struct.unpack("!H", frame[12:14])[0] != 0x0800:  # IPv4 only
                continue
            ip = frame[14:]
            ihl = (ip[0] & 0x0F) * 4
            if ip[9] != 17:  # UDP
                continue
            dst = socket.inet_ntoa(ip[16:20])
            udp = ip[ihl:]
            port = struct.unpack("!H", udp[2:4])[0]
            stream = self._watch.get((dst, port))
            if stream is None:
                continue
            rtp = udp[8:]
            if len(rtp) < 12 or rtp[0] >> 6 != 2:
                continue
            payload_type = rtp[1] & 0x7F
            if payload_type != 0:  # PCMU only
                continue
            header = 12 + 4 * (rtp[0] & 0x0F)
            with self._lock:
                stream.packets.append((time.time(), bytes(rtp[header:])))

    def audio(self, ip: str, port: int, since: float = 0.0, until: float = float("inf")) -> bytes:
        """The u-law audio sent to (ip, port) between two times."""
        with self._lock:
            stream = self._watch.get((ip, port))
            packets = list(stream.packets) if stream else []
        return b"".join(p for t, p in packets if since <= t < until)

    def level(
        self, ip: str, port: int, frequency: float, since: float = 0.0, until: float = float("inf")
    ) -> float:
        return tone_level(ulaw_to_samples(self.audio(ip, port, since, until)), frequency)
