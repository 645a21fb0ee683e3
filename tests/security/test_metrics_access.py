"""/metrics has no sign-in (Prometheus scrapers have none), so it is served to
loopback and to the networks in `web.metrics_from` only: a LAN client reading the
service's call counts, prompts by rule and AMI state gets 403."""

from __future__ import annotations

import dataclasses

import aiohttp
import pytest

from ivr.config import load_settings
from ivr.server import Service
from ivr.yamlfile import YamlError

# The only way to be a non-loopback client in a loopback-only test: a trusted proxy
# (the service itself believes its X-Forwarded-For) saying who the client is.
LAN_CLIENT = {"X-Forwarded-For": "198.51.100.7"}


async def _get_metrics(svc: Service, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession(svc.web_url) as http:
        async with http.get("/metrics", headers=headers) as r:
            body = await r.text()
            if r.status == 200:
                assert "ivr_ami_connected" in body  # the real exposition, not an empty page
            return r.status


async def test_metrics_are_for_loopback_and_the_configured_networks_only(sec_settings):
    web = dataclasses.replace(sec_settings.web, trusted_proxies=("127.0.0.1",))
    svc = Service(dataclasses.replace(sec_settings, web=web))
    await svc.start()
    try:
        assert await _get_metrics(svc, {}) == 200  # on this machine
        assert await _get_metrics(svc, LAN_CLIENT) == 403  # from the LAN
    finally:
        await svc.stop()
    web = dataclasses.replace(web, metrics_from=("198.51.100.0/24",))
    svc = Service(dataclasses.replace(sec_settings, web=web))
    await svc.start()
    try:
        assert await _get_metrics(svc, LAN_CLIENT) == 200  # the Prometheus network
        assert await _get_metrics(svc, {"X-Forwarded-For": "203.0.113.9"}) == 403
    finally:
        await svc.stop()


def test_a_bad_metrics_network_is_a_config_error_with_its_line(tmp_path):
    cfg = tmp_path / "ivr.yaml"
    cfg.write_text("web:\n  port: 8080\n  metrics_from: [10.0.0.0/8, prometheus-box]\n")
    with pytest.raises(YamlError) as e:
        load_settings(cfg, env={})
    assert "web.metrics_from" in str(e.value) and "prometheus-box" in str(e.value)
    assert "ivr.yaml:3:" in str(e.value)  # the metrics_from line
