"""The register as FHIR over HTTP on the real databases: ``GET /fhir/r4/EpisodeOfCare?
patient.identifier=…`` and ``GET /fhir/r4/EpisodeOfCare/{id}`` answer the very EpisodeOfCare
a fhir-r4 subscriber is pushed, to register owners and auditors only, each read audited.

People reach the register through the real inbound path (a FHIR transaction posted by a
trust, applied by the worker's drain). Synthetic data only: 999-range NHS numbers, invented
names.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.episodeofcare import EpisodeOfCare
from fhir.resources.R4B.operationoutcome import OperationOutcome
from sqlalchemy import select

from connectors.fhir.search import SearchError, parse_search
from connectors.outbound.delivery import Deliverer
from connectors.outbound.transports import HttpTransport, PartnerTransport
from mapping.outbound import EntitlementState, PersonState, StatusChange, episode_of_care
from register_core.adapters.security import Role, TokenStore
from register_core.adapters.sources import SourceDefinition
from register_core.adapters.subscriptions import SubscriptionDefinition
from register_core.adapters.tables import audit_log
from register_core.domain.nhs_number import make_synthetic
from register_core.views import people_by_nhs_number
from s117hub.api.app import create_app
from s117hub.api.routes_fhir import EPISODE_EXAMPLE
from s117hub.bootstrap import Hub
from tests.integration.test_fhir_api import NHS_SYSTEM, bundle, detention, patient, process
from tests.integration.test_openapi_schemathesis import _run_every_operation as run_every_operation
from tests.integration.test_openapi_schemathesis import _schema as openapi_schema

with warnings.catch_warnings():  # starlette 1.x warns that its client still uses httpx
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

NHS_ACTIVE, NHS_NONE, NHS_ABSENT = (make_synthetic(n) for n in (31, 32, 33))
REGISTER_ID_SYSTEM = "urn:s117hub:register-id"
MRN_SYSTEM = "https://trust-f.example/Id/mrn"
FAMILY = "Testbrook"
SEARCH = "/fhir/r4/EpisodeOfCare"
BASE = "http://testserver/fhir/r4"


def bad_check_digit(number: str) -> str:
    return number[:9] + str((int(number[9]) + 1) % 10)


@dataclass
class World:
    client: TestClient
    hub: Hub
    person_id: str  # NHS_ACTIVE: left hospital after a section 3, entitlement active
    pushed: list[httpx.Request]  # what the trust's FHIR server was sent, in order
    token_ids: dict[str, str]
    tokens: dict[str, str]

    def headers(self, role: str, purpose: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"}
        return headers | ({"X-Purpose-Of-Use": purpose} if purpose else {})

    def search(self, token: str | None, role: str = "register-owner",
               **params: str) -> httpx.Response:
        query = ({"patient.identifier": token} if token is not None else {}) | params
        return self.client.get(SEARCH, params=query, headers=self.headers(role))


@pytest.fixture
def world(hub: Hub) -> Iterator[World]:
    now = hub.clock.now()
    hub.sources.save(SourceDefinition(source_id="trust-f", kind="fhir-r4",
                                      fhir_local_id_system=MRN_SYSTEM), now)
    hub.subscriptions.save(SubscriptionDefinition(
        subscription_id="trust-fhir", kind="fhir-r4", endpoint="http://trust.example/fhir"),
        now)
    store = TokenStore(hub.engine, hub.clock)
    token_ids, tokens = {}, {}
    for role in Role:
        source = "trust-f" if role is Role.SOURCE_SYSTEM else None
        token_ids[role.value], tokens[role.value] = store.create(role, source=source)
    trust = {"Authorization": f"Bearer {tokens['source-system']}",
             "Content-Type": "application/fhir+json"}
    with TestClient(create_app(hub)) as client:
        sent = client.post("/fhir/r4", json=bundle(patient(NHS_ACTIVE, "MRN-31"), detention(),
                                                   identifier="TX-31"), headers=trust)
        assert sent.status_code == 200
        alone = client.post("/fhir/r4", json=bundle(patient(NHS_NONE, "MRN-32"),
                                                    identifier="TX-32"), headers=trust)
        assert alone.status_code == 200
        process(hub)
        pushed = deliver(hub)
        with hub.engine.connect() as conn:
            [person_id] = people_by_nhs_number(conn, NHS_ACTIVE)
        yield World(client, hub, person_id, pushed, token_ids, tokens)


def deliver(hub: Hub) -> list[httpx.Request]:
    """Run the real delivery of every queued change to a fake trust FHIR server."""
    received: list[httpx.Request] = []

    def trust_server(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(200, json={"resourceType": "EpisodeOfCare"})

    transport = PartnerTransport(http=HttpTransport(httpx.MockTransport(trust_server)))
    deliverer = Deliverer(hub.engine, hub.clock, hub.subscriptions, transport=transport)
    try:
        deliverer.drain("trust-fhir")
    finally:
        deliverer.close()
    return received


def audit_rows(hub: Hub) -> list[dict[str, Any]]:
    """The reads recorded (the trust's submissions are there too, as writes)."""
    with hub.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(audit_log)
                                              .where(audit_log.c.action == "read")
                                              .order_by(audit_log.c.id)).mappings()]


def searchset(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    Bundle.model_validate(body)
    assert body["type"] == "searchset"
    assert [link["relation"] for link in body["link"]] == ["self"]
    return body  # type: ignore[no-any-return]


def issue_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    OperationOutcome.model_validate(body)
    [issue] = body["issue"]
    assert issue["severity"] == "error"
    return issue  # type: ignore[no-any-return]


# --- found ----------------------------------------------------------------------------------

@pytest.mark.parametrize("token", [f"{NHS_SYSTEM}|{NHS_ACTIVE}", NHS_ACTIVE,
                                   f"{NHS_ACTIVE[:3]} {NHS_ACTIVE[3:6]} {NHS_ACTIVE[6:]}"],
                         ids=["with-system", "bare", "bare-spaced"])
def test_found_by_nhs_number(world: World, token: str) -> None:
    body = searchset(world.search(token))
    assert body["total"] == 1
    [entry] = body["entry"]
    assert entry["fullUrl"] == f"{BASE}/EpisodeOfCare/{world.person_id}"
    assert entry["search"] == {"mode": "match"}
    episode = entry["resource"]
    EpisodeOfCare.model_validate(episode)
    assert episode["id"] == world.person_id
    assert episode["status"] == "active"
    assert episode["period"] == {"start": "2026-03-01"}
    assert episode["patient"] == {"identifier": {"system": NHS_SYSTEM, "value": NHS_ACTIVE}}
    assert episode["type"][0]["coding"][0]["code"] == "s117-aftercare"
    self_url = urlsplit(body["link"][0]["url"])
    assert f"{self_url.scheme}://{self_url.netloc}{self_url.path}" == f"{BASE}/EpisodeOfCare"
    assert parse_qs(self_url.query) == {"patient.identifier": [token]}


def test_the_resource_is_the_one_a_fhir_subscriber_is_pushed(world: World) -> None:
    """Search, read and push give one resource: the push has no logical id (it is a
    conditional PUT on the register-id identifier), the search adds the register id."""
    last = world.pushed[-1]
    assert last.method == "PUT" and last.url.path == "/fhir/EpisodeOfCare"
    assert last.url.params["identifier"] == f"{REGISTER_ID_SYSTEM}|{world.person_id}"
    pushed = json.loads(last.content)
    assert pushed["status"] == "active"
    [entry] = searchset(world.search(f"{NHS_SYSTEM}|{NHS_ACTIVE}"))["entry"]
    found = entry["resource"]
    assert found == {"resourceType": "EpisodeOfCare", "id": world.person_id} | pushed
    read = world.client.get(f"{SEARCH}/{world.person_id}",
                            headers=world.headers("auditor"))
    assert read.status_code == 200
    assert read.headers["content-type"].startswith("application/fhir+json")
    assert read.json() == found


@pytest.mark.parametrize("kind", ["register-id", "local-id"])
def test_found_by_register_id_and_by_a_source_local_id(world: World, kind: str) -> None:
    token = (f"{REGISTER_ID_SYSTEM}|{world.person_id}" if kind == "register-id"
             else f"{MRN_SYSTEM}|MRN-31")
    [entry] = searchset(world.search(token))["entry"]
    assert entry["resource"]["id"] == world.person_id


# --- not found ------------------------------------------------------------------------------

@pytest.mark.parametrize("token", [
    f"{NHS_SYSTEM}|{NHS_ABSENT}",  # nobody on the register
    f"{NHS_SYSTEM}|{NHS_NONE}",  # on the register, entitlement status none
    f"{REGISTER_ID_SYSTEM}|00000000-0000-4000-8000-000000000000",
    f"{MRN_SYSTEM}|MRN-404",
], ids=["unknown", "status-none", "register-id", "local-id"])
def test_no_match_is_an_empty_searchset_and_no_read(world: World, token: str) -> None:
    body = searchset(world.search(token))
    assert body["total"] == 0 and "entry" not in body
    assert audit_rows(world.hub) == []


def test_reading_an_unknown_or_none_id_is_404(world: World) -> None:
    with world.hub.engine.connect() as conn:
        [none_id] = people_by_nhs_number(conn, NHS_NONE)
    for person_id in (none_id, "no-such-person", "x" * 65):
        response = world.client.get(f"{SEARCH}/{person_id}",
                                    headers=world.headers("register-owner"))
        assert issue_of(response, 404)["code"] == "not-found"
    assert audit_rows(world.hub) == []


# --- malformed ------------------------------------------------------------------------------

VALUE = "EpisodeOfCare.patient.identifier.value"
SYSTEM = "EpisodeOfCare.patient.identifier.system"
PARAMETER = "EpisodeOfCare.patient.identifier"


@pytest.mark.parametrize("query, code, expression", [
    ({"patient.identifier": f"{NHS_SYSTEM}|{bad_check_digit(NHS_ACTIVE)}"}, "value", VALUE),
    ({"patient.identifier": bad_check_digit(NHS_ACTIVE)}, "value", VALUE),
    ({"patient.identifier": f"{NHS_SYSTEM}|12345"}, "value", VALUE),
    ({"patient.identifier": "MRN-31"}, "value", VALUE),
    ({"patient.identifier": f"{NHS_SYSTEM}|"}, "required", VALUE),
    ({"patient.identifier": ""}, "value", VALUE),
    ({"patient.identifier": f"|{NHS_ACTIVE}"}, "not-supported", SYSTEM),
    ({"patient.identifier": f"http://fhir.nhs.uk/Id/nhs-number|{NHS_ACTIVE}"},
     "not-supported", SYSTEM),
    ({"patient.identifier": f"{NHS_ACTIVE},{NHS_ABSENT}"}, "not-supported", PARAMETER),
    ({}, "required", PARAMETER),
    ({"patient.identifier": NHS_ACTIVE, "_count": "10"}, "not-supported", "_count"),
    ({"patient.identifier:missing": "true"}, "not-supported", "patient.identifier:missing"),
    ({"patient": "Patient/1"}, "not-supported", "patient"),
], ids=["check-digit", "bare-check-digit", "short", "bare-not-a-number", "empty-value",
        "empty", "no-system", "unknown-system", "or-list", "no-parameter", "other-parameter",
        "modifier", "reference"])
def test_a_malformed_search_is_400_naming_the_part(world: World, query: dict[str, str],
                                                   code: str, expression: str) -> None:
    response = world.client.get(SEARCH, params=query, headers=world.headers("auditor"))
    issue = issue_of(response, 400)
    assert (issue["code"], issue["expression"]) == (code, [expression])
    assert issue["diagnostics"]
    assert NHS_ACTIVE not in response.text and bad_check_digit(NHS_ACTIVE) not in response.text
    assert audit_rows(world.hub) == []


def test_the_parameter_given_twice_is_400(world: World) -> None:
    response = world.client.get(f"{SEARCH}?patient.identifier={NHS_ACTIVE}"
                                f"&patient.identifier={NHS_ABSENT}",
                                headers=world.headers("register-owner"))
    assert issue_of(response, 400)["expression"] == [PARAMETER]


# --- who may, and the audit trail -----------------------------------------------------------

@pytest.mark.parametrize("path", [SEARCH, f"{SEARCH}?patient.identifier={NHS_ACTIVE}",
                                  f"{SEARCH}/some-id"])
def test_no_token_is_a_401_operation_outcome(world: World, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer s117_not-a-real-token"}):
        response = world.client.get(path, headers=headers)
        assert issue_of(response, 401)["code"] == "security"
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("role", ["source-system", "integration-engineer"])
def test_other_roles_are_refused_403(world: World, role: str) -> None:
    for path in (f"{SEARCH}?patient.identifier={NHS_ACTIVE}", f"{SEARCH}/{world.person_id}"):
        response = world.client.get(path, headers=world.headers(role))
        assert issue_of(response, 403)["code"] == "forbidden"
        assert NHS_ACTIVE not in response.text and FAMILY not in response.text
    assert audit_rows(world.hub) == []


def test_each_episode_served_is_audited_like_a_person_read(world: World) -> None:
    owner = world.headers("register-owner", purpose="direct care: discharge planning")
    assert world.client.get(SEARCH, params={"patient.identifier": NHS_ACTIVE},
                            headers=owner).status_code == 200
    assert world.client.get(f"{SEARCH}/{world.person_id}",
                            headers=world.headers("auditor")).status_code == 200
    rows = audit_rows(world.hub)
    assert [(r["actor"], r["role"], r["action"], r["resource"], r["resource_id"],
             r["person_id"], r["purpose"], r["request"]) for r in rows] == [
        (world.token_ids["register-owner"], "register-owner", "read", "entitlement",
         world.person_id, world.person_id, "direct care: discharge planning",
         "GET /fhir/r4/EpisodeOfCare"),
        (world.token_ids["auditor"], "auditor", "read", "entitlement", world.person_id,
         world.person_id, None, f"GET /fhir/r4/EpisodeOfCare/{world.person_id}"),
    ]
    text = repr(rows)
    assert NHS_ACTIVE not in text and FAMILY not in text


def test_no_nhs_number_or_name_is_logged(world: World, caplog: pytest.LogCaptureFixture
                                         ) -> None:
    with caplog.at_level(logging.DEBUG):
        world.search(f"{NHS_SYSTEM}|{NHS_ACTIVE}")
        world.search(bad_check_digit(NHS_ACTIVE))
        world.client.get(f"{SEARCH}/{world.person_id}", headers=world.headers("auditor"))
    # httpx's lines are the test client's own (the caller's URL), not the hub's.
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name != "httpx")
    assert NHS_ACTIVE[:9] not in logged and FAMILY not in logged


# --- published ------------------------------------------------------------------------------

def test_metadata_lists_read_and_search(world: World) -> None:
    response = world.client.get("/fhir/r4/metadata", headers=world.headers("source-system"))
    statement = response.json()
    CapabilityStatement.model_validate(statement)
    [rest] = statement["rest"]
    [episode] = [r for r in rest["resource"] if r["type"] == "EpisodeOfCare"]
    assert sorted(i["code"] for i in episode["interaction"]) == [
        "create", "read", "search-type", "update"]
    assert [(p["name"], p["type"]) for p in episode["searchParam"]] == [
        ("patient.identifier", "token")]


def test_openapi_documents_search_and_read(world: World) -> None:
    paths = world.client.get("/openapi.json", headers=world.headers("auditor")).json()["paths"]
    search = paths["/fhir/r4/EpisodeOfCare"]["get"]
    assert [(p["name"], p["in"]) for p in search["parameters"]] == [
        ("patient.identifier", "query")]
    assert {"200", "400", "401", "403"} <= search["responses"].keys()
    assert "application/fhir+json" in search["responses"]["200"]["content"]
    read = paths["/fhir/r4/EpisodeOfCare/{resource_id}"]["get"]
    assert {"200", "401", "403", "404"} <= read["responses"].keys()


def test_schemathesis_over_search_and_read_as_a_register_reader(hub: Hub) -> None:
    """The generated requests (valid and not) get no 5xx and only documented answers."""
    if hub.engine.dialect.name != "sqlite":
        pytest.skip("schemathesis runs on SQLite only (see test_openapi_schemathesis)")
    _id, token = TokenStore(hub.engine).create(["register-owner", "auditor"])
    schema = openapi_schema(hub, token).include(path_regex=r"^/fhir/r4/EpisodeOfCare")
    failures = run_every_operation(schema, token)
    assert not failures, "\n\n".join(failures)


# --- pure parts -----------------------------------------------------------------------------

def test_the_published_example_is_what_the_mapping_renders() -> None:
    example = dict(EPISODE_EXAMPLE)
    person_id = example.pop("id")
    change = StatusChange(
        change_id=1, person=PersonState(register_id=person_id, nhs_number="9990000018"),
        entitlement=EntitlementState(status="active", start=date(2026, 3, 1),
                                     responsible_council="E10000034", responsible_icb="QGH"),
        changes=[], notice_received_at=datetime(2026, 3, 1, tzinfo=UTC),
        changed_at=datetime(2026, 3, 1, tzinfo=UTC))
    assert episode_of_care(change) == example


def test_fhir_search_escapes_are_read() -> None:
    systems = {MRN_SYSTEM: ("trust-f",)}
    query = parse_search([("patient.identifier", f"{MRN_SYSTEM}|A\\,B\\|C\\$")], systems)
    assert (query.kind, query.value, query.sources) == ("local-id", "A,B|C$", ("trust-f",))
    with pytest.raises(SearchError) as refused:
        parse_search([("patient.identifier", f"{MRN_SYSTEM}|A,B")], systems)
    assert refused.value.expression == PARAMETER
