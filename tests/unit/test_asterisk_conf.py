from ivr.pbx.asterisk_conf import get_option, set_option

CONF = """[general]
port = 5038   ; the port
bindaddr = 127.0.0.1

[ivr]
secret = set-by-installer
read = call
"""


def test_set_option_replaces_in_the_right_section_keeping_comments():
    out = set_option(CONF, "general", "port", "25038")
    assert "port = 25038   ; the port" in out
    out = set_option(out, "ivr", "secret", "s3")
    assert get_option(out, "ivr", "secret") == "s3"
    assert get_option(out, "general", "bindaddr") == "127.0.0.1"


def test_set_option_appends_missing_key_to_section():
    out = set_option(CONF, "general", "displayconnects", "no")
    assert get_option(out, "general", "displayconnects") == "no"
    assert out.index("displayconnects") < out.index("[ivr]")


def test_real_dialplans_have_the_keys_the_sandbox_edits():
    from pathlib import Path
    d = Path(__file__).parents[2] / "dialplans"
    assert get_option((d / "pjsip.conf").read_text(), "transport-udp", "bind")
    assert get_option((d / "manager.conf").read_text(), "ivr", "secret") == "set-by-installer"
    assert get_option((d / "extensions.conf").read_text(), "globals", "TRUNK_PEER")
