"""A throw-away NATS server for tests, from Debian's nats-server package.

Started on a free port of 127.0.0.1 with its own log; `restart()` stops it
and starts it again on the same port (the instances must reconnect).

    server = NatsServer.start_new()
    url = server.url
    server.restart()
    server.stop()
"""
from __future__ import annotations

import atexit
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class NatsUnavailable(Exception):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NatsServer:
    def __init__(self, binary: str, port: int, root: Path):
        self.binary, self.port, self.root = binary, port, root
        self.log = root / "nats.log"
        self.proc: subprocess.Popen | None = None

    @classmethod
    def start_new(cls) -> "NatsServer":
        binary = shutil.which("nats-server")
        if binary is None:
            raise NatsUnavailable("no nats-server (apt-get install nats-server)")
        server = cls(binary, _free_port(), Path(tempfile.mkdtemp(prefix="ivr-nats-")))
        atexit.register(server.stop)
        server.start()
        return server

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        out = open(self.log, "ab")
        self.proc = subprocess.Popen([self.binary, "-a", "127.0.0.1", "-p", str(self.port),
                                      "--no_advertise"], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise NatsUnavailable(f"nats-server exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    if s.recv(4).startswith(b"INFO"):
                        return
            except OSError:
                time.sleep(0.05)
        raise NatsUnavailable(f"nats-server did not listen on {self.port}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self, down_for: float = 0.0) -> None:
        self.kill()
        time.sleep(down_for)
        self.start()

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)
