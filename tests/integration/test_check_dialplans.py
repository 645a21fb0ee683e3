"""`ivr check` loads the dialplans into a throw-away Asterisk and reports what it rejects."""
import shutil

import pytest

from ivr.cli import main
from tests.conftest import REPO

pytestmark = pytest.mark.pbx


def test_check_names_the_dialplan_lines_asterisk_rejects(pbx, tmp_path, capsys, monkeypatch):
    dialplans = tmp_path / "dialplans"
    shutil.copytree(REPO / "dialplans", dialplans)
    ext = dialplans / "extensions.conf"
    lines = ext.read_text().splitlines()
    bad = next(i for i, l in enumerate(lines) if "Goto(to-queue,sales,1)" in l)
    lines[bad] = lines[bad].replace("Goto(to-queue,sales,1)", "Goto(to-queue,sales,1")
    ext.write_text("\n".join(lines) + "\n")
    mods = dialplans / "modules.conf"
    mods.write_text(mods.read_text().replace("load = app_dial.so", "load = app_dail.so"))
    config = tmp_path / "ivr.yaml"
    config.write_text(f"pbx: {{dialplans: {dialplans}, root: {pbx.root}}}\n"
                      f"scripts: {REPO / 'scripts'}\n")
    monkeypatch.setenv("IVR_AMI_SECRET", "check")
    assert main(["check", "-c", str(config)]) == 1
    out = capsys.readouterr().out
    assert f"{ext}:{bad + 1}: Asterisk warning: No closing parenthesis" in out
    assert "modules.conf" in out and "app_dail.so: module did not load" in out
    shutil.copy(REPO / "dialplans" / "extensions.conf", ext)
    shutil.copy(REPO / "dialplans" / "modules.conf", mods)
    assert main(["check", "-c", str(config)]) == 0
