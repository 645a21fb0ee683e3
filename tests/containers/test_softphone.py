"""A tester's softphone on the containerised PBX: baresip registers as the test
customer with its generated password (docker/README.md's softphone table),
calls the main number and presses 2 as an RFC 4733 event: the IVR must send
the call to the support queue, where agent 1003 (SIPp, signed in to the
console so that they are in the queue) answers.
"""
from __future__ import annotations

import json
import time
import urllib.request

import pytest

from ivr.testing.phones import AgentPhone
from tests.containers.softphone import Baresip
from tests.containers.test_compose import db_row, sip, web

pytestmark = pytest.mark.pbx


def speech_wav(path):
    """A few seconds of speech then silence, as the softphone's microphone (8 kHz WAV)."""
    import subprocess
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-w", str(raw), "Hello, I have a question about my bill."],
                   check=True)
    subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(path),
                    "pad", "0", "30"], check=True)
    return path


def sign_in(stack, login: str) -> None:
    """The agent signs in to the console: they join their groups' queues, ready."""
    request = urllib.request.Request(
        f"{web(stack)}/api/login", method="POST",
        data=json.dumps({"login": login, "secret": stack.env[f"IVR_SECRET_{login}"]}).encode(),
        headers={"Content-Type": "application/json", "Origin": web(stack)})
    with urllib.request.urlopen(request, timeout=15) as r:
        assert r.status == 200


def test_baresip_rfc4733_dtmf_routes_the_ivr_to_the_support_queue(stack, tmp_path):
    started = time.time()
    sign_in(stack, "1003")
    agent = AgentPhone(sip(stack), "1003", stack.env["SIP_PASSWORD_1003"], log_dir=tmp_path,
                       ring_ms=500, talk_ms=4000).start()
    phone = Baresip(tmp_path / "baresip", sip(stack), "customer",
                    stack.env["SIP_PASSWORD_customer"], speech_wav(tmp_path / "mic.wav"))
    try:
        phone.start()
        phone.command("/dial 5550100")
        phone.wait_log("Call established", 10, "answer by the IVR")
        time.sleep(2.0)                       # the menu is playing
        phone.command("/sndcode 2")
        phone.wait_log("send DTMF digit end: '2'", 5, "the key press")
        # The agent answers from the queue and hangs up after 4 s.
        phone.wait_log("terminated", 40, "the end of the call")
    finally:
        phone.stop()
        agent.stop()
    agent.uas.check()
    answered = agent.uas.counts()
    assert answered[0] >= 1, f"agent 1003 took no call: {answered}"
    call_id = None
    deadline = time.monotonic() + 15
    while call_id is None and time.monotonic() < deadline:
        call_id = _last_customer_call(stack, started)
        time.sleep(0.5)
    row = db_row(stack, call_id)
    assert row["ivr_choice"] == "2" and row["queue"] == "support", row
    assert row["agent"] == "1003" and row["result"] == "answered", row


def _last_customer_call(stack, since: float) -> str | None:
    import sqlite3
    path = stack.volume("ivr-data") / "ivr.db"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        row = db.execute("SELECT call_id FROM calls WHERE customer_num = 'customer' "
                         "AND state = 'ended' AND started_at >= ? ORDER BY started_at DESC LIMIT 1",
                         (since - 1,)).fetchone()
    return row[0] if row else None
