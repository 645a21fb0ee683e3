"""What every request passes before a handler: the console's front door.

- Cross-site requests: a WebSocket and every state-changing request must come
  with an Origin header naming the console itself (or one of web.origins);
  their bodies must be JSON, except file uploads, which need the custom
  header X-Requested-With (a page of another site cannot send it without a
  CORS preflight, which the console never grants).
- Headers on every response: a strict Content-Security-Policy (no inline
  script, no framing), nosniff, Referrer-Policy, no version in Server, HSTS
  over HTTPS.
- The session cookie is turned into request["user"] / request["session"].
- The listening socket (GuardedSite): at most web.max_connections_per_address
  connections per client address; the header timeout is aiohttp's
  keep-alive timeout (see server.py), which also closes a connection that
  never finishes its request headers (slowloris).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

from aiohttp import web

from ..config import WebSettings
from .auth import COOKIE, Auth

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
UPLOAD_HEADER = "X-Requested-With"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Server": "ivr",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# What the guard learns about a request, for the handlers (typed keys where
# aiohttp has them, 3.14+).
_RequestKey = getattr(web, "RequestKey", None)


def _key(name: str, kind: Any) -> Any:
    return _RequestKey(name, kind) if _RequestKey is not None else name


CLIENT = _key("ivr.client", str)  # the client's address (see client_address)
SESSION = _key("ivr.session", object)  # the auth.Session, or None
USER = _key("ivr.user", object)  # the signed-in users.User, or None


def file_upload(handler: Handler) -> Handler:
    """Mark a route that takes a non-JSON body (it needs X-Requested-With)."""
    handler.ivr_file_upload = True  # type: ignore[attr-defined]
    return handler


def _normal_origin(origin: str) -> str:
    origin = origin.strip().rstrip("/").lower()
    for scheme, port in (("http://", ":80"), ("https://", ":443")):
        if origin.startswith(scheme) and origin.endswith(port):
            return origin[: -len(port)]
    return origin


class Guard:
    def __init__(self, web_settings: WebSettings, auth: Auth):
        self.auth = auth
        self.tls = web_settings.tls.enabled
        self.origins = frozenset(_normal_origin(o) for o in web_settings.origins)
        self.proxies = frozenset(str(ipaddress.ip_address(a)) for a in web_settings.trusted_proxies)
        self.body_timeout = web_settings.body_timeout
        self.metrics_from = tuple(
            ipaddress.ip_network(str(n), strict=False) for n in web_settings.metrics_from
        )

    # ------------------------------------------------------------ who and how
    def client_address(self, request: web.Request) -> str:
        """The client's IP: X-Forwarded-For only when a trusted proxy sent it
        (the right-most address that is not one of our proxies)."""
        remote = request.remote or ""
        if remote in self.proxies:
            hops = [
                h.strip()
                for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")
            ]
            for hop in reversed([h for h in hops if h]):
                if hop not in self.proxies:
                    return hop[:64]
        return remote

    def may_read_metrics(self, request: web.Request) -> bool:
        """/metrics has no sign-in (scrapers have none): loopback and the networks in
        web.metrics_from only."""
        try:
            addr = ipaddress.ip_address(self.client_address(request))
        except ValueError:
            return False
        return addr.is_loopback or any(addr in net for net in self.metrics_from)

    def scheme(self, request: web.Request) -> str:
        if self.tls:
            return "https"
        if (request.remote or "") in self.proxies:
            proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
            if proto in ("http", "https"):
                return proto
        return request.scheme

    def secure(self, request: web.Request) -> bool:
        return self.scheme(request) == "https"

    def origin_ok(self, request: web.Request) -> str | None:
        """None if the Origin is the console's own (or allowed), else why not."""
        origin = request.headers.get("Origin")
        if not origin:
            return "missing Origin header"
        own = _normal_origin(f"{self.scheme(request)}://{request.host}")
        if _normal_origin(origin) != own and _normal_origin(origin) not in self.origins:
            return f"Origin {origin[:80]!r} is not this console"
        return None

    # ------------------------------------------------------------ middleware
    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        request[CLIENT] = self.client_address(request)
        websocket = request.headers.get("Upgrade", "").lower() == "websocket"
        if request.method not in SAFE_METHODS or websocket:
            why = self.origin_ok(request)
            if why is not None:
                log.info(
                    "cross-site %s %s from %s refused: %s",
                    request.method,
                    request.path[:100],
                    request[CLIENT],
                    why,
                )
                raise web.HTTPForbidden(text=f"cross-site request refused: {why}")
        if request.method in ("POST", "PUT", "PATCH"):
            if getattr(handler, "ivr_file_upload", False):
                if request.headers.get(UPLOAD_HEADER, "").lower() != "ivr":
                    raise web.HTTPForbidden(text=f"uploads need the header {UPLOAD_HEADER}: ivr")
            elif request.content_type != "application/json":
                raise web.HTTPUnsupportedMediaType(
                    text="send JSON (Content-Type: application/json)"
                )
        request[SESSION] = None
        request[USER] = None
        if not request.path.startswith("/static/"):
            cookie = request.cookies.get(COOKIE)
            if cookie:
                session = await self.auth.session(cookie)
                if session is not None:
                    request[SESSION] = session
                    request[USER] = session.user
        return await handler(request)

    async def on_response_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(HEADERS)
        if self.secure(request):
            response.headers["Strict-Transport-Security"] = "max-age=31536000"


# -------------------------------------------------------------------- the socket
class _Counted(asyncio.Protocol):
    """aiohttp's protocol for one connection, admitted only under the cap."""

    def __init__(self, inner: asyncio.Protocol, limits: "ConnectionLimits"):
        self._inner = inner
        self._limits = limits
        self._address: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        address = peer[0] if isinstance(peer, tuple) and peer else ""
        if not self._limits.admit(address):
            try:
                if isinstance(transport, asyncio.WriteTransport):
                    transport.write(
                        b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
                        b"Content-Length: 0\r\n\r\n"
                    )
            finally:
                transport.close()
            return
        self._address = address
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._address is not None:
            self._limits.release(self._address)
            self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._address is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._address is not None else None

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class ConnectionLimits:
    """Open connections per client address, with a cap (proxies exempt)."""

    def __init__(self, per_address: int, exempt: frozenset[str] = frozenset()):
        self.per_address = per_address
        self.exempt = exempt
        self.open: dict[str, int] = {}
        self.refused = 0
        self._logged: dict[str, float] = {}

    def admit(self, address: str) -> bool:
        n = self.open.get(address, 0)
        if n >= self.per_address and address not in self.exempt:
            self.refused += 1
            now = time.monotonic()
            if now - self._logged.get(address, -1e9) >= 60:
                if len(self._logged) > 10000:
                    self._logged.clear()
                self._logged[address] = now
                log.warning(
                    "web: %s already has %d connections open; refusing more "
                    "(web.max_connections_per_address)",
                    address,
                    n,
                )
            return False
        self.open[address] = n + 1
        return True

    def release(self, address: str) -> None:
        n = self.open.get(address, 0) - 1
        if n > 0:
            self.open[address] = n
        else:
            self.open.pop(address, None)


class GuardedSite(web.TCPSite):
    """aiohttp's TCPSite, with the per-address connection cap in front of
    every connection and a TLS handshake timeout."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        limits: ConnectionLimits,
        handshake_timeout: float,
        **kw: Any,
    ):
        super().__init__(runner, host, port, **kw)
        self.limits = limits
        self.handshake_timeout = handshake_timeout

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with the runner
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        listening = await loop.create_server(
            lambda: _Counted(server(), self.limits),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
            ssl_handshake_timeout=self.handshake_timeout if self._ssl_context else None,
        )
        self._server = listening
        if hasattr(self, "_bound_port") and listening.sockets:
            self._bound_port = listening.sockets[0].getsockname()[1]

    @property
    def bound(self) -> list[tuple[str, int]]:
        """The addresses really listened on (host, port)."""
        if not isinstance(self._server, asyncio.Server):
            return []
        return [s.getsockname()[:2] for s in self._server.sockets]


def make_site(
    runner: web.BaseRunner, web_settings: WebSettings, base: Path | None = None
) -> GuardedSite:
    """The console's listening site: HTTPS when web.tls is set, the
    per-address cap (trusted proxies exempt), a TLS handshake timeout."""
    ssl_context = None
    if web_settings.tls.enabled:

        def path(p: str) -> str:
            return str(p if Path(p).is_absolute() or base is None else base / p)

        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.minimum_version = ssl.TLSVersion.TLSv1_2
        ssl_context.load_cert_chain(path(web_settings.tls.cert), path(web_settings.tls.key))
    limits = ConnectionLimits(
        web_settings.max_connections_per_address, exempt=frozenset(web_settings.trusted_proxies)
    )
    return GuardedSite(
        runner,
        web_settings.host,
        web_settings.port,
        limits=limits,
        handshake_timeout=web_settings.header_timeout,
        ssl_context=ssl_context,
    )


def require_supervisor(user: Any) -> Any:
    """The signed-in user of a supervisors' route: 401 without one, 403 for an agent."""
    if user is None:
        raise web.HTTPUnauthorized(text="sign in first")
    if not user.is_supervisor:
        raise web.HTTPForbidden(text="for supervisors only")
    return user
