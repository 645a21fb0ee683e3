"""Pure logic of ivr/cluster and ivr/bus: config of several PBXs and roles,
call events over the bus, subjects, and how a dead owner's claim is settled."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from ivr.bus import LocalBus, matches, token
from ivr.bus.codec import decode_event, encode_event
from ivr.calls.events import AgentAnswered, CallEnded
from ivr.calls.model import CallState, Leg, LegRole
from ivr.cluster.reconcile import ClaimSettler, dial_note, outcome_of_adopted
from ivr.config import load_settings
from ivr.dialer.common import CallWatcher
from ivr.yamlfile import YamlError
from tests.store_fixtures import make_call


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "ivr.yaml"
    p.write_text(text)
    return p


def test_one_ami_section_is_one_pbx_as_before(tmp_path):
    s = load_settings(write(tmp_path, "ami: {host: 10.0.0.1, port: 5038}\n"),
                      env={"IVR_AMI_SECRET": "s3cret"})
    assert [(p.name, p.host, str(p.secret)) for p in s.all_pbxs] == \
        [("default", "10.0.0.1", "s3cret")]
    assert s.pbxs == () and s.ami.host == "10.0.0.1"


def test_a_list_of_pbxs_each_with_its_own_secret(tmp_path):
    s = load_settings(write(tmp_path, """
ami:
  - {name: east, host: 10.0.0.1, agents: ["1001", "1003"]}
  - {name: west, host: 10.0.0.2}
"""), env={"IVR_AMI_SECRET": "shared", "IVR_AMI_SECRET_WEST": "west-only"})
    assert [(p.name, str(p.secret), p.agents) for p in s.all_pbxs] == \
        [("east", "shared", ("1001", "1003")), ("west", "west-only", ())]
    assert s.ami.name == "east"


@pytest.mark.parametrize("text,problem", [
    ("ami:\n  - {host: a}\n", "needs a name"),
    ("ami:\n  - {name: a}\n  - {name: a}\n", "given twice"),
    ("ami:\n  - {name: 'a b'}\n", "letters, digits"),
    ("cluster: {roles: [web]}\n", "needs a bus"),
    ("cluster: {roles: [dialer]}\nbus: {url: 'nats://x:4222'}\n", "unknown role"),
    ("bus: {url: 'nats://x:4222'}\n", "its own instance"),
    ("bus: {url: 'http://x'}\ncluster: {roles: [web]}\n", "nats://"),
    ("bus: {url: 'nats://x:4222'}\ncluster: {roles: [web, speech]}\n", "runs alone"),
    ("cluster: {roles: [speech]}\n", "needs a bus"),
])
def test_bad_cluster_settings_are_named(tmp_path, text, problem):
    with pytest.raises(YamlError) as err:
        load_settings(write(tmp_path, text), env={})
    assert problem in str(err.value)


@pytest.mark.parametrize("roles", [["controller"], ["speech"], ["controller", "speech"],
                                   ["web"]])
def test_roles_an_instance_may_run_with_a_bus(tmp_path, roles):
    text = f"bus: {{url: 'nats://x:4222'}}\ncluster: {{roles: {roles}}}\n"
    assert set(load_settings(write(tmp_path, text), env={}).cluster.roles) == set(roles)


def test_a_call_event_crosses_the_bus_unchanged():
    call = make_call("answered", "1795652547.0", ended=False)
    call.pbx = "east"
    call.legs["u1"] = Leg(uniqueid="u1", channel="PJSIP/1001-1", linkedid=call.call_id,
                          endpoint="1001", role=LegRole.AGENT, created_at=1.0, state="Up")
    event = AgentAnswered(call=call, at=5.0, agent="1001", leg=call.legs["u1"])
    back = decode_event(json.loads(json.dumps(encode_event(event))))
    assert back == event and back.call.legs["u1"].role is LegRole.AGENT
    assert back.call.state is CallState.BRIDGED


def test_subjects_match_as_nats_does():
    assert matches("ivr.call.>", "ivr.call.east.1795652547_0")
    assert not matches("ivr.call.>", "ivr.call")
    assert matches("ivr.agent.*.mark", "ivr.agent.1001.mark")
    assert not matches("ivr.agent.*.mark", "ivr.agent.1001.console")
    assert token("1795652547.0") == "1795652547_0" and token("") == "_"


async def test_the_local_bus_delivers_requests_and_messages():
    bus = LocalBus()
    got = []
    await bus.subscribe("ivr.agent.*.console", lambda s, d: got.append((s, d)))

    async def answer(subject, data):
        return {"n": data["n"] + 1}
    await bus.serve("ivr.calls.live", answer)
    bus.publish("ivr.agent.1001.console", {"x": 1})
    bus.publish("ivr.agent.1001.mark", {"x": 2})
    async def silent(subject, data):
        return None                     # not this instance's to answer
    await bus.serve("ivr.calls.live", silent)
    assert await bus.request("ivr.calls.live", {"n": 1}) == {"n": 2}
    assert await bus.gather("ivr.calls.live", {"n": 5}) == [{"n": 6}]
    await asyncio.sleep(0)
    assert got == [("ivr.agent.1001.console", {"x": 1})]


class FakeAmi:
    def __init__(self, value: str | None):
        self.value = value

    async def send(self, action, as_list=None, timeout=10.0):
        assert (action["Action"], action["Family"]) == ("DBGet", "ivr-dial")
        if self.value is None:
            return {"Response": "Error", "Message": "Database entry not found"}
        return [{"Response": "Success"}, {"Event": "DBGetResponse", "Val": self.value}]


class FakeDialer:
    def __init__(self):
        self.watcher = CallWatcher()
        self.settled = []

    async def settle(self, row_id, outcome, agent, call_id):
        self.settled.append((row_id, outcome.result, agent, call_id))


class FakeStore:
    def __init__(self, claims, record=None):
        self.claims, self.record, self.adopted = claims, record, []

    async def claims_on(self, pbx, alive):
        return [c for c in self.claims if c["owner"] not in alive]

    async def get_call(self, call_id):
        return self.record

    async def adopt_claim(self, claim, owner):
        self.adopted.append((claim["id"], owner))
        return True


class FakeLink:
    def __init__(self, note, calls=()):
        self.name, self.ami = "east", FakeAmi(note)
        self.tracker = type("T", (), {"calls": {c.call_id: c for c in calls}})()


def claim(kind="contact", owner="dead", call_id="out-1"):
    return {"kind": kind, "id": 7, "number": "5557201", "owner": owner, "pbx": "east",
            "call_id": call_id, "agent": "1001", "attempts": 0}


@pytest.mark.parametrize("note,record,result", [
    ("out-1 ANSWER", None, "answered"),           # the PBX's note says so
    ("out-1 NOANSWER", None, "no_answer"),
    ("out-1 BUSY", None, "busy"),
    ("out-9 ANSWER", None, "agent_no_answer"),    # the note is of another call: never dialled
    (None, None, "agent_no_answer"),
    (None, {"answered_at": 5.0}, "answered"),     # no note, but the store saw it answered
])
async def test_a_claim_whose_call_is_gone_is_settled_from_the_pbx(note, record, result):
    dialer = FakeDialer()
    settler = ClaimSettler(FakeStore([claim(), claim(owner="alive")], record), "me",
                           campaigns=dialer, callbacks=FakeDialer())
    assert await settler.settle(FakeLink(note), alive={"alive", "me"}) == 1
    assert dialer.settled == [(7, result, "1001", "out-1")]


async def test_a_claim_whose_call_is_still_up_is_followed_to_its_end():
    dialer = FakeDialer()
    call = make_call("answered", "out-1", ended=False)
    store = FakeStore([claim(kind="callback")])
    settler = ClaimSettler(store, "me", campaigns=FakeDialer(), callbacks=dialer)
    await settler.settle(FakeLink(None, [call]), alive={"me"})
    assert store.adopted == [(7, "me")] and dialer.settled == []
    ended = make_call("answered", "out-1")
    dialer.watcher(CallEnded(call=ended, at=ended.ended_at))
    await asyncio.wait_for(asyncio.gather(*settler.adopted), 2)
    assert dialer.settled == [(7, "answered", "1001", "out-1")]


def test_an_adopted_call_nobody_answered_blames_the_right_party():
    call = make_call("no_answer", "out-2")
    call.answered_at = None
    assert outcome_of_adopted(call).result == "agent_no_answer"     # no customer leg yet
    call.legs["c"] = Leg(uniqueid="c", channel="PJSIP/trunk-1", linkedid="out-2",
                         endpoint="trunk", role=LegRole.CUSTOMER, created_at=1.0)
    assert outcome_of_adopted(call).result == "no_answer"


async def test_the_dial_note_is_read_per_agent_phone():
    assert await dial_note(FakeAmi("out-1 ANSWER"), "1001") == ("out-1", "ANSWER")
    assert await dial_note(FakeAmi(None), "1001") is None
    assert await dial_note(FakeAmi("x"), None) is None


def test_a_web_front_keeps_the_coaching_its_controller_sends_for_a_console_that_reloads():
    """A controller's coaching reaches the consoles through a web front's view:
    what a reloading console is given there is what the controller's view has."""
    from ivr.coaching.model import Prompt
    from ivr.pop import ScriptPop
    from ivr.tap.taps import TapStatus
    from ivr.web.hub import ConsoleHub
    from ivr.web.view import ConsoleView

    class NoScripts:
        def pop(self, call, user):
            return None, "no script"

    call = make_call("answered", "c1", agent="1004", ended=False)
    call.legs["u1"] = Leg(uniqueid="u1", channel="PJSIP/1004-1", linkedid="c1",
                          endpoint="1004", role=LegRole.AGENT, created_at=1.0, state="Up")
    views = []
    for _ in ("controller", "web"):
        pop = ScriptPop(NoScripts(), {})
        view = ConsoleView(ConsoleHub(), pop)
        pop.subscribe_cards(view.card_changed)
        pop.on_call_event(AgentAnswered(call=call, at=5.0, agent="1004", leg=call.legs["u1"]))
        views.append(view)
    controller, web = views
    sent: list[tuple[str, dict, bool]] = []
    # What crosses the bus is JSON (cluster/roles.py: ControllerRole -> WebRole).
    controller.subscribe_coaching(lambda call_id, message, keep: sent.append(
        (call_id, json.loads(json.dumps(message)), keep)))
    controller.prompt(Prompt("c1", "name_company", "required_phrase", "Name the company",
                             "warning", "not said yet", 12.0))
    controller.tap(TapStatus("c1", "customer", "u2", "PJSIP/trunk-2", "ok"), keep=True)
    controller.capacity("c1", 1, "transcripts paused", keep=False)
    assert [m["type"] for _, m, _ in sent] == ["prompt", "tap", "capacity"]
    for call_id, message, keep in sent:
        web.coaching_message(call_id, message, keep)
    [card] = web.cards_for("1004")
    assert card["coaching"] == controller.cards_for("1004")[0]["coaching"]
    assert card["coaching"]["prompts"][0]["text"] == "Name the company"
    assert card["coaching"]["taps"][0]["state"] == "ok"
    assert card["coaching"]["notice"] is None        # not kept: a passing notice
