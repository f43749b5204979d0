"""Issue 6, "done means": a new user starts the demo, opens the printed console address, logs
in with the printed token and — by clicking only — follows one detention from the HL7 message
to the register to the delivery to the council, then resolves an exception. Real headless
Chromium against ``s117hub demo`` in a child process; screenshots in tests/browser/artifacts/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from s117hub.demo_people import FOLLOW, PEOPLE, SUBSCRIBER_WEST, TRUST_HL7
from tests.e2e.test_demo import Demo, demo  # noqa: F401 - the demo fixture, reused

from .test_console_browser import ARTIFACTS, browser  # noqa: F401 - the browser fixture

pytestmark = pytest.mark.slow


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"journey-{name}.png"), full_page=True)


@pytest.fixture
def page(browser: Browser, demo: Demo) -> Iterator[Page]:  # noqa: F811
    context = browser.new_context(base_url=demo.api)
    opened = context.new_page()
    yield opened
    context.close()


def test_follow_a_detention_from_hl7_to_the_council_then_resolve_an_exception(
        page: Page, demo: Demo) -> None:  # noqa: F811
    alex = PEOPLE[FOLLOW]
    with httpx.Client(base_url=demo.api, headers={"Authorization": f"Bearer {demo.token}"},
                      timeout=30) as api:
        [person] = api.get("/api/v1/people",
                           params={"nhs_number": alex.nhs_number}).json()["items"]
    person_id = person["id"]

    page.goto("/ui/")
    page.fill("#token", demo.token)
    page.click("button[type=submit]")
    shot(page, "1-after-login")

    # The HL7 discharge, from the trust's MLLP feed, with the ACK the hub sent.
    page.click("nav >> text=Messages")
    page.fill("input[name=person_id]", person_id)
    page.click("form.filters button")
    row = page.locator("tr", has_text="A03").filter(has_text=TRUST_HL7).first
    row.locator("a").first.click()
    expect(page.locator("body")).to_contain_text("MSA|AA|")
    expect(page.locator("body")).to_contain_text("entitlement.status")
    shot(page, "2-hl7-discharge")

    # To the register: the person's S117 position and why.
    page.click("a.person-link")
    expect(page.locator("h1")).to_contain_text(alex.family_name)
    expect(page.locator("h1 .badge")).to_contain_text("active")
    shot(page, "3-register-record")

    # To the council: the status change delivered to its case system.
    page.click("a.deliveries-link")
    council_row = page.locator("tr", has_text=SUBSCRIBER_WEST).filter(
        has=page.locator("td", has_text=re.compile("HTTP 20")))
    expect(council_row.first).to_be_visible()
    council_row.first.locator("a").first.click()
    expect(page.locator("body")).to_contain_text("delivered")
    shot(page, "4-delivered-to-council")

    # And a register owner's decision: a source conflict, both values, resolved.
    page.click("nav >> text=Exceptions")
    page.locator("a", has_text="Sources disagree").first.click()
    expect(page.locator("body")).to_contain_text("What each source says")
    shot(page, "5-conflict")
    page.select_option("select[name=decision]", index=1)  # accept the first source's value
    page.fill("#resolve textarea[name=reason]", "checked with the ward: the trust is right")
    page.click("#resolve button[type=submit]")
    expect(page.locator("h1 .badge")).to_have_text("resolved")
    shot(page, "6-resolved")
