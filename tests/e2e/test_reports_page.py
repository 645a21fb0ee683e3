"""The supervisor page's reports in a real Chromium: live figures, the chart,
text-only rendering. The console app runs with the report routes on a
seeded store (no PBX needed)."""
from __future__ import annotations

import datetime
import time
from types import SimpleNamespace

import pytest
from aiohttp import web
from playwright.async_api import expect

from ivr.config import Settings
from ivr.outcomes.store import open_store
from ivr.pop import ScriptPop
from ivr.web.app import ConsoleApp, WebContext
from ivr.web.auth import Auth
from ivr.web.hub import ConsoleHub
from ivr.web.campaigns import add_campaign_routes
from ivr.web.reports import add_report_routes
from tests.conftest import free_port
from tests.e2e.conftest import console_users, sign_in
from tests.store_fixtures import make_call


class NoScripts:
    def pop(self, call, user):
        return None, "none"


@pytest.fixture
async def reports_site(tmp_path):
    store = await open_store(f"sqlite://{tmp_path}/ivr.db")
    users = console_users()

    async def nothing(*a, **kw):
        return []
    console = ConsoleApp(WebContext(
        auth=Auth(users, store), hub=ConsoleHub(), pop=ScriptPop(NoScripts(), {}, lambda *a: None),
        live_calls=lambda: [], save_wrapup=store.save_wrapup, transfer=nothing,
        departments=nothing))
    await console.ctx.auth.start()
    app = console.build()
    add_report_routes(app, store, console._user)
    add_campaign_routes(app, store, console._user)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield SimpleNamespace(web_url=f"http://127.0.0.1:{port}", store=store,
                          settings=Settings(users=users))
    await runner.cleanup()
    await store.close()


def today(t: float) -> float:
    """t, or just after local midnight if t was yesterday (a run right after midnight)."""
    midnight = datetime.datetime.now().replace(hour=0, minute=0, second=0, microsecond=0)
    return max(t, midnight.timestamp() + 5)


async def test_supervisor_sees_live_report_figures_and_chart(reports_site, browser, artifacts):
    store, now = reports_site.store, today(time.time() - 300) + 300
    for i, kind in enumerate(["answered", "answered", "answered", "abandoned"]):
        await store.upsert_call(make_call(kind, f"c{i}", at=today(now - 300 + i * 30)))
    await store.upsert_call(make_call("answered", "x1", at=now - 100,
                                      project="<img src=x onerror=alert(1)>"))
    await store.save_wrapup("c0", "1001", "resolved", "")
    async with store.transaction() as tx:      # the speech coaching's score, 0-100
        await tx.execute("UPDATE calls SET adherence_score = 75 WHERE call_id = 'c0'")
    await store.add_callback("c3", "36201234567", "acme", due_at=now - 3600, reason="abandoned")
    boss = await sign_in(browser, reports_site, "boss")
    box = boss.locator("#reports")
    await box.wait_for(state="visible", timeout=10000)
    calls = boss.locator("[data-figure='calls'] .value")
    assert await calls.inner_text() == "5"
    assert await boss.locator("[data-figure='answer rate'] .value").inner_text() == "80%"
    assert await boss.locator("[data-figure='abandoned'] .value").inner_text() == "20%"
    assert await boss.locator("[data-figure='callbacks due'] .value").inner_text() == "1"
    assert await boss.locator("[data-figure='overdue'] .value").inner_text() == "1"
    assert await boss.locator("[data-figure='adherence'] .value").inner_text() == "75"
    acme = boss.locator("#by-project tr[data-project='acme']")
    text = await acme.inner_text()
    assert "resolved 1" in text and "75%" in text
    # A hostile project name is shown as text, never as markup.
    evil = boss.locator("#by-project tr[data-project='<img src=x onerror=alert(1)>'] td").first
    assert await evil.inner_text() == "<img src=x onerror=alert(1)>"
    assert await boss.locator("#reports img").count() == 0
    # The chart: 24 hourly slots, this hour's bars stacked (answered + abandoned).
    assert await boss.locator("#chart-title").inner_text() == "Calls per hour"
    assert await boss.locator("#chart rect.answered").count() >= 1
    assert await boss.locator("#chart rect.abandoned").count() == 1
    titles = await boss.locator("#chart rect title").all_text_contents()
    assert sum(int(t.split(": ")[1].split()[0]) for t in titles) == 5
    await boss.screenshot(path=str(artifacts / "supervisor-reports.png"), full_page=True)
    href = await boss.locator("#export").get_attribute("href")
    assert href.startswith("/api/calls.csv?since=")
    # Live: a new call shows up within a refresh.
    await store.upsert_call(make_call("answered", "c9", at=today(time.time() - 10)))
    # (Locator waits, not wait_for_function: the console's CSP forbids eval.)
    await expect(boss.locator("[data-figure='calls'] .value")).to_have_text("6", timeout=8000)
    # The week view draws a bar per day.
    await boss.select_option("#period", "week")
    await expect(boss.locator("#chart-title")).to_have_text("Calls per day", timeout=5000)
    assert await boss.locator("#reports-title").inner_text() == "Last 7 days"
    assert boss.errors == []
