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


def test_the_code_checks_pass_here_and_fail_on_a_lint_error(tmp_path, capsys):
    """`ivr test` (the whole suite, as CI runs it) lints, checks the format and the
    types first: this checkout passes; an unused import fails the run."""
    import shutil
    from pathlib import Path

    from ivr.cli import lint
    repo = Path(__file__).resolve().parents[2]
    assert lint(repo) == []
    shutil.copy(repo / "pyproject.toml", tmp_path / "pyproject.toml")
    for folder in ("ivr", "bench"):
        (tmp_path / folder).mkdir()
    (tmp_path / "ivr" / "__init__.py").write_text('"""x."""\n\nimport os\n')
    (tmp_path / "bench" / "ok.py").write_text('"""y."""\n')
    assert lint(tmp_path) == ["ruff check ivr bench"]
