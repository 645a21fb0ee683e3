"""The scripts folder: hot reload, last good version kept, duplicates reported, never raises."""
import asyncio
import os
from pathlib import Path

from ivr.scripts import ScriptLibrary, check_folder

SCRIPT = """\
id: {id}
project: {project}
title: {title}
language: en
direction: {direction}
kind: strict
match:
  {match}
steps:
  - id: greeting
    title: Greeting
    text: Hello, this is {{company}}.
dispositions:
  - {{id: done, label: Done}}
"""


def script(id="a", project="p", title="Title", direction="inbound", match="project: p") -> str:
    return SCRIPT.format(id=id, project=project, title=title, direction=direction, match=match)


def put(folder: Path, name: str, text: str) -> Path:
    p = folder / name
    p.write_text(text, encoding="utf-8")
    return p


def test_loads_every_yaml_and_ignores_other_files(tmp_path):
    put(tmp_path, "a.yaml", script("a"))
    put(tmp_path, "b.yml", script("b", match="project: q"))
    put(tmp_path, "notes.md", "# not a script")
    put(tmp_path, ".#a.yaml", "editor lock file")
    lib = ScriptLibrary(tmp_path)
    report = lib.reload()
    assert report.served == ("a", "b") and report.problems == ()
    assert sorted(Path(f).name for f in report.changed) == ["a.yaml", "b.yml"]
    assert [s.id for s in lib.scripts()] == ["a", "b"] and lib.get("a").title == "Title"


def test_a_broken_file_keeps_its_last_good_version_until_fixed(tmp_path):
    p = put(tmp_path, "a.yaml", script(title="First"))
    lib = ScriptLibrary(tmp_path)
    lib.reload()
    good = lib.get("a")
    p.write_text(script(title="Second").replace("kind: strict", "kind: strickt"))
    report = lib.reload()
    assert report.failed == (str(p),) and report.changed == () and report.served == ("a",)
    assert lib.get("a") is good and lib.get("a").title == "First"
    assert [str(x) for x in lib.problems()] == [
        f"{p}:6: kind: must be strict or flexible, not 'strickt'",
        f"{p}: not reloaded: still serving the last good version {good.version!r} of "
        "script 'a' until the file is fixed"]
    # Unchanged broken file: nothing new to report on the next poll.
    assert not lib.reload().anything_changed
    p.write_text(script(title="Third"))
    report = lib.reload()
    assert report.changed == (str(p),) and lib.get("a").title == "Third"
    assert lib.problems() == []


def test_a_new_file_that_is_broken_serves_nothing_and_says_why(tmp_path):
    put(tmp_path, "a.yaml", "id: [\n")
    lib = ScriptLibrary(tmp_path)
    report = lib.reload()
    assert report.served == () and len(report.failed) == 1
    # The file ends inside the list: PyYAML names the line after it.
    assert report.problems[0].line == 2 and "YAML syntax" in report.problems[0].reason


def test_touching_a_file_does_not_reload_it(tmp_path):
    p = put(tmp_path, "a.yaml", script())
    lib = ScriptLibrary(tmp_path)
    lib.reload()
    first = lib.get("a")
    os.utime(p, None)
    assert not lib.reload().anything_changed and lib.get("a") is first


def test_removed_files_stop_being_served(tmp_path):
    p = put(tmp_path, "a.yaml", script())
    lib = ScriptLibrary(tmp_path)
    lib.reload()
    p.unlink()
    report = lib.reload()
    assert report.removed == (str(p),) and report.served == () and lib.get("a") is None


def test_duplicate_ids_first_file_serves_then_the_incumbent_keeps_it(tmp_path):
    put(tmp_path, "m.yaml", script("x", title="M"))
    lib = ScriptLibrary(tmp_path)
    lib.reload()
    # A copy sorting before it, id not changed: must not hijack the live script.
    put(tmp_path, "a-copy.yaml", script("x", title="Copy", match="project: other"))
    lib.reload()
    assert lib.get("x").title == "M"
    assert [str(p) for p in lib.problems()] == [
        f"{tmp_path / 'a-copy.yaml'}: id: duplicate script id 'x': already served from "
        f"{tmp_path / 'm.yaml'}; this file is not served"]
    # A fresh start has no incumbent: the first file by name serves.
    fresh = ScriptLibrary(tmp_path)
    fresh.reload()
    assert fresh.get("x").title == "Copy" and len(fresh.problems()) == 1


def test_cross_script_problems_two_defaults_and_identical_matches(tmp_path):
    put(tmp_path, "a.yaml", script("a", match="default: true"))
    put(tmp_path, "b.yaml", script("b", match="default: true"))
    put(tmp_path, "c.yaml", script("c", match="project: same"))
    put(tmp_path, "d.yaml", script("d", match="project: [Same]"))
    put(tmp_path, "e.yaml", script("e", match="project: same", direction="outbound"))
    assert [str(p) for p in check_folder(tmp_path)] == [
        f"{tmp_path / 'b.yaml'}: match.default: 'a' is also a default inbound script; "
        "'a' is used (first by id)",
        f"{tmp_path / 'd.yaml'}: match: matches exactly the same calls as 'c' "
        f"({tmp_path / 'c.yaml'}), which always wins (first by id)"]


def test_missing_or_empty_folder(tmp_path):
    lib = ScriptLibrary(tmp_path / "nope")
    report = lib.reload()
    assert report.served == () and "does not exist" in report.problems[0].reason
    assert [p.reason for p in check_folder(tmp_path)] == ["no call scripts (*.yaml) in this folder"]


def test_folder_vanishing_keeps_the_last_good_scripts(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    put(folder, "a.yaml", script())
    lib = ScriptLibrary(folder)
    lib.reload()
    (folder / "a.yaml").unlink()
    folder.rmdir()
    report = lib.reload()
    assert report.served == ("a",) and "does not exist" in report.problems[0].reason


def test_binary_garbage_is_a_problem_not_a_crash(tmp_path):
    (tmp_path / "a.yaml").write_bytes(b"\xff\xfe\x00garbage")
    report = ScriptLibrary(tmp_path).reload()
    assert report.served == () and "not UTF-8" in report.problems[0].reason


async def test_watch_reports_changes_and_survives_bad_files(tmp_path):
    p = put(tmp_path, "a.yaml", script(title="One"))
    lib = ScriptLibrary(tmp_path)
    lib.reload()
    reports = []
    changed = asyncio.Event()

    async def on_change(report):
        reports.append(report)
        changed.set()

    task = asyncio.create_task(lib.watch(interval=0.02, on_change=on_change))
    try:
        p.write_text("id: [broken\n")
        await asyncio.wait_for(changed.wait(), 5)
        assert reports[-1].failed == (str(p),) and lib.get("a").title == "One"
        changed.clear()
        p.write_text(script(title="Two"))
        await asyncio.wait_for(changed.wait(), 5)
        assert reports[-1].changed == (str(p),) and lib.get("a").title == "Two"
        assert not task.done()
    finally:
        task.cancel()


async def test_watch_survives_a_failing_callback(tmp_path):
    p = put(tmp_path, "a.yaml", script(title="One"))
    lib = ScriptLibrary(tmp_path)
    lib.reload()
    calls = []

    def on_change(report):
        calls.append(report)
        raise RuntimeError("listener bug")

    task = asyncio.create_task(lib.watch(interval=0.02, on_change=on_change))
    try:
        p.write_text(script(title="Two"))
        for _ in range(250):
            if calls:
                break
            await asyncio.sleep(0.02)
        p.write_text(script(title="Three"))
        for _ in range(250):
            if len(calls) > 1:
                break
            await asyncio.sleep(0.02)
        assert len(calls) >= 2 and not task.done() and lib.get("a").title == "Three"
    finally:
        task.cancel()
