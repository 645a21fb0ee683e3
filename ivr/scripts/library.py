"""All call scripts of a folder, hot-reloaded, always serving the last good version.

Admins edit scripts while calls go on. A file that breaks (a typo, half-saved)
must not take its script away from agents mid-shift: the library keeps serving
the last version that loaded and reports the problem until the file is fixed.
Nothing here raises on bad files; `problems()` says what is wrong right now.

Changes are found by polling: a file's (mtime, size, inode) tells whether to
read it again, and its content hash whether it really changed (a `touch` or a
save without edits does not reload anything).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

from ..calls.model import Call
from ..yamlfile import Problem, YamlError
from .loader import parse_script, read_text
from .matching import ScriptChoice, choose_script
from .model import CRITERIA, Script

log = logging.getLogger(__name__)

PATTERNS = ("*.yaml", "*.yml")
RECENT_SECONDS = 2.0


@dataclass
class _Entry:
    """What we know about one file."""

    path: Path
    stat: tuple[int, int, int] | None = None  # (mtime_ns, size, inode) when last read
    digest: str | None = None  # hash of the content last read
    good: Script | None = None  # the last version that loaded
    problems: list[Problem] = field(default_factory=list)  # of the current content


@dataclass(frozen=True)
class ReloadReport:
    changed: tuple[str, ...] = ()  # files (re)loaded with new content
    failed: tuple[str, ...] = ()  # files whose new content does not load
    removed: tuple[str, ...] = ()  # files that are gone
    served: tuple[str, ...] = ()  # script ids served now
    problems: tuple[Problem, ...] = ()  # everything wrong right now

    @property
    def anything_changed(self) -> bool:
        return bool(self.changed or self.failed or self.removed)


OnChange = Callable[[ReloadReport], "Awaitable[Any] | Any"]


def _is_script_file(path: Path) -> bool:
    # Editors leave lock and backup files next to the real one (.#x.yaml, ~x.yaml).
    return path.is_file() and not path.name.startswith((".", "#", "~"))


class ScriptLibrary:
    """Scripts of one folder. Create, then `reload()` (the constructor does no I/O)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self._entries: dict[Path, _Entry] = {}
        self._served: dict[str, Script] = {}
        self._owner: dict[str, Path] = {}  # script id -> file serving it
        self._folder_problems: list[Problem] = []
        self._cross_problems: list[Problem] = []

    # ------------------------------------------------------------ queries
    def scripts(self) -> list[Script]:
        """The scripts served now, by id."""
        return [self._served[k] for k in sorted(self._served)]

    def get(self, script_id: str) -> Script | None:
        return self._served.get(script_id)

    def problems(self) -> list[Problem]:
        out = list(self._folder_problems)
        for path in sorted(self._entries):
            out += self._entries[path].problems
        return out + self._cross_problems

    def files(self) -> list[Path]:
        return sorted(self._entries)

    def choose(self, call: Call) -> ScriptChoice:
        return choose_script(call, self.scripts())

    # ------------------------------------------------------------ reloading
    def _list(self) -> list[Path] | None:
        try:
            names = {p for pattern in PATTERNS for p in self.folder.glob(pattern)}
        except OSError as exc:
            self._folder_problems = [
                Problem(
                    str(self.folder), None, "", f"cannot list the scripts folder: {exc.strerror}"
                )
            ]
            return None
        if not self.folder.is_dir():
            self._folder_problems = [
                Problem(str(self.folder), None, "", "the scripts folder does not exist")
            ]
            return None
        self._folder_problems = []
        return sorted(p for p in names if _is_script_file(p))

    def reload(self, force: bool = False) -> ReloadReport:
        """Look at the folder again; load what changed. Never raises on bad files."""
        paths = self._list()
        changed: list[str] = []
        failed: list[str] = []
        removed: list[str] = []
        if paths is None:
            # The folder itself is unreadable (unmounted?): keep serving what we have.
            return self._report(changed, failed, removed)
        for path in sorted(set(self._entries) - set(paths)):
            del self._entries[path]
            removed.append(str(path))
        for path in paths:
            entry = self._entries.setdefault(path, _Entry(path))
            outcome = self._refresh(entry, force)
            if outcome == "changed":
                changed.append(str(path))
            elif outcome == "failed":
                failed.append(str(path))
        self._serve()
        report = self._report(changed, failed, removed)
        if report.anything_changed:
            for p in report.problems:
                log.warning("scripts: %s", p)
        return report

    def _refresh(self, entry: _Entry, force: bool) -> str:
        """'changed', 'failed' or 'same'."""
        try:
            st = os.stat(entry.path)
        except OSError:
            return "same"  # vanished since listing; next poll removes it
        stat = (st.st_mtime_ns, st.st_size, st.st_ino)
        # A file written twice within the file system's timestamp granularity can
        # keep its stat; recently modified files are therefore always re-hashed.
        recent = time.time() - st.st_mtime < RECENT_SECONDS
        if stat == entry.stat and not force and not recent:
            return "same"
        entry.stat = stat
        try:
            text, digest = read_text(entry.path)
        except YamlError as exc:
            return self._failed(entry, exc.problems, None)
        if digest == entry.digest:
            return "same"  # touched or saved unchanged
        try:
            script = parse_script(text, str(entry.path), digest)
        except YamlError as exc:
            return self._failed(entry, exc.problems, digest)
        except Exception as exc:  # a bug in the checks must not stop the service
            log.exception("scripts: %s could not be checked", entry.path)
            return self._failed(
                entry,
                [Problem(str(entry.path), None, "", f"internal error while checking: {exc!r}")],
                digest,
            )
        entry.digest, entry.good, entry.problems = digest, script, []
        return "changed"

    def _failed(self, entry: _Entry, problems: list[Problem], digest: str | None) -> str:
        entry.digest = digest
        entry.problems = list(problems)
        if entry.good is not None:
            entry.problems.append(
                Problem(
                    str(entry.path),
                    None,
                    "",
                    f"not reloaded: still serving the last good version {entry.good.version!r} "
                    f"of script {entry.good.id!r} until the file is fixed",
                )
            )
        return "failed"

    def _serve(self) -> None:
        """Decide which file serves each script id, and check scripts against each other."""
        claims: dict[str, list[_Entry]] = {}
        for path in sorted(self._entries):
            entry = self._entries[path]
            if entry.good is not None:
                claims.setdefault(entry.good.id, []).append(entry)
        served: dict[str, Script] = {}
        owner: dict[str, Path] = {}
        cross: list[Problem] = []
        for script_id, entries in sorted(claims.items()):
            # The file that served this id before keeps it: copying a script to a new
            # file (and forgetting to change the id) must not hijack live calls.
            incumbent = self._owner.get(script_id)
            winner = next((e for e in entries if e.path == incumbent), entries[0])
            served[script_id] = winner.good  # type: ignore[assignment]
            owner[script_id] = winner.path
            for e in entries:
                if e is not winner:
                    cross.append(
                        Problem(
                            str(e.path),
                            None,
                            "id",
                            f"duplicate script id {script_id!r}: already served "
                            f"from {winner.path}; this file is not served",
                        )
                    )
        self._served, self._owner = served, owner
        self._cross_problems = cross + cross_problems(list(served.values()))

    def _report(self, changed: list[str], failed: list[str], removed: list[str]) -> ReloadReport:
        return ReloadReport(
            tuple(changed),
            tuple(failed),
            tuple(removed),
            tuple(sorted(self._served)),
            tuple(self.problems()),
        )

    async def watch(self, interval: float = 1.0, on_change: OnChange | None = None) -> None:
        """Poll the folder forever; call `on_change(report)` when something changed.

        Runs on the event loop itself: the files are small, and keeping all state
        changes on one thread means readers never see a half-done reload.
        """
        while True:
            await asyncio.sleep(interval)
            try:
                report = self.reload()
            except Exception:  # never let the watcher die
                log.exception("scripts: reload failed")
                continue
            if report.anything_changed and on_change is not None:
                try:
                    result = on_change(report)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("scripts: on_change callback failed")


def cross_problems(scripts: list[Script]) -> list[Problem]:
    """Problems only visible across scripts: two defaults, identical match criteria."""
    problems: list[Problem] = []
    by_id = sorted(scripts, key=lambda s: s.id)
    for direction in {s.direction for s in by_id}:
        defaults = [s for s in by_id if s.direction is direction and s.match.default]
        for extra in defaults[1:]:
            problems.append(
                Problem(
                    extra.source,
                    None,
                    "match.default",
                    f"{defaults[0].id!r} is also a default {direction.value} "
                    f"script; {defaults[0].id!r} is used (first by id)",
                )
            )
    seen: dict[tuple, Script] = {}
    for s in by_id:
        for alt in s.match.alternatives:
            key = (
                s.direction,
                *(tuple(sorted(v.casefold() for v in getattr(alt, name))) for name in CRITERIA),
            )
            first = seen.setdefault(key, s)
            if first is not s:
                problems.append(
                    Problem(
                        s.source,
                        None,
                        "match",
                        f"matches exactly the same calls as {first.id!r} "
                        f"({first.source}), which always wins (first by id)",
                    )
                )
    return sorted(problems, key=lambda p: (p.file, p.field))
