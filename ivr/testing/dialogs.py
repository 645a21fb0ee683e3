"""SIP dialogs of a test phone, read back from its sipp ``messages.log``.

A phone's hold button and its attended transfer act inside a call that is
already up: they need the dialog (Call-ID, both tags, the PBX's Contact) and,
for a re-INVITE, the phone's own media address. sipp logs every message it
sends and receives; ``dialogs()`` rebuilds the confirmed dialogs from that
log, so the answering scenarios stay simple and the in-dialog requests are
sent by one-shot runs (``ivr/testing/sipp/dialog_*.xml``, see phones.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import quote

_SEPARATOR = re.compile(r"^-{20,} .*$", re.M)
_URI = re.compile(r"<([^>]+)>")


@dataclass(frozen=True)
class SipMessage:
    sent: bool  # sent by the phone (else received)
    start: str  # request or status line
    headers: tuple[tuple[str, str], ...]
    body: str

    def header(self, name: str) -> str:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return ""

    @property
    def is_request(self) -> bool:
        return not self.start.startswith("SIP/2.0")

    @property
    def method(self) -> str:
        return (
            self.start.split(" ", 1)[0] if self.is_request else self.header("CSeq").split(" ")[-1]
        )

    @property
    def status(self) -> int | None:
        if self.is_request:
            return None
        parts = self.start.split(" ")
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None

    @property
    def call_id(self) -> str:
        return self.header("Call-ID")

    def media(self) -> tuple[str, int] | None:
        """(ip, port) of the audio in the SDP body, if any."""
        ip = re.search(r"^c=IN IP4 (\S+)", self.body, re.M)
        port = re.search(r"^m=audio (\d+)", self.body, re.M)
        if ip is None or port is None:
            return None
        return ip.group(1), int(port.group(1))


def parse_messages(text: str) -> list[SipMessage]:
    """Every message of a sipp ``-trace_msg`` log, in order."""
    out = []
    for chunk in _SEPARATOR.split(text):
        lines = chunk.replace("\r\n", "\n").split("\n")
        if not lines or not lines[0].strip():
            lines = lines[1:]
        if not lines:
            continue
        head = lines[0]
        if "message sent" in head:
            sent = True
        elif "message received" in head:
            sent = False
        else:
            continue
        rest = lines[1:]
        while rest and not rest[0].strip():
            rest = rest[1:]
        if not rest:
            continue
        headers = []
        i = 1
        while i < len(rest) and rest[i].strip():
            name, sep, value = rest[i].partition(":")
            if sep:
                headers.append((name.strip(), value.strip()))
            i += 1
        body = "\n".join(rest[i + 1 :]).strip()
        out.append(SipMessage(sent=sent, start=rest[0].strip(), headers=tuple(headers), body=body))
    return out


def _tag(header: str) -> str:
    m = re.search(r";\s*tag=([^;>\s]+)", header)
    return m.group(1) if m else ""


def _uri(header: str) -> str:
    m = _URI.search(header)
    return m.group(1) if m else header.split(";")[0].strip()


@dataclass
class Dialog:
    """One confirmed dialog as the phone sees it."""

    call_id: str
    local: str  # our From/To header value, with our tag
    remote: str  # the PBX's, with its tag
    remote_target: str  # where in-dialog requests go (the PBX's Contact URI)
    local_contact: str  # the phone's Contact header value
    media: tuple[str, int] | None  # the phone's audio address from its SDP
    uac: bool  # the phone placed this call
    cseq: int = 0  # highest CSeq the phone used in the dialog
    sdp_version: int = 0  # the o= version of the phone's last offer/answer
    extra: dict = field(default_factory=dict)

    @property
    def local_tag(self) -> str:
        return _tag(self.local)

    @property
    def remote_tag(self) -> str:
        return _tag(self.remote)

    def next_cseq(self) -> int:
        self.cseq = max(self.cseq + 1, 100)
        return self.cseq

    def next_sdp_version(self) -> int:
        self.sdp_version += 1
        return self.sdp_version

    def replaces(self) -> str:
        """The Replaces value naming this dialog, escaped for a Refer-To URI."""
        value = f"{self.call_id};to-tag={self.remote_tag};from-tag={self.local_tag}"
        return quote(value, safe="")


def dialogs(messages: list[SipMessage]) -> list[Dialog]:
    """The dialogs that reached 200 OK to their INVITE, oldest first (one per Call-ID)."""
    found: dict[str, Dialog] = {}
    invites: dict[str, SipMessage] = {}
    for m in messages:
        if m.is_request and m.method == "INVITE" and m.call_id not in found:
            invites[m.call_id] = m
            continue
        if m.is_request or m.status != 200 or m.method != "INVITE":
            continue
        invite = invites.get(m.call_id)
        if invite is None or m.call_id in found:
            continue
        sdp_owner = invite if invite.sent else m  # the phone's own SDP
        version = re.search(r"^o=\S+ \S+ (\d+)", sdp_owner.body, re.M)
        cseq = int(invite.header("CSeq").split(" ")[0] or 0) if invite.sent else 0
        if invite.sent:  # we called: From is ours, the 200's To carries their tag
            d = Dialog(
                call_id=m.call_id,
                local=invite.header("From"),
                remote=m.header("To"),
                remote_target=_uri(m.header("Contact")),
                local_contact=invite.header("Contact"),
                media=invite.media(),
                uac=True,
                cseq=max(cseq, int(m.header("CSeq").split(" ")[0] or 0)),
            )
        else:  # we answered: our 200's To carries our tag
            d = Dialog(
                call_id=m.call_id,
                local=m.header("To"),
                remote=invite.header("From"),
                remote_target=_uri(invite.header("Contact")),
                local_contact=m.header("Contact"),
                media=m.media(),
                uac=False,
            )
        d.sdp_version = int(version.group(1)) if version else 0
        found[m.call_id] = d
    return list(found.values())
