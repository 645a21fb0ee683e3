"""The report, export, campaign and DNC routes on the console's real app
(ConsoleApp + Auth), on SQLite and PostgreSQL."""
from __future__ import annotations

import csv
import datetime
import io
import secrets

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from ivr.config import Secret, User
from ivr.pop import ScriptPop
from ivr.web.app import ConsoleApp, WebContext
from ivr.web.auth import Auth
from ivr.web.hub import ConsoleHub
from ivr.web.campaigns import add_campaign_routes
from ivr.web.reports import add_report_routes
from tests.store_fixtures import T0, make_call, postgres_cluster, store, store_url  # noqa: F401

USERS = (User("boss", "Sara Supervisor", role="supervisor", secret=Secret(secrets.token_hex(8))),
         User("1001", "Anna", secret=Secret(secrets.token_hex(8))))


UPLOAD = {"X-Requested-With": "ivr"}      # what a file upload must carry (ivr/web/guard.py)


class NoScripts:
    def pop(self, call, user):
        return None, "no scripts in this test"


def console_app(store) -> ConsoleApp:
    async def nothing(*a, **kw):
        return []
    return ConsoleApp(WebContext(
        auth=Auth(USERS, store), hub=ConsoleHub(), pop=ScriptPop(NoScripts(), {}, lambda *a: None),
        live_calls=lambda: [], save_wrapup=store.save_wrapup, transfer=nothing,
        departments=nothing))


@pytest.fixture
async def client(store):
    woken: list = []
    console = console_app(store)
    await console.ctx.auth.start()
    app = console.build()
    add_report_routes(app, store, console._user, clock=lambda: T0 + 3600)
    add_campaign_routes(app, store, console._user, on_campaigns_changed=lambda: woken.append(1),
                        clock=lambda: T0 + 3600)
    async with TestClient(TestServer(app)) as c:
        c.woken = woken
        yield c


async def sign_in(client, login: str) -> dict:
    """Headers of a console page signed in as `login`: its session cookie and
    its own Origin (state-changing requests need it)."""
    user = next(u for u in USERS if u.login == login)
    origin = str(client.make_url("/")).rstrip("/")
    r = await client.post("/api/login", json={"login": login, "secret": str(user.secret)},
                          headers={"Origin": origin})
    assert r.status == 200
    client.session.cookie_jar.clear()          # each caller passes its own cookie
    return {"Cookie": f"ivr_session={r.cookies['ivr_session'].value}", "Origin": origin}


async def test_only_supervisors_get_reports(client):
    assert (await client.get("/api/reports/summary")).status == 401
    agent = await sign_in(client, "1001")
    for path in ("/api/reports/summary", "/api/calls", "/api/calls.csv", "/api/campaigns",
                 "/api/dnc", "/api/callbacks"):
        assert (await client.get(path, headers=agent)).status == 403, path
    assert (await client.post("/api/campaigns?name=x&project=y", data="number\n123\n",
                              headers={**agent, **UPLOAD})).status == 403


async def test_summary_calls_and_csv_export_of_a_day(client, store):
    for i in range(7):
        await store.upsert_call(make_call("answered", f"a{i}", at=T0 + i * 600,
                                          number=f"3620000000{i}"))
    await store.upsert_call(make_call("abandoned", "ab", at=T0 + 100))
    await store.upsert_call(make_call("answered", "next-day", at=T0 + 86400))
    await store.save_wrapup("a1", "1001", "resolved", 'said "thanks", then, bye')
    boss = await sign_in(client, "boss")
    day = {"since": str(T0 - 60), "until": "2023-11-15T22:12:20+00:00", "tz": "UTC"}

    r = await client.get("/api/reports/summary", params=day, headers=boss)
    assert r.status == 200
    data = await r.json()
    assert data["total"]["calls"] == 8 and data["total"]["answered"] == 7
    assert data["total"]["abandonment_rate"] == 0.125
    assert [p["project"] for p in data["projects"]] == ["acme"]
    assert len(data["series"]["points"]) == 24
    bad = await client.get("/api/reports/summary", params={"since": "yesterday"}, headers=boss)
    assert bad.status == 400

    seen, after = [], None
    while True:
        r = await client.get("/api/calls", params={**day, "limit": "3", **(
            {"after": after} if after else {})}, headers=boss)
        page = await r.json()
        seen += [c["call_id"] for c in page["calls"]]
        after = page["next"]
        if after is None:
            break
    assert seen == ["a0", "ab", "a1", "a2", "a3", "a4", "a5", "a6"]
    r = await client.get("/api/calls", params={**day, "result": "abandoned"}, headers=boss)
    assert [c["call_id"] for c in (await r.json())["calls"]] == ["ab"]

    r = await client.get("/api/calls.csv", params=day, headers=boss)
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
    assert r.headers["Content-Disposition"] == 'attachment; filename="calls-2023-11-14.csv"'
    assert r.headers.get("Transfer-Encoding") == "chunked"
    rows = list(csv.DictReader(io.StringIO(await r.text())))
    assert [r_["call_id"] for r_ in rows] == seen
    assert rows[2]["notes"] == 'said "thanks", then, bye'
    assert rows[0]["customer_num"] == "36200000000"
    assert rows[0]["started_at"] == "2023-11-14T22:13:20+00:00"
    r = await client.get("/api/calls.csv", params={**day, "tz": "Asia/Seoul",
                                                    "disposition": "resolved"}, headers=boss)
    [row] = list(csv.DictReader(io.StringIO(await r.text())))
    assert row["started_at"] == "2023-11-15T07:23:20+09:00"
    # Without a zone: the server's local time, with its offset.
    r = await client.get("/api/calls.csv", params={"since": str(T0 - 60), "until": str(T0 + 60)},
                         headers=boss)
    [row] = list(csv.DictReader(io.StringIO(await r.text())))
    assert datetime.datetime.fromisoformat(row["started_at"]).timestamp() == T0


async def test_campaign_upload_status_contacts_and_dnc(client, store):
    boss = await sign_in(client, "boss")
    r = await client.post("/api/dnc", json={"number": "+36 20 000 0003", "reason": "asked"},
                          headers=boss)
    assert r.status == 200 and (await r.json())["added"] == 1
    # Bigger than the console's 64 KiB JSON limit: CSV uploads are streamed.
    body = "number,name,plan\n" + "".join(f"3620000{i:04d},Customer {i},basic\n"
                                          for i in range(4000))
    assert len(body) > 64 * 1024
    r = await client.post("/api/campaigns", params={
        "name": "spring", "project": "acme-telesales", "max_in_progress": "3",
        "hours_start": "08:30", "timezone": "Europe/Budapest"}, data=body,
        headers={**boss, **UPLOAD, "Content-Type": "text/csv"})
    assert r.status == 201, await r.text()
    got = await r.json()
    assert (got["added"], got["dnc"], got["invalid"]) == (4000, 1, 0)
    assert client.woken == [1]
    form = aiohttp.FormData()
    form.add_field("name", "autumn")
    form.add_field("project", "acme-telesales")
    form.add_field("retry_after", "1800")
    form.add_field("file", "Phone;Name\n+36 30 111 2222;Kim\nfoo;bar\n", filename="list.csv",
                   content_type="text/csv")
    r = await client.post("/api/campaigns", data=form, headers={**boss, **UPLOAD})
    assert r.status == 201, await r.text()
    got = await r.json()
    assert (got["added"], got["invalid"]) == (1, 1) and "line 3" in got["problems"][0]
    r = await client.post("/api/campaigns", params={"name": "x", "project": "y",
                                                    "hours_end": "25:00"},
                          data="number\n123456\n", headers={**boss, **UPLOAD})
    assert r.status == 400
    r = await client.get("/api/campaigns", headers=boss)
    campaigns = {c["name"]: c for c in (await r.json())["campaigns"]}
    assert campaigns["spring"]["contacts"]["pending"] == 3999
    assert campaigns["autumn"]["retry_after"] == 1800
    r = await client.post("/api/campaigns/spring/status", json={"status": "paused"}, headers=boss)
    assert r.status == 200 and (await store.get_campaign("spring"))["status"] == "paused"
    assert (await client.post("/api/campaigns/nope/status", json={"status": "paused"},
                              headers=boss)).status == 404
    r = await client.get("/api/campaigns/spring/contacts", params={"status": "dnc"}, headers=boss)
    assert [c["number"] for c in (await r.json())["contacts"]] == ["36200000003"]
    r = await client.get("/api/dnc", headers=boss)
    assert [(n["number"], n["added_by"]) for n in (await r.json())["numbers"]] == \
        [("36200000003", "boss")]
    assert (await client.delete("/api/dnc/36200000003", headers=boss)).status == 200
    assert (await client.delete("/api/dnc/36200000003", headers=boss)).status == 404
    assert (await client.post("/api/dnc", json={"number": "nope"}, headers=boss)).status == 400
