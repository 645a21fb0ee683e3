"""Sign-in for the console: sessions kept in the outcomes store, a signed cookie.

Signing in (login + secret from the config, the secret possibly hashed, see
passwords.py) makes a random session id. The browser gets it in an HttpOnly
SameSite=Strict cookie, signed with itsdangerous under a random server key
that the store keeps (a file beside a SQLite database, a row in PostgreSQL,
so every instance sharing the store shares it); the store keeps the session
record under the id's SHA-256. A request is signed in only if the signature
holds, the record exists, is not revoked, not past its expiry (capped at
web.session_hours) nor idle for web.idle_minutes, and was made with the
user's current secret. So sign-out and a secret change end a session
everywhere, across restarts and instances; a cookie cannot be forged or
stretched; the cookie is the only credential (never a URL or header token).

Failed sign-ins are throttled per login and per client address (throttle.py).
Nothing secret is ever logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable

from itsdangerous import BadSignature, URLSafeTimedSerializer

from ..config import WebSettings
from ..users import User
from . import passwords
from .throttle import Throttle

log = logging.getLogger(__name__)

COOKIE = "ivr_session"
KEY_NAME = "web-session"
TOUCH_EVERY = 60.0  # s: how often a used session's last_seen is written
MAX_LOGIN = 128


class Throttled(Exception):
    def __init__(self, retry_after: float):
        super().__init__(f"too many failed sign-ins: try again in {max(1, round(retry_after))} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Session:
    id: str  # SHA-256 of the session id (the store's key)
    user: User
    created_at: float
    expires_at: float


class Auth:
    def __init__(
        self,
        users: tuple[User, ...],
        store: Any,
        web: WebSettings | None = None,
        clock: Callable[[], float] = time.time,
    ):
        web = web or WebSettings()
        self.users = {u.login: u for u in users}
        self.store = store
        self.max_age = web.session_hours * 3600
        self.idle = web.idle_minutes * 60
        self.clock = clock
        self.by_login = Throttle("login", free=3, lockout_after=10, lockout_seconds=900)
        self.by_address = Throttle("address", free=10, lockout_after=50, lockout_seconds=900)
        self._signer: URLSafeTimedSerializer | None = None
        self._key = b""
        self._fps: dict[str, str] = {}
        # Checking a hashed secret costs ~0.1 s and 32 MiB: a few at a time, off the loop.
        self._hashing = asyncio.Semaphore(2)
        hashed = next((u.secret for u in users if passwords.is_hashed(u.secret)), None)
        # Unknown logins are checked against this, so timing does not reveal valid logins.
        self._decoy = (
            passwords.hash_secret(secrets.token_urlsafe(16))
            if hashed
            else secrets.token_urlsafe(16)
        )

    async def start(self) -> None:
        """Load (or make) the server key; forget long-dead sessions."""
        self._key = await self.store.server_key(KEY_NAME)
        self._signer = URLSafeTimedSerializer(self._key, salt="ivr.console.session")
        self._fps = {login: self._fingerprint(u) for login, u in self.users.items()}
        try:
            await self.store.purge_sessions(self.clock() - 7 * 86400)
        except Exception as exc:  # housekeeping only
            log.warning("could not purge old console sessions: %s", exc)

    def _fingerprint(self, user: User) -> str:
        msg = f"{user.login}\0{user.secret}".encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()[:32]

    @staticmethod
    def _hash_id(session_id: str) -> str:
        return hashlib.sha256(session_id.encode()).hexdigest()

    # ------------------------------------------------------------ sign-in
    async def sign_in(
        self, login: str, secret: str, address: str, user_agent: str = ""
    ) -> tuple[str, Session] | None:
        """-> (cookie value, session), or None for a wrong login or secret.
        Raises Throttled while the login or the address must wait."""
        login = login[:MAX_LOGIN]
        wait = max(self.by_login.wait(login), self.by_address.wait(address))
        if wait > 0:
            raise Throttled(wait)
        user = self.users.get(login)
        stored = str(user.secret) if user else self._decoy
        if passwords.is_hashed(stored):
            async with self._hashing:
                ok = await asyncio.to_thread(passwords.verify, secret, stored)
        else:
            ok = passwords.verify(secret, stored)
        if not ok or user is None:
            delay = max(self.by_login.failed(login), self.by_address.failed(address))
            log.info("console sign-in refused for %r from %s", login[:40], address)
            if delay > 0:
                raise Throttled(delay)
            return None
        self.by_login.succeeded(login)
        if self._signer is None:
            raise RuntimeError("Auth.start() was not awaited: no server key yet")
        session_id = secrets.token_urlsafe(32)
        now = self.clock()
        session = Session(self._hash_id(session_id), user, now, now + self.max_age)
        await self.store.create_session(
            session.id,
            login,
            self._fps[login],
            now=now,
            expires_at=session.expires_at,
            address=address,
            user_agent=user_agent,
        )
        log.info("console sign-in: %s from %s", login, address)
        return self._signer.dumps(session_id), session

    # ------------------------------------------------------------ checking
    def _unsign(self, cookie: str | None) -> str | None:
        if not cookie or self._signer is None or len(cookie) > 512:
            return None
        try:
            session_id = self._signer.loads(cookie, max_age=int(self.max_age))
        except BadSignature:  # also SignatureExpired: older than the cap
            return None
        return self._hash_id(session_id) if isinstance(session_id, str) else None

    async def session(self, cookie: str | None) -> Session | None:
        """The live session of a request's cookie, or None."""
        sid = self._unsign(cookie)
        return await self.check(sid) if sid else None

    async def check(self, sid: str) -> Session | None:
        """Is this session (by its stored id) still good? Notes that it was used."""
        row = await self.store.get_session(sid)
        if row is None or row["revoked_at"] is not None:
            return None
        now = self.clock()
        user = self.users.get(row["login"])
        why: str | None = None
        if user is None:
            why = "user no longer configured"
        elif not hmac.compare_digest(row["secret_fp"], self._fps.get(row["login"], "")):
            why = "the user's secret changed"
        elif now >= row["expires_at"] or now - row["created_at"] > self.max_age:
            why = "expired"
        elif now - row["last_seen_at"] > self.idle:
            why = "idle too long"
        if why is not None or user is None:
            if await self.store.revoke_session(sid, now):
                log.info("console session of %s ended: %s", row["login"], why)
            return None
        if now - row["last_seen_at"] > min(TOUCH_EVERY, self.idle / 4):
            await self.store.touch_session(sid, now)
        return Session(sid, user, row["created_at"], row["expires_at"])

    async def sign_out(self, cookie: str | None) -> str | None:
        """End the cookie's session; returns its id (to close its sockets)."""
        sid = self._unsign(cookie)
        if sid is None:
            return None
        await self.store.revoke_session(sid, self.clock())
        return sid
