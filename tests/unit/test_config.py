from pathlib import Path

import pytest

from ivr.config import Secret, load_settings, require_secret
from ivr.yamlfile import YamlError


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "ivr.yaml"
    p.write_text(text)
    return p


def test_example_config_loads_with_defaults_filled(tmp_path):
    example = Path(__file__).parents[2] / "ivr.example.yaml"
    s = load_settings(example, env={})
    assert s.ami.port == 5038 and s.web.port == 8080 and s.pbx.sip_port == 5060
    assert s.path(s.pbx.dialplans) == example.parent / "dialplans"


def test_every_problem_is_reported_with_file_line_and_field(tmp_path):
    p = write(tmp_path, "ami:\n  port: abc\n  bogus: 1\nweb: [1]\nnope: 2\n")
    with pytest.raises(YamlError) as err:
        load_settings(p, env={})
    lines = [str(x) for x in err.value.problems]
    assert f"{p}:2: ami.port: must be a whole number, not str" in lines
    assert any(l.startswith(f"{p}:3: ami.bogus: unknown setting") for l in lines)
    assert f"{p}:4: web: must be a mapping of settings" in lines
    assert any(l.startswith(f"{p}:5: nope: unknown section") for l in lines)


def test_syntax_error_names_the_line(tmp_path):
    p = write(tmp_path, "ami:\n  port: 1\n   host: [\n")
    with pytest.raises(YamlError) as err:
        load_settings(p, env={})
    assert err.value.problems[0].line == 3


def test_port_range_is_checked(tmp_path):
    with pytest.raises(YamlError, match="must be a port"):
        load_settings(write(tmp_path, "web:\n  port: 70000\n"), env={})


def test_secret_comes_from_env_and_never_shows(tmp_path):
    p = write(tmp_path, "ami:\n  secret: from-file\n")
    s = load_settings(p, env={"IVR_AMI_SECRET": "from-env"})
    assert s.ami.secret == "from-env"
    assert "from-env" not in repr(s) and "from-env" not in repr(s.ami.secret)
    assert isinstance(s.ami.secret, Secret)


def test_missing_secret_is_a_clear_error(tmp_path):
    s = load_settings(write(tmp_path, "ami: {}\n"), env={})
    with pytest.raises(YamlError, match="IVR_AMI_SECRET"):
        require_secret(s)


def test_supervision_rejects_and_a_supervisors_phone(tmp_path):
    p = write(tmp_path, "supervision:\n  tell_agent: when_heard\n  ring_seconds: 20\n"
                        "rejects:\n  pause_seconds: 30\n"
                        "users:\n  boss: {name: Sara, role: supervisor, phone: '1099', secret: x}\n")
    s = load_settings(p, env={})
    assert (s.supervision.tell_agent, s.supervision.ring_seconds) == ("when_heard", 20)
    assert s.rejects.pause_seconds == 30.0 and s.user("boss").phone == "1099"
    bad = write(tmp_path, "supervision:\n  tell_agent: sometimes\nrejects:\n  pause_seconds: -1\n"
                          "users:\n  boss: {name: Sara, role: supervisor, phone: '1099,1', secret: x}\n")
    with pytest.raises(YamlError) as err:
        load_settings(bad, env={})
    lines = [str(x) for x in err.value.problems]
    assert f"{bad}:1: supervision.tell_agent: must be always, when_heard or never" in lines
    assert f"{bad}:3: rejects.pause_seconds: must be 0-3600 seconds" in lines
    assert any(l.startswith(f"{bad}:6: users.boss.phone: must be a PJSIP endpoint") for l in lines)
