"""A throw-away PostgreSQL cluster for tests, from Debian's postgresql package.

initdb into a temp dir, start it with pg_ctl on a free port of 127.0.0.1 with
its unix socket in the same dir, hand out one fresh database per test, stop
and delete everything at the end. PostgreSQL refuses to run as root, so as
root the cluster runs as the `postgres` user (runuser).

    cluster = PostgresCluster.start_new()
    dsn = cluster.create_database()
    ...
    cluster.stop()
"""
from __future__ import annotations

import atexit
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

BINDIR_ENV = "IVR_PG_BINDIR"   # override where initdb/pg_ctl/psql live


class PostgresUnavailable(Exception):
    """No PostgreSQL server binaries here, or no way to run them."""


def find_bindir() -> Path | None:
    if os.environ.get(BINDIR_ENV):
        return Path(os.environ[BINDIR_ENV])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresCluster:
    def __init__(self, bindir: Path, root: Path, port: int, run_as: str | None):
        self.bindir, self.root, self.port, self.run_as = bindir, root, port, run_as
        self.data = root / "data"
        self.log = root / "postgres.log"
        self._names = itertools.count(1)
        self.running = False

    @classmethod
    def start_new(cls, timeout: int = 60) -> "PostgresCluster":
        bindir = find_bindir()
        if bindir is None or not (bindir / "pg_ctl").exists():
            raise PostgresUnavailable("no PostgreSQL server binaries (apt-get install postgresql)")
        run_as = None
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable("running as root and there is no postgres user") from None
            run_as = "postgres"
        root = Path(tempfile.mkdtemp(prefix="ivr-pg-"))
        if run_as:
            os.chown(root, pw.pw_uid, pw.pw_gid)
        cluster = cls(bindir, root, _free_port(), run_as)
        atexit.register(cluster.stop)   # also when a test run is interrupted
        try:
            cluster._start(timeout)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [*args]
        if self.run_as:
            cmd = ["runuser", "-u", self.run_as, "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              cwd=self.root)
        if proc.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise PostgresUnavailable(f"{' '.join(args)} failed ({proc.returncode}): "
                                      f"{proc.stderr.strip()} {proc.stdout.strip()}\n{log}")
        return proc

    def _start(self, timeout: int) -> None:
        # --no-sync only speeds up initdb; the server below keeps fsync on.
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} "
                   f"-c unix_socket_directories={self.root}")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                  "-w", "-t", str(timeout), "-o", options, "start", timeout=timeout + 10)
        self.running = True

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        return self._run(str(self.bindir / "psql"), "-X", "-q", "-A", "-t", "-v",
                         "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port),
                         "-U", "postgres", "-d", database, "-c", sql).stdout

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its DSN."""
        name = name or f"test_{os.getpid()}_{next(self._names)}"
        self.psql(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def stop(self) -> None:
        if self.running:
            self.running = False
            try:
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast",
                          "-w", "stop")
            except (PostgresUnavailable, subprocess.TimeoutExpired):
                pass
        shutil.rmtree(self.root, ignore_errors=True)
