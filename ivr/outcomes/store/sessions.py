"""Web console sign-in sessions and the server's signing key, in the store.

A mixin of SqlStore (sql.py), like campaigns.py. Sessions live here rather
than in the service's memory so that a sign-out or a changed secret ends a
session everywhere: after a restart, and on every instance sharing a
PostgreSQL store. The rows hold no secret: `id` is a hash of the session id
(see ivr/web/auth.py), `secret_fp` a keyed fingerprint of the user's secret.
"""

from __future__ import annotations

import base64
import secrets
import time
from contextlib import AbstractAsyncContextManager
from typing import Any, Callable

SESSION_COLS = (
    "id",
    "login",
    "secret_fp",
    "created_at",
    "last_seen_at",
    "expires_at",
    "revoked_at",
    "address",
    "user_agent",
)


class SessionSql:
    """Session and server-key queries (mixed into SqlStore)."""

    transaction: Callable[..., AbstractAsyncContextManager[Any]]

    async def server_key(self, name: str, size: int = 32) -> bytes:
        """A random key, made on first use and the same for every service using
        this store from then on (two instances racing to make it agree)."""
        fresh = base64.b64encode(secrets.token_bytes(size)).decode()
        async with self.transaction() as tx:
            await tx.execute(
                "INSERT INTO server_keys (name, value, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO NOTHING",
                [name, fresh, time.time()],
            )
            rows = await tx.fetch("SELECT value FROM server_keys WHERE name = ?", [name])
        return base64.b64decode(rows[0]["value"])

    async def create_session(
        self,
        session_id: str,
        login: str,
        secret_fp: str,
        *,
        now: float,
        expires_at: float,
        address: str = "",
        user_agent: str = "",
    ) -> None:
        async with self.transaction() as tx:
            await tx.execute(
                f"INSERT INTO web_sessions ({', '.join(SESSION_COLS)}) "
                "VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?)",
                [
                    session_id,
                    login,
                    secret_fp,
                    now,
                    now,
                    expires_at,
                    address[:64],
                    user_agent[:200],
                ],
            )

    async def get_session(self, session_id: str) -> dict[str, Any] | None:
        async with self.transaction(readonly=True) as tx:
            rows = await tx.fetch(
                f"SELECT {', '.join(SESSION_COLS)} FROM web_sessions WHERE id = ?", [session_id]
            )
        return rows[0] if rows else None

    async def touch_session(self, session_id: str, now: float) -> None:
        async with self.transaction() as tx:
            await tx.execute(
                "UPDATE web_sessions SET last_seen_at = ? WHERE id = ? AND last_seen_at < ?",
                [now, session_id, now],
            )

    async def revoke_session(self, session_id: str, now: float) -> bool:
        async with self.transaction() as tx:
            return bool(
                await tx.execute(
                    "UPDATE web_sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                    [now, session_id],
                )
            )

    async def revoke_user_sessions(self, login: str, now: float) -> int:
        async with self.transaction() as tx:
            return await tx.execute(
                "UPDATE web_sessions SET revoked_at = ? WHERE login = ? AND revoked_at IS NULL",
                [now, login],
            )

    async def purge_sessions(self, before: float) -> int:
        """Forget sessions that expired or were revoked before `before`."""
        async with self.transaction() as tx:
            return await tx.execute(
                "DELETE FROM web_sessions WHERE expires_at < ? OR revoked_at < ?", [before, before]
            )
