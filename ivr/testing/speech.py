"""Synthetic speakers: text spoken by espeak-ng, as a phone line carries it. The one
text-to-speech helper of the demo, the tests and the benchmarks.

``synth`` gives signed 16-bit mono PCM: through 8 kHz G.711 u-law as a SIP call
and the tap deliver it (``telephone``), or band-passed to a phone line's
300-3400 Hz and trimmed of silence (``line``, the benchmarks' labelled corpus).
Korean is said as people say it (pronunciation.py). Everything is cached in the
temp folder by text, voice, speed and treatment. sox runs in its repeatable
mode (-R: dither from a fixed seed), so the same text is the same audio on
every machine and every run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .pronunciation import pronounce as _pronounce

CACHE = Path(tempfile.gettempdir()) / "ivr-speech-probe"


class SynthError(RuntimeError):
    pass


# sox's words for raw 8 kHz G.711 u-law, and for raw signed 16-bit mono PCM.
ULAW = ["-t", "raw", "-r", "8000", "-c", "1", "-e", "u-law", "-b", "8"]


def pcm_format(rate: int = 8000) -> list[str]:
    return ["-t", "raw", "-r", str(rate), "-c", "1", "-e", "signed", "-b", "16"]


# A phone line's band, then silence trimmed at both ends (sox effects).
LINE = [
    "sinc",
    "300-3400",
    "silence",
    "1",
    "0.02",
    "0.5%",
    "reverse",
    "silence",
    "1",
    "0.02",
    "0.5%",
    "reverse",
]


def synth(
    text: str,
    *,
    voice: str = "ko",
    speed: int = 150,
    rate: int = 8000,
    telephone: bool = True,
    line: bool = False,
    cache: Path | None = None,
    pronounce: bool = True,
) -> bytes:
    """espeak-ng speech as signed 16-bit mono PCM at ``rate``.

    telephone=True passes it through 8 kHz G.711 u-law first, as a SIP call
    and the tap deliver it; line=True (instead) band-passes it to 300-3400 Hz
    and trims the silence around it. Korean is said as people say it
    (pronunciation.py: "감사합니다" as "감사함니다"), not letter by letter as
    espeak-ng reads it."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise SynthError(f"{tool} is not installed (apt-get install -y espeak-ng sox)")
    cache = cache or CACHE
    cache.mkdir(parents=True, exist_ok=True)
    said = _pronounce(text) if pronounce and voice.split("+")[0] == "ko" else text
    how = f"{telephone}" + ("\0line" if line else "")
    key = hashlib.sha1(f"{voice}\0{speed}\0{rate}\0{how}\0{said}".encode()).hexdigest()[:20]
    out = cache / f"{key}.s16"
    if out.exists():
        return out.read_bytes()
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        wav = Path(tmp) / "s.wav"
        _run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(wav), said])
        src = ["sox", "-R", str(wav)]
        if telephone:
            ul = Path(tmp) / "s.ul"
            _run(["sox", "-R", str(wav), *ULAW, str(ul)])
            src = ["sox", "-R", *ULAW, str(ul)]
        raw = Path(tmp) / "s.raw"
        _run([*src, *pcm_format(rate), str(raw), *(LINE if line else [])])
        os.replace(raw, out)
    return out.read_bytes()


def ulaw_file(
    text: str, path: str | os.PathLike | None = None, *, voice: str = "ko", speed: int = 150
) -> Path:
    """The same speech as a raw u-law 8 kHz file (what SIPp's rtp_stream plays);
    without ``path``, a file cached under a name made from the text."""
    if path is None:
        key = hashlib.sha1(f"{voice}\0{speed}\0{text}".encode()).hexdigest()[:16]
        path = CACHE / f"{key}.ulaw"
        if path.exists():
            return path
    return pcm_to_ulaw(synth(text, voice=voice, speed=speed, rate=8000, telephone=True), path)


def lines_to_ulaw(lines, path: Path, *, voice: str = "ko", speed: int = 150) -> Path:
    """Spoken lines (str) and pauses (float seconds) as one u-law file for a SIPp phone."""
    pcm = b"".join(
        silence(x) if isinstance(x, (int, float)) else synth(x, voice=voice, speed=speed)
        for x in lines
    )
    return pcm_to_ulaw(pcm, path)


def pcm_to_ulaw(pcm: bytes, path: str | os.PathLike) -> Path:
    """8 kHz signed 16-bit PCM to a raw u-law file (written beside it, then renamed:
    another test run may want the same file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        raw = Path(tmp) / "s.raw"
        raw.write_bytes(pcm)
        ulaw = Path(tmp) / "s.ulaw"
        _run(["sox", "-R", *pcm_format(), str(raw), *ULAW, str(ulaw)])
        os.replace(ulaw, path)
    return path


def tone_ulaw(frequency: int, seconds: float = 60.0, *, volume: float = 0.3) -> Path:
    """A steady sine tone as raw u-law 8 kHz mono (cached): a party that plays a tone
    of its own is easy to find in what others hear (rtpcapture.py)."""
    path = CACHE / f"tone-{frequency}-{seconds:g}-{volume:g}.ulaw"
    if path.exists():
        return path
    if shutil.which("sox") is None:
        raise SynthError("sox is not installed (apt-get install -y sox)")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        raw = Path(tmp) / "tone.ulaw"
        _run(
            [
                "sox",
                "-R",
                "-n",
                *ULAW,
                str(raw),
                "synth",
                f"{seconds:g}",
                "sine",
                str(frequency),
                "vol",
                f"{volume:g}",
            ]
        )
        os.replace(raw, path)
    return path


def silence(seconds: float, rate: int = 8000) -> bytes:
    return b"\0\0" * int(seconds * rate)


def _run(cmd: list[str]) -> None:
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SynthError(f"{cmd[0]} failed ({p.returncode}): {p.stderr.strip()}")
