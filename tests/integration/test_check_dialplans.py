"""`ivr check` on broken copies of dialplans/: every problem on one line, file:line: reason.

Asterisk loads most of these breakages without a word (a section of an
unknown type is simply not an endpoint; a Goto to a missing label fails only
when a caller gets there), so the cross-reference checks find them from the
files; what Asterisk itself rejects is found by loading the files into a
throw-away sandbox.
"""
import re
import shutil

import pytest

from ivr.cli import main
from tests.conftest import REPO

pytestmark = pytest.mark.pbx


@pytest.fixture
def broken(tmp_path, monkeypatch):
    """A copy of dialplans/ and scripts/, and a config pointing at them; edit, then check."""
    dialplans = tmp_path / "dialplans"
    scripts = tmp_path / "scripts"
    shutil.copytree(REPO / "dialplans", dialplans)
    shutil.copytree(REPO / "scripts", scripts)
    monkeypatch.setenv("IVR_AMI_SECRET", "check")
    for login in ("1001", "1002", "1003", "1004", "boss"):
        monkeypatch.setenv(f"IVR_SECRET_{login}", "x" * 16)

    class Copy:
        def __init__(self):
            self.dialplans, self.scripts = dialplans, scripts
            self.config = tmp_path / "ivr.yaml"
            self.users = ["1001", "1002", "1003", "1004"]

        def edit(self, name: str, old: str, new: str, count: int = 1) -> int:
            """Replace ``old`` (its first ``count`` times); -> the line number of the first."""
            path = dialplans / name
            text = path.read_text()
            assert old in text, f"{old!r} not in {name}"
            line = text[:text.index(old)].count("\n") + 1
            path.write_text(text.replace(old, new, count))
            return line

        def check(self, pbx=None) -> tuple[int, str]:
            users = "".join(f'  "{u}": {{name: Agent {u}}}\n' for u in self.users)
            root = f", root: {pbx.root}" if pbx else ""
            self.config.write_text(f"pbx: {{dialplans: {dialplans}{root}}}\nscripts: {scripts}\n"
                                   f"users:\n{users}  boss: {{name: Boss, role: supervisor}}\n")
            args = ["check", "-c", str(self.config)] + ([] if pbx else ["--no-pbx"])
            return main(args), ""
    return Copy()


def run(copy, capsys, pbx=None) -> str:
    code, _ = copy.check(pbx)
    out = capsys.readouterr().out
    assert code == 1, out
    return out


def test_the_shipped_dialplans_pass(broken, capsys):
    assert broken.check()[0] == 0, capsys.readouterr().out
    assert "dialplans: ok" in capsys.readouterr().out


def test_unknown_object_type(broken, capsys):
    line = broken.edit("pjsip.conf", 'callerid = "Agent Anna" <1001>',
                       'type = endpointz\ncallerid = "Agent Anna" <1001>')
    out = run(broken, capsys)
    assert f"{broken.dialplans}/pjsip.conf:{line}: [1001]: unknown type 'endpointz'" in out


def test_endpoint_context_that_does_not_exist(broken, capsys):
    line = broken.edit("pjsip.conf", "context = agents ", "context = agnets ")
    out = run(broken, capsys)
    assert (f"{broken.dialplans}/pjsip.conf:{line}: [1001]: context 'agnets' is not a context "
            "of extensions.conf") in out
    # Every agent inherits the template: each is reported, at the template's line.
    assert out.count(f"pjsip.conf:{line}: [100") == 4


@pytest.mark.parametrize("old, new, says", [
    ("Goto(to-queue,sales,1)", "Goto(to-queeu,sales,1)", "no context 'to-queeu'"),
    ("Goto(ivr-main,s,1)", "Goto(ivr-main,x,1)", "no extension 'x' in [ivr-main]"),
    ("GotoIf($[${MENU_TRIES} < ${IVR_TRIES}]?s,menu)", "GotoIf($[${MENU_TRIES} < ${IVR_TRIES}]?s,mneu)",
     "extension 's' of [ivr-main] has no label 'mneu'"),
    ("Goto(s,menu)", "Goto(s,9)", "extension 's' of [ivr-main] has no priority 9"),
    ("Dial(PJSIP/1004,30,t)", "Dial(PJSIP/1044,30,t)", "no PJSIP endpoint '1044' in pjsip.conf"),
    ("Background(ivr/welcome)", "Background(ivr/welcom)", "no prompt welcom.txt or welcom.wav"),
    ("Playback(ivr/sorry-busy)", "Queue(salse,t)\n same => n,Playback(ivr/sorry-busy)",
     "no queue 'salse' in queues.conf"),
])
def test_dialplan_targets_that_do_not_exist(broken, capsys, old, new, says):
    line = broken.edit("extensions.conf", old, new)
    out = run(broken, capsys)
    hit = [o for o in out.splitlines() if says in o]
    assert hit and hit[0].startswith(f"{broken.dialplans}/extensions.conf:{line}: ["), out


def test_queue_member_that_is_no_phone(broken, capsys):
    # Members are dynamic (agents sign in), but an admin may still write one in.
    line = broken.edit("queues.conf", "[sales](department)\n",
                       "[sales](department)\nmember => PJSIP/1022,0,Agent Bela\n") + 1
    out = run(broken, capsys)
    assert (f"{broken.dialplans}/queues.conf:{line}: [sales]: member PJSIP/1022 is no PJSIP "
            "endpoint") in out


def test_configured_agent_without_a_phone(broken, capsys, monkeypatch):
    monkeypatch.setenv("IVR_SECRET_1007", "x" * 16)
    broken.users.append("1007")
    out = run(broken, capsys)
    line = broken.config.read_text().splitlines().index('  "1007": {name: Agent 1007}') + 1
    assert f"{broken.config}:{line}: users.1007: agent 1007 has no PJSIP endpoint [1007]" in out


def test_did_of_a_script_without_a_route(broken, capsys):
    # The key-account line's script matches DID 5550199; its route is renamed away.
    broken.edit("extensions.conf", "exten => 5550199,1,", "exten => 5550198,1,")
    out = run(broken, capsys)
    script = broken.scripts / "acme-key-accounts.yaml"
    line = script.read_text().splitlines().index('  - {did: "5550199"}') + 1
    assert (f"{script}:{line}: DID 5550199 has no route of its own in extensions.conf "
            "[from-trunk]: only the catch-all _X. takes it") in out


def test_check_names_the_dialplan_lines_asterisk_rejects_one_per_line(broken, capsys, pbx):
    bad = broken.edit("extensions.conf", "Goto(to-queue,sales,1)\n\n; Key",
                      "Goto(to-queue,sales,1\n\n; Key")
    allow = broken.edit("pjsip.conf", "allow = ulaw,alaw\ndirect_media = no         ;",
                        "allow = ulaw,alawz\ndirect_media = no         ;")
    broken.edit("modules.conf", "load = app_dial.so", "load = app_dail.so")
    out = run(broken, capsys, pbx)
    ext, pjsip = broken.dialplans / "extensions.conf", broken.dialplans / "pjsip.conf"
    assert f"{ext}:{bad}: Asterisk warning: No closing parenthesis" in out, out
    # Asterisk says it in three messages, only the last naming the file: one problem here.
    for agent in ("1001", "1002", "1003", "1004"):
        assert (f"{pjsip}:{allow}: Asterisk error: Cannot allow unknown format 'alawz'; "
                f"Error parsing allow=ulaw,alawz at line {allow}; Could not create an object "
                f"of type 'endpoint' with id '{agent}' from configuration file 'pjsip.conf'\n"
                ) in out, out
    assert "modules.conf" in out and "app_dail.so: module did not load" in out
    for line in out.splitlines():
        if line.startswith(("config:", "scripts:", "dialplans:", "speech:")):
            continue
        assert re.match(r"^/\S+(:\d+)?: ", line), f"a problem without its file: {line!r}"
