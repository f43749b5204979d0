"""The register read API over HTTP on the real databases: section-7 JSON, filters, errors.

People are created through the one write path (``apply_command``) with synthetic data:
NHS numbers from the 999 test range, invented names.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest

from register_core import views
from register_core.adapters.security import Role, TokenStore
from register_core.domain.commands import (
    Command,
    PersonRef,
    Provenance,
    RecordDetentionStarted,
    RecordLeftHospital,
    RecordOrdinaryResidenceChanged,
    RecordReviewCompleted,
    RecordS117Ended,
    Signoff,
)
from register_core.domain.nhs_number import make_synthetic
from register_core.ports import FixedClock
from register_core.services.handlers import apply_command
from s117hub.api.app import create_app
from s117hub.bootstrap import Hub

with warnings.catch_warnings():  # starlette 1.x warns that its client still uses httpx
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

NHS_A, NHS_B, NHS_C, NHS_D = (make_synthetic(n) for n in (1, 2, 3, 4))


@dataclass
class Register:
    overdue: str  # active, review was due 2026-05-01
    due_later: str  # active, review due 2026-06-15, council E10000034, ICB QGH
    pending: str  # still detained
    ended: str  # lawfully ended by a joint decision


def _apply(hub: Hub, command: Command) -> str:
    with hub.uow() as uow:
        return apply_command(command, uow, hub.clock, hub.policy).person_id


def _prov(hub: Hub, ref: str) -> Provenance:
    return Provenance(source="trust-a", source_ref=ref, received_at=hub.clock.now())


def _detain_and_discharge(hub: Hub, nhs: str, local: str, left: date | None,
                          **extra: object) -> str:
    person = PersonRef(nhs_number=nhs, local_id=local, family_name="Testfamily",
                       given_name="Robin", birth_date=date(1980, 2, 2))
    person_id = _apply(hub, RecordDetentionStarted(
        person=person, provenance=_prov(hub, f"{local}-admit"), section="03",
        start=date(2026, 1, 5), episode_ref=f"{local}-V1", **extra))  # type: ignore[arg-type]
    if left is not None:
        _apply(hub, RecordLeftHospital(person=PersonRef(local_id=local),
                                       provenance=_prov(hub, f"{local}-left"), date=left,
                                       episode_ref=f"{local}-V1"))
    return person_id


@pytest.fixture
def register(hub: Hub) -> Register:
    overdue = _detain_and_discharge(hub, NHS_A, "RX1-A", date(2026, 2, 1))
    _apply(hub, RecordOrdinaryResidenceChanged(
        person=PersonRef(nhs_number=NHS_B, local_id="RX1-B"), provenance=_prov(hub, "or-b"),
        council_code="E10000034", date=date(2020, 1, 1)))
    due_later = _detain_and_discharge(hub, NHS_B, "RX1-B", date(2026, 3, 15),
                                      responsible_icb="QGH")
    pending = _detain_and_discharge(hub, NHS_C, "RX1-C", None)
    ended = _detain_and_discharge(hub, NHS_D, "RX1-D", date(2026, 2, 1))
    _apply(hub, RecordReviewCompleted(  # the joint review an ending needs (16.1)
        person=PersonRef(local_id="RX1-D"), provenance=_prov(hub, "review-d"),
        date=date(2026, 5, 15), review_kind="unscheduled", joint=True))
    _apply(hub, RecordS117Ended(
        person=PersonRef(local_id="RX1-D"), provenance=_prov(hub, "end-d"),
        date=date(2026, 5, 20), reason="needs met after joint review",
        council_signoff=Signoff(by="council-amhp-lead", date=date(2026, 5, 20)),
        icb_signoff=Signoff(by="icb-s117-lead", date=date(2026, 5, 20))))
    return Register(overdue=overdue, due_later=due_later, pending=pending, ended=ended)


@pytest.fixture
def client(hub: Hub) -> Iterator[TestClient]:
    _token_id, token = TokenStore(hub.engine).create(Role.REGISTER_OWNER)
    with TestClient(create_app(hub), headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


SECTION_7_FIELDS = {"id", "nhs_number", "identifiers", "detentions", "legal_status_events",
                    "entitlement", "open_exceptions", "disputes", "explain"}
ENTITLEMENT_FIELDS = {"status", "start", "trigger_section", "responsible_council",
                      "responsible_icb", "named_practitioner", "next_review_due", "ended"}


def test_person_by_nhs_number_carries_the_section_7_fields(
        client: TestClient, register: Register) -> None:
    response = client.get("/api/v1/people", params={"nhs_number": NHS_B})
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 1 and len(body["items"]) == 1
    person = body["items"][0]
    assert SECTION_7_FIELDS <= person.keys()
    assert ENTITLEMENT_FIELDS <= person["entitlement"].keys()
    assert person["id"] == register.due_later and person["nhs_number"] == NHS_B
    assert person["identifiers"] == [{"source": "trust-a", "value": "RX1-B"}]
    assert person["detentions"][0] | {"sections": None} == {
        "ref": "RX1-B-V1", "section": "03", "start": "2026-01-05", "end": "2026-03-15",
        "end_reason": "left-hospital", "provider_ods": None, "sections": None}
    ent = person["entitlement"]
    assert (ent["status"], ent["start"], ent["trigger_section"]) == ("active", "2026-03-15",
                                                                    "03")
    assert (ent["responsible_council"], ent["responsible_icb"]) == ("E10000034", "QGH")
    assert ent["next_review_due"] == "2026-06-15" and ent["ended"] is None
    assert person["explain"]["entitlement.status"]["rule"]
    assert person["explain"]["entitlement.status"]["facts"]


def test_spaced_nhs_number_finds_the_same_person(client: TestClient,
                                                 register: Register) -> None:
    spaced = f"{NHS_A[:3]} {NHS_A[3:6]} {NHS_A[6:]}"
    body = client.get("/api/v1/people", params={"nhs_number": spaced}).json()
    assert [p["id"] for p in body["items"]] == [register.overdue]


def test_person_by_id_is_the_register_view_unchanged(client: TestClient, hub: Hub,
                                                     register: Register) -> None:
    response = client.get(f"/api/v1/people/{register.ended}")
    assert response.status_code == 200
    with hub.engine.connect() as conn:
        expected = views.person_json(conn, register.ended, hub.clock.today(), hub.policy)
    assert response.json() == expected  # the response model drops and renames nothing
    ended = response.json()["entitlement"]["ended"]
    assert ended["date"] == "2026-05-20"
    assert ended["council_signoff"] == {"by": "council-amhp-lead", "date": "2026-05-20"}


def test_people_lists_with_paging(client: TestClient, register: Register) -> None:
    first = client.get("/api/v1/people", params={"limit": 3}).json()
    second = client.get("/api/v1/people", params={"limit": 3, "offset": 3}).json()
    assert first["total"] == second["total"] == 4
    ids = [p["id"] for p in first["items"] + second["items"]]
    assert sorted(ids) == sorted([register.overdue, register.due_later, register.pending,
                                  register.ended])


def test_unknown_nhs_number_is_an_empty_page(client: TestClient, register: Register) -> None:
    body = client.get("/api/v1/people", params={"nhs_number": make_synthetic(99)}).json()
    assert body == {"items": [], "total": 0}


def test_unknown_person_is_404(client: TestClient) -> None:
    response = client.get("/api/v1/people/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404
    assert response.json()["error"] == "not-found"
    assert response.json()["field"] == "person_id"


@pytest.mark.parametrize("bad, rule", [("9990000019", "nhs-number-check-digit"),
                                       ("12345", "nhs-number-format"),
                                       ("999000001X", "nhs-number-format")])
def test_bad_nhs_number_is_422_naming_the_field(client: TestClient, bad: str,
                                                rule: str) -> None:
    response = client.get("/api/v1/people", params={"nhs_number": bad})
    assert response.status_code == 422
    body = response.json()
    assert body["field"] == "nhs_number" and body["rule"] == rule
    assert body["error"] == "invalid-value" and body["message"]
    assert bad not in response.text  # the rejected value is not echoed back


@pytest.mark.parametrize("path, params, field", [
    ("/api/v1/people", {"limit": "lots"}, "limit"),
    ("/api/v1/people", {"limit": 0}, "limit"),
    ("/api/v1/entitlements", {"status": "maybe"}, "status"),
    ("/api/v1/entitlements", {"overdue": "perhaps"}, "overdue"),
    ("/api/v1/entitlements", {"offset": -1}, "offset"),
])
def test_bad_query_parameters_are_422_naming_the_field(client: TestClient, path: str,
                                                       params: dict[str, object],
                                                       field: str) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid-request" and body["field"] == field
    assert body["errors"][0]["field"] == field


def _ids(client: TestClient, **params: object) -> list[str]:
    response = client.get("/api/v1/entitlements", params=params)
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == len(body["items"])
    return [item["person_id"] for item in body["items"]]


def test_entitlements_filter_by_status(client: TestClient, register: Register) -> None:
    assert sorted(_ids(client)) == sorted([register.overdue, register.due_later,
                                           register.pending, register.ended])
    assert sorted(_ids(client, status="active")) == sorted([register.overdue,
                                                            register.due_later])
    assert _ids(client, status="pending") == [register.pending]
    assert _ids(client, status="ended") == [register.ended]


def test_entitlements_overdue_follows_the_clock(client: TestClient, clock: FixedClock,
                                                register: Register) -> None:
    assert _ids(client, status="active", overdue="true") == [register.overdue]
    assert _ids(client, status="active", overdue="false") == [register.due_later]
    item = client.get("/api/v1/entitlements", params={"overdue": "true"}).json()["items"][0]
    assert item["review_overdue"] is True and item["next_review_due"] == "2026-05-01"

    clock.at = datetime(2026, 6, 16, 9, 0, tzinfo=UTC)  # the later review is now late too
    assert sorted(_ids(client, status="active", overdue="true")) == sorted(
        [register.overdue, register.due_later])
    assert _ids(client, status="active", overdue="false") == []


def test_entitlements_filter_by_council_and_icb(client: TestClient,
                                                register: Register) -> None:
    assert _ids(client, council="E10000034") == [register.due_later]
    assert _ids(client, icb="QGH") == [register.due_later]
    assert _ids(client, council="E10000034", icb="QXX") == []


def test_entitlements_page_and_total(client: TestClient, register: Register) -> None:
    body = client.get("/api/v1/entitlements", params={"limit": 1, "offset": 1}).json()
    assert body["total"] == 4 and len(body["items"]) == 1
    item = body["items"][0]
    assert {"person_id", "nhs_number", "status", "next_review_due", "review_overdue",
            "responsible_council", "responsible_icb", "ended"} <= item.keys()


def test_openapi_documents_the_section_7_names(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["info"]["title"] == "S117 Hub"
    assert {"/healthz", "/readyz", "/api/v1/people", "/api/v1/people/{person_id}",
            "/api/v1/entitlements", "/api/v1/audit"} <= schema["paths"].keys()
    models = schema["components"]["schemas"]
    assert SECTION_7_FIELDS <= models["PersonOut"]["properties"].keys()
    assert ENTITLEMENT_FIELDS <= models["PersonEntitlementOut"]["properties"].keys()
    example = models["PersonOut"]["examples"][0]
    assert "entitlement.status" in example["explain"]
    assert example["entitlement"]["next_review_due"]
    assert "review_overdue" in models["EntitlementOut"]["properties"]
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def test_unknown_path_is_404_json(client: TestClient) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404 and response.json()["error"] == "not-found"
