"""Control characters at the API edge, and the last-resort 500, on the real databases.

Audit D4/D5: a council event with a CR in a name was accepted (and later split an HL7 PID); a
NUL in the register owner's free text (dispute summary, exception reason, assignee) or in a
subscription's display name was a plain-text 500 on PostgreSQL, and the logged traceback
quoted the SQL parameters (a name). Now each is a 422 naming the field, never echoing the
value; whatever still escapes the handlers is a JSON 500 whose log line has no message and no
parameter. Synthetic data only (999-range NHS numbers).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DataError

from connectors.inbound_mapper import make_mapper
from register_core import views
from register_core.adapters.security import Role
from register_core.adapters.sources import SourceDefinition
from register_core.adapters.tables import disputes, inbox_messages, register_exceptions
from register_core.domain.nhs_number import make_synthetic
from register_core.services import disputes as dispute_workflow
from register_core.services.inbound import drain
from register_core.services.reconcile import sweep
from s117hub.bootstrap import Hub
from s117hub.logs import redact

from .reconcile_people import TestClient, client_for, kept

NAME = "Quackenbush-Treloar"  # a made-up surname, to look for in answers and logs
NUL_FREE_TEXT = f"Mrs {NAME}\u0000 disputes funding"


@pytest.fixture
def person(hub: Hub) -> str:
    return kept(hub, 1, date(2026, 1, 5), date(2026, 3, 2), confirm=False)


@pytest.fixture
def exception_id(hub: Hub, person: str) -> str:
    sweep(hub.engine, hub.clock, hub.policy)  # not confirmed: a missed entitlement
    with hub.engine.connect() as conn:
        return str(conn.execute(select(register_exceptions.c.id).where(
            register_exceptions.c.person_id == person)).scalars().first())


@pytest.fixture
def owner(hub: Hub) -> Iterator[TestClient]:
    with client_for(hub, Role.REGISTER_OWNER) as client:
        yield client


@pytest.fixture
def engineer(hub: Hub) -> Iterator[TestClient]:
    with client_for(hub, Role.INTEGRATION_ENGINEER) as client:
        yield client


def refused(response: Any, field: str) -> dict[str, Any]:
    """A 422 in the API's shape naming ``field``, with nothing of the value in it."""
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid-request" and body["field"] == field, body
    assert "control characters" in body["message"]
    assert NAME not in response.text and "\\u0000" not in response.text
    return body


# -- council REST (D4, inbound half) -----------------------------------------------------------

def test_a_council_event_with_a_line_break_in_a_name_is_422_naming_it(hub: Hub) -> None:
    hub.sources.save(SourceDefinition(source_id="council-a", kind="council-rest"),
                     hub.clock.now())
    nhs = make_synthetic(31)
    event = {"event_id": "evt-inj", "type": "detention.notified",
             "occurred_at": "2026-05-01T09:00:00Z",
             "person": {"nhs_number": nhs, "family_name": "O'Brien\rOBX|1|ST|^^^|Injected",
                        "given_name": "Pat\nZSE|ended", "birth_date": "1980-01-01"},
             "data": {"section": "03", "start": "2026-05-01"}}
    with client_for(hub, Role.SOURCE_SYSTEM, source="council-a") as council:
        response = council.post("/api/v1/sources/council-a/events", json=event)
        assert response.status_code == 422, response.text
        answer = response.json()
        assert (answer["error"], answer["code"], answer["location"]) == (
            "invalid-event", "invalid-value", "person.family_name")
        assert "U+000D" in answer["message"] and "O'Brien" not in answer["message"]
        drain(hub.engine, make_mapper(hub.sources), hub.clock, hub.policy)
        with hub.engine.connect() as conn:
            assert views.people_by_nhs_number(conn, nhs) == []  # nothing reached the register
            assert conn.execute(select(inbox_messages.c.status)).scalars().all() == ["failed"]
        event["person"] |= {"family_name": "O'Brien", "given_name": "Pat"}
        event["event_id"] = "evt-fixed"
        assert council.post("/api/v1/sources/council-a/events", json=event
                            ).status_code == 202


# -- register owner's free text (D5) -----------------------------------------------------------

def test_a_nul_in_a_dispute_summary_is_422_not_500(owner: TestClient, hub: Hub,
                                                   person: str) -> None:
    refused(owner.post("/api/v1/disputes", json={
        "person_id": person, "kind": "funding", "summary": NUL_FREE_TEXT}), "summary")
    refused(owner.post("/api/v1/disputes", json={
        "person_id": person, "kind": "funding", "summary": "a\x1bb"}), "summary")
    with hub.engine.connect() as conn:
        assert conn.execute(select(disputes.c.id)).first() is None


def test_free_text_keeps_its_line_breaks_and_tabs(owner: TestClient, person: str) -> None:
    summary = "Who pays for the placement?\r\nCouncil:\t60%\nICB:\t40%"
    opened = owner.post("/api/v1/disputes", json={
        "person_id": person, "kind": "funding", "summary": summary})
    assert opened.status_code == 201, opened.text
    assert opened.json()["summary"] == summary


def test_a_nul_in_an_escalation_reason_or_outcome_is_422(owner: TestClient,
                                                         person: str) -> None:
    dispute = owner.post("/api/v1/disputes", json={
        "person_id": person, "kind": "funding", "summary": "who pays"}).json()
    refused(owner.post(f"/api/v1/disputes/{dispute['id']}/escalate",
                       json={"reason": NUL_FREE_TEXT}), "reason")
    refused(owner.post(f"/api/v1/disputes/{dispute['id']}/resolve",
                       json={"outcome": NUL_FREE_TEXT}), "outcome")
    assert owner.get(f"/api/v1/disputes/{dispute['id']}").json()["stage"] == 1


def test_the_dispute_service_refuses_control_characters_too(hub: Hub, person: str) -> None:
    """Another caller of the workflow (not the API's models) meets the same rule."""
    from register_core.domain.errors import InvalidValue

    with hub.uow() as uow, pytest.raises(InvalidValue) as caught:
        dispute_workflow.open_dispute(uow, hub.clock, person_id=person, kind="funding",
                                      summary=NUL_FREE_TEXT, opened=None, by="test")
    assert (caught.value.field, caught.value.rule) == ("summary", "no-control-characters")
    assert NAME not in str(caught.value)


@pytest.mark.parametrize("path, body, field", [
    ("assign", {"assignee": "Quackenbush-Treloar\u0000"}, "assignee"),
    ("assign", {"assignee": "coordinator\r\nX-Injected: 1"}, "assignee"),
    ("resolve", {"decision": "resolved", "reason": NUL_FREE_TEXT}, "reason"),
    ("resolve", {"decision": "resolved\r", "reason": "dealt with"}, "decision"),
    ("dismiss", {"reason": NUL_FREE_TEXT}, "reason"),
])
def test_control_characters_in_exception_actions_are_422(
        owner: TestClient, exception_id: str, path: str, body: dict[str, str],
        field: str) -> None:
    refused(owner.post(f"/api/v1/exceptions/{exception_id}/{path}", json=body), field)
    item = owner.get(f"/api/v1/exceptions/{exception_id}").json()
    assert (item["status"], item["assigned_to"]) == ("open", None)


def test_an_exception_reason_may_span_lines(owner: TestClient, exception_id: str) -> None:
    reason = "Council confirmed by phone.\r\nLetter to follow."
    response = owner.post(f"/api/v1/exceptions/{exception_id}/resolve",
                          json={"decision": "resolved", "reason": reason})
    assert response.status_code == 200, response.text
    assert response.json()["reason"] == reason


# -- subscriptions (D5) ------------------------------------------------------------------------

SUBSCRIPTION = {"subscription_id": "nul-sub", "kind": "council-rest",
                "endpoint": "http://127.0.0.1:1/x", "display_name": "Council X"}


@pytest.mark.parametrize("change, field", [
    ({"display_name": "x\u0000y"}, "display_name"),
    ({"display_name": "Council\rX"}, "display_name"),
    ({"endpoint": "http://127.0.0.1:1/x\u0000"}, "endpoint"),
    ({"credentials": {"bearer_token": "abc\r\nX-Injected: 1"}}, "credentials"),
    ({"kind": "hl7v2-mllp", "endpoint": "127.0.0.1:2575",
      "hl7": {"receiving_application": "PAS\rOBX|1"}}, "hl7"),
    ({"changes": {"councils": ["E10000034\u0000"]}}, "changes"),
])
def test_control_characters_in_a_subscription_are_422(
        engineer: TestClient, change: dict[str, Any], field: str) -> None:
    body = refused(engineer.post("/api/v1/subscriptions", json=SUBSCRIPTION | change), field)
    if field in ("hl7", "changes", "credentials"):  # the message says where inside
        assert body["message"].startswith(f"{field}: ") and ": control" in body["message"]
    assert refused(engineer.put("/api/v1/subscriptions/nul-sub",
                                json=SUBSCRIPTION | change), field)
    assert engineer.get("/api/v1/subscriptions/nul-sub").status_code == 404


def test_a_clean_subscription_is_stored_as_before(engineer: TestClient) -> None:
    created = engineer.post("/api/v1/subscriptions", json=SUBSCRIPTION)
    assert created.status_code == 201, created.text
    assert created.json()["display_name"] == "Council X"
    again = engineer.put("/api/v1/subscriptions/nul-sub",
                         json=SUBSCRIPTION | {"display_name": "Council X (renamed)"})
    assert again.status_code == 200 and again.json()["display_name"] == "Council X (renamed)"


# -- the last resort (D5) ----------------------------------------------------------------------

def _statement_error(*_args: Any, **_kwargs: Any) -> None:
    raise DataError("INSERT INTO disputes (id, summary) VALUES (%(id)s, %(summary)s)",
                    {"id": "d-1", "summary": f"Mrs {NAME} disputes funding"},
                    ValueError("PostgreSQL text fields cannot contain NUL (0x00) bytes"))


def _plain_error(*_args: Any, **_kwargs: Any) -> None:
    raise RuntimeError(f"could not handle Mrs {NAME}")


@pytest.mark.parametrize("failure, expected", [
    (_statement_error, ["sqlalchemy.exc.DataError", "statement='INSERT disputes'",
                        "driver=builtins.ValueError"]),
    (_plain_error, ["builtins.RuntimeError"]),
])
def test_an_unexpected_error_is_a_json_500_logged_without_values(
        owner: TestClient, person: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, failure: Any, expected: list[str]) -> None:
    monkeypatch.setattr(dispute_workflow, "open_dispute", failure)
    with caplog.at_level(logging.INFO):
        response = owner.post("/api/v1/disputes", json={
            "person_id": person, "kind": "funding", "summary": "who pays"})
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] == "internal-error" and body["reference"] in body["message"]
    assert NAME not in response.text and "INSERT" not in response.text
    assert "Traceback" not in response.text
    [record] = [r for r in caplog.records if r.getMessage().startswith("unexpected error")]
    line = record.getMessage()
    assert body["reference"] in line and "POST /api/v1/disputes" in line
    assert all(part in line for part in expected), line
    assert "open_dispute" in line  # where it happened, by frame
    assert record.exc_info is None  # no traceback text (it would carry the message)
    assert NAME not in caplog.text and "parameters" not in caplog.text


def test_the_log_filter_drops_sql_parameters_and_detail_lines() -> None:
    text = ("(psycopg.errors.UniqueViolation) duplicate key value\n"
            f"DETAIL:  Key (summary)=(Mrs {NAME}) already exists.\n"
            "[SQL: INSERT INTO disputes (summary) VALUES (%(summary)s)]\n"
            f"[parameters: {{'summary': 'Mrs {NAME}', 'nhs': '9990000018'}}]\n"
            "(Background on this error at: https://sqlalche.me/e/20/gkpj)")
    cleaned = redact(text)
    assert NAME not in cleaned and "9990000018" not in cleaned
    assert "[parameters: redacted]" in cleaned and "DETAIL: [redacted]" in cleaned
    assert "[SQL: INSERT INTO disputes (summary) VALUES (%(summary)s)]" in cleaned


def test_an_unexpected_error_under_fhir_is_an_operation_outcome(
        owner: TestClient, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    from s117hub.api import routes_fhir

    monkeypatch.setattr(routes_fhir, "capability_statement", _plain_error)
    response = owner.get("/fhir/r4/metadata")
    assert response.status_code == 500
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "exception" and NAME not in response.text
    assert NAME not in caplog.text
