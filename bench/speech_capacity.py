"""Speech capacity: CPU seconds per audio second, side by side in one run.

One side of a phone call (espeak-ng Korean through 8 kHz u-law; about half
speech, half pauses, like a person in a dialogue) is decoded four ways with
the same model, in this one process, one core:

  naive      every 20 ms frame to Vosk, full transcription (no VAD)
  raw-gram   every frame to Vosk, phrase grammar (no VAD): raw Vosk cost
  pipe-full  this pipeline (webrtcvad gating -> Vosk), full transcription
  pipe-gram  this pipeline, phrase grammar (the cheap production mode)

CPU per audio second gives the streams one core holds in real time
(1 / cost; a call is two streams). Then the threads check: N streams in N
threads, to show Vosk releases the GIL (parallel speed-up) and that an
asyncio loop's timers stay on time meanwhile.

    python bench/speech_capacity.py [--seconds 60] [--model auto] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ivr.speech.recognizer import RecognitionMode, SpeechModel, StreamDecoder  # noqa: E402
from ivr.speech.vad import VadSettings  # noqa: E402
from ivr.testing.speech import silence, synth  # noqa: E402

RATE = 8000
LINES = [
    "안녕하세요 에이스 텔레콤 김민수입니다 무엇을 도와드릴까요",
    "네 고객님 확인해 드리겠습니다 잠시만 기다려 주세요",
    "요금제 변경은 인터넷으로도 가능합니다",
    "너무 비싸요",
    "여보세요",
    "전화해 주셔서 감사합니다 좋은 하루 보내세요",
]
PHRASES = [
    "안녕하세요",
    "에이스 텔레콤",
    "무엇을 도와드릴까요",
    "감사합니다",
    "김민수",
    "너무 비싸요",
    "여보세요",
    "바보",
    "꺼져",
    "인터넷 요금",
    "잠시만 기다려 주세요",
]


def conversation_side(seconds: float) -> bytes:
    parts, n, i = [], 0, 0
    while n < seconds * RATE * 2:
        speech = synth(LINES[i % len(LINES)], voice="ko", speed=150)
        pause = silence(len(speech) / 2 / RATE * 1.0)  # as long as the speech: ~50 %
        parts += [speech, pause]
        n += len(speech) + len(pause)
        i += 1
    return b"".join(parts)[: int(seconds * RATE) * 2]


def decode(model, pcm: bytes, mode: RecognitionMode, vad: bool) -> dict:
    dec = StreamDecoder(
        model,
        call_id="bench",
        speaker="agent",
        mode=mode,
        vad=VadSettings(enabled=vad),
        partials=True,
    )
    c0 = time.thread_time()
    w0 = time.perf_counter()
    finals = 0
    for i in range(0, len(pcm), 320):
        finals += sum(1 for u in dec.process(pcm[i : i + 320]) if getattr(u, "final", False))
    finals += sum(1 for u in dec.finish() if getattr(u, "final", False))
    cpu = time.thread_time() - c0
    audio = len(pcm) / 2 / RATE
    return {
        "cpu_per_audio_s": cpu / audio,
        "wall_s": time.perf_counter() - w0,
        "decoded_share": dec.stats.decoded_samples / max(1, dec.stats.audio_samples),
        "vosk_cpu_share": dec.stats.decode_cpu / cpu if cpu else 0.0,
        "streams_per_core": audio / cpu if cpu else float("inf"),
        "finals": finals,
    }


def threads_check(model, pcm: bytes, n: int) -> dict:
    mode = RecognitionMode.transcript_only()

    cpu: list[float] = []

    def one():
        c0 = time.thread_time()
        dec = StreamDecoder(
            model,
            call_id="t",
            speaker="agent",
            mode=mode,
            vad=VadSettings(enabled=False),
            partials=False,
        )
        for i in range(0, len(pcm), 3200):
            dec.process(pcm[i : i + 3200])
        dec.finish()
        cpu.append(time.thread_time() - c0)

    t = time.perf_counter()
    one()
    single = time.perf_counter() - t

    async def run():
        lags = []
        ths = [threading.Thread(target=one) for _ in range(n)]
        t = time.perf_counter()
        for th in ths:
            th.start()
        while any(th.is_alive() for th in ths):
            s = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - s - 0.005)
        total = time.perf_counter() - t
        lags.sort()
        return total, lags

    cpu.clear()
    total, lags = asyncio.run(run())
    return {
        "threads": n,
        "single_s": single,
        "parallel_s": total,
        "parallelism": sum(cpu) / total,
        "speedup": n * single / total,
        "loop_lag_p50_ms": 1000 * lags[len(lags) // 2],
        "loop_lag_p99_ms": 1000 * lags[int(len(lags) * 0.99)],
        "loop_lag_max_ms": 1000 * lags[-1],
    }


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--model", default="auto")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    model = SpeechModel.load(args.model)
    pcm = conversation_side(args.seconds)
    grammar = RecognitionMode.spotting(PHRASES)
    results = {
        "model": str(model.path),
        "model_load_s": model.load_seconds,
        "audio_s": args.seconds,
        "naive": decode(model, pcm, RecognitionMode.transcript_only(), vad=False),
        "raw-gram": decode(model, pcm, grammar, vad=False),
        "pipe-full": decode(model, pcm, RecognitionMode.transcript_only(), vad=True),
        "pipe-gram": decode(model, pcm, grammar, vad=True),
        "threads": threads_check(
            model, pcm[: int(min(args.seconds, 20) * RATE) * 2], os.cpu_count() or 2
        ),
    }
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    print(
        f"model {results['model']} (loaded in {results['model_load_s']:.1f} s); "
        f"{args.seconds:.0f} s of one call side"
    )
    print(f"{'way':10} {'CPU s/audio s':>14} {'streams/core':>13} {'decoded':>8} {'finals':>7}")
    for k in ("naive", "raw-gram", "pipe-full", "pipe-gram"):
        r = results[k]
        print(
            f"{k:10} {r['cpu_per_audio_s']:14.4f} {r['streams_per_core']:13.1f} "
            f"{r['decoded_share']:8.0%} {r['finals']:7d}"
        )
    n, g = results["naive"], results["pipe-gram"]
    print(
        f"pipe-gram holds {g['streams_per_core'] / n['streams_per_core']:.0f}x the naive streams; "
        f"pipe-full {results['pipe-full']['streams_per_core'] / n['streams_per_core']:.1f}x; "
        f"raw grammar vs naive "
        f"{n['cpu_per_audio_s'] / results['raw-gram']['cpu_per_audio_s']:.0f}x cheaper"
    )
    t = results["threads"]
    print(
        f"{t['threads']} threads decoding at once: speed-up {t['speedup']:.2f}x over one, "
        f"{t['parallelism']:.2f} CPU s per wall s (above 1: the GIL is released); "
        f"asyncio timer lag p50 {t['loop_lag_p50_ms']:.2f} ms, "
        f"p99 {t['loop_lag_p99_ms']:.2f} ms, max {t['loop_lag_max_ms']:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
