"""Findings: the CSV formula guard only looked at a cell's first character, so
a note `ok;=cmd|' /C calc'!A0` was exported as it was, and a spreadsheet set to
";" as separator (much of Europe) opens `=cmd|...` as a formula; and one row
with callback_at 1e308 (saved by the old code) cut every export after the
header.

Now every place a formula could start, in a "," or a ";" (or tab) locale, is
made text with an apostrophe, and a time no calendar holds is exported as a
number instead of ending the export.
"""
from __future__ import annotations

import csv
import io
import re
import time

from tests.security.conftest import WRAPUP_CALL, Client
from tests.store_fixtures import make_call

PAYLOADS = ["ok;=cmd|' /C calc'!A0", "=HYPERLINK(\"http://x\",\"y\")", "a,+SUM(1,2)",
            "tab\t@A1", "x;\"=1+1\"", "line\n-2+3", " ;  =cmd", "plain; text, -5 and +36 20 1"]
TRIGGER = re.compile(r"^[=+\-@]")
NUMBER = re.compile(r"^[+-]?[0-9][0-9 .]*$")


def formula_cells(text: str, delimiter: str) -> list[str]:
    """Cells a spreadsheet with this separator would evaluate: parsed as CSV,
    and (stricter) every raw piece between separators of any kind."""
    cells = [c for row in csv.reader(io.StringIO(text), delimiter=delimiter) for c in row]
    pieces = re.split(r"[,;\t\r\n]", text)
    bad = []
    for cell in cells + pieces:
        c = cell.strip().lstrip('"').strip()
        if TRIGGER.match(c) and not NUMBER.match(c) and not re.match(r"^-?\d{4}-\d\d", c):
            bad.append(cell)
    return bad


async def test_export_is_safe_in_comma_and_semicolon_locales_and_survives_bad_times(service):
    async with Client(service) as agent:
        await agent.sign_in(service, "1001")
        r = await agent.http.post(f"/api/calls/{WRAPUP_CALL}/wrapup",
                                  json={"disposition": "resolved", "notes": "\n".join(PAYLOADS)})
        assert r.status == 200, await r.text()
    # A row the old code let in: a callback time of 1e308, and a customer "name".
    legacy = make_call("answered", "legacy-1", at=time.time() - 300, agent="1002")
    legacy.customer_name = "=2+5"
    await service.store.upsert_call(legacy)
    await service.store.save_wrapup("legacy-1", "1002", "callback", "-1+1", callback_at=1e308)
    async with Client(service) as boss:
        await boss.sign_in(service, "boss")
        # until too: alone, `since` an hour ago means "until the next midnight",
        # which would leave these calls out just after midnight.
        r = await boss.http.get("/api/calls.csv", params={"since": str(time.time() - 3600),
                                                          "until": str(time.time() + 60)})
        assert r.status == 200
        text = await r.text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert sorted(row["call_id"] for row in rows) == ["legacy-1", WRAPUP_CALL]   # not cut off
    by_id = {row["call_id"]: row for row in rows}
    assert by_id["legacy-1"]["callback_at"] == "1e+308"
    assert by_id["legacy-1"]["customer_name"] == "'=2+5"
    # The note is all there, readable, with apostrophes only where a formula could start.
    assert by_id[WRAPUP_CALL]["notes"] == "\n".join([
        "ok;'=cmd|' /C calc'!A0", "'=HYPERLINK(\"http://x\",\"y\")", "a,'+SUM(1,2)",
        "tab\t'@A1", "x;\"'=1+1\"", "line\n'-2+3", " ;  '=cmd", "plain; text, '-5 and +36 20 1"])
    assert formula_cells(text, ",") == []
    assert formula_cells(text, ";") == []
    assert formula_cells(text, "\t") == []
