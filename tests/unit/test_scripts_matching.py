"""Which script a call pops: the documented precedence, table-driven on Call objects."""
from pathlib import Path

import pytest

from ivr.calls.model import Call, Direction, Leg, LegRole
from ivr.scripts import ScriptLibrary, choose_script
from ivr.scripts.model import Criteria, Disposition, Kind, Match, Script, Step

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"

IN, OUT = Direction.INBOUND, Direction.OUTBOUND


def S(id: str, direction: Direction, *alternatives: dict, default: bool = False) -> Script:
    return Script(
        id=id, project="p", title=id, language="en", direction=direction, kind=Kind.STRICT,
        version="1", steps=(Step("s", "S", text="Hi"),), dispositions=(Disposition("d", "D"),),
        match=Match(tuple(Criteria(**{k: tuple(v) if isinstance(v, list) else (v,)
                                       for k, v in alt.items()}) for alt in alternatives),
                    default))


SCRIPTS_UNDER_TEST = [
    S("camp", OUT, {"campaign": "spring"}),
    S("proj-out", OUT, {"project": "acme-sales"}),
    S("out-default", OUT, default=True),
    S("proj-in", IN, {"project": "acme-support"}),
    S("proj-in-ko", IN, {"project": "acme-support", "caller_prefix": "82"}),
    S("did-ivr", IN, {"did": "5550100", "ivr_choice": "1"}),
    S("queue-sales", IN, {"queue": "sales"}),
    S("did-main", IN, {"did": "5550100"}),
    S("ctx", IN, {"context": "vip-entry"}),
    S("prefix36", IN, {"caller_prefix": "36"}),
    S("prefix3620", IN, {"caller_prefix": "+3620"}),
    S("tie-b", IN, {"project": "tie"}),
    S("tie-a", IN, {"project": "tie"}),
    S("in-default", IN, default=True),
]


def call(direction=IN, context="", **kw) -> Call:
    c = Call(call_id="c1", started_at=0.0, direction=direction, **kw)
    if context:
        c.legs["l1"] = Leg("l1", "PJSIP/trunk-1", "c1", "trunk", LegRole.CUSTOMER, 0.0,
                           context=context)
    return c


CASES = [
    # (what, call, expected script, matched_on)
    ("project beats did, queue, prefix",
     call(project="acme-support", did="5550100", ivr_choice="2", queue="support",
          customer_num="36201234567"), "proj-in", ["project"]),
    ("same tier: more criteria win",
     call(project="acme-support", customer_num="+82 10 1234 5678"), "proj-in-ko",
     ["project", "caller_prefix"]),
    ("did+ivr_choice beats queue",
     call(did="5550100", ivr_choice="1", queue="sales"), "did-ivr", ["did", "ivr_choice"]),
    ("queue beats did", call(did="5550100", ivr_choice="9", queue="sales"), "queue-sales",
     ["queue"]),
    ("did alone", call(did="5550100"), "did-main", ["did"]),
    ("context beats caller prefix", call(did="5550999", context="vip-entry",
                                         customer_num="36201234567"), "ctx", ["context"]),
    ("longer caller prefix wins", call(did="5550999", customer_num="0036201234567"),
     "prefix3620", ["caller_prefix"]),
    ("shorter prefix still matches", call(did="5550999", customer_num="36301234567"),
     "prefix36", ["caller_prefix"]),
    ("nothing matches: default inbound", call(did="5550999", customer_num="44201234567"),
     "in-default", ["default"]),
    ("equal rank: first by id", call(project="tie"), "tie-a", ["project"]),
    ("names compare case-insensitively", call(project="ACME-Support"), "proj-in", ["project"]),
    ("campaign beats project", call(OUT, project="acme-sales", campaign="spring",
                                    dialled="36201234567"), "camp", ["campaign"]),
    ("outbound project", call(OUT, project="acme-sales"), "proj-out", ["project"]),
    ("outbound never takes inbound scripts", call(OUT, project="acme-support",
                                                  dialled="36201234567"),
     "out-default", ["default"]),
    ("unknown direction guessed from campaign", call(Direction.UNKNOWN, campaign="spring"),
     "camp", ["campaign"]),
    ("unknown direction guessed from DID", call(Direction.UNKNOWN, did="5550100"),
     "did-main", ["did"]),
]


@pytest.mark.parametrize("what,c,expected,matched_on", CASES, ids=[c[0] for c in CASES])
def test_precedence(what, c, expected, matched_on):
    choice = choose_script(c, SCRIPTS_UNDER_TEST)
    assert choice.script is not None and choice.script.id == expected, choice.reason
    assert choice.matched_on == matched_on


def test_order_of_the_script_list_does_not_matter():
    c = call(project="tie", customer_num="36201234567")
    assert choose_script(c, reversed(SCRIPTS_UNDER_TEST)).script.id == "tie-a"


def test_reasons_say_what_matched_and_what_lost():
    choice = choose_script(call(project="acme-support", customer_num="821012345678"),
                           SCRIPTS_UNDER_TEST)
    assert choice.reason == ("inbound call matched on project 'acme-support' and caller "
                             "prefix '82' (preferred over proj-in)")
    assert choice.also_matched == ("proj-in",)
    default = choose_script(call(did="5550999", customer_num="4420"), SCRIPTS_UNDER_TEST)
    assert default.reason == ("default inbound script: no inbound script matches "
                              "DID '5550999', number 4420")


def test_no_match_and_no_default_says_why():
    scripts = [s for s in SCRIPTS_UNDER_TEST if not s.match.default]
    choice = choose_script(call(project="acme-x", did="5550123", queue="vip",
                                customer_num="441234"), scripts)
    assert choice.script is None and choice.matched_on == []
    assert choice.reason == ("no inbound script matches project 'acme-x', DID '5550123', "
                             "queue 'vip', number 441234, and there is no default inbound script")
    choice = choose_script(call(OUT, dialled="36201234567"), [])
    assert choice.reason == ("no outbound script matches number 36201234567, and there is "
                             "no default outbound script")


def test_internal_calls_pop_nothing():
    choice = choose_script(call(Direction.INTERNAL), SCRIPTS_UNDER_TEST)
    assert choice.script is None and choice.reason.startswith("no script for an internal call")


SHIPPED_CASES = [
    ("hotline 5550111", call(did="5550111", project="acme-support", department="support",
                             queue="support", customer_num="36201234567"), "acme-support"),
    ("menu 1: sales", call(did="5550100", ivr_choice="1", project="acme-sales",
                           department="sales", queue="sales"), "acme-sales"),
    ("Korean caller on support", call(did="5550100", ivr_choice="2", project="acme-support",
                                      customer_num="+821012345678"), "acme-support-ko"),
    ("Korean project", call(project="acme-support-ko", customer_num="36201234567"),
     "acme-support-ko"),
    ("key-account DID", call(did="5550199", project="acme-key-accounts"), "acme-key-accounts"),
    ("unknown DID, left in menu", call(did="5550777"), "acme-support"),
    ("telesales campaign", call(OUT, project="acme-sales", campaign="acme-telesales",
                                dialled="36201234567"), "acme-telesales"),
    ("B2B project", call(OUT, project="acme-b2b", dialled="36301234568"), "acme-b2b"),
    ("callback of a support call", call(OUT, project="acme-support", dialled="36201234567"),
     "acme-callback"),
    ("agent dials by hand", call(OUT, dialled="36201234567"), "acme-telesales"),
]


@pytest.mark.parametrize("what,c,expected", SHIPPED_CASES, ids=[c[0] for c in SHIPPED_CASES])
def test_shipped_scripts_follow_the_dialplan(what, c, expected):
    lib = ScriptLibrary(SCRIPTS)
    lib.reload()
    assert lib.choose(c).script.id == expected
