"""The register read API (architecture section 5): people, entitlements, audit, health.

Routes only translate: query parameters → ``register_core.views`` → response models. Each
request opens its own connection from ``hub.engine``; reads of a person's record and their
audit rows share one transaction, so a read that is served is a read that is recorded.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, func, select, text
from sqlalchemy.exc import SQLAlchemyError

from register_core import views
from register_core.adapters.database import write_transaction
from register_core.adapters.security import Principal, Role
from register_core.adapters.tables import persons
from register_core.domain import nhs_number as nhs
from register_core.domain.errors import NotFound
from s117hub.bootstrap import Hub

from .auth import CurrentPrincipal, audit_read, get_audit_log, get_hub, require_roles

# -- response models: the stable field names of architecture section 7 -------------------

PERSON_EXAMPLE: dict[str, Any] = {
    "id": "5b0c6c1e-8f9e-4a57-9a43-2f4d1c7b8a10", "nhs_number": "9990000018",
    "nhs_number_verified": True, "family_name": "Example", "given_name": "Sam",
    "birth_date": "1980-02-02", "sex": "unknown", "postcode": "ZZ99 3AZ",
    "gp_practice_ods": "Y00001", "death_date": None,
    "identifiers": [{"source": "trust-a", "value": "RX1-000123"}],
    "detentions": [{"ref": "V1", "section": "03", "start": "2026-01-05", "end": "2026-03-01",
                    "end_reason": "left-hospital", "provider_ods": "RX1",
                    "sections": [{"section": "03", "from": "2026-01-05"}]}],
    "legal_status_events": [{"kind": "cto-start", "date": "2026-03-01", "section": "17",
                             "end": None, "episode_ref": "V1", "source": "trust-a"}],
    "entitlement": {"status": "active", "start": "2026-03-01", "pending_since": None,
                    "trigger_section": "03", "responsible_council": "E10000034",
                    "responsible_icb": "QGH", "named_practitioner": None,
                    "aftercare_plan_date": None, "last_review": None,
                    "next_review_due": "2026-06-01", "on_cto": True, "ended": None},
    "reviews": [],
    "explain": {"entitlement.status": {"rule": "left hospital after an entitling detention",
                                       "facts": ["message trust-a m2"]}},
    "open_exceptions": [{"id": "0d6f…", "kind": "review-overdue",
                         "raised": "2026-06-02T09:00:00+00:00", "summary": "review overdue"}],
    "disputes": [],
    "provenance": [{"fact": 1, "kind": "detention-started", "source": "trust-a",
                    "source_ref": "m1", "received_at": "2026-01-05T10:00:00+00:00",
                    "recorded_by": "system", "effective": "2026-01-05", "retracted": False}],
}


def example_of(model: type[BaseModel]) -> dict[str, Any]:
    """The first example a response model documents, to build larger examples from."""
    extra = model.model_config.get("json_schema_extra")
    assert isinstance(extra, dict), model
    examples = extra["examples"]
    assert isinstance(examples, list) and isinstance(examples[0], dict), model
    return examples[0]


def page_config(item: dict[str, Any]) -> ConfigDict:
    """``{"items": [...], "total": n}`` pages document one item's example."""
    return ConfigDict(json_schema_extra={"examples": [{"items": [item], "total": 1}]})


def json_example(example: Any, description: str | None = None) -> dict[str, Any]:
    """A ``responses=`` entry that documents an example for a model defined elsewhere."""
    entry: dict[str, Any] = {"content": {"application/json": {"example": example}}}
    return entry | ({"description": description} if description else {})


class Problem(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"error": "unauthorised", "message": "an Authorization: Bearer token is required",
         "field": None, "rule": None},
        {"error": "invalid-request", "message": "limit: Input should be greater than 0",
         "field": "limit", "rule": "greater_than"}]})
    error: str = Field(examples=["unauthorised"])
    message: str
    field: str | None = None
    rule: str | None = None


class Health(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ready"}]})
    status: Literal["ok", "ready", "unavailable"]


class IdentifierOut(BaseModel):
    source: str
    value: str


class SectionSpanOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    section: str
    from_: date = Field(alias="from")


class DetentionOut(BaseModel):
    ref: str
    section: str = Field(description="MHSDS legal-status code, two digits.")
    start: date
    end: date | None
    end_reason: str | None
    provider_ods: str | None
    sections: list[SectionSpanOut]


class LegalStatusEventOut(BaseModel):
    kind: str = Field(examples=["cto-start"])
    date: date
    section: str | None
    end: date | None
    episode_ref: str | None
    source: str


class SignoffOut(BaseModel):
    by: str
    date: date


class EndedOut(BaseModel):
    date: date
    reason: str | None
    council_signoff: SignoffOut | None
    icb_signoff: SignoffOut | None


class PersonEntitlementOut(BaseModel):
    status: Literal["none", "pending", "active", "ended"]
    start: date | None
    pending_since: date | None
    trigger_section: str | None
    responsible_council: str | None
    responsible_icb: str | None
    named_practitioner: str | None
    aftercare_plan_date: date | None
    last_review: date | None
    next_review_due: date | None
    on_cto: bool
    ended: EndedOut | None


class ReviewOut(BaseModel):
    date: date
    kind: str


class ExplanationOut(BaseModel):
    rule: str
    facts: list[str]


class OpenExceptionOut(BaseModel):
    id: str
    kind: str = Field(examples=["review-overdue"])
    raised: str
    summary: str


class DisputeOut(BaseModel):
    id: str
    person_id: str
    kind: str = Field(examples=["funding"])
    opened: date
    stage: int
    stage_due: date | None
    overdue: bool
    summary: str
    outcome: str | None
    resolved: date | None


class ProvenanceOut(BaseModel):
    fact: int
    kind: str
    source: str
    source_ref: str
    received_at: str
    recorded_by: str
    effective: date | None
    retracted: bool


class PersonOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [PERSON_EXAMPLE]})
    id: str
    nhs_number: str | None
    nhs_number_verified: bool | None
    family_name: str | None
    given_name: str | None
    birth_date: date | None
    sex: str | None
    postcode: str | None
    gp_practice_ods: str | None
    death_date: date | None
    identifiers: list[IdentifierOut]
    detentions: list[DetentionOut]
    legal_status_events: list[LegalStatusEventOut]
    entitlement: PersonEntitlementOut
    reviews: list[ReviewOut]
    explain: dict[str, ExplanationOut] = Field(
        description="Why each value is what it is, keyed by field (`entitlement.status`).")
    open_exceptions: list[OpenExceptionOut]
    disputes: list[DisputeOut]
    provenance: list[ProvenanceOut]


class PersonPage(BaseModel):
    model_config = page_config(PERSON_EXAMPLE)
    items: list[PersonOut]
    total: int


class EntitlementOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "person_id": PERSON_EXAMPLE["id"], "nhs_number": "9990000018", "status": "active",
        "start": "2026-03-01", "trigger_section": "03", "responsible_council": "E10000034",
        "responsible_icb": "QGH", "named_practitioner": None,
        "next_review_due": "2026-06-01", "review_overdue": False, "on_cto": True,
        "ended": None}]})
    person_id: str
    nhs_number: str | None
    status: Literal["pending", "active", "ended"]
    start: date | None
    trigger_section: str | None
    responsible_council: str | None
    responsible_icb: str | None
    named_practitioner: str | None
    next_review_due: date | None
    review_overdue: bool
    on_cto: bool
    ended: EndedOut | None


class EntitlementPage(BaseModel):
    model_config = page_config(example_of(EntitlementOut))
    items: list[EntitlementOut]
    total: int


class AuditEntryOut(BaseModel):
    id: int
    at: datetime
    actor: str = Field(description="Token id.")
    role: str
    action: Literal["read", "write"]
    resource: str = Field(examples=["person"])
    resource_id: str | None
    person_id: str | None
    purpose: str | None = Field(description="From the X-Purpose-Of-Use header.")
    request: str | None = Field(examples=["GET /api/v1/people"])


class AuditPage(BaseModel):
    model_config = page_config({
        "id": 41, "at": "2026-06-01T09:00:00+00:00",
        "actor": "7f1c2d3e-0000-4000-8000-000000000001", "role": "register-owner",
        "action": "read", "resource": "person", "resource_id": PERSON_EXAMPLE["id"],
        "person_id": PERSON_EXAMPLE["id"], "purpose": "review planning",
        "request": "GET /api/v1/people"})
    items: list[AuditEntryOut]
    total: int


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Missing, unknown or revoked token"},
    403: {"model": Problem, "description": "The token's role may not do this"},
    422: {"model": Problem, "description": "A value is invalid; `field` names it"},
}

HubDep = Annotated[Hub, Depends(get_hub)]
RegisterReader = Annotated[Principal, Depends(require_roles(Role.REGISTER_OWNER, Role.AUDITOR))]
Auditor = Annotated[Principal, Depends(require_roles(Role.AUDITOR))]
Limit = Annotated[int, Query(ge=1, le=500, description="Page size.")]
# le: the databases take a 64-bit OFFSET; a larger one was a driver overflow (500).
MAX_OFFSET = 2**63 - 1
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip.")]

health = APIRouter(tags=["operations"])
register = APIRouter(prefix="/api/v1", tags=["register"], responses=PROBLEM_RESPONSES)


@health.get("/healthz", response_model=Health, summary="Liveness (no authentication)")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@health.get("/readyz", response_model=Health, summary="Readiness: the database answers",
            responses={**PROBLEM_RESPONSES, 503: {"model": Health}})
def readyz(hub: HubDep, _principal: CurrentPrincipal) -> dict[str, str] | JSONResponse:
    try:
        with hub.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return {"status": "ready"}


def _count_people(conn: Connection) -> int:
    # TODO(views): belongs in register_core.views beside list_people.
    return int(conn.execute(select(func.count()).select_from(persons)).scalar_one())


@register.get("/people", response_model=PersonPage, summary="Find people on the register")
def find_people(
    request: Request, hub: HubDep, principal: RegisterReader,
    nhs_number: Annotated[str | None, Query(
        description="Exact NHS number (ten digits, spaces allowed).",
        examples=["9990000018"])] = None,
    limit: Limit = 50, offset: Offset = 0,
) -> dict[str, object]:
    wanted = nhs.validate(nhs_number, field="nhs_number") if nhs_number is not None else None
    today = hub.clock.today()
    with write_transaction(hub.engine) as conn:
        if wanted is not None:
            matches = views.people_by_nhs_number(conn, wanted)
            total, ids = len(matches), matches[offset:offset + limit]
        else:
            total, ids = _count_people(conn), views.list_people(conn, limit, offset)
        items = []
        for person_id in ids:
            record = views.person_json(conn, person_id, today, hub.policy)
            if record is not None:
                audit_read(conn, request, principal, "person", person_id, person_id)
                items.append(record)
    return {"items": items, "total": total}


@register.get("/people/{person_id}", response_model=PersonOut,
              summary="One person's register record",
              responses={404: {"model": Problem, "description": "No such person"}})
def get_person(
    request: Request, hub: HubDep, principal: RegisterReader,
    person_id: Annotated[str, Path(max_length=36, description="The register's person id.")],
) -> dict[str, object]:
    with write_transaction(hub.engine) as conn:
        record = views.person_json(conn, person_id, hub.clock.today(), hub.policy)
        if record is None:
            raise NotFound("no person with this id", field="person_id", rule="person-exists")
        audit_read(conn, request, principal, "person", person_id, person_id)
    return record


@register.get("/entitlements", response_model=EntitlementPage,
              summary="The S117 register: entitlements by status, review overdue, body")
def list_entitlements(
    request: Request, hub: HubDep, principal: RegisterReader,
    status: Annotated[Literal["pending", "active", "ended"] | None, Query(
        description="Entitlement status; all but `none` when omitted.")] = None,
    overdue: Annotated[bool | None, Query(
        description="Whether the next review is overdue as of today.")] = None,
    council: Annotated[str | None, Query(max_length=12, description="GSS code.",
                                         examples=["E10000034"])] = None,
    icb: Annotated[str | None, Query(max_length=12, description="ICB ODS code.",
                                     examples=["QGH"])] = None,
    limit: Limit = 100, offset: Offset = 0,
) -> dict[str, object]:
    with write_transaction(hub.engine) as conn:
        total, items = views.entitlement_rows(
            conn, hub.clock.today(), status=status, overdue=overdue, council=council, icb=icb,
            limit=limit, offset=offset)
        # Each row names a person and their S117 position: that is a read of their record.
        for item in items:
            audit_read(conn, request, principal, "entitlement", item["person_id"],
                       item["person_id"])
    return {"items": items, "total": total}


@register.get("/audit", response_model=AuditPage, tags=["audit"],
              summary="Who read or changed whose record, when and why (auditors only)")
def query_audit(
    request: Request, hub: HubDep, _principal: Auditor,
    person_id: Annotated[str | None, Query(max_length=36)] = None,
    actor: Annotated[str | None, Query(max_length=36, description="Token id.")] = None,
    since: Annotated[datetime | None, Query(description="ISO 8601 date-time.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: Offset = 0,
) -> dict[str, object]:
    with hub.engine.connect() as conn:
        total, rows = get_audit_log(request).query(conn, person_id=person_id, actor=actor,
                                                   since=since, limit=limit, offset=offset)
    return {"items": rows, "total": total}
