"""A script filled for a call and an agent: missing values visible, customer list lookups."""
import json
from pathlib import Path

import pytest

from ivr.calls.model import Call, Direction
from ivr.config import User
from ivr.scripts import (CustomerDirectory, CustomerFileError, LibraryScriptSource,
                         ScriptLibrary, check_customers, fill, load_script, parse_script)
from ivr.calls.numbers import normalise

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
ANNA = User(login="1001", name="Anna Kovacs", operator_id="17", position="customer adviser")

DEMO = """\
id: demo
project: demo
title: Demo
language: en
direction: outbound
kind: strict
company: Acme Telecom
match: {campaign: spring}
fields:
  plan: {description: current plan}
  offer: Unlimited
steps:
  - id: intro
    title: Introduction
    text: "Hello {customer_name}, {agent_name} ({agent_position}, operator {operator_id}) from {company}, about {campaign}: {{braces}}"
    note: Plan {plan}, offer {offer}
    replies:
      - {when: Too expensive, say: "{offer} costs less"}
checklist:
  - id: own_name
    label: Own name
    step: intro
    phrases: {en: ["my name is {agent_name}", "operator {operator_id}", "{company}"]}
dispositions:
  - {id: sale, label: Sale}
  - {id: callback, label: Call back, needs_callback_time: true, needs_note: true}
"""


def outbound(**kw) -> Call:
    return Call(call_id="c1", started_at=0.0, direction=Direction.OUTBOUND, **kw)


def customers(tmp_path: Path, text: str) -> CustomerDirectory:
    p = tmp_path / "customers.csv"
    p.write_text(text, encoding="utf-8")
    return CustomerDirectory.from_csv(p)


def test_everything_known_is_filled_in_as_segments(tmp_path):
    s = parse_script(DEMO, "demo.yaml")
    book = customers(tmp_path, "number,name,plan\n36201234567,Eszter Szabo,Basic 10GB\n")
    out = fill(s, outbound(dialled="36201234567", customer_num="36201234567",
                           campaign="spring"), ANNA, book)
    json.dumps(out)                                   # the web page gets it as is
    assert {k: out[k] for k in ("id", "title", "version", "kind", "language", "direction")} == \
        {"id": "demo", "title": "Demo", "version": s.version, "kind": "strict",
         "language": "en", "direction": "outbound"}
    step = out["steps"][0]
    assert step["text"] == [
        {"text": "Hello "}, {"var": "customer_name", "value": "Eszter Szabo"},
        {"text": ", "}, {"var": "agent_name", "value": "Anna Kovacs"}, {"text": " ("},
        {"var": "agent_position", "value": "customer adviser"}, {"text": ", operator "},
        {"var": "operator_id", "value": "17"}, {"text": ") from "},
        {"var": "company", "value": "Acme Telecom"}, {"text": ", about "},
        {"var": "campaign", "value": "spring"}, {"text": ": {braces}"}]
    assert step["note"][1] == {"var": "plan", "value": "Basic 10GB"}
    assert step["replies"] == [{"when": [{"text": "Too expensive"}],
                                "say": [{"var": "offer", "value": "Unlimited"},
                                        {"text": " costs less"}]}]
    assert out["missing"] == []
    assert out["checklist"] == [{"id": "own_name", "label": "Own name", "step": "intro",
                                 "weight": 1.0, "within": None, "phrases": {"en": [
                                     "my name is Anna Kovacs", "operator 17", "Acme Telecom"]}}]
    assert out["dispositions"][1] == {"id": "callback", "label": "Call back",
                                      "needs_callback_time": True, "needs_note": True}
    assert out["customer"] == {"number": "36201234567", "name": "Eszter Szabo",
                               "plan": "Basic 10GB"}


def test_missing_values_show_as_missing_never_as_empty_text():
    s = parse_script(DEMO, "demo.yaml")
    c = outbound(dialled="36209999999", customer_num="36209999999", campaign="")
    out = fill(s, c, None, CustomerDirectory())
    text = out["steps"][0]["text"]
    assert {"var": "customer_name", "value": None} in text
    assert {"var": "agent_name", "value": None} in text
    assert out["missing"] == ["customer_name", "agent_name", "agent_position", "operator_id",
                              "campaign", "plan"]
    assert out["variables"]["company"] == "Acme Telecom" and out["variables"]["plan"] is None
    # A phrase that cannot be said as written is left out; the others still count.
    assert out["checklist"][0]["phrases"] == {"en": ["Acme Telecom"]}
    assert out["customer"] is None


def test_where_values_come_from():
    s = parse_script(DEMO.replace("company: Acme Telecom\n", ""), "demo.yaml")
    c = outbound(dialled="123", customer_num="123", campaign="spring",
                 variables={"COMPANY": "Acme Telecom HU", "PLAN": "From the dialler",
                            "offer": "  "})
    c.customer_name = "123"                            # caller ID that is just the number
    values = fill(s, c, ANNA, None)["variables"]
    assert values["company"] == "Acme Telecom HU"       # channel variable COMPANY
    assert values["plan"] == "From the dialler"         # channel variable, upper-case name
    assert values["offer"] == "Unlimited"               # blank channel var -> the default
    assert values["customer_name"] is None              # a number is not a name
    c.customer_name = "Peter Nagy"
    assert fill(s, c, ANNA, None)["variables"]["customer_name"] == "Peter Nagy"


def test_the_pop_follows_the_call_not_the_agent():
    lib = ScriptLibrary(SCRIPTS)
    lib.reload()
    source = LibraryScriptSource(lib, CustomerDirectory.load(SCRIPTS / "customers.csv"))
    c = Call(call_id="c1", started_at=0.0, direction=Direction.INBOUND, did="5550111",
             project="acme-support", department="support", customer_num="36201234567")
    bela = User(login="1002", name="Bela Nagy", operator_id="23", position="sales consultant")
    a, reason_a = source.pop(c, ANNA)
    b, reason_b = source.pop(c, bela)
    assert a["id"] == b["id"] == "acme-support" and reason_a == reason_b
    assert a["choice"]["matched_on"] == ["project"]
    assert a["steps"][0]["text"] == [
        {"var": "company", "value": "Acme Telecom"}, {"text": " "},
        {"var": "department", "value": "support"}, {"text": ", "},
        {"var": "agent_name", "value": "Anna Kovacs"},
        {"text": " speaking. How can I help you?"}]
    assert b["steps"][0]["text"][4] == {"var": "agent_name", "value": "Bela Nagy"}
    assert a["customer"]["name"] == "Eszter Szabo" and a["missing"] == []
    none, reason = source.pop(Call(call_id="c2", started_at=0.0,
                                   direction=Direction.INTERNAL), ANNA)
    assert none is None and "internal call" in reason


def test_korean_script_fills_korean_text():
    ko = load_script(SCRIPTS / "acme-support-ko.yaml")
    c = Call(call_id="c1", started_at=0.0, direction=Direction.INBOUND,
             project="acme-support", customer_num="821012345678")
    out = fill(ko, c, ANNA, CustomerDirectory.load(SCRIPTS / "customers.csv"))
    assert out["language"] == "ko" and out["customer"]["name"] == "김민지"
    assert out["steps"][0]["text"][0] == {"text": "안녕하세요, "}
    assert "무엇을 도와드릴까요" in out["checklist"][2]["phrases"]["ko"]


# ------------------------------------------------------------ the customer list
@pytest.mark.parametrize("raw,expected", [
    ("36201234567", "36201234567"), ("+36 20 123 4567", "36201234567"),
    ("0036-20-123-4567", "36201234567"), ("(06) 20/123.4567", "06201234567"),
    ("sip:someone", ""), ("", ""), ("12", ""), ("1" * 21, ""), ("+" + "1" * 20, "1" * 20),
    ("\u0663\u0666\u0662\u0660", ""),             # Arabic-Indic digits are no dial string
])
def test_number_normalisation(raw, expected):
    assert normalise(raw) == expected


def test_a_prefix_may_be_short():
    assert normalise("+36", prefix=True) == "36" and normalise("+36") == ""
    assert normalise("x", prefix=True) == ""


def test_lookup_by_normalised_number_and_unique_national_suffix(tmp_path):
    book = customers(tmp_path, "Number,Name,Customer Company\n"
                               "+36 20 123 4567,Eszter Szabo,\n"
                               "36301234568,Gabor Kiss,Kiss Kft.\n"
                               "44301234568,Other Kiss,\n")
    assert len(book) == 3 and book.problems == []
    assert book.lookup("0036201234567").name == "Eszter Szabo"
    assert book.lookup("06201234567").name == "Eszter Szabo"      # national format
    assert book.lookup("0301234568") is None                     # suffix is ambiguous
    assert book.lookup("36301234568").fields == {"customer_company": "Kiss Kft."}
    assert book.lookup("5550100") is None and book.lookup("") is None


def test_semicolons_bom_and_bad_rows(tmp_path):
    p = tmp_path / "c.csv"
    p.write_bytes("\ufeffnumber;name;company;plan\n"
                  "36201234567;Eszter;X;Basic\n"
                  "not a number;Nobody;;\n"
                  "+36201234567;Twice;;\n"
                  "36301234568;Short row\n".encode("utf-8"))
    book = CustomerDirectory.from_csv(p)
    assert len(book) == 1 and book.lookup("36201234567").fields == {"plan": "Basic"}
    assert [str(x) for x in book.problems] == [
        f"{p}:1: company: is a built-in variable; rename the column (e.g. customer_company); "
        "ignored",
        f"{p}:3: number: 'not a number' is not a phone number; row skipped",
        f"{p}:4: number: +36201234567 is already on line 2; row skipped",
        f"{p}:5: 2 columns, the header has 4; row skipped"]
    assert check_customers(p) == book.problems


def test_missing_or_malformed_file_is_an_error_but_load_goes_on_empty(tmp_path):
    with pytest.raises(CustomerFileError) as err:
        CustomerDirectory.from_csv(tmp_path / "nope.csv")
    assert "cannot read the customer list" in str(err.value)
    bad = tmp_path / "bad.csv"
    bad.write_text("mobile,name\n36201234567,Eszter\n")
    assert [str(p) for p in check_customers(bad)] == [
        f"{bad}:1: no number column in the header (mobile,name): call it number or phone"]
    book = CustomerDirectory.load(bad)
    assert len(book) == 0 and book.lookup("36201234567") is None
    assert book.problems[0].reason.startswith("no number column")
    assert len(CustomerDirectory.load("")) == 0


def test_shipped_customer_list_knows_the_test_caller():
    book = CustomerDirectory.from_csv(SCRIPTS / "customers.csv")
    assert book.lookup("36201234567").name and book.problems == []
