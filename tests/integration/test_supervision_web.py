"""The listen-in and consult-transfer routes on the console's real app (ConsoleApp,
Auth with its store sessions, the guard), with a fake AMI behind them."""
from __future__ import annotations

import secrets

from aiohttp.test_utils import TestClient, TestServer

from ivr.calls.events import AgentAnswered
from ivr.config import Secret, SupervisionSettings, User
from ivr.pop import ScriptPop
from ivr.supervision import Supervision
from ivr.transfers import ConsoleTransfers
from ivr.web.app import ConsoleApp, WebContext
from ivr.web.auth import Auth
from ivr.web.hub import ConsoleHub
from tests.store_fixtures import postgres_cluster, store, store_url  # noqa: F401
from tests.unit.test_supervision_transfers import FakeAmi, live_call

BOSS = User("boss", "Sara Supervisor", role="supervisor", phone="1099",
            secret=Secret(secrets.token_hex(8)))
AGENT = User("1003", "Csilla", secret=Secret(secrets.token_hex(8)))


async def test_monitor_and_consult_routes_refuse_what_they_must(store):
    ami = FakeAmi()
    calls = {"c1": live_call()}
    sup = Supervision(lambda pbx: ami, SupervisionSettings(), {"boss": BOSS}, lambda *a: None,
                      lambda *a: None, calls.get)

    async def nothing(*a, **kw):
        return []

    class NoScripts:
        def pop(self, call, user):
            return None, "none"
    pop = ScriptPop(NoScripts(), {}, lambda *a: None)
    tr = ConsoleTransfers(lambda pbx: ami, calls.get, lambda: ["1002", "1003"], nothing, lambda *a: None)
    console = ConsoleApp(WebContext(auth=Auth((BOSS, AGENT), store), hub=ConsoleHub(), pop=pop,
                                    live_calls=lambda: list(calls.values()),
                                    save_wrapup=nothing, transfer=nothing, departments=nothing,
                                    supervision=sup, transfers=tr))
    await console.ctx.auth.start()
    async with TestClient(TestServer(console.build())) as client:
        origin = str(client.make_url("/")).rstrip("/")

        async def session(user):
            r = await client.post("/api/login", json={"login": user.login,
                                                       "secret": str(user.secret)},
                                  headers={"Origin": origin})
            assert r.status == 200
            client.session.cookie_jar.clear()    # each caller passes its own cookie
            return {"Cookie": f"ivr_session={r.cookies['ivr_session'].value}", "Origin": origin}
        boss, agent = await session(BOSS), await session(AGENT)
        url = "/api/calls/c1/monitor"
        assert (await client.post(url, json={"mode": "listen"},
                                  headers={"Origin": origin})).status == 401
        assert (await client.post(url, json={"mode": "listen"}, headers=agent)).status == 403
        assert (await client.post(url + "/stop", json={}, headers=agent)).status == 403
        assert (await client.post(url, data=b"{", headers={
            **boss, "Content-Type": "application/json"})).status == 400
        assert (await client.post(url, json={"mode": 3}, headers=boss)).status == 400
        assert (await client.post(url, json={"mode": "spy"}, headers=boss)).status == 400
        assert (await client.post("/api/calls/zz/monitor", json={"mode": "listen"},
                                  headers=boss)).status == 404
        assert (await client.post(url + "/stop", json={}, headers=boss)).status == 404
        r = await client.post(url, json={"mode": "whisper"}, headers=boss)
        assert r.status == 202 and (await r.json())["phone"] == "1099"
        assert (await client.post(url + "/stop", json={}, headers=boss)).status == 202
        # Consults go through the agent's own card: no card, no transfer.
        consult = "/api/calls/c1/consult"
        assert (await client.post(consult, json={"target": "1002"},
                                  headers={"Origin": origin})).status == 401
        assert (await client.post(consult, json={"target": "1002"}, headers=agent)).status == 404
        assert (await client.post(consult, json={"target": "1002"}, headers=boss)).status == 404
        pop.on_call_event(AgentAnswered(call=calls["c1"], at=103.0, agent="1003",
                                        leg=calls["c1"].legs["u1"]))
        assert (await client.post(consult, json={"target": ["x"]}, headers=agent)).status == 400
        assert (await client.post(consult, json={"target": "9"}, headers=agent)).status == 400
        assert (await client.post(consult + "/complete", json={}, headers=agent)).status == 409
        r = await client.post(consult, json={"target": "1002"}, headers=agent)
        assert r.status == 202 and (await r.json())["state"] == "calling"
    await sup.close()
