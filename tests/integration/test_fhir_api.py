"""FHIR R4 REST at /fhir/r4 over HTTP on the real databases: stored before the answer,
OperationOutcome errors with precise locations, duplicates answered alike and applied once.

Synthetic data only: NHS numbers from the 999 test range, invented names.
"""

from __future__ import annotations

import copy
import json
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from sqlalchemy import func, select

from connectors.inbound_mapper import make_mapper
from register_core.adapters.inbox import Inbox
from register_core.adapters.security import Role, TokenStore
from register_core.adapters.sources import SourceDefinition
from register_core.adapters.tables import audit_log, inbox_messages, persons
from register_core.domain.nhs_number import make_synthetic
from register_core.services.inbound import drain
from register_core.views import people_by_nhs_number, person_json
from s117hub.api.app import create_app
from s117hub.bootstrap import Hub
from s117hub.worker import start_worker

with warnings.catch_warnings():  # starlette 1.x warns that its client still uses httpx
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

NHS_1, NHS_2, NHS_3 = (make_synthetic(n) for n in (11, 12, 13))
NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
LEGAL_STATUS_URL = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-LegalStatus"
ENGLAND = "https://fhir.hl7.org.uk/CodeSystem/UKCore-LegalStatusClassificationEngland"
WALES = "https://fhir.hl7.org.uk/CodeSystem/UKCore-LegalStatusClassificationWales"
FHIR_JSON = {"Content-Type": "application/fhir+json"}
PATIENT_URL = "urn:uuid:0b5a2c1e-0000-4000-8000-000000000001"


# --- synthetic resources --------------------------------------------------------------------

def legal_status(context: str, code: str, system: str = ENGLAND) -> dict[str, Any]:
    return {"url": LEGAL_STATUS_URL, "extension": [
        {"url": "legalStatusContext", "valueCodeableConcept": {"coding": [{
            "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-LegalStatusContext",
            "code": context}]}},
        {"url": "legalStatusClassification",
         "valueCodeableConcept": {"coding": [{"system": system, "code": code}]}}]}


def patient(nhs: str, local: str, *, family: str = "Testbrook", given: str = "Jules",
            logical_id: str | None = None) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [{"system": NHS_SYSTEM, "value": nhs},
                       {"system": "https://trust-f.example/Id/mrn", "value": local}],
        "name": [{"use": "official", "family": family, "given": [given]}],
        "gender": "male", "birthDate": "1979-04-12",
        "address": [{"use": "home", "postalCode": "ZZ99 3AZ"}],
    }
    if logical_id:
        resource["id"] = logical_id
    return resource


def detention(*, code: str = "03", system: str = ENGLAND, visit: str = "V9001") -> dict[str, Any]:
    """A section 3 stay, finished: the person left hospital on 2026-03-01."""
    return {
        "resourceType": "Encounter", "status": "finished", "class": {"code": "IMP"},
        "identifier": [{"value": visit}],
        "subject": {"reference": PATIENT_URL},
        "period": {"start": "2026-01-05T09:30:00+00:00", "end": "2026-03-01T11:00:00+00:00"},
        "serviceProvider": {"identifier": {"system": ODS_SYSTEM, "value": "RX1"}},
        "extension": [legal_status("admission", code, system),
                      legal_status("discharge", code, system)],
    }


def s117_episode() -> dict[str, Any]:
    return {"resourceType": "EpisodeOfCare", "status": "active",
            "type": [{"coding": [{"system": "urn:s117hub:episode-type",
                                  "code": "s117-aftercare"}]}],
            "patient": {"reference": PATIENT_URL}, "period": {"start": "2026-03-02"}}


def bundle(*resources: dict[str, Any], kind: str = "transaction",
           identifier: str | None = "TX-0001") -> dict[str, Any]:
    entries = []
    for index, resource in enumerate(resources, start=1):
        entries.append({"fullUrl": f"urn:uuid:0b5a2c1e-0000-4000-8000-{index:012d}",
                        "resource": copy.deepcopy(resource),
                        "request": {"method": "POST", "url": resource["resourceType"]}})
    result: dict[str, Any] = {"resourceType": "Bundle", "type": kind, "entry": entries}
    if identifier:
        result["identifier"] = {"system": "https://trust-f.example/bundles",
                                "value": identifier}
    return result


# --- fixtures -------------------------------------------------------------------------------

@pytest.fixture
def app_client(hub: Hub) -> Iterator[TestClient]:
    now = hub.clock.now()
    hub.sources.save(SourceDefinition(source_id="trust-f", kind="fhir-r4",
                                      display_name="Synthetic FHIR trust"), now)
    hub.sources.save(SourceDefinition(source_id="trust-h", kind="hl7v2-mllp",
                                      hl7_sending_application="EPR"), now)
    with TestClient(create_app(hub)) as client:
        yield client


def token(hub: Hub, role: Role, source: str | None = None) -> dict[str, str]:
    _id, plaintext = TokenStore(hub.engine).create(role, source=source)
    return {"Authorization": f"Bearer {plaintext}"}


@pytest.fixture
def trust(hub: Hub, app_client: TestClient) -> dict[str, str]:
    """Headers of the fhir-r4 source's own source-system token."""
    return token(hub, Role.SOURCE_SYSTEM, "trust-f") | FHIR_JSON


def process(hub: Hub) -> None:
    drain(hub.engine, make_mapper(hub.sources), hub.clock, hub.policy)


def record_of(hub: Hub, nhs: str) -> dict[str, Any]:
    with hub.engine.connect() as conn:
        [person_id] = people_by_nhs_number(conn, nhs)
        record = person_json(conn, person_id, hub.clock.today(), hub.policy)
    assert record is not None
    return record


def inbox_rows(hub: Hub) -> list[Any]:
    with hub.engine.connect() as conn:
        return list(conn.execute(select(inbox_messages).order_by(inbox_messages.c.id)))


def issue_of(response: Any) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    OperationOutcome.model_validate(body)
    [issue] = body["issue"]
    assert issue["severity"] == "error"
    return issue  # type: ignore[no-any-return]


# --- accepted -------------------------------------------------------------------------------

def test_transaction_is_stored_answered_and_reaches_the_register(
        app_client: TestClient, trust: dict[str, str], hub: Hub) -> None:
    response = app_client.post("/fhir/r4", json=bundle(patient(NHS_1, "MRN-1"), detention()),
                               headers=trust)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    answer = response.json()
    Bundle.model_validate(answer)
    assert answer["type"] == "transaction-response"
    assert [e["response"]["status"] for e in answer["entry"]] == ["201 Created", "201 Created"]
    assert all("outcome" not in e["response"] for e in answer["entry"])
    assert answer["entry"][0]["response"]["location"].startswith("Patient/")
    [row] = inbox_rows(hub)  # stored before the answer
    assert (row.source, row.channel, row.message_id, row.status) == (
        "trust-f", "fhir-r4", "TX-0001", "received")
    assert json.loads(row.payload)["identifier"]["value"] == "TX-0001"

    process(hub)
    record = record_of(hub, NHS_1)
    assert record["entitlement"]["status"] == "active"
    assert record["entitlement"]["start"] == "2026-03-01"
    assert record["entitlement"]["trigger_section"] == "03"
    assert record["detentions"][0]["section"] == "03"
    assert record["detentions"][0]["provider_ods"] == "RX1"
    assert {"source": "trust-f", "value": "MRN-1"} in record["identifiers"]
    assert inbox_rows(hub)[0].status == "applied"


def test_an_in_process_worker_applies_what_was_accepted(
        app_client: TestClient, trust: dict[str, str], hub: Hub) -> None:
    worker = start_worker(hub.broker, threads=2)
    try:
        response = app_client.post("/fhir/r4", json=bundle(patient(NHS_1, "MRN-1"),
                                                            detention(), identifier="TX-W"),
                                   headers=trust)
        assert response.status_code == 200
        deadline = time.monotonic() + 10
        while Inbox(hub.engine).pending_ids(limit=1) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()
    assert inbox_rows(hub)[0].status == "applied"
    assert record_of(hub, NHS_1)["entitlement"]["status"] == "active"


def test_detained_person_is_pending(app_client: TestClient, trust: dict[str, str],
                                    hub: Hub) -> None:
    stay = detention()
    stay["status"] = "in-progress"
    stay["period"] = {"start": "2026-05-01T10:00:00+00:00"}
    stay["extension"] = [legal_status("admission", "03")]
    response = app_client.post("/fhir/r4", json=bundle(patient(NHS_2, "MRN-2"), stay,
                                                        identifier="TX-PENDING"), headers=trust)
    assert response.status_code == 200
    process(hub)
    assert record_of(hub, NHS_2)["entitlement"]["status"] == "pending"


def test_batch_bundle_is_answered_with_a_batch_response(
        app_client: TestClient, trust: dict[str, str], hub: Hub) -> None:
    sent = bundle(patient(NHS_3, "MRN-3"), s117_episode(), kind="batch", identifier=None)
    sent["id"] = "batch-0001"
    response = app_client.post("/fhir/r4", json=sent, headers=trust)
    assert response.status_code == 200
    answer = response.json()
    Bundle.model_validate(answer)
    assert answer["type"] == "batch-response"
    assert [e["response"]["status"] for e in answer["entry"]] == ["201 Created", "201 Created"]
    assert inbox_rows(hub)[0].message_id == "batch-0001"
    process(hub)
    entitlement = record_of(hub, NHS_3)["entitlement"]
    assert (entitlement["status"], entitlement["start"]) == ("active", "2026-03-02")


def test_single_patient_put_and_post(app_client: TestClient, trust: dict[str, str],
                                     hub: Hub) -> None:
    sent = patient(NHS_1, "MRN-7", family="Testmoor", logical_id="pat-7")
    sent["meta"] = {"versionId": "3"}
    response = app_client.put("/fhir/r4/Patient/pat-7", json=sent, headers=trust)
    assert response.status_code == 200
    assert response.headers["location"] == "http://testserver/fhir/r4/Patient/pat-7"
    assert response.json() == sent  # the resource echoed
    created = app_client.post("/fhir/r4/Patient", json=patient(NHS_2, "MRN-8"),
                              headers={**trust, "Content-Type": "application/json"})
    assert created.status_code == 201
    new_id = created.json()["id"]
    assert created.headers["location"].endswith(f"/fhir/r4/Patient/{new_id}")
    rows = inbox_rows(hub)
    assert rows[0].message_id == "Patient/pat-7/_history/3"
    assert rows[1].message_id.startswith("Patient/sha256:")
    process(hub)
    assert record_of(hub, NHS_1)["family_name"] == "Testmoor"
    assert record_of(hub, NHS_2)["family_name"] == "Testbrook"


def test_duplicate_is_answered_identically_and_applied_once(
        app_client: TestClient, trust: dict[str, str], hub: Hub) -> None:
    sent = bundle(patient(NHS_1, "MRN-1"), detention(), identifier="TX-DUP")
    first = app_client.post("/fhir/r4", json=sent, headers=trust)
    process(hub)
    second = app_client.post("/fhir/r4", json=sent, headers=trust)
    process(hub)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    [row] = inbox_rows(hub)
    assert (row.status, row.resent) == ("applied", 1)
    record = record_of(hub, NHS_1)
    assert len(record["detentions"]) == 1
    put = patient(NHS_2, "MRN-9", logical_id="pat-9")
    answers = [app_client.put("/fhir/r4/Patient/pat-9", json=put, headers=trust)
               for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json() == answers[1].json()
    assert answers[0].headers["location"] == answers[1].headers["location"]
    assert len(inbox_rows(hub)) == 2


def test_each_submission_is_audited(app_client: TestClient, trust: dict[str, str],
                                    hub: Hub) -> None:
    app_client.post("/fhir/r4", json=bundle(patient(NHS_1, "MRN-1")), headers=trust)
    [row] = inbox_rows(hub)
    with hub.engine.connect() as conn:
        audits = conn.execute(select(audit_log)).all()
    assert [(a.action, a.role, a.resource, a.resource_id, a.person_id, a.request)
            for a in audits] == [("write", "source-system", "inbound-message", str(row.id),
                                  None, "POST /fhir/r4")]


# --- refused, but kept ----------------------------------------------------------------------

def test_unparseable_json_is_400_and_the_raw_body_is_kept(
        app_client: TestClient, trust: dict[str, str], hub: Hub) -> None:
    raw = b'{"resourceType": "Bundle", "type": "transaction", "entry": [ '
    response = app_client.post("/fhir/r4", content=raw, headers=trust)
    assert response.status_code == 400
    issue = issue_of(response)
    assert issue["code"] == "structure" and "not JSON" in issue["diagnostics"]
    [row] = inbox_rows(hub)
    assert (row.source, row.status, row.payload) == ("trust-f", "rejected", raw.decode())
    again = app_client.post("/fhir/r4", content=raw, headers=trust)
    assert (again.status_code, again.json()) == (400, response.json())
    assert len(inbox_rows(hub)) == 1


def test_another_content_type_is_415_and_kept(app_client: TestClient, trust: dict[str, str],
                                             hub: Hub) -> None:
    raw = b"<Bundle xmlns='http://hl7.org/fhir'/>"
    response = app_client.post("/fhir/r4", content=raw,
                               headers={**trust, "Content-Type": "application/fhir+xml"})
    assert response.status_code == 415
    assert issue_of(response)["code"] == "not-supported"
    [row] = inbox_rows(hub)
    assert (row.status, row.payload) == ("rejected", raw.decode())


def test_bad_date_is_400_with_its_location_and_stored_failed(
        app_client: TestClient, trust: dict[str, str], hub: Hub) -> None:
    bad = patient(NHS_1, "MRN-1")
    bad["birthDate"] = "1979-13-45"
    response = app_client.post("/fhir/r4", json=bundle(bad, detention(), identifier="TX-BAD"),
                               headers=trust)
    assert response.status_code == 400
    issue = issue_of(response)
    assert issue["code"] == "invalid"
    assert issue["expression"] == ["Bundle.entry[0].resource.birthDate"]
    [row] = inbox_rows(hub)
    assert row.status == "failed"
    assert row.error["location"] == "Bundle.entry[0].resource.birthDate"
    process(hub)
    with hub.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(persons)).scalar() == 0


def test_wales_code_is_422_code_invalid(app_client: TestClient, trust: dict[str, str],
                                        hub: Hub) -> None:
    sent = bundle(patient(NHS_1, "MRN-1"), detention(code="35", system=WALES),
                  identifier="TX-WALES")
    response = app_client.post("/fhir/r4", json=sent, headers=trust)
    assert response.status_code == 422
    issue = issue_of(response)
    assert issue["code"] == "code-invalid"
    assert issue["expression"] == [
        "Bundle.entry[1].resource.extension[0].extension[1].valueCodeableConcept.coding[0].code"]
    assert issue["details"]["coding"][0]["code"] == "unknown-code"
    assert inbox_rows(hub)[0].status == "failed"


def test_put_with_another_id_is_400(app_client: TestClient, trust: dict[str, str],
                                    hub: Hub) -> None:
    response = app_client.put("/fhir/r4/Patient/pat-1",
                              json=patient(NHS_1, "MRN-1", logical_id="pat-2"), headers=trust)
    assert response.status_code == 400
    assert issue_of(response)["expression"] == ["Patient.id"]
    assert inbox_rows(hub)[0].status == "rejected"


def test_unsupported_type_and_bundle_type(app_client: TestClient, trust: dict[str, str]
                                          ) -> None:
    observation = {"resourceType": "Observation", "status": "final",
                   "code": {"text": "synthetic"}}
    response = app_client.post("/fhir/r4/Observation", json=observation, headers=trust)
    assert response.status_code == 404
    assert issue_of(response)["code"] == "not-supported"
    collection = bundle(patient(NHS_1, "MRN-1"), kind="collection", identifier="COLL-1")
    response = app_client.post("/fhir/r4", json=collection, headers=trust)
    assert response.status_code == 422
    assert issue_of(response)["expression"] == ["Bundle.type"]


# --- never answered as applied when it will not be ------------------------------------------

def observation() -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": {"text": "synthetic"}}


def people_count(hub: Hub) -> int:
    with hub.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(persons)).scalar() or 0)


@pytest.mark.parametrize("kind", ["transaction", "batch"])
def test_an_entry_of_a_type_the_hub_does_not_take_refuses_the_bundle(
        app_client: TestClient, trust: dict[str, str], hub: Hub, kind: str) -> None:
    """It was answered 201 Created and silently dropped. A Bundle is one message, all or
    nothing (a batch too): 422 not-supported naming the entry, kept rejected, never applied
    (no code-map fix makes an Observation apply, so a replay is refused)."""
    sent = bundle(patient(NHS_1, "MRN-1"), detention(), observation(), observation(),
                  kind=kind, identifier=f"TX-OBS-{kind}")
    response = app_client.post("/fhir/r4", json=sent, headers=trust)
    assert response.status_code == 422
    issue = issue_of(response)
    assert issue["code"] == "not-supported"
    assert issue["expression"] == ["Bundle.entry[2].resource.resourceType"]
    assert "Observation" in issue["diagnostics"] and "1 more" in issue["diagnostics"]
    [row] = inbox_rows(hub)
    assert (row.status, json.loads(row.payload)) == ("rejected", sent)  # kept as sent
    assert row.error["location"] == "Bundle.entry[2].resource.resourceType"
    process(hub)
    assert people_count(hub) == 0
    replay = app_client.post(f"/api/v1/messages/{row.id}/replay",
                             headers=token(hub, Role.INTEGRATION_ENGINEER))
    assert replay.status_code == 409
    # Sent again without the Observations (same identifier): not a duplicate, and applied.
    again = bundle(patient(NHS_1, "MRN-1"), detention(), kind=kind,
                   identifier=f"TX-OBS-{kind}")
    assert app_client.post("/fhir/r4", json=again, headers=trust).status_code == 200
    process(hub)
    assert record_of(hub, NHS_1)["detentions"][0]["section"] == "03"


def test_an_entry_without_a_resource_refuses_the_bundle(
        app_client: TestClient, trust: dict[str, str], hub: Hub) -> None:
    sent = bundle(patient(NHS_1, "MRN-1"), identifier="TX-EMPTY")
    sent["entry"].append({"request": {"method": "POST", "url": "Encounter"}})
    response = app_client.post("/fhir/r4", json=sent, headers=trust)
    assert response.status_code == 400
    issue = issue_of(response)
    assert (issue["code"], issue["expression"]) == ("required", ["Bundle.entry[1].resource"])
    assert inbox_rows(hub)[0].status == "rejected"


def test_an_organization_is_read_for_its_ods_code_and_not_answered_as_created(
        app_client: TestClient, trust: dict[str, str], hub: Hub) -> None:
    organisation = {"resourceType": "Organization", "id": "org-9",
                    "identifier": [{"system": ODS_SYSTEM, "value": "RX9"}]}
    stay = detention()
    stay["serviceProvider"] = {"reference": "Organization/org-9"}
    response = app_client.post("/fhir/r4", json=bundle(patient(NHS_1, "MRN-1"), organisation,
                                                        stay, identifier="TX-ORG"),
                               headers=trust)
    assert response.status_code == 200
    answer = response.json()
    Bundle.model_validate(answer)
    assert [e["response"]["status"] for e in answer["entry"]] == [
        "201 Created", "200 OK", "201 Created"]
    context = answer["entry"][1]["response"]
    assert "location" not in context
    [issue] = context["outcome"]["issue"]
    assert (issue["severity"], issue["code"]) == ("information", "informational")
    process(hub)
    assert record_of(hub, NHS_1)["detentions"][0]["provider_ods"] == "RX9"


def unknown_patient_stay(reference: str = "Patient/pat-5") -> dict[str, Any]:
    stay = detention()
    stay["subject"] = {"reference": reference}
    return stay


def test_a_patient_neither_in_the_bundle_nor_on_the_register_is_422_not_found(
        app_client: TestClient, trust: dict[str, str], hub: Hub) -> None:
    """It was answered 201 and applied to a new person known by nothing but "pat-5". Now
    refused, kept failed, and replayed once the Patient is on the register: it lands on that
    person, and no one else is created."""
    response = app_client.post("/fhir/r4", json=bundle(unknown_patient_stay(),
                                                        identifier="TX-ORPHAN"), headers=trust)
    assert response.status_code == 422
    issue = issue_of(response)
    assert issue["code"] == "not-found"
    assert issue["expression"] == ["Bundle.entry[0].resource.subject.reference"]
    assert "'Patient/pat-5'" in issue["diagnostics"] and "replayed" in issue["diagnostics"]
    [refused] = inbox_rows(hub)
    assert refused.status == "failed"
    assert refused.error["location"] == "Bundle.entry[0].resource.subject.reference"
    process(hub)
    assert people_count(hub) == 0

    # The trust sends the Patient (NHS number only: its record id is its logical id).
    only_nhs = patient(NHS_1, "unused", logical_id="pat-5")
    only_nhs["identifier"] = only_nhs["identifier"][:1]
    assert app_client.put("/fhir/r4/Patient/pat-5", json=only_nhs,
                          headers=trust).status_code == 200
    process(hub)
    replay = app_client.post(f"/api/v1/messages/{refused.id}/replay",
                             headers=token(hub, Role.INTEGRATION_ENGINEER))
    assert replay.status_code == 202
    process(hub)
    assert people_count(hub) == 1
    assert [d["section"] for d in record_of(hub, NHS_1)["detentions"]] == ["03"]


def test_every_unknown_patient_is_counted_and_the_first_named(
        app_client: TestClient, trust: dict[str, str], hub: Hub) -> None:
    second = unknown_patient_stay("Patient/pat-9")
    second["identifier"] = [{"value": "V9002"}]
    episode = s117_episode()
    episode["patient"] = {"reference": "Patient/pat-5"}  # named twice: one look-up, one count
    response = app_client.post("/fhir/r4", json=bundle(
        unknown_patient_stay(), second, episode, identifier="TX-ORPHANS"), headers=trust)
    assert response.status_code == 422
    issue = issue_of(response)
    assert issue["expression"] == ["Bundle.entry[0].resource.subject.reference"]
    assert "'Patient/pat-5'" in issue["diagnostics"]
    assert "(and 2 more)" in issue["diagnostics"]


def test_a_patient_the_register_holds_for_the_source_is_resolved(
        app_client: TestClient, trust: dict[str, str], hub: Hub) -> None:
    only_nhs = patient(NHS_2, "unused", logical_id="pat-6")
    only_nhs["identifier"] = only_nhs["identifier"][:1]
    app_client.put("/fhir/r4/Patient/pat-6", json=only_nhs, headers=trust)
    process(hub)
    response = app_client.post("/fhir/r4", json=bundle(unknown_patient_stay("Patient/pat-6"),
                                                        identifier="TX-KNOWN"), headers=trust)
    assert response.status_code == 200
    assert response.json()["entry"][0]["response"]["status"] == "201 Created"
    process(hub)
    assert people_count(hub) == 1
    assert record_of(hub, NHS_2)["detentions"][0]["section"] == "03"


def test_a_patient_sent_just_before_and_still_waiting_is_resolved(
        app_client: TestClient, trust: dict[str, str], hub: Hub) -> None:
    """POST the Patient, then at once its Encounter on its own: the Patient is not applied
    yet, but it is applied first (same person, same partition), so the Encounter is taken."""
    only_nhs = patient(NHS_3, "unused", logical_id="pat-7")
    only_nhs["identifier"] = only_nhs["identifier"][:1]
    assert app_client.post("/fhir/r4/Patient", json=only_nhs, headers=trust).status_code == 201
    stay = unknown_patient_stay("Patient/pat-7")
    stay["id"] = "enc-7"
    response = app_client.post("/fhir/r4/Encounter", json=stay, headers=trust)
    assert response.status_code == 201, response.text
    assert [r.status for r in inbox_rows(hub)] == ["received", "received"]
    process(hub)
    assert people_count(hub) == 1
    assert record_of(hub, NHS_3)["detentions"][0]["section"] == "03"


def test_a_patient_with_an_mrn_is_still_found_by_its_logical_id(
        app_client: TestClient, trust: dict[str, str], hub: Hub) -> None:
    """Patient pat-9 carries an MRN of a system the source did not name: the register keys it
    by its logical id, so an Encounter naming Patient/pat-9 (as a FHIR server's does) lands
    on it — it had started a new person known by pat-9 alone."""
    app_client.put("/fhir/r4/Patient/pat-9", json=patient(NHS_1, "MRN-9", logical_id="pat-9"),
                   headers=trust)
    process(hub)
    stay = unknown_patient_stay("Patient/pat-9")
    response = app_client.post("/fhir/r4/Encounter", json=stay, headers=trust)
    assert response.status_code == 201, response.text
    process(hub)
    assert people_count(hub) == 1
    assert record_of(hub, NHS_1)["detentions"][0]["section"] == "03"


def test_a_waiting_patient_known_by_another_record_id_does_not_vouch(
        app_client: TestClient, trust: dict[str, str], hub: Hub) -> None:
    """With the source's record-number system configured (``fhir_local_id_system``), Patient
    pat-8 is known as MRN-8, so an Encounter naming Patient/pat-8 would still land on a new
    person. Refused, per resource too."""
    hub.sources.save(SourceDefinition(source_id="trust-f", kind="fhir-r4",
                                      fhir_local_id_system="https://trust-f.example/Id/mrn"),
                     hub.clock.now())
    app_client.put("/fhir/r4/Patient/pat-8", json=patient(NHS_1, "MRN-8", logical_id="pat-8"),
                   headers=trust)
    stay = unknown_patient_stay("Patient/pat-8")
    response = app_client.post("/fhir/r4/Encounter", json=stay, headers=trust)
    assert response.status_code == 422
    issue = issue_of(response)
    assert (issue["code"], issue["expression"]) == ("not-found",
                                                    ["Encounter.subject.reference"])
    episode = s117_episode()
    episode["patient"] = {"reference": "Patient/pat-8"}
    response = app_client.post("/fhir/r4/EpisodeOfCare", json=episode, headers=trust)
    assert response.status_code == 422
    assert issue_of(response)["expression"] == ["EpisodeOfCare.patient.reference"]
    process(hub)
    assert people_count(hub) == 1  # the Patient alone
    assert record_of(hub, NHS_1)["detentions"] == []


def test_a_patient_named_by_nhs_number_alone_is_taken(
        app_client: TestClient, trust: dict[str, str], hub: Hub) -> None:
    """The NHS number is the register's own key: the detention is recorded on that person,
    found or started by the number, as for any source naming someone by NHS number."""
    stay = detention()
    stay["subject"] = {"identifier": {"system": NHS_SYSTEM, "value": NHS_2}}
    response = app_client.post("/fhir/r4", json=bundle(stay, identifier="TX-NHS"),
                               headers=trust)
    assert response.status_code == 200
    process(hub)
    assert record_of(hub, NHS_2)["detentions"][0]["section"] == "03"


def test_a_bundle_reference_to_no_entry_is_422_not_found(
        app_client: TestClient, trust: dict[str, str], hub: Hub) -> None:
    response = app_client.post("/fhir/r4", json=bundle(
        patient(NHS_1, "MRN-1"), unknown_patient_stay("urn:uuid:0b5a2c1e-0000-4000-8000-999"),
        identifier="TX-DANGLING"), headers=trust)
    assert response.status_code == 422
    issue = issue_of(response)
    assert (issue["code"], issue["expression"]) == (
        "not-found", ["Bundle.entry[1].resource.subject.reference"])
    assert inbox_rows(hub)[0].status == "failed"


# --- who may ------------------------------------------------------------------------------

def test_missing_token_is_401_operation_outcome(app_client: TestClient, hub: Hub) -> None:
    response = app_client.post("/fhir/r4", json=bundle(patient(NHS_1, "MRN-1")),
                               headers=FHIR_JSON)
    assert response.status_code == 401
    assert issue_of(response)["code"] == "security"
    assert response.headers["www-authenticate"] == "Bearer"
    assert inbox_rows(hub) == []


def test_wrong_role_is_403_operation_outcome(app_client: TestClient, hub: Hub) -> None:
    response = app_client.post("/fhir/r4", json=bundle(patient(NHS_1, "MRN-1")),
                               headers=token(hub, Role.REGISTER_OWNER) | FHIR_JSON)
    assert response.status_code == 403
    assert issue_of(response)["code"] == "forbidden"
    assert inbox_rows(hub) == []


@pytest.mark.parametrize("source", ["trust-h", "no-such-source"])
def test_token_of_another_source_is_403(app_client: TestClient, hub: Hub, source: str) -> None:
    response = app_client.post("/fhir/r4", json=bundle(patient(NHS_1, "MRN-1")),
                               headers=token(hub, Role.SOURCE_SYSTEM, source) | FHIR_JSON)
    assert response.status_code == 403
    assert issue_of(response)["code"] == "forbidden"
    assert inbox_rows(hub) == []


def test_unknown_path_and_method_are_operation_outcomes(
        app_client: TestClient, trust: dict[str, str]) -> None:
    assert issue_of(app_client.get("/fhir/r4/Patient/pat-1", headers=trust))["code"] in (
        "not-supported", "not-found")
    assert app_client.delete("/fhir/r4/Patient/pat-1", headers=trust).status_code == 405


def test_metadata_is_a_capability_statement(app_client: TestClient, hub: Hub) -> None:
    response = app_client.get("/fhir/r4/metadata", headers=token(hub, Role.AUDITOR))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    statement = response.json()
    CapabilityStatement.model_validate(statement)
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["kind"] == "instance" and statement["status"] == "active"
    [rest] = statement["rest"]
    assert {r["type"]: sorted(i["code"] for i in r["interaction"])
            for r in rest["resource"]} == {"Patient": ["create", "update"],
                                           "Encounter": ["create", "update"],
                                           "EpisodeOfCare": ["create", "read",
                                                             "search-type", "update"]}
    assert sorted(i["code"] for i in rest["interaction"]) == ["batch", "transaction"]
    assert app_client.get("/fhir/r4/metadata").status_code == 401
