"""FHIR R4 REST edge robustness over HTTP on the real databases: NUL characters, oversized
bodies and Bundles, JSON nested too deeply, and refusals of the endpoint that replay must not
apply. Each is a clear OperationOutcome and, where the body was read, kept in the inbox (never
with a NUL, which PostgreSQL text cannot hold). Synthetic data only (999-range NHS numbers)."""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest
from sqlalchemy import func, select

from register_core.adapters.database import writer
from register_core.adapters.inbox import store_message
from register_core.adapters.security import Role
from register_core.adapters.tables import inbox_messages, persons
from s117hub.bootstrap import Hub

from . import test_fhir_api as fhir_api
from .test_fhir_api import NHS_1, NHS_2, bundle, inbox_rows, issue_of, patient, process, token

with warnings.catch_warnings():  # starlette 1.x warns that its client still uses httpx
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

# The FHIR API tests' fixtures: a client with the fhir-r4 source "trust-f", and its token.
app_client = fhir_api.app_client
trust = fhir_api.trust


def _people(hub: Hub) -> int:
    with hub.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(persons)).scalar() or 0)


def _found(client: TestClient, hub: Hub, message_id: int, status: str) -> dict[str, Any]:
    """The stored row as GET /api/v1/messages lists it (and its detail)."""
    engineer = token(hub, Role.INTEGRATION_ENGINEER)
    listed = client.get("/api/v1/messages", params={"source": "trust-f", "status": status},
                        headers=engineer)
    assert listed.status_code == 200, listed.text
    assert message_id in [item["id"] for item in listed.json()["items"]]
    detail = client.get(f"/api/v1/messages/{message_id}", headers=engineer)
    assert detail.status_code == 200
    return detail.json()  # type: ignore[no-any-return]


# --- NUL characters -------------------------------------------------------------------------

@pytest.mark.parametrize("path, where, expression", [
    ("/fhir/r4/Patient", lambda r: r["name"][0].update(family="Test\u0000brook"),
     "Patient.name[0].family"),
    ("/fhir/r4/Patient", lambda r: r.update(id="pat-\u0000"), "Patient.id"),
    ("/fhir/r4", lambda r: r["entry"][0]["resource"]["name"][0].update(given=["J\u0000"]),
     "Bundle.entry[0].resource.name[0].given[0]"),
])
def test_a_nul_in_any_string_is_400_naming_where_and_kept_rejected(
        app_client: TestClient, trust: dict[str, str], hub: Hub, path: str, where: Any,
        expression: str) -> None:
    resource = patient(NHS_1, "MRN-1") if path.endswith("Patient") else bundle(
        patient(NHS_1, "MRN-1"), identifier="TX-NUL")
    where(resource)
    raw = json.dumps(resource)
    assert "\\u0000" in raw
    response = app_client.post(path, content=raw, headers=trust)
    assert response.status_code == 400, response.text
    issue = issue_of(response)
    assert issue["code"] == "invalid" and issue["expression"] == [expression]
    assert "NUL" in issue["diagnostics"]
    [row] = inbox_rows(hub)
    assert (row.status, row.payload) == ("rejected", raw)  # exactly what came, no NUL in it
    assert row.error["location"] == expression
    assert _found(app_client, hub, row.id, "rejected")["payload"] == raw
    again = app_client.post(path, content=raw, headers=trust)
    assert (again.status_code, again.json()) == (400, response.json())
    process(hub)
    assert _people(hub) == 0


def test_a_raw_nul_byte_is_400_and_kept_with_the_nul_replaced(
        app_client: TestClient, trust: dict[str, str], hub: Hub) -> None:
    raw = b'{"resourceType": "Patient", "gender": "ma\x00le"}'
    response = app_client.post("/fhir/r4/Patient", content=raw, headers=trust)
    assert response.status_code == 400
    assert "not JSON" in issue_of(response)["diagnostics"]
    [row] = inbox_rows(hub)
    assert (row.status, row.payload) == ("rejected", raw.decode().replace("\x00", "\ufffd"))


def test_a_worker_fails_a_stored_resource_with_a_nul_once_instead_of_for_ever(
        app_client: TestClient, hub: Hub) -> None:
    """A row stored before the edge refused NUL (or by a poller) fails, with its location."""
    resource = patient(NHS_2, "MRN-2", family="Test\u0000wood")
    with writer(hub.engine) as conn, conn.begin():
        stored = store_message(conn, source="trust-f", message_id="Patient/old-1",
                               channel="fhir-r4", message_type="Patient",
                               payload=json.dumps(resource), received_at=hub.clock.now())
    process(hub)
    with hub.engine.connect() as conn:
        row = conn.execute(select(inbox_messages).where(
            inbox_messages.c.id == stored.id)).one()
    assert row.status == "failed"
    assert row.error["location"] == "Patient.name[0].family"
    assert _people(hub) == 0


# --- size -------------------------------------------------------------------------------------

def test_a_body_over_10_mib_is_413_and_not_read(app_client: TestClient, trust: dict[str, str],
                                                hub: Hub) -> None:
    resource = patient(NHS_1, "MRN-1")
    resource["text"] = {"status": "generated", "div": "<div>" + "x" * (10 * 1024 * 1024)
                        + "</div>"}
    response = app_client.post("/fhir/r4/Patient", content=json.dumps(resource), headers=trust)
    assert response.status_code == 413
    issue = issue_of(response)
    assert issue["code"] == "too-costly" and str(10 * 1024 * 1024) in issue["diagnostics"]
    assert inbox_rows(hub) == []


def test_a_bundle_over_1000_entries_is_413_and_kept_rejected(
        app_client: TestClient, trust: dict[str, str], hub: Hub) -> None:
    entries = [{"resource": {"resourceType": "Patient", "id": f"p{n}"},
                "request": {"method": "PUT", "url": f"Patient/p{n}"}} for n in range(1001)]
    sent = {"resourceType": "Bundle", "type": "batch", "entry": entries}
    response = app_client.post("/fhir/r4", json=sent, headers=trust)
    assert response.status_code == 413
    issue = issue_of(response)
    assert issue["code"] == "too-costly" and issue["expression"] == ["Bundle.entry"]
    assert "1000" in issue["diagnostics"] and "1001" in issue["diagnostics"]
    [row] = inbox_rows(hub)
    assert row.status == "rejected" and json.loads(row.payload) == sent


# --- nesting ----------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/fhir/r4/Patient", "/fhir/r4"])
def test_json_nested_too_deeply_is_400_and_kept_rejected(
        app_client: TestClient, trust: dict[str, str], hub: Hub, path: str) -> None:
    raw = "[" * 100_000
    response = app_client.post(path, content=raw, headers=trust)
    assert response.status_code == 400
    issue = issue_of(response)
    assert issue["code"] == "structure" and "nested too deeply" in issue["diagnostics"]
    [row] = inbox_rows(hub)
    assert (row.status, row.payload) == ("rejected", raw)


# --- refusals of the endpoint are not replayed ------------------------------------------------

@pytest.mark.parametrize("method, path, resource", [
    ("POST", "/fhir/r4/Encounter", patient(NHS_1, "MRN-1")),
    ("PUT", "/fhir/r4/Patient/pat-1", patient(NHS_1, "MRN-1", logical_id="pat-2")),
    ("POST", "/fhir/r4", patient(NHS_1, "MRN-1", logical_id="pat-1")),
])
def test_a_submission_the_endpoint_refused_is_rejected_and_replay_is_409(
        app_client: TestClient, trust: dict[str, str], hub: Hub, method: str, path: str,
        resource: dict[str, Any]) -> None:
    response = app_client.request(method, path, json=resource, headers=trust)
    assert response.status_code == 400
    [row] = inbox_rows(hub)
    assert row.status == "rejected"
    replay = app_client.post(f"/api/v1/messages/{row.id}/replay",
                             headers=token(hub, Role.INTEGRATION_ENGINEER))
    assert replay.status_code == 409
    process(hub)
    assert _people(hub) == 0
    assert inbox_rows(hub)[0].status == "rejected"


def test_the_corrected_resource_is_not_a_duplicate_of_the_refused_one(
        app_client: TestClient, trust: dict[str, str], hub: Hub) -> None:
    wrong = patient(NHS_1, "MRN-1", logical_id="pat-2") | {"meta": {"versionId": "1"}}
    assert app_client.put("/fhir/r4/Patient/pat-1", json=wrong,
                          headers=trust).status_code == 400
    right = wrong | {"id": "pat-1"}
    response = app_client.put("/fhir/r4/Patient/pat-1", json=right, headers=trust)
    assert response.status_code == 200, response.text
    assert [r.status for r in inbox_rows(hub)] == ["rejected", "received"]
    process(hub)
    assert _people(hub) == 1
