"""The package's imports follow the data path: what may import what.

AMI events -> calls -> script pop -> audio tap -> speech -> coaching -> prompts
-> web console -> outcomes. A stage never imports a later one, the store knows
nothing of the dialer or the web, and the simulated world (ivr/testing: SIPp
phones, synthetic speakers) is for tests, benchmarks and the demo only."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

IVR = Path(__file__).resolve().parents[2] / "ivr"


def _imports() -> dict[str, set[str]]:
    """module (dotted) -> the ivr modules it imports (dotted, as written)."""
    out: dict[str, set[str]] = {}
    for path in IVR.rglob("*.py"):
        rel = path.relative_to(IVR.parent).with_suffix("")
        parts = list(rel.parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        module = ".".join(parts)
        package = parts if is_pkg else parts[:-1]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[:len(package) - node.level + 1]
                    target = ".".join([*base, *(node.module.split(".") if node.module else [])])
                else:
                    target = node.module or ""
                names = [f"{target}.{a.name}" for a in node.names]
                found.update([target, *names])
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
        out[module] = {m for m in found if m == "ivr" or m.startswith("ivr.")}
    return out


IMPORTS = _imports()


def importers(prefix: str) -> set[str]:
    return {m for m, deps in IMPORTS.items()
            if not m.startswith(prefix) and any(d == prefix or d.startswith(prefix + ".")
                                                for d in deps)}


def test_the_simulated_world_is_for_the_demo_only():
    assert importers("ivr.testing") == {"ivr.demo"}


@pytest.mark.parametrize("stage,later", [
    ("ivr.ami", ("ivr.calls", "ivr.pop", "ivr.live", "ivr.web", "ivr.outcomes", "ivr.dialer",
                 "ivr.coaching", "ivr.speech", "ivr.tap")),
    ("ivr.calls", ("ivr.pop", "ivr.live", "ivr.web", "ivr.outcomes", "ivr.dialer",
                   "ivr.coaching", "ivr.speech", "ivr.tap", "ivr.scripts")),
    ("ivr.coaching", ("ivr.live", "ivr.web", "ivr.outcomes", "ivr.dialer", "ivr.tap",
                      "ivr.server")),
    ("ivr.outcomes", ("ivr.dialer", "ivr.web", "ivr.pop", "ivr.live", "ivr.server")),
    ("ivr.dialer", ("ivr.web", "ivr.server")),
])
def test_a_stage_never_imports_a_later_one(stage, later):
    for module, deps in IMPORTS.items():
        if module == stage or module.startswith(stage + "."):
            wrong = sorted(d for d in deps for bad in later if d == bad or d.startswith(bad + "."))
            assert not wrong, f"{module} imports {wrong}"


def test_phone_numbers_have_one_normal_form():
    """Only ivr/calls/numbers.py turns a dialled string into a number."""
    for path in IVR.rglob("*.py"):
        if path.name != "numbers.py":
            assert "startswith(\"00\")" not in path.read_text(encoding="utf-8"), path
