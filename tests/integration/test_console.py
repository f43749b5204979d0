"""The web console over HTTP on the real databases: login and sessions, CSRF, every page
gated by role, the audit trail of a person view, and the buttons changing the database."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from connectors.inbound_mapper import make_mapper
from register_core.adapters import message_store
from register_core.adapters.security import TokenStore
from register_core.adapters.tables import (
    audit_log,
    console_sessions,
    inbox_messages,
    outbound_deliveries,
    register_exceptions,
)
from register_core.domain.nhs_number import make_synthetic
from register_core.ports import FixedClock
from register_core.services.inbound import drain
from s117hub.api.app import create_app
from s117hub.bootstrap import Hub

from .console_world import ALL_CALLERS, CONFLICT_SERIAL, ConsoleWorld, fix_code_map, seed

with warnings.catch_warnings():  # starlette 1.x warns that its client still uses httpx
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

ENGINEER, OWNER, AUDITOR = "integration-engineer", "register-owner", "auditor"
OPS = {ENGINEER, AUDITOR}
REGISTER = {OWNER, AUDITOR}
# (page, roles that may open it); {…} filled in from the world.
PAGES: list[tuple[str, set[str]]] = [
    ("/ui/flow", OPS), ("/ui/flow/fragment", OPS), ("/ui/messages", OPS),
    ("/ui/messages/{failed_message}", OPS), ("/ui/messages/{failed_message}/raw", OPS),
    ("/ui/deliveries", OPS),
    ("/ui/deliveries/{failed_delivery}", OPS), ("/ui/exceptions", REGISTER),
    ("/ui/exceptions/{conflict_exception}", REGISTER), ("/ui/people", REGISTER),
    ("/ui/people/{conflict_person}", REGISTER), ("/ui/disputes", REGISTER),
    ("/ui/board", REGISTER), ("/ui/audit", {AUDITOR}),
]
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Console:
    hub: Hub
    world: ConsoleWorld
    client: TestClient

    def login(self, role: str) -> TestClient:
        page = self.client.get("/ui/login")
        guard = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
        answer = self.client.post("/ui/login", data={"token": self.world.tokens[role],
                                                     "csrf_token": guard})
        assert answer.status_code == 303, answer.text
        return self.client

    def csrf(self, path: str) -> str:
        return CSRF.search(self.client.get(path).text).group(1)  # type: ignore[union-attr]

    def path(self, template: str) -> str:
        return template.format(**vars(self.world))

    def count(self, table: object, *where: object) -> int:
        with self.hub.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)  # type: ignore[arg-type]
                                    .where(*where)).scalar_one())


@pytest.fixture
def console(hub: Hub) -> Iterator[Console]:
    world = seed(hub)
    with TestClient(create_app(hub), base_url="https://hub.test",
                    follow_redirects=False) as client:
        yield Console(hub, world, client)


# -- login, sessions ---------------------------------------------------------------------


def test_login_sets_a_strict_httponly_session_cookie_and_stores_only_its_hash(
        console: Console) -> None:
    page = console.client.get("/ui/login")
    assert page.status_code == 200
    guard = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
    answer = console.client.post("/ui/login", data={"token": console.world.tokens[OWNER],
                                                    "csrf_token": guard})
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/exceptions"
    cookie = next(c for c in answer.headers.get_list("set-cookie")
                  if c.startswith("s117hub_session="))
    for flag in ("HttpOnly", "SameSite=strict", "Path=/ui", "Secure"):
        assert flag.lower() in cookie.lower()
    value = cookie.split(";")[0].split("=", 1)[1]
    with console.hub.engine.connect() as conn:
        ids = list(conn.execute(select(console_sessions.c.id)).scalars())
    assert len(ids) == 1 and value not in ids[0]
    home = console.client.get("/ui/exceptions")
    assert "test register-owner" in home.text and "register-owner" in home.text
    assert console.world.tokens[OWNER] not in home.text


def test_a_wrong_token_and_a_source_system_token_are_refused(console: Console) -> None:
    for token, status, words in (("s117_nope", 401, "unknown or revoked"),
                                 (console.world.tokens["source-system"], 403, "partner system")):
        guard = console.csrf("/ui/login")
        answer = console.client.post("/ui/login", data={"token": token, "csrf_token": guard})
        assert answer.status_code == status and words in answer.text
    assert console.count(console_sessions) == 0


def test_logout_is_a_post_that_ends_the_session(console: Console) -> None:
    client = console.login(ENGINEER)
    assert client.get("/ui/logout").status_code == 405
    answer = client.post("/ui/logout", data={"csrf_token": console.csrf("/ui/flow")})
    assert answer.status_code == 303 and answer.headers["location"].startswith("/ui/login")
    assert console.count(console_sessions) == 0
    assert client.get("/ui/flow").headers["location"].startswith("/ui/login")


def test_the_session_dies_after_30_idle_minutes_and_after_8_hours(console: Console) -> None:
    clock = console.hub.clock
    assert isinstance(clock, FixedClock)
    start = clock.at
    client = console.login(ENGINEER)
    for minutes in (10, 35, 60, 85):  # active every 25 minutes: stays alive
        clock.at = start + timedelta(minutes=minutes)
        assert client.get("/ui/flow").status_code == 200
    clock.at = start + timedelta(minutes=85 + 31)
    assert client.get("/ui/flow").status_code == 303  # idle too long

    client = console.login(ENGINEER)
    begun = clock.at
    for minutes in range(25, 8 * 60, 25):
        clock.at = begun + timedelta(minutes=minutes)
        assert client.get("/ui/flow").status_code == 200
    clock.at = begun + timedelta(hours=8)
    assert client.get("/ui/flow").headers["location"] == "/ui/login?done=expired"


def test_the_flow_pages_own_refresh_does_not_keep_the_session_alive(console: Console) -> None:
    clock = console.hub.clock
    assert isinstance(clock, FixedClock)
    client = console.login(ENGINEER)
    start = clock.at
    for seconds in range(600, 31 * 60, 600):
        clock.at = start + timedelta(seconds=seconds)
        client.get("/ui/flow/fragment")
    clock.at = start + timedelta(minutes=31)
    assert client.get("/ui/flow/fragment").status_code == 401


def test_revoking_the_token_ends_its_sessions(console: Console) -> None:
    client = console.login(OWNER)
    assert client.get("/ui/exceptions").status_code == 200
    TokenStore(console.hub.engine, console.hub.clock).revoke(console.world.token_ids[OWNER])
    assert client.get("/ui/exceptions").status_code == 303
    assert console.count(console_sessions) == 0


# -- CSRF and origin ---------------------------------------------------------------------


def test_posts_without_the_sessions_csrf_token_are_refused(console: Console) -> None:
    client = console.login(ENGINEER)
    path = f"/ui/messages/{console.world.failed_message}/replay"
    for data in ({}, {"csrf_token": "forged"}):
        answer = client.post(path, data=data)
        assert answer.status_code == 403 and "security token" in answer.text
    assert console.count(inbox_messages, inbox_messages.c.status == "failed") == 1


def test_a_cross_origin_post_is_refused_even_with_the_token(console: Console) -> None:
    client = console.login(ENGINEER)
    token = console.csrf("/ui/flow")
    answer = client.post(f"/ui/messages/{console.world.failed_message}/replay",
                         data={"csrf_token": token},
                         headers={"Origin": "https://evil.example"})
    assert answer.status_code == 403 and "another site" in answer.text
    assert console.count(inbox_messages, inbox_messages.c.status == "failed") == 1


def test_the_login_form_needs_its_double_submit_cookie(console: Console) -> None:
    console.client.get("/ui/login")
    answer = console.client.post("/ui/login", data={"token": console.world.tokens[OWNER],
                                                    "csrf_token": "guessed"})
    assert answer.status_code == 403
    console.client.cookies.clear()
    answer = console.client.post("/ui/login", data={"token": console.world.tokens[OWNER],
                                                    "csrf_token": "guessed"})
    assert answer.status_code == 403 and console.count(console_sessions) == 0


# -- role gating -------------------------------------------------------------------------


@pytest.mark.parametrize(("template", "allowed"), PAGES)
def test_each_page_opens_only_for_its_roles(console: Console, template: str,
                                            allowed: set[str]) -> None:
    path = console.path(template)
    fresh = console.client
    answer = fresh.get(path)
    if template.endswith("/fragment"):
        assert answer.status_code == 401
    else:
        assert answer.status_code == 303 and answer.headers["location"] == "/ui/login"
    for role in (ENGINEER, OWNER, AUDITOR):
        fresh.cookies.clear()
        client = console.login(role)
        answer = client.get(path)
        if role in allowed:
            assert answer.status_code == 200, (role, answer.text[:500])
        else:
            assert answer.status_code == 403, role
            assert "may not open this page" in answer.text
            assert console.world.conflict_person not in answer.text  # no data at all


def test_the_nav_shows_only_pages_the_roles_may_open(console: Console) -> None:
    nav = {ENGINEER: ("Flow", "Messages", "Deliveries"),
           OWNER: ("Exceptions", "Person", "Disputes", "Board report")}
    for role, shown in nav.items():
        console.client.cookies.clear()
        page = console.login(role).get("/ui/").headers["location"]
        html = console.client.get(page).text
        header = html.split("<main>")[0]
        for label in shown:
            assert f">{label}</a>" in header
        hidden = nav[OWNER if role == ENGINEER else ENGINEER]
        for label in hidden:
            assert f">{label}</a>" not in header


def test_an_auditor_reads_but_gets_no_buttons_and_may_not_post(console: Console) -> None:
    client = console.login(AUDITOR)
    page = client.get(console.path("/ui/exceptions/{conflict_exception}")).text
    assert "/resolve" not in page and "trust-a" in page
    assert "Replay" not in client.get(console.path("/ui/messages/{failed_message}")).text
    answer = client.post(console.path("/ui/exceptions/{conflict_exception}/dismiss"),
                         data={"csrf_token": console.csrf("/ui/exceptions"), "reason": "x"})
    assert answer.status_code == 403
    assert console.count(register_exceptions, register_exceptions.c.status == "open") >= 1


def test_worklists_show_no_nhs_number_or_name(console: Console) -> None:
    nhs, name = make_synthetic(CONFLICT_SERIAL), "Testfamily"
    for role, pages in ((OWNER, ("/ui/exceptions", "/ui/disputes", "/ui/board",
                                 "/ui/exceptions/{conflict_exception}")),
                        (ENGINEER, ("/ui/flow", "/ui/messages", "/ui/deliveries",
                                    "/ui/deliveries/{failed_delivery}"))):
        console.client.cookies.clear()
        client = console.login(role)
        for template in pages:
            html = client.get(console.path(template)).text
            assert nhs not in html and name not in html, template
    person = client.get(console.path("/ui/messages/{failed_message}")).text
    assert "Invented^Consolia" in person  # the raw payload is the one place it shows


# -- audit and actions -------------------------------------------------------------------


def test_a_person_view_is_audited_with_the_console_request_line(console: Console) -> None:
    client = console.login(OWNER)
    path = console.path("/ui/people/{conflict_person}")
    page = client.get(path)
    assert page.status_code == 200
    assert make_synthetic(CONFLICT_SERIAL) in page.text and "Testfamily" in page.text
    assert "Detained under section 03" in page.text and "Why (rule)" in page.text
    with console.hub.engine.connect() as conn:
        row = conn.execute(select(audit_log).where(audit_log.c.resource == "person")
                           ).mappings().one()
    assert row["request"] == f"GET {path}" and row["action"] == "read"
    assert row["actor"] == console.world.token_ids[OWNER] and row["role"] == OWNER
    assert row["person_id"] == console.world.conflict_person


def test_looking_up_a_person_by_nhs_number_is_a_post_that_redirects(console: Console) -> None:
    client = console.login(OWNER)
    answer = client.post("/ui/people/lookup", data={
        "csrf_token": console.csrf("/ui/people"), "wanted": make_synthetic(CONFLICT_SERIAL)})
    assert answer.status_code == 303
    assert answer.headers["location"] == console.path("/ui/people/{conflict_person}")


def test_the_message_list_audits_the_errors_it_shows(console: Console) -> None:
    """An error may quote a value of the message: listing it is a read, as in the API."""
    client = console.login(ENGINEER)
    assert client.get("/ui/messages").status_code == 200
    assert console.count(audit_log, audit_log.c.request == "GET /ui/messages",
                         audit_log.c.resource_id == str(console.world.failed_message)) == 1


def test_replay_through_the_console_applies_the_message_after_the_fix(console: Console) -> None:
    hub, world = console.hub, console.world
    fix_code_map(hub)
    client = console.login(ENGINEER)
    path = f"/ui/messages/{world.failed_message}"
    answer = client.post(f"{path}/replay", data={"csrf_token": console.csrf(path)})
    assert answer.status_code == 303 and answer.headers["location"].endswith("done=replayed")
    drain(hub.engine, make_mapper(hub.sources), hub.clock, hub.policy)
    assert console.count(inbox_messages, inbox_messages.c.status == "applied") == 1
    page = client.get(path).text
    assert "entitlement" in page and "No register value changed" not in page
    assert console.count(audit_log, audit_log.c.request == f"POST {path}/replay") == 1


def test_replay_refusals_are_pages_with_the_consoles_wording(
        console: Console, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rules ``register_core.services.replay`` shares with the API, in the console's
    words: applied without "replay anyway", a worker moving the message meanwhile, rejected,
    and no such message. Nothing is requeued and nothing audited."""
    hub, world = console.hub, console.world
    client = console.login(ENGINEER)
    path = f"/ui/messages/{world.failed_message}"
    with hub.engine.begin() as conn:
        conn.execute(update(inbox_messages).values(status="applied", error=None))
    answer = client.post(f"{path}/replay", data={"csrf_token": console.csrf(path)})
    assert answer.status_code == 409 and "replay anyway" in answer.text

    requeue = hub.inbox.requeue

    def worker_first(seen: dict[int, str]) -> list[int]:
        with hub.engine.begin() as conn:
            conn.execute(update(inbox_messages).values(status="applied"))
        return requeue(seen)

    with hub.engine.begin() as conn:
        conn.execute(update(inbox_messages).values(status="failed"))
    monkeypatch.setattr(hub.inbox, "requeue", worker_first)
    answer = client.post(f"{path}/replay", data={"csrf_token": console.csrf(path)})
    assert answer.status_code == 409 and "changed while it was being replayed" in answer.text
    monkeypatch.undo()

    with hub.engine.begin() as conn:
        conn.execute(update(inbox_messages).values(status="rejected"))
    answer = client.post(f"{path}/replay", data={"csrf_token": console.csrf(path)})
    assert answer.status_code == 409 and "rejected message" in answer.text
    answer = client.post("/ui/messages/999999/replay", data={"csrf_token": console.csrf(path)})
    assert answer.status_code == 404
    assert console.count(inbox_messages, inbox_messages.c.status == "received") == 0
    assert console.count(audit_log, audit_log.c.action == "write") == 0


def test_retry_now_puts_a_failed_delivery_back_to_pending(console: Console) -> None:
    client = console.login(ENGINEER)
    path = f"/ui/deliveries/{console.world.failed_delivery}"
    page = client.get(path).text
    assert "unknown council code" in page and "400" in page
    answer = client.post(f"{path}/retry", data={"csrf_token": console.csrf(path)})
    assert answer.status_code == 303
    with console.hub.engine.connect() as conn:
        row = conn.execute(select(outbound_deliveries)).mappings().one()
    assert row["status"] == "pending" and row["manual_retries"] == 1
    again = client.post(f"{path}/retry", data={"csrf_token": console.csrf(path)})
    assert again.status_code == 409 and "only a failed delivery" in again.text


def test_resolving_an_exception_records_the_decision_and_the_audit(console: Console) -> None:
    client = console.login(OWNER)
    path = console.path("/ui/exceptions/{conflict_exception}")
    page = client.get(path).text
    assert 'data-source="trust-a"' in page and 'data-source="council-a"' in page
    assert "Section 3" in page and "Section 2" in page
    token = console.csrf(path)
    assert client.post(f"{path}/assign", data={"csrf_token": token, "assignee": "coordinator"}
                       ).status_code == 303
    refused = client.post(f"{path}/resolve", data={"csrf_token": token,
                                                   "decision": "accept-source:trust-a",
                                                   "reason": "  "})
    assert refused.status_code == 422 and "reason" in refused.text
    answer = client.post(f"{path}/resolve", data={
        "csrf_token": token, "decision": "accept-source:trust-a",
        "reason": "the ward record shows s3"})
    assert answer.status_code == 303
    with console.hub.engine.connect() as conn:
        row = conn.execute(select(register_exceptions).where(
            register_exceptions.c.id == console.world.conflict_exception)).mappings().one()
    assert (row["status"], row["decision"], row["closed_by"], row["assigned_to"]) == (
        "resolved", "accept-source:trust-a", console.world.token_ids[OWNER], "coordinator")
    assert console.count(audit_log, audit_log.c.request == f"POST {path}/resolve",
                         audit_log.c.action == "write") == 1
    assert "the ward record shows s3" in client.get(path).text


def test_a_correction_from_the_resolve_form_is_recorded_as_provenance(console: Console) -> None:
    client = console.login(OWNER)
    path = console.path("/ui/exceptions/{conflict_exception}")
    answer = client.post(f"{path}/resolve", data={
        "csrf_token": console.csrf(path), "decision": "corrected", "reason": "phoned",
        "apply_type": "named-practitioner.set", "apply_value": "A Practitioner"})
    assert answer.status_code == 303
    person = client.get(console.path("/ui/people/{conflict_person}")).text
    assert "A Practitioner" in person and f"exception:{console.world.conflict_exception}" \
        in person


def test_openapi_does_not_list_the_console(console: Console) -> None:
    headers = {"Authorization": f"Bearer {console.world.tokens[OWNER]}"}
    schema = console.client.get("/openapi.json", headers=headers).json()
    assert not [path for path in schema["paths"] if path.startswith("/ui")]


def test_pages_carry_no_store_and_a_strict_content_security_policy(console: Console) -> None:
    page = console.login(ENGINEER).get("/ui/flow")
    assert page.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert console.client.get("/ui/static/console.js").status_code == 200
    assert console.client.get("/ui/static/..%2Fweb.py").status_code == 404


assert set(ALL_CALLERS) == {ENGINEER, OWNER, AUDITOR, "source-system"}


def test_the_auditor_sees_who_opened_a_person_and_from_which_view(console: Console) -> None:
    owner = console.login(OWNER)
    person = console.world.conflict_person
    assert owner.get(f"/ui/people/{person}").status_code == 200
    console.client.cookies.clear()
    auditor = console.login(AUDITOR)
    page = auditor.get("/ui/audit", params={"person_id": person})
    assert page.status_code == 200
    assert f"GET /ui/people/{person}" in page.text
    assert "register-owner" in page.text
    assert console.world.tokens[OWNER] not in page.text  # ids only, never a token


def test_a_message_downloads_byte_for_byte_and_the_read_is_audited(console: Console) -> None:
    """The message page links the bytes as received (the API's /messages/{id}/raw), for the
    roles that read messages; a register owner alone may not."""
    message_id = console.world.failed_message
    client = console.login(ENGINEER)
    page = client.get(f"/ui/messages/{message_id}")
    assert f'href="/ui/messages/{message_id}/raw"' in page.text
    answer = client.get(f"/ui/messages/{message_id}/raw")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/octet-stream"
    assert answer.headers["cache-control"] == "no-store"
    with console.hub.engine.connect() as conn:
        assert answer.content == message_store.received_bytes(conn, message_id)
    assert answer.content.startswith(b"MSH|")
    assert console.count(audit_log, audit_log.c.request == f"GET /ui/messages/{message_id}/raw",
                         audit_log.c.resource_id == str(message_id)) >= 1
    assert client.get("/ui/messages/999999/raw").status_code == 404
