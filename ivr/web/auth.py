"""Sign-in for the console: login + secret from the config, a signed cookie.

The session token is signed with the user's own secret, so it survives a
service restart (the page reconnects mid-call without a new sign-in) and dies
when the secret changes. Nothing secret is ever logged.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import time

from ..config import User

COOKIE = "ivr_session"


class Auth:
    def __init__(self, users: tuple[User, ...], ttl_seconds: int = 12 * 3600):
        self.users = {u.login: u for u in users}
        self.ttl = ttl_seconds

    def sign_in(self, login: str, secret: str) -> str | None:
        user = self.users.get(login)
        # Compare even for unknown users, so timing does not reveal valid logins.
        expected = user.secret if user else "\0" * 32
        if not hmac.compare_digest(secret.encode(), str(expected).encode()) or user is None:
            return None
        return self._token(user, int(time.time()) + self.ttl)

    def user_for(self, token: str | None) -> User | None:
        if not token:
            return None
        try:
            raw = base64.urlsafe_b64decode(token.encode() + b"=" * (-len(token) % 4)).decode()
            login, expiry, _sig = raw.rsplit(":", 2)
            expires = int(expiry)
        except (ValueError, UnicodeDecodeError):
            return None
        user = self.users.get(login)
        if user is None or expires < time.time():
            return None
        if not hmac.compare_digest(self._token(user, expires), token):
            return None
        return user

    def _token(self, user: User, expires: int) -> str:
        msg = f"{user.login}:{expires}"
        sig = hmac.new(str(user.secret).encode(), msg.encode(), hashlib.sha256).hexdigest()
        return base64.urlsafe_b64encode(f"{msg}:{sig}".encode()).decode().rstrip("=")
