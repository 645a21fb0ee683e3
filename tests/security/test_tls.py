"""Finding: no TLS and no Secure cookie: plain HTTP on every interface.

Now `web.tls.cert`/`key` make aiohttp serve HTTPS (cookie Secure, HSTS), and
behind a reverse proxy that terminates TLS, `web.trusted_proxies` makes the
service believe that proxy's X-Forwarded-Proto/-For, and nobody else's.
"""
from __future__ import annotations

import asyncio
import dataclasses
import ssl
import subprocess

import aiohttp
import pytest

from ivr.config import TlsSettings, WebSettings, load_settings
from ivr.server import Service
from tests.conftest import free_port
from tests.security.conftest import Client, hello_or_close


@pytest.fixture
def certificate(tmp_path):
    cert, key = tmp_path / "console.crt", tmp_path / "console.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


async def test_the_console_serves_https_with_a_secure_cookie(sec_settings, certificate):
    cert, key = certificate
    port = free_port()
    svc = Service(dataclasses.replace(sec_settings, web=WebSettings(
        host="127.0.0.1", port=port, tls=TlsSettings(cert=str(cert), key=str(key)))))
    await svc.start()
    try:
        assert svc.web_url == f"https://127.0.0.1:{port}"
        trust = ssl.create_default_context(cafile=str(cert))
        async with Client(svc, connector=aiohttp.TCPConnector(ssl=trust)) as c:
            r = await c.sign_in(svc, "1001")
            assert r.status == 200
            morsel = r.cookies["ivr_session"]
            assert morsel["secure"] and morsel["httponly"]
            assert r.headers["Strict-Transport-Security"].startswith("max-age=")
            ws = await c.websocket()                       # wss://, Origin https://...
            assert isinstance(await hello_or_close(ws), dict)
            await ws.close()
        # Plain HTTP on the TLS port gets nothing.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(100), 5)
        writer.close()
        assert b"200 OK" not in answer
    finally:
        await svc.stop()


async def test_tls_settings_are_checked_when_the_config_is_read(tmp_path, certificate):
    cert, _ = certificate
    config = tmp_path / "ivr.yaml"
    config.write_text(f"web:\n  tls: {{cert: {cert}}}\n")
    with pytest.raises(Exception, match="web.tls: needs both cert and key"):
        load_settings(config, env={})
    config.write_text(f"web:\n  tls: {{cert: {cert}, key: missing.key}}\n")
    with pytest.raises(Exception, match="web.tls.key: no such file"):
        load_settings(config, env={})


async def test_behind_a_trusted_proxy_forwarded_headers_count_and_from_others_not(sec_settings):
    svc = Service(dataclasses.replace(sec_settings, web=dataclasses.replace(
        sec_settings.web, trusted_proxies=("127.0.0.1",),
        origins=("https://console.example.com",))))
    await svc.start()
    try:
        proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"}
        async with Client(svc, origin="https://console.example.com", headers=proxied) as c:
            r = await c.sign_in(svc, "1001")
            assert r.status == 200 and r.cookies["ivr_session"]["secure"]
            assert "Strict-Transport-Security" in r.headers
            r = await c.http.post("/api/login", json={"login": "1001", "secret": "wrong"})
            assert r.status == 401
        auth = svc.console.ctx.auth
        assert "198.51.100.7" in auth.by_address._keys        # the real client is throttled
        assert "127.0.0.1" not in auth.by_address._keys       # not the proxy
    finally:
        await svc.stop()
    # The same headers from an address that is not a proxy are ignored.
    conn = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    svc = Service(dataclasses.replace(sec_settings, web=dataclasses.replace(
        sec_settings.web, trusted_proxies=("127.0.0.1",))))
    await svc.start()
    try:
        async with Client(svc, connector=conn, headers=proxied) as c:
            r = await c.sign_in(svc, "1001")
            assert r.status == 200 and not r.cookies["ivr_session"]["secure"]
            r = await c.http.post("/api/login", json={"login": "1001", "secret": "wrong"})
        assert "127.0.0.2" in svc.console.ctx.auth.by_address._keys
        assert "198.51.100.7" not in svc.console.ctx.auth.by_address._keys
    finally:
        await svc.stop()
