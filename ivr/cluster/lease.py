"""Who follows which PBX, and which service instances are alive.

`PgLeases` (a PostgreSQL store): one dedicated connection per instance holds
PostgreSQL advisory locks, released by the server the moment that connection
closes (the process exits, is killed with -9, or its machine is cut off and
TCP keepalives give up):

- a shared lock on the instance's own key while it lives, so any instance
  sees which claim owners are alive (pg_locks) with no heartbeat timeout;
- an exclusive lock per PBX it follows (its lease): `try_take` is
  pg_try_advisory_lock, so one instance at a time follows a PBX, and another
  takes it over at its next poll once the holder is gone.

If this connection breaks, every lease must be taken as lost at once (another
instance may already hold it): `on_lost` is called and the caller stops
following its PBXs before trying to take them again.

`LocalLeases` (SQLite, one machine): every PBX is this instance's.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
import zlib
from typing import Callable, Iterable

log = logging.getLogger(__name__)

# First key of the two-key advisory locks (second: crc32 of the name).
NS_INSTANCE = 0x69767231  # "ivr1"
NS_PBX = 0x69767232  # "ivr2"


def lock_key(name: str) -> int:
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def new_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class LocalLeases:
    """One machine, one store file: this instance follows every PBX."""

    kind = "local"

    def __init__(self, instance: str):
        self.instance = instance
        self.on_lost: Callable[[], None] | None = None

    async def start(self, roles: str = "") -> None:
        pass

    async def close(self) -> None:
        pass

    async def try_take(self, pbx: str) -> bool:
        return True

    async def give_up(self, pbx: str) -> None:
        pass

    async def alive(self) -> set[str]:
        return {self.instance}

    async def holders(self, pbxs):
        return {p: False for p in pbxs}


class PgLeases:
    kind = "postgres"

    def __init__(self, dsn: str, instance: str, *, heartbeat: float = 1.0, keepalive_idle: int = 2):
        self.dsn = dsn
        self.instance = instance
        self.heartbeat = heartbeat
        self.keepalive_idle = keepalive_idle
        self.on_lost: Callable[[], None] | None = None
        self.held: set[str] = set()
        self._con = None
        self._lock = asyncio.Lock()
        self._beat: asyncio.Task | None = None
        self._roles = ""
        self._closed = False

    def __repr__(self) -> str:
        return f"PgLeases({self.dsn.rsplit('@', 1)[-1]!r}, {self.instance!r})"

    async def start(self, roles: str = "") -> None:
        self._roles = roles
        await self._connect()
        self._beat = asyncio.ensure_future(self._heartbeat())

    async def _connect(self) -> None:
        import asyncpg

        # Keepalives: a holder whose machine vanishes (no FIN) loses its locks
        # after about idle + 2 x 1 s, not after the kernel's two hours.
        con = await asyncpg.connect(
            self.dsn,
            timeout=5,
            server_settings={
                "application_name": f"ivr lease {self.instance}"[:63],
                "tcp_keepalives_idle": str(self.keepalive_idle),
                "tcp_keepalives_interval": "1",
                "tcp_keepalives_count": "2",
            },
        )
        key = lock_key(self.instance)
        await con.execute("SELECT pg_advisory_lock_shared($1, $2)", NS_INSTANCE, key)
        await con.execute(
            "INSERT INTO instances (id, lock_key, host, pid, roles, started_at) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET "
            "lock_key = excluded.lock_key, roles = excluded.roles",
            self.instance,
            key,
            socket.gethostname(),
            os.getpid(),
            self._roles,
            time.time(),
        )
        self._con = con
        # Rows of instances long gone: kept a day for the logs' sake, then dropped.
        await self._query(
            f"DELETE FROM instances WHERE started_at < $1 AND id NOT IN ({self._ALIVE})",
            time.time() - 86400,
            NS_INSTANCE,
        )

    _ALIVE = (
        "SELECT i.id FROM instances i JOIN pg_locks l ON l.locktype = 'advisory' "
        "AND l.granted AND l.objsubid = 2 AND l.classid::bigint = $2 "
        "AND l.objid::bigint = i.lock_key"
    )

    async def _query(self, sql: str, *args):
        if self._con is None:
            raise ConnectionError("the lease connection is down")
        async with self._lock:
            return await asyncio.wait_for(self._con.fetch(sql, *args), 5.0)

    async def _heartbeat(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.heartbeat)
            if self._con is None:
                try:
                    await self._connect()
                    log.info("lease connection to the store is back (instance %s)", self.instance)
                except Exception as exc:
                    log.warning("lease connection to the store still down: %s", exc)
                continue
            try:
                await self._query("SELECT 1")
            except Exception as exc:
                self._lost(exc)

    def _lost(self, exc: BaseException) -> None:
        log.error(
            "lease connection to the store lost (%s): letting go of PBXs %s, "
            "another instance may take them",
            exc,
            sorted(self.held) or "none",
        )
        con, self._con = self._con, None
        self.held.clear()
        if con is not None:
            con.terminate()
        if self.on_lost is not None:
            self.on_lost()

    async def try_take(self, pbx: str) -> bool:
        if pbx in self.held:
            return True
        try:
            rows = await self._query(
                "SELECT pg_try_advisory_lock($1, $2) AS got", NS_PBX, lock_key(pbx)
            )
        except Exception as exc:
            if self._con is not None:
                self._lost(exc)
            return False
        if rows[0]["got"]:
            self.held.add(pbx)
            return True
        return False

    async def give_up(self, pbx: str) -> None:
        if pbx not in self.held:
            return
        self.held.discard(pbx)
        try:
            await self._query("SELECT pg_advisory_unlock($1, $2)", NS_PBX, lock_key(pbx))
        except Exception:
            pass

    async def holders(self, pbxs: Iterable[str]) -> dict[str, bool]:
        """Which of these PBXs some instance follows now (for health pages)."""
        rows = await self._query(
            "SELECT objid::bigint AS key FROM pg_locks WHERE locktype = 'advisory' "
            "AND granted AND objsubid = 2 AND classid::bigint = $1",
            NS_PBX,
        )
        taken = {r["key"] for r in rows}
        return {p: lock_key(p) in taken for p in pbxs}

    async def alive(self) -> set[str]:
        """Instances alive now (holding their shared lock), this one included."""
        rows = await self._query(self._ALIVE.replace("$2", "$1"), NS_INSTANCE)
        return {r["id"] for r in rows} | {self.instance}

    async def close(self) -> None:
        self._closed = True
        if self._beat is not None:
            self._beat.cancel()
            await asyncio.gather(self._beat, return_exceptions=True)
        con, self._con = self._con, None
        self.held.clear()
        if con is not None:
            try:
                await asyncio.wait_for(con.close(), 5)
            except Exception:
                con.terminate()


def create_leases(store_url: str, instance: str) -> LocalLeases | PgLeases:
    if store_url.startswith(("postgresql://", "postgres://")):
        return PgLeases(store_url, instance)
    return LocalLeases(instance)
