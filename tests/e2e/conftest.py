"""End-to-end fixtures: the service with its web console, and a real Chromium."""
from __future__ import annotations

import dataclasses
import secrets
import shutil
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from ivr.config import Secret, Settings, StoreSettings, User, WebSettings
from ivr.server import Service
from tests.conftest import REPO, free_port, reset_queues
from tests.integration.conftest import CallLog

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def console_users() -> tuple[User, ...]:
    def user(login, name, **kw):
        return User(login=login, name=name, secret=Secret(secrets.token_urlsafe(8)), **kw)
    return (user("1001", "Anna Kovacs", operator_id="17", position="customer adviser"),
            user("1002", "Bela Nagy", operator_id="23", position="sales consultant"),
            user("1003", "Csilla Toth", operator_id="31", position="support specialist"),
            user("boss", "Sara Supervisor", role="supervisor", phone="1099"))


@pytest.fixture
def console_settings(pbx, pbx_settings: Settings, tmp_path: Path) -> Settings:
    scripts = tmp_path / "scripts"
    shutil.copytree(REPO / "scripts", scripts)
    return dataclasses.replace(
        pbx_settings,
        web=WebSettings(host="127.0.0.1", port=free_port()),
        store=StoreSettings(url=f"sqlite:///{tmp_path / 'ivr.db'}"),
        scripts=str(scripts), customers=str(scripts / "customers.csv"),
        users=console_users())


@pytest.fixture
async def console(pbx, console_settings: Settings):
    reset_queues(pbx)      # agents join their queues by signing in to the console
    svc = Service(console_settings)
    calls = CallLog()
    svc.bus.subscribe(calls)
    await svc.start()
    await svc.ami.wait_connected(15)
    svc.calls_seen = calls
    yield svc
    await svc.stop()


@pytest.fixture
async def browser():
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        await b.close()


async def sign_in(browser: Browser, service: Service, login: str) -> Page:
    """A fresh browser context signed in through the real sign-in form."""
    context = await browser.new_context(viewport={"width": 1360, "height": 900})
    page = await context.new_page()
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.errors = []
    await page.goto(service.web_url + "/")
    await page.fill("input[name=login]", login)
    await page.fill("input[name=secret]", str(service.settings.user(login).secret))
    await page.click("button[type=submit]")
    await page.wait_for_selector("#conn.up", timeout=10000)
    return page
