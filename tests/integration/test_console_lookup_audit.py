"""The console's person lookup is audited, found or not, and never keeps the NHS number
(audit D7); console form text with control characters is a 422 page, not a 500 (D5).

``POST /ui/people/lookup`` answers 303 with the register id in ``Location`` when someone has
that NHS number: the answer alone says who is on the register, so it is a read of their
record whether or not the browser follows the redirect (as ``GET /api/v1/people?nhs_number=``
audits each match). Synthetic data only (999-range NHS numbers).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from register_core.adapters.tables import audit_log, register_exceptions
from register_core.domain.nhs_number import make_synthetic
from s117hub.api.app import create_app
from s117hub.bootstrap import Hub

from .console_world import CONFLICT_SERIAL, ConsoleWorld, seed

with warnings.catch_warnings():  # starlette 1.x warns that its client still uses httpx
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

OWNER, AUDITOR = "register-owner", "auditor"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
LOOKUP = "/ui/people/lookup"


@dataclass
class Console:
    hub: Hub
    world: ConsoleWorld
    client: TestClient

    def login(self, role: str) -> TestClient:
        guard = CSRF.search(self.client.get("/ui/login").text).group(1)  # type: ignore[union-attr]
        answer = self.client.post("/ui/login", data={"token": self.world.tokens[role],
                                                     "csrf_token": guard})
        assert answer.status_code == 303, answer.text
        return self.client

    def csrf(self, path: str) -> str:
        return CSRF.search(self.client.get(path).text).group(1)  # type: ignore[union-attr]

    def lookup(self, wanted: str) -> Any:
        return self.client.post(LOOKUP, data={"csrf_token": self.csrf("/ui/people"),
                                              "wanted": wanted})

    def audit_rows(self) -> list[dict[str, Any]]:
        with self.hub.engine.connect() as conn:
            return [dict(r) for r in conn.execute(
                select(audit_log).where(audit_log.c.request == f"POST {LOOKUP}")
                .order_by(audit_log.c.id)).mappings()]

    def all_audit_text(self) -> str:
        with self.hub.engine.connect() as conn:
            return repr([tuple(r) for r in conn.execute(select(audit_log))])


@pytest.fixture
def console(hub: Hub) -> Iterator[Console]:
    world = seed(hub, with_hl7=False)
    with TestClient(create_app(hub), base_url="https://hub.test",
                    follow_redirects=False) as client:
        yield Console(hub, world, client)


def test_a_lookup_that_finds_someone_is_audited_before_the_redirect(console: Console) -> None:
    console.login(OWNER)
    nhs = make_synthetic(CONFLICT_SERIAL)
    answer = console.lookup(nhs)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/ui/people/{console.world.conflict_person}"
    [row] = console.audit_rows()  # the redirect was not followed
    assert (row["action"], row["resource"], row["resource_id"], row["person_id"]) == (
        "read", "person-lookup", "nhs-number", console.world.conflict_person)
    assert (row["actor"], row["role"]) == (console.world.token_ids[OWNER], OWNER)
    assert row["at"] is not None
    assert nhs not in console.all_audit_text()  # the NHS number itself is not kept
    spaced = f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}"
    assert console.lookup(spaced).status_code == 303
    assert len(console.audit_rows()) == 2 and spaced not in console.all_audit_text()


def test_a_lookup_that_finds_nobody_is_audited_as_such(console: Console) -> None:
    console.login(AUDITOR)  # auditors may look up too
    nobody = make_synthetic(77)
    answer = console.lookup(nobody)
    assert answer.status_code == 404 and "No person on the register" in answer.text
    [row] = console.audit_rows()
    assert (row["resource"], row["resource_id"], row["person_id"]) == (
        "person-lookup", "nhs-number", None)
    assert row["actor"] == console.world.token_ids[AUDITOR]
    assert nobody not in console.all_audit_text()


def test_a_lookup_by_register_id_is_audited_too(console: Console) -> None:
    console.login(OWNER)
    assert console.lookup(console.world.conflict_person).status_code == 303
    assert console.lookup("no-such-person-id").status_code == 404
    assert [(r["resource_id"], r["person_id"]) for r in console.audit_rows()] == [
        ("register-id", console.world.conflict_person), ("register-id", None)]


def test_the_lookup_shows_in_the_api_audit_log(console: Console) -> None:
    console.login(OWNER)
    console.lookup(make_synthetic(CONFLICT_SERIAL))
    client = console.client
    client.cookies.clear()
    body = client.get("/api/v1/audit", params={"person_id": console.world.conflict_person},
                      headers={"Authorization": f"Bearer {console.world.tokens[AUDITOR]}"}
                      ).json()
    assert [(i["resource"], i["request"]) for i in body["items"]] == [
        ("person-lookup", f"POST {LOOKUP}")]


@pytest.mark.parametrize("wanted", ["\x00", "abc\x00", "999\r\n0000018"])
def test_control_characters_in_a_lookup_are_a_422_page_and_look_nothing_up(
        console: Console, wanted: str) -> None:
    console.login(OWNER)
    answer = console.lookup(wanted)
    assert answer.status_code == 422 and "control characters" in answer.text
    assert console.audit_rows() == []


def test_an_empty_lookup_looks_nothing_up(console: Console) -> None:
    console.login(OWNER)
    assert console.lookup("  ").status_code == 404
    assert console.audit_rows() == []


@pytest.mark.parametrize("action, form", [
    ("assign", {"assignee": "Quackenbush\x00"}),
    ("assign", {"assignee": "coordinator\r\nTwo"}),
    ("resolve", {"decision": "resolved", "reason": "spoke to Mr Quackenbush\x00 today"}),
    ("resolve", {"decision": "resolved\r", "reason": "dealt with"}),
    ("resolve", {"decision": "corrected", "reason": "named", "apply_type":
                 "named-practitioner.set", "apply_value": "Sam\x00Carer"}),
    ("dismiss", {"reason": "nothing\x00 missed"}),
])
def test_control_characters_in_console_forms_are_a_422_page(
        console: Console, action: str, form: dict[str, str]) -> None:
    console.login(OWNER)
    page = f"/ui/exceptions/{console.world.conflict_exception}"
    answer = console.client.post(f"{page}/{action}",
                                 data={"csrf_token": console.csrf(page), **form})
    assert answer.status_code == 422, answer.text
    assert "control characters" in answer.text and "Quackenbush" not in answer.text
    with console.hub.engine.connect() as conn:
        status, assignee = conn.execute(
            select(register_exceptions.c.status, register_exceptions.c.assigned_to).where(
                register_exceptions.c.id == console.world.conflict_exception)).one()
    assert (status, assignee) == ("open", None)


def test_a_console_reason_may_span_lines(console: Console) -> None:
    console.login(OWNER)
    page = f"/ui/exceptions/{console.world.conflict_exception}"
    answer = console.client.post(f"{page}/dismiss", data={
        "csrf_token": console.csrf(page), "reason": "Checked with the ward.\r\nNo conflict."})
    assert answer.status_code == 303
