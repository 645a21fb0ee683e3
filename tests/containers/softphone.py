"""baresip, a real SIP softphone (Debian package), driven as a tester would.

Its configuration lives in a folder of its own: one account, no sound card
(the microphone is a WAV file, the speaker a null device), and the UDP
console (module cons) through which we type its commands: ``/dial 5550100``,
``/sndcode 2`` (a key press: baresip sends it as an RFC 4733 telephone-event,
its default DTMF mode), ``/hangup``.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from ivr.testing.phones import free_port

CONFIG = """\
poll_method\t\tepoll
sip_listen\t\t127.0.0.1:{sip_port}
audio_player\t\taubridge,nil
audio_source\t\taufile,{audio}
audio_alert\t\taubridge,nil
module_path\t\t/usr/lib/baresip/modules
module\t\t\tg711.so
module\t\t\taufile.so
module\t\t\taubridge.so
module\t\t\tcons.so
module_app\t\taccount.so
module_app\t\tmenu.so
cons_listen\t\t127.0.0.1:{console_port}
"""


class Baresip:
    def __init__(self, folder: Path, server: str, user: str, password: str, audio: Path):
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.console = ("127.0.0.1", free_port("udp"))
        (folder / "config").write_text(CONFIG.format(
            sip_port=free_port("udp"), audio=audio, console_port=self.console[1]))
        (folder / "accounts").write_text(
            f"<sip:{user}@{server};transport=udp>;auth_pass={password}\n")
        self.log_path = folder / "baresip.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10) -> "Baresip":
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(["baresip", "-f", str(self.folder), "-n", "127.0.0.1"],
                                     stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_log("200 OK", timeout, "registration")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"baresip exited waiting for {what}:\n{self.log()[-2000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"baresip: no {what} within {timeout} s:\n"
                                     f"{self.log()[-2000:]}")
            time.sleep(0.1)

    def command(self, line: str) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(f"{line}\n".encode(), self.console)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)   # unregisters, then exits
        try:
            self.proc.wait(8)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
