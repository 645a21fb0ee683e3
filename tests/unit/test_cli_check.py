"""`ivr check` as an admin runs it: every problem with file and line, exit 1."""
import shutil

from ivr.cli import main
from tests.conftest import REPO


def test_check_reports_broken_script_and_rule_files(tmp_path, capsys):
    scripts = tmp_path / "scripts"
    shutil.copytree(REPO / "scripts", scripts)
    (scripts / "acme-sales.yaml").write_text("id: acme-sales\nkind: [oops\n")
    (scripts / "rules" / "bad.en.yaml").write_text("id: x\nlanguage: en\ndefault: true\n"
                                                   "rules:\n  - {id: y, type: nope, text: t}\n")
    config = tmp_path / "ivr.yaml"
    config.write_text(f"scripts: {scripts}\n")
    assert main(["check", "--no-pbx", "-c", str(config)]) == 1
    out = capsys.readouterr().out
    assert f"{scripts}/acme-sales.yaml:3: YAML syntax" in out
    assert f"{scripts}/rules/bad.en.yaml:5: rules[0].type:" in out


def test_check_passes_on_the_shipped_files(capsys):
    assert main(["check", "--no-pbx", "-c", str(REPO / "ivr.example.yaml")]) == 0
    assert "scripts: ok" in capsys.readouterr().out
