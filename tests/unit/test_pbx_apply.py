"""What `ivr pbx apply` keeps of an installation (its secrets and addresses) and never shows."""
import pytest

from ivr.pbx.apply import ApplyError, carry_over, masked

INSTALLED = """[transport-udp]
type = transport
bind = 0.0.0.0:5060
external_media_address = 198.51.100.9

[1001]
type = endpoint
[1001]
type = auth
password = a-long-installed-secret-1001
"""
NEW = """[transport-udp]
type = transport
bind = 0.0.0.0:5060

[1001]
type = endpoint
callerid = "Anna" <1001>
[1001]
type = auth
password = agent1001

[1005]
type = auth
password = agent1005
"""


def test_the_installations_passwords_and_addresses_are_kept():
    out = carry_over("pjsip.conf", NEW, INSTALLED, {"SIP_PASSWORD_1005": "b" * 20})
    assert "password = a-long-installed-secret-1001" in out
    assert "agent1001" not in out and "agent1005" not in out and "b" * 20 in out
    assert 'callerid = "Anna" <1001>' in out          # the admin's change goes in


def test_a_new_sip_user_needs_a_strong_password_from_the_environment():
    with pytest.raises(ApplyError, match="SIP_PASSWORD_1005"):
        carry_over("pjsip.conf", NEW, INSTALLED, {})
    with pytest.raises(ApplyError, match="SIP_PASSWORD_1005"):
        carry_over("pjsip.conf", NEW, INSTALLED, {"SIP_PASSWORD_1005": "short"})


def test_manager_secret_and_bind_address_are_kept():
    installed = "[general]\nbindaddr = 0.0.0.0\nport = 5038\n[ivr]\nsecret = s3cr3t-installed\n"
    new = "[general]\nbindaddr = 127.0.0.1\nport = 5038\n[ivr]\nsecret = set-by-installer\nread = call\n"
    out = carry_over("manager.conf", new, installed, {})
    assert "secret = s3cr3t-installed" in out and "bindaddr = 0.0.0.0" in out and "read = call" in out


def test_diffs_never_show_secrets():
    lines = masked("[ivr]\nsecret = hunter2-hunter2 ; the AMI one\npassword=x\nread = call\n")
    assert lines == ["[ivr]", "secret = *** ; the AMI one", "password=***", "read = call"]
