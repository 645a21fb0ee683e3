"""Recordings of real AMI traffic: test data for the tracker and benchmark input.

A recording is the AMI wire text itself (messages separated by a blank line),
each message preceded by one ``Received: <unix time>`` header so the replay
keeps the original timing. Record with ``python -m ivr.ami.capture``.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from pathlib import Path
from typing import Iterator

from .message import AmiEvent


def read(path: Path) -> list[AmiEvent]:
    return list(iter_events(path.read_text(encoding="utf-8")))


def iter_events(text: str) -> Iterator[AmiEvent]:
    for block in text.replace("\r\n", "\n").split("\n\n"):
        received = 0.0
        lines = []
        for line in block.splitlines():
            if line.startswith("Received: "):
                received = float(line[len("Received: ") :])
            else:
                lines.append(line)
        ev = AmiEvent.parse("\n".join(lines), received)
        if ev is not None:
            yield ev


def record(host: str, port: int, user: str, secret: str, out, seconds: float) -> int:
    """Log in and write every event for ``seconds``; returns the count."""
    count = 0
    deadline = time.monotonic() + seconds
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(f"Action: Login\r\nUsername: {user}\r\nSecret: {secret}\r\n\r\n".encode())
        buf = ""
        while time.monotonic() < deadline:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            now = time.time()
            buf += chunk.decode("utf-8", "replace")
            *blocks, buf = buf.split("\r\n\r\n")
            for block in blocks:
                if block.startswith("Event: "):
                    out.write(f"Received: {now:.6f}\n{block.replace(chr(13), '')}\n\n")
                    count += 1
            out.flush()
    return count


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="record AMI events to a file")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5038)
    p.add_argument("--user", default="ivr")
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("out")
    a = p.parse_args(argv)
    secret = os.environ.get("IVR_AMI_SECRET", "")
    with open(a.out, "w", encoding="utf-8") as out:
        n = record(a.host, a.port, a.user, secret, out, a.seconds)
    print(f"{n} events -> {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
