"""`ivr test` runs the suite of the checkout it is installed from, and says so otherwise."""
import os

from ivr.cli import main


def test_ivr_test_refuses_another_checkout(tmp_path, capsys, monkeypatch):
    other = tmp_path / "other-clone"
    (other / "ivr").mkdir(parents=True)
    (other / "pyproject.toml").write_text("[project]\nname = 'ivr'\n")
    (other / "ivr" / "cli.py").write_text("")
    monkeypatch.chdir(other)
    assert main(["test", "-x"]) == 2
    err = capsys.readouterr().err
    assert f"not from {os.path.realpath(other)}" in err and "bash .ci/setup" in err
