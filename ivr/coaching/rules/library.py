"""Every coaching rule file of a folder: ``extends`` resolved, one default set per
language and one set per (project, language) checked, hot-reloaded with the last
good version of a broken file kept (as ivr/scripts/library.py does for scripts).
"""

from __future__ import annotations

import asyncio
import difflib
import logging
from pathlib import Path
from typing import Any, Callable

from ...yamlfile import Problem, YamlError
from ..model import DEFAULT_CHECKLIST_PROMPT, RuleSet, empty_ruleset
from .loader import Lines, parse_lines

log = logging.getLogger(__name__)

PATTERNS = ("*.yaml", "*.yml")


def _merge(base: RuleSet, child: RuleSet) -> RuleSet:
    """``child`` on top of ``base``: same id replaces in place, dropped ids go, new ones last."""
    dropped = set(child.dropped)
    replaced = {r.id: r for r in child.rules}
    out = [replaced.pop(r.id, r) for r in base.rules if r.id not in dropped]
    out += [r for r in child.rules if r.id in replaced]
    checklist = (
        child.checklist if child.checklist is not DEFAULT_CHECKLIST_PROMPT else base.checklist
    )
    return RuleSet(
        child.id,
        child.language,
        tuple(out),
        checklist,
        {**base.items, **child.items},
        child.projects,
        child.default,
        child.extends,
        child.file,
        child.dropped,
    )


class RuleLibrary:
    """Every rule set of a folder (not its subfolders), resolved; ``ruleset_for`` picks one.

    ``RuleLibrary.load(folder)`` raises YamlError listing every problem;
    ``RuleLibrary(folder).reload()`` keeps what loads and lists the rest in
    ``problems()`` (a broken file never takes the other sets down).
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.sets: dict[str, RuleSet] = {}
        self._problems: list[Problem] = []
        # Per file: the last version that parsed (a broken edit keeps serving it).
        self._good: dict[str, tuple[RuleSet, Lines]] = {}
        self._seen: tuple = ()

    @classmethod
    def load(cls, folder: str | Path) -> "RuleLibrary":
        lib = cls(folder)
        lib.reload()
        if lib._problems:
            raise YamlError(lib._problems)
        return lib

    def problems(self) -> list[Problem]:
        return list(self._problems)

    def files(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        names = {p for pat in PATTERNS for p in self.folder.glob(pat)}
        return sorted(p for p in names if p.is_file() and not p.name.startswith((".", "#", "~")))

    def reload(self) -> list[Problem]:
        problems: list[Problem] = []
        if not self.folder.is_dir():
            self._problems = [
                Problem(str(self.folder), None, "", "the rules folder does not exist")
            ]
            self.sets = {}
            return self._problems
        raw: dict[str, RuleSet] = {}
        lines: dict[str, Lines] = {}

        def at(rs: RuleSet, key: str) -> int | None:
            return lines.get(rs.file, {}).get(key)

        self._seen = self._signature()
        files = self.files()
        for gone in set(self._good) - {str(p) for p in files}:
            del self._good[gone]
        for path in files:
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(Problem(str(path), None, "", f"cannot read: {exc}"))
                continue
            rs, probs, file_lines = parse_lines(text, str(path))
            problems += probs
            if rs is None and str(path) in self._good:
                # Keep coaching with the last good version until the file is fixed.
                rs, file_lines = self._good[str(path)]
                problems.append(
                    Problem(
                        str(path), None, "", "the last good version of this file is still in use"
                    )
                )
            elif rs is not None:
                self._good[str(path)] = (rs, file_lines)
            if rs is None:
                continue
            lines[rs.file] = file_lines
            if rs.id in raw:
                problems.append(
                    Problem(
                        str(path),
                        file_lines.get("id"),
                        "id",
                        f"duplicate rule set id {rs.id!r}: already used in {raw[rs.id].file}",
                    )
                )
                continue
            raw[rs.id] = rs
        resolved: dict[str, RuleSet] = {}

        def resolve(set_id: str, chain: tuple[str, ...]) -> RuleSet | None:
            if set_id in resolved:
                return resolved[set_id]
            rs = raw[set_id]
            if rs.extends is None:
                resolved[set_id] = rs
                return rs
            if rs.extends in chain or rs.extends == set_id:
                problems.append(
                    Problem(
                        rs.file,
                        at(rs, "extends"),
                        "extends",
                        f"circular: {' -> '.join((*chain, set_id, rs.extends))}",
                    )
                )
                return None
            if rs.extends not in raw:
                close = difflib.get_close_matches(rs.extends, sorted(raw), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                problems.append(
                    Problem(
                        rs.file, at(rs, "extends"), "extends", f"no rule set {rs.extends!r}{hint}"
                    )
                )
                return None
            base = resolve(rs.extends, (*chain, set_id))
            if base is None:
                return None
            for rid in rs.dropped:
                if base.rule(rid) is None:
                    problems.append(
                        Problem(
                            rs.file,
                            at(rs, "rules"),
                            "rules",
                            f"{rid!r} has enabled: false but {rs.extends!r} "
                            f"has no such rule to drop",
                        )
                    )
            if base.language != rs.language:
                problems.append(
                    Problem(
                        rs.file,
                        at(rs, "extends"),
                        "extends",
                        f"{rs.extends!r} is in {base.language!r}, this set in "
                        f"{rs.language!r}: prompts would mix languages",
                    )
                )
                return None
            resolved[set_id] = _merge(base, rs)
            return resolved[set_id]

        for set_id in raw:
            resolve(set_id, ())
        # one default per language, one set per (project, language)
        defaults: dict[str, RuleSet] = {}
        claims: dict[tuple[str, str], RuleSet] = {}
        for rs in resolved.values():
            if rs.default:
                if rs.language in defaults:
                    problems.append(
                        Problem(
                            rs.file,
                            at(rs, "default"),
                            "default",
                            f"a second default for {rs.language!r} (the first "
                            f"is {defaults[rs.language].file})",
                        )
                    )
                else:
                    defaults[rs.language] = rs
            for project in rs.projects:
                key = (project, rs.language)
                if key in claims:
                    problems.append(
                        Problem(
                            rs.file,
                            at(rs, "projects"),
                            "projects",
                            f"{project!r} in {rs.language!r} is already "
                            f"covered by {claims[key].file}",
                        )
                    )
                else:
                    claims[key] = rs
        self.sets = resolved
        self._problems = problems
        for p in problems:
            log.warning("coaching rules: %s", p)
        return problems

    def _signature(self) -> tuple:
        out = []
        for path in self.files():
            try:
                st = path.stat()
            except OSError:
                continue
            out.append((str(path), st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(out)

    def changed(self) -> bool:
        """Whether any rule file was added, removed or written since the last reload."""
        return self._signature() != self._seen

    async def watch(
        self, interval: float = 1.0, on_change: "Callable[[list[Problem]], Any] | None" = None
    ) -> None:
        """Poll the rules folder forever; reload and call ``on_change(problems)`` on a change.
        Rule files are hot-reloaded on their own, not only when a script changes."""
        while True:
            await asyncio.sleep(interval)
            try:
                if not self.changed():
                    continue
                problems = self.reload()
            except Exception:  # never let the watcher die
                log.exception("coaching rules: reload failed")
                continue
            log.info("coaching rules reloaded: %d sets, %d problems", len(self.sets), len(problems))
            if on_change is not None:
                try:
                    on_change(problems)
                except Exception:
                    log.exception("coaching rules: on_change failed")

    def ruleset_for(self, project: str | None, language: str | None) -> RuleSet:
        language = (language or "en").strip()
        for lang in dict.fromkeys([language, language.split("-")[0]]):
            for rs in self.sets.values():
                if rs.language == lang and project and project in rs.projects:
                    return rs
            for rs in self.sets.values():
                if rs.language == lang and rs.default:
                    return rs
        return empty_ruleset(language)


def check_rules(folder: str | Path) -> list[Problem]:
    """`ivr check` for a rules folder: every problem, nothing raised."""
    lib = RuleLibrary(folder)
    problems = lib.reload()
    if not problems and not lib.files():
        problems = [Problem(str(folder), None, "", "no rule sets (*.yaml) in this folder")]
    return problems
