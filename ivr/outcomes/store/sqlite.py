"""SQLite driver (aiosqlite): one connection, WAL, fsync on every commit.

synchronous=FULL: in WAL mode NORMAL already survives a killed process, but
not a power cut or kernel crash, and a wrap-up the agent saw confirmed must
survive those too. The cost is one fsync per commit, a few per call.
One connection behind a lock: SQLite has one writer anyway, and a transaction
spanning several awaits must not interleave with another coroutine's.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Sequence

import aiosqlite

from .base import StoreError
from .sql import SqlStore, Tx


class _SqliteTx:
    def __init__(self, db: aiosqlite.Connection):
        self._db = db

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        cursor = await self._db.execute(sql, tuple(args))
        try:
            return max(cursor.rowcount, 0)
        finally:
            await cursor.close()

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        rows = await self._db.execute_fetchall(sql, tuple(args))
        return [dict(r) for r in rows]

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            await self._db.executemany(sql, [tuple(r) for r in rows])


class SqliteStore(SqlStore):
    TYPES = {
        "real": "REAL",
        "json": "TEXT",
        "serial_pk": "INTEGER PRIMARY KEY",
        "bigint": "INTEGER",
    }

    def __init__(self, path: str | Path, busy_timeout_ms: int = 10000):
        self.path = str(path)
        self.busy_timeout_ms = busy_timeout_ms
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r})"

    async def connect(self) -> None:
        if self._db is not None:
            raise StoreError(f"{self!r} is already open")
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves. The busy timeout
        # is set at connect, before the switch to WAL: that switch needs the lock
        # too, and another process (a report, a second service) may hold it briefly.
        db = await aiosqlite.connect(
            self.path, isolation_level=None, timeout=self.busy_timeout_ms / 1000
        )
        try:
            db.row_factory = aiosqlite.Row
            mode = await self._wal(db)
            if self.path != ":memory:" and mode != "wal":
                raise StoreError(f"{self.path}: SQLite refused WAL mode ({mode})")
            await db.execute("PRAGMA synchronous=FULL")
            await db.execute("PRAGMA foreign_keys=ON")
        except BaseException:
            await db.close()
            raise
        self._db = db

    async def _wal(self, db: aiosqlite.Connection) -> str:
        """Switch to WAL (it persists in the file, so usually it is already on).
        The switch can fail with "locked" while another connection makes it,
        without SQLite waiting first: retry within the busy timeout."""
        deadline = asyncio.get_running_loop().time() + self.busy_timeout_ms / 1000
        while True:
            rows = await db.execute_fetchall("PRAGMA journal_mode")
            if str(list(rows)[0][0]).lower() == "wal":
                return "wal"
            try:
                rows = await db.execute_fetchall("PRAGMA journal_mode=WAL")
                return str(list(rows)[0][0]).lower()
            except aiosqlite.OperationalError as exc:
                if "locked" not in str(exc) or asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.02)

    async def server_key(self, name: str, size: int = 32) -> bytes:
        """SQLite keeps its keys in files beside the database (mode 0600), not in
        it: a copied or backed-up database then opens no console."""
        if self.path == ":memory:":
            return await super().server_key(name, size)
        db = Path(self.path)
        return await asyncio.to_thread(_key_file, db.with_name(f"{db.name}.{name}.key"), size)

    async def disconnect(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            async with self._lock:
                await db.close()

    @asynccontextmanager
    async def transaction(self, readonly: bool = False) -> AsyncIterator[Tx]:
        if self._db is None:
            raise StoreError(f"{self!r} is not open")
        db = self._db
        async with self._lock:
            # IMMEDIATE takes the write lock up front, so a write never fails
            # half-way with SQLITE_BUSY on upgrading a read lock.
            await db.execute("BEGIN" if readonly else "BEGIN IMMEDIATE")
            try:
                yield _SqliteTx(db)
            except BaseException:
                if db.in_transaction:
                    await db.execute("ROLLBACK")
                raise
            else:
                await db.execute("COMMIT")


def _key_file(path: Path, size: int) -> bytes:
    """Read the key at `path`, or make it: written to a temporary file, then
    linked into place, so two services starting together agree on one key."""
    try:
        key = path.read_bytes()
        if len(key) >= 16:
            return key
        raise StoreError(f"{path}: key file too short; delete it to make a new one")
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secrets.token_bytes(size))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # another service made it first: use theirs
    finally:
        os.unlink(tmp)
    return path.read_bytes()
