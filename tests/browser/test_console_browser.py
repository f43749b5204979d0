"""The console in a real headless Chromium against a real hub (``s117hub serve`` in a child
process, on the test database): a register owner settles a source conflict, an engineer
replays an HL7 message that got AE, and a role without rights gets no page.

Screenshots of every page land in ``tests/browser/artifacts/`` (not committed). Without
``/usr/bin/chromium`` the tests skip, unless ``S117HUB_REQUIRE_BROWSER=1``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hl7.client import MLLPClient
from sqlalchemy import select

from register_core.adapters.tables import audit_log, inbox_messages, register_exceptions
from s117hub.bootstrap import Hub
from s117hub.harness import HubProcess
from tests.integration.console_world import TRUST_A, ConsoleWorld, failing_hl7, seed

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"

if not CHROMIUM.exists():
    if os.environ.get("S117HUB_REQUIRE_BROWSER") == "1":
        raise RuntimeError("S117HUB_REQUIRE_BROWSER=1 but /usr/bin/chromium is missing")
    pytest.skip("no /usr/bin/chromium: browser tests skipped", allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402


def wait_for(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                              args=["--no-sandbox"])
        yield launched
        launched.close()


class Served:
    def __init__(self, hub: Hub, world: ConsoleWorld, process: HubProcess) -> None:
        self.hub, self.world, self.process = hub, world, process
        self.base = f"http://127.0.0.1:{process.http_port}"

    def log_in(self, browser: Browser, role: str) -> Page:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{self.base}/ui/login")
        page.fill("#token", self.world.tokens[role])
        page.click("button[type=submit]")
        page.wait_for_load_state()
        return page

    def db(self, query: Any) -> list[Any]:
        with self.hub.engine.connect() as conn:
            return list(conn.execute(query).mappings())


@pytest.fixture
def served(hub: Hub, database_url: str, tmp_path: Path) -> Iterator[Served]:
    world = seed(hub, with_hl7=False)
    process = start_hub(database_url, tmp_path)
    try:
        yield Served(hub, world, process)
    finally:
        process.stop()


def start_hub(database_url: str, tmp_path: Path) -> HubProcess:
    """The real hub on free ports; tried twice, since a port picked free can be taken by
    another test process before the hub binds it (and the machine may be busy)."""
    for attempt in (1, 2):
        process = HubProcess(database_url=database_url, workdir=tmp_path / f"hub-{attempt}")
        try:
            process.start(timeout=60)
            return process
        except RuntimeError:
            process.stop()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_a_register_owner_settles_a_source_conflict(browser: Browser, served: Served) -> None:
    world = served.world
    page = served.log_in(browser, "register-owner")
    expect(page).to_have_url(f"{served.base}/ui/exceptions")
    expect(page.locator("header .who")).to_contain_text("register-owner")
    shot(page, "exceptions")
    page.click("text=Sources disagree on a detention's section")
    expect(page.locator("[data-source=trust-a] .value")).to_contain_text("Section 3")
    expect(page.locator("[data-source=council-a] .value")).to_contain_text("Section 2")
    expect(page.locator("section.rule")).to_contain_text("decide which is right")
    shot(page, "exception-conflict")
    page.select_option("select[name=decision]", "accept-source:trust-a")
    page.fill("#resolve textarea[name=reason]", "the ward record shows section 3")
    page.click("#resolve button[type=submit]")
    expect(page.locator(".notice")).to_contain_text("resolved")
    expect(page.locator("h1 .badge")).to_have_text("resolved")
    shot(page, "exception-resolved")

    (row,) = served.db(select(register_exceptions).where(
        register_exceptions.c.id == world.conflict_exception))
    assert (row["status"], row["decision"], row["reason"]) == (
        "resolved", "accept-source:trust-a", "the ward record shows section 3")
    path = f"/ui/exceptions/{world.conflict_exception}"
    requests = {r["request"] for r in served.db(select(audit_log).where(
        audit_log.c.actor == world.token_ids["register-owner"]))}
    assert {f"GET {path}", f"POST {path}/resolve"} <= requests

    page.click(f"a[href='/ui/people/{world.conflict_person}']")
    expect(page.locator("ol.timeline")).to_contain_text("Detained under section 03")
    expect(page.locator("body")).not_to_contain_text("Sources disagree")  # no longer open
    shot(page, "person")
    for name in ("disputes", "board"):
        page.click(f"nav >> text={'Board report' if name == 'board' else 'Disputes'}")
        page.wait_for_load_state()
        shot(page, name)
    expect(page.locator("svg.chart").first).to_be_visible()


def test_an_engineer_replays_a_message_that_got_ae(browser: Browser, served: Served) -> None:
    with MLLPClient("127.0.0.1", served.process.mllp_port) as client:
        ack = client.send_message(failing_hl7()).decode()
    assert "MSA|AE" in ack
    page = served.log_in(browser, "integration-engineer")
    expect(page).to_have_url(f"{served.base}/ui/flow")
    expect(page.locator("#flow")).to_contain_text("trust-a")
    shot(page, "flow")
    page.click("nav >> text=Messages")
    page.select_option("select[name=status]", "failed")
    page.click("form.filters button")
    page.click("a:text-is(\"CONSOLE-1\")")
    expect(page.locator("h1 .badge")).to_have_text("failed")
    expect(page.locator("body")).to_contain_text("MSA|AE|CONSOLE-1")
    expect(page.locator("table.fields")).to_contain_text("ZLS-1")
    shot(page, "message-failed")

    # The fix: the source's code map learns XX (through the API, as an engineer would).
    fixed = TRUST_A.model_copy(update={"code_map": {"XX": "03"}}).model_dump(mode="json")
    answer = httpx.put(f"{served.base}/api/v1/sources/trust-a", json=fixed, headers={
        "Authorization": f"Bearer {served.world.tokens['integration-engineer']}"})
    assert answer.status_code == 200, answer.text
    page.click("text=Replay")
    expect(page.locator(".notice")).to_contain_text("queued again")

    def applied() -> bool:
        page.reload()
        return page.locator("h1 .badge").inner_text(timeout=2000) == "applied"

    wait_for(applied)
    expect(page.locator("body")).not_to_contain_text("No register value changed")
    shot(page, "message-replayed")
    (row,) = served.db(select(inbox_messages.c.status).where(
        inbox_messages.c.message_id == "CONSOLE-1"))
    assert row["status"] == "applied"
    page.click("nav >> text=Deliveries")
    expect(page.locator("body")).to_contain_text("council-x")
    shot(page, "deliveries")


def test_a_role_without_rights_gets_no_page(browser: Browser, served: Served) -> None:
    page = served.log_in(browser, "integration-engineer")
    nav = page.locator("header nav")
    expect(nav).not_to_contain_text("Exceptions")
    answer = page.goto(f"{served.base}/ui/people/{served.world.conflict_person}")
    assert answer is not None and answer.status == 403
    expect(page.locator("h1")).to_have_text("Not allowed")
    expect(page.locator("main")).not_to_contain_text("Testfamily")
    shot(page, "forbidden")

    other = browser.new_page()
    other.goto(f"{served.base}/ui/login")
    other.fill("#token", served.world.tokens["source-system"])
    other.click("button[type=submit]")
    expect(other.locator(".error")).to_contain_text("cannot open the console")
    shot(other, "login-refused")
    other.goto(f"{served.base}/ui/flow")
    expect(other).to_have_url(f"{served.base}/ui/login")
