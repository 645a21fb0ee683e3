"""`ivr pbx up|down|status`: Asterisk 22 from Debian sid, in a chroot on this host.

Debian 12 has no Asterisk 22, and sid packages must never be installed on the
host (they would replace libc). So we debootstrap a minimal sid root once
(cached), and run each PBX *instance* inside it with its own config, run, log
and spool folders under /srv/ivr/<instance>. Two instances (say the demo and a
test run) can run side by side on different ports.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import wave
from dataclasses import dataclass
from pathlib import Path

from ..config import Settings, require_secret
from ..web.policy import is_loopback
from .asterisk_conf import parse_sections, set_in_section_with, set_option, weak_secret

log = logging.getLogger(__name__)

# Installed into every instance, taken as written from the admins' dialplans/.
CONF_FILES = (
    "modules.conf",
    "pjsip.conf",
    "extensions.conf",
    "queues.conf",
    "manager.conf",
    "rtp.conf",
    "logger.conf",
    "musiconhold.conf",
    "features.conf",
    "indications.conf",
    "cdr.conf",
    "cel.conf",
)
READY_MARK = ".ivr-sandbox-ready"


class SandboxError(Exception):
    """Something the person running `ivr pbx` must fix; the message says what."""


@dataclass(frozen=True)
class Sandbox:
    root: Path
    instance: str
    dialplans: Path
    sip_host: str
    sip_port: int
    ami_host: str
    ami_port: int
    ami_user: str
    ami_secret: str
    trunk_peer: str
    system_name: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> "Sandbox":
        return cls(
            root=Path(settings.pbx.root),
            instance=settings.pbx.instance,
            dialplans=settings.path(settings.pbx.dialplans),
            sip_host=settings.pbx.sip_host,
            sip_port=settings.pbx.sip_port,
            ami_host=settings.ami.host,
            ami_port=settings.ami.port,
            ami_user=settings.ami.username,
            ami_secret=require_secret(settings),
            trunk_peer=settings.pbx.trunk_peer,
            system_name=settings.pbx.system_name,
        )

    # ------------------------------------------------------------ paths
    @property
    def inst_dir(self) -> str:
        """The instance folder as Asterisk sees it, inside the chroot."""
        return f"/srv/ivr/{self.instance}"

    @property
    def host_dir(self) -> Path:
        return self.root / self.inst_dir.lstrip("/")

    @property
    def conf_path(self) -> str:
        return f"{self.inst_dir}/etc/asterisk.conf"

    @property
    def pidfile(self) -> Path:
        return self.host_dir / "asterisk.pid"

    @property
    def console_log(self) -> Path:
        return self.host_dir / "log" / "console.log"

    # ------------------------------------------------------------ the sid root
    def ensure_root(self) -> None:
        """Build the cached sid root with Asterisk, once (about 45 s)."""
        build_root(self.root)

    # ------------------------------------------------------------ install
    def render(self, name: str) -> str:
        """One admin config file with the sandbox's ports and secret applied."""
        text = (self.dialplans / name).read_text(encoding="utf-8")
        if name == "pjsip.conf":
            text = set_option(text, "transport-udp", "bind", f"{self.sip_host}:{self.sip_port}")
            if not is_loopback(self.sip_host):
                text = self._own_sip_passwords(text)
        elif name == "manager.conf":
            text = set_option(text, "general", "port", str(self.ami_port))
            text = set_option(text, "general", "bindaddr", self.ami_host)
            text = set_option(text, self.ami_user, "secret", self.ami_secret)
        elif name == "extensions.conf":
            text = set_option(text, "globals", "TRUNK_PEER", self.trunk_peer)
        return text

    def _own_sip_passwords(self, text: str) -> str:
        """SIP reachable from other machines: the sample passwords of dialplans/
        (agent1001 ...) are never used; each comes from SIP_PASSWORD_<user>."""
        missing = []
        for s in parse_sections(text, "pjsip.conf"):
            if s.get("password") is None:
                continue
            value = os.environ.get(f"SIP_PASSWORD_{s.name}", "")
            if not value or (why := weak_secret(value)):
                missing.append(f"SIP_PASSWORD_{s.name}" + (f" ({why})" if value else ""))
                continue
            text = set_in_section_with(text, s.name, "password", value)
        if missing:
            raise SandboxError(
                f"SIP listens on {self.sip_host}, reachable from other machines, so the sample "
                f"passwords of pjsip.conf are not used: set {', '.join(missing)} in the "
                "environment (at least 12 characters each, e.g. $(openssl rand -hex 16))"
            )
        return text

    def install(self) -> None:
        """Copy dialplans/ into the instance and make its folders."""
        missing = [n for n in CONF_FILES if not (self.dialplans / n).exists()]
        if missing:
            raise SandboxError(f"{self.dialplans}: missing {', '.join(missing)}")
        etc = self.host_dir / "etc"
        for sub in ("etc", "run", "log", "spool", "lib", "data"):
            (self.host_dir / sub).mkdir(parents=True, exist_ok=True)
        for name in CONF_FILES:
            (etc / name).write_text(self.render(name), encoding="utf-8")
        (etc / "manager.conf").chmod(0o640)
        (etc / "asterisk.conf").write_text(self._asterisk_conf(), encoding="utf-8")
        shutil.copy("/etc/hosts", self.root / "etc/hosts")  # else every call logs failed lookups
        self.install_prompts()
        uid, gid = self._asterisk_ids()
        for path in [self.host_dir, *self.host_dir.rglob("*")]:
            os.chown(path, uid, gid, follow_symlinks=False)

    def _asterisk_conf(self) -> str:
        d = self.inst_dir
        return (
            "; written by `ivr pbx up` for sandbox instance " + self.instance + "\n"
            "[directories]\n"
            f"astetcdir => {d}/etc\n"
            f"astrundir => {d}/run\n"
            f"astlogdir => {d}/log\n"
            f"astspooldir => {d}/spool\n"
            f"astdbdir => {d}/lib\n"
            "astvarlibdir => /var/lib/asterisk\n"
            "astdatadir => /usr/share/asterisk\n"
            "astmoddir => /usr/lib/x86_64-linux-gnu/asterisk/modules\n"
            "[options]\n"
            "verbose = 2\n"
            "maxcalls = 500\n" + (f"systemname = {self.system_name}\n" if self.system_name else "")
        )

    def install_prompts(self) -> None:
        """IVR prompts: NAME.wav as given, else NAME.txt spoken by espeak-ng."""
        src = self.dialplans / "prompts"
        dst = self.in_root("/usr/share/asterisk/sounds/en") / "ivr"
        dst.mkdir(parents=True, exist_ok=True)
        (self.root / "usr/share/asterisk/moh").mkdir(parents=True, exist_ok=True)
        if not src.is_dir():
            return
        for txt in sorted(src.glob("*.txt")):
            out = dst / (txt.stem + ".wav")
            given = txt.with_suffix(".wav")
            if given.exists():
                shutil.copy(given, out)
                continue
            if out.exists() and out.stat().st_mtime >= txt.stat().st_mtime:
                continue
            speak_to_wav(txt.read_text(encoding="utf-8").strip(), out)

    def in_root(self, path: str) -> Path:
        """A path inside the chroot as seen from the host, following the root's
        own (absolute) symlinks, e.g. sounds/en -> /etc/alternatives/..."""
        current = Path("/")
        for _ in range(40):
            parts = Path(path).parts[1:]
            current = Path("/")
            for i, part in enumerate(parts):
                host = self.root / (current / part).relative_to("/")
                if host.is_symlink():
                    target = Path(os.readlink(host))
                    target = target if target.is_absolute() else current / target
                    path = str(Path(os.path.normpath(target)).joinpath(*parts[i + 1 :]))
                    break
                current = current / part
            else:
                return self.root / current.relative_to("/")
        raise SandboxError(f"symlink loop under {self.root}{path}")

    def _asterisk_ids(self) -> tuple[int, int]:
        for line in (self.root / "etc/passwd").read_text().splitlines():
            parts = line.split(":")
            if parts[0] == "asterisk":
                return int(parts[2]), int(parts[3])
        raise SandboxError(f"{self.root}: no asterisk user in the sandbox (broken root?)")

    # ------------------------------------------------------------ lifecycle
    def pid(self) -> int | None:
        """PID of this instance's Asterisk if it runs, else None (stale files ignored)."""
        try:
            pid = int(self.pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        if self.conf_path.encode() not in cmdline:
            return None
        return pid

    @property
    def fingerprint_file(self) -> Path:
        return self.host_dir / "running-config.sha256"

    def fingerprint(self) -> str:
        """A hash of the installed configuration (ports, secret and dialplans included)."""
        h = hashlib.sha256()
        for path in sorted((self.host_dir / "etc").glob("*.conf")):
            h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        return h.hexdigest()

    def mark_running_config(self) -> None:
        """Record that the running Asterisk uses the installed files (after a start or
        an `ivr pbx apply`)."""
        self.fingerprint_file.write_text(self.fingerprint() + "\n")

    def _runs_as_installed(self) -> bool:
        try:
            recorded = self.fingerprint_file.read_text().strip()
        except OSError:
            return False
        if recorded != self.fingerprint():
            return False
        try:
            wait_fully_booted(self.ami_host, self.ami_port, self.ami_user, self.ami_secret, 3)
        except SandboxError:
            return False
        return True

    def start(self, timeout: float = 30.0) -> int:
        """Start Asterisk in its own session and wait until AMI says FullyBooted.

        An instance that already runs is kept if it runs the installed files (a
        second `ivr pbx up`); one that runs other settings (left over by a demo or
        test that was killed, with another AMI secret or ports) is restarted."""
        _require_root()
        if (pid := self.pid()) is not None:
            if self._runs_as_installed():
                log.info("sandbox %s already runs (pid %d)", self.instance, pid)
                return pid
            log.warning(
                "sandbox %s runs (pid %d) with other settings, left over by a run "
                "that did not stop it: restarting it",
                self.instance,
                pid,
            )
            self.stop()
            # Its last threads may still hold the ports for a moment after it is gone.
            _wait_free_port(self.ami_host, self.ami_port, socket.SOCK_STREAM, 10)
            _wait_free_port(self.sip_host, self.sip_port, socket.SOCK_DGRAM, 10)
        _require_free_port(self.ami_host, self.ami_port, socket.SOCK_STREAM, "AMI")
        _require_free_port(self.sip_host, self.sip_port, socket.SOCK_DGRAM, "SIP")
        self.console_log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.console_log, "ab") as out:
            # chroot execs Asterisk, so this PID is Asterisk's own.
            proc = subprocess.Popen(
                [
                    "chroot",
                    str(self.root),
                    "/usr/sbin/asterisk",
                    "-C",
                    self.conf_path,
                    "-f",
                    "-n",
                    "-U",
                    "asterisk",
                    "-G",
                    "asterisk",
                    "-vv",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pidfile.write_text(f"{proc.pid}\n")
        try:
            wait_fully_booted(
                self.ami_host,
                self.ami_port,
                self.ami_user,
                self.ami_secret,
                timeout,
                alive=lambda: proc.poll() is None,
            )
        except SandboxError:
            if proc.poll() is None:
                proc.terminate()
            raise SandboxError(
                f"Asterisk did not boot; see {self.console_log} and "
                f"{self.host_dir / 'log/messages'}"
            ) from None
        self.mark_running_config()
        return proc.pid

    def stop(self, timeout: float = 10.0) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not Path(f"/proc/{pid}").exists() or _is_zombie(pid):
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while (
                Path(f"/proc/{pid}").exists()
                and not _is_zombie(pid)
                and time.monotonic() < deadline
            ):
                time.sleep(0.05)
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        self.pidfile.unlink(missing_ok=True)
        self.fingerprint_file.unlink(missing_ok=True)
        return True

    def cli(self, command: str, timeout: float = 15.0) -> str:
        """Run an Asterisk CLI command on this instance and return its output."""
        proc = subprocess.run(
            ["chroot", str(self.root), "/usr/sbin/asterisk", "-C", self.conf_path, "-rx", command],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return proc.stdout + proc.stderr


def build_root(root: str | Path) -> Path:
    """Make the cached Debian sid root with Asterisk 22, once (about 45 s)."""
    root = Path(root)
    if (root / READY_MARK).exists():
        return root
    _require_root()
    if shutil.which("debootstrap") is None:
        raise SandboxError("debootstrap is not installed: apt-get install -y debootstrap")
    tmp = root.with_name(root.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    log.info("building the Asterisk sandbox in %s (debootstrap sid, about a minute)", root)
    proc = subprocess.run(
        ["debootstrap", "--variant=minbase", "--include=asterisk", "sid", str(tmp)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if proc.returncode != 0 or not (tmp / "usr/sbin/asterisk").exists():
        tail = "\n".join(proc.stdout.splitlines()[-15:])
        raise SandboxError(f"debootstrap failed (exit {proc.returncode}); last lines:\n{tail}")
    (tmp / READY_MARK).write_text("debootstrap --variant=minbase --include=asterisk sid\n")
    if root.exists():
        shutil.rmtree(root)
    tmp.rename(root)
    return root


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def _require_root() -> None:
    if os.geteuid() != 0:
        raise SandboxError("the sandbox PBX needs root (debootstrap and chroot): run as root")


def _wait_free_port(host: str, port: int, kind: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _require_free_port(host, port, kind, "")
            return
        except SandboxError:
            time.sleep(0.1)


def _require_free_port(host: str, port: int, kind: int, what: str) -> None:
    with socket.socket(socket.AF_INET, kind) as s:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise SandboxError(
                f"{what} port {host}:{port} is taken ({exc.strerror}); "
                f"stop what uses it or pick another port in the config"
            ) from None


def speak_to_wav(text: str, out: Path) -> None:
    """Text to an 8 kHz mono 16-bit WAV, as Asterisk plays it. Silence without espeak-ng/sox."""
    if shutil.which("espeak-ng") and shutil.which("sox"):
        raw = out.with_suffix(".espeak.wav")
        subprocess.run(
            ["espeak-ng", "-s", "150", "-w", str(raw), text], check=True, capture_output=True
        )
        subprocess.run(
            ["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(out)],
            check=True,
            capture_output=True,
        )
        raw.unlink()
        return
    log.warning("espeak-ng or sox missing: prompt %s will be silence", out.name)
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 8000)


def wait_fully_booted(
    host: str, port: int, user: str, secret: str, timeout: float, alive=lambda: True
) -> None:
    """Log into AMI and wait for FullyBooted (login is accepted ~50 ms earlier)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise SandboxError("Asterisk exited during startup")
        try:
            with socket.create_connection((host, port), timeout=1.0) as s:
                s.settimeout(max(0.1, deadline - time.monotonic()))
                s.sendall(f"Action: Login\r\nUsername: {user}\r\nSecret: {secret}\r\n\r\n".encode())
                buf = b""
                while b"Event: FullyBooted" not in buf:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    buf += chunk
                    if b"Response: Error" in buf:
                        raise SandboxError(
                            f"AMI on {host}:{port} refused user {user!r}: "
                            "check the password (IVR_AMI_SECRET)"
                        )
                else:
                    s.sendall(b"Action: Logoff\r\n\r\n")
                    return
        except (OSError, socket.timeout):
            pass
        time.sleep(0.05)
    raise SandboxError(f"AMI on {host}:{port} did not report FullyBooted within {timeout:.0f} s")
