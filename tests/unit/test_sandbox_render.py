"""What the sandbox installs from dialplans/: its own ports, and on an address other
machines reach, never the sample SIP passwords."""
import secrets

import pytest

from ivr.pbx.asterisk_conf import parse_sections
from ivr.pbx.sandbox import Sandbox, SandboxError
from tests.conftest import REPO

USERS = ("1001", "1002", "1003", "1004", "1099", "customer")


def sandbox(sip_host: str) -> Sandbox:
    return Sandbox(root=REPO, instance="render", dialplans=REPO / "dialplans", sip_host=sip_host,
                   sip_port=25060, ami_host="127.0.0.1", ami_port=25038, ami_user="ivr",
                   ami_secret="s3cret-for-ami", trunk_peer="127.0.0.2:5060")


def passwords(text: str) -> dict[str, str]:
    return {s.name: s.get("password").value for s in parse_sections(text, "pjsip.conf")
            if s.get("password")}


def test_on_loopback_the_sample_passwords_serve_the_tests(monkeypatch):
    for u in USERS:
        monkeypatch.delenv(f"SIP_PASSWORD_{u}", raising=False)
    text = sandbox("127.0.0.1").render("pjsip.conf")
    assert passwords(text)["1001"] == "agent1001"
    assert "bind = 127.0.0.1:25060" in text


def test_on_another_address_every_password_comes_from_the_environment(monkeypatch):
    for u in USERS:
        monkeypatch.delenv(f"SIP_PASSWORD_{u}", raising=False)
    with pytest.raises(SandboxError) as e:
        sandbox("0.0.0.0").render("pjsip.conf")
    assert all(f"SIP_PASSWORD_{u}" in str(e.value) for u in USERS), e.value
    wanted = {u: secrets.token_hex(16) for u in USERS}
    for u, v in wanted.items():
        monkeypatch.setenv(f"SIP_PASSWORD_{u}", v)
    assert passwords(sandbox("0.0.0.0").render("pjsip.conf")) == wanted
    monkeypatch.setenv("SIP_PASSWORD_1002", "agent1002")
    with pytest.raises(SandboxError, match=r"SIP_PASSWORD_1002 \(shorter than 12"):
        sandbox("0.0.0.0").render("pjsip.conf")
