"""Disputes API (architecture sections 5 and 7; s117 escalation dispute protocol).

Included in ``routes_exceptions.router``, so the app adds one router for issue 4. Register
owners open, escalate and resolve; auditors read. Every dispute names a person: reads and
writes are audited as reads and writes of their record.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from mapping.council_models import FreeText
from register_core.adapters.database import write_transaction
from register_core.adapters.disputes_store import DisputeStore
from register_core.adapters.security import Principal, Role
from register_core.services import disputes as workflow
from s117hub.bootstrap import Hub

from .auth import audit_read, audit_write, get_hub, require_roles
from .routes_register import (
    MAX_OFFSET,
    PROBLEM_RESPONSES,
    Problem,
    example_of,
    page_config,
)

HubDep = Annotated[Hub, Depends(get_hub)]
Reader = Annotated[Principal, Depends(require_roles(Role.REGISTER_OWNER, Role.AUDITOR))]
Owner = Annotated[Principal, Depends(require_roles(Role.REGISTER_OWNER))]
DisputeId = Annotated[str, Path(max_length=36, description="The dispute's id.")]
# rules.disputes.DISPUTE_KINDS, spelled out for the OpenAPI schema (a test keeps them equal)
DisputeKind = Literal["eligibility", "scope", "funding", "accommodation", "responsibility",
                      "ending", "other"]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such dispute (or person)"}}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "The dispute is no longer at `from_stage` (it was "
          "escalated meanwhile)"}}

router = APIRouter(tags=["disputes"], responses=PROBLEM_RESPONSES)


class DisputeOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "3f2a…", "person_id": "5b0c6c1e-…", "kind": "ending", "opened": "2027-03-02",
        "stage": 3, "stage_due": "2027-03-23", "overdue": False,
        "summary": "ICB proposes ending; council disagrees", "outcome": None,
        "resolved": None, "stage_started": "2027-03-02",
        "history": [{"event": "opened", "date": "2027-03-02", "stage": 3,
                     "stage_due": "2027-03-23", "by": "token-id",
                     "at": "2027-03-02T10:00:00+00:00"}]}]})
    id: str
    person_id: str
    kind: str
    opened: dt.date
    stage: int = Field(description="1 frontline, 2 operational, 3 strategic, 4 external.")
    stage_due: dt.date | None = Field(description="England working days from the stage's "
                                      "start: 5, 10, 15; none at stage 4.")
    overdue: bool = Field(description="Unresolved and past stage_due.")
    summary: str
    outcome: str | None
    resolved: dt.date | None
    stage_started: dt.date
    history: list[dict[str, Any]]


class DisputePage(BaseModel):
    model_config = page_config(example_of(DisputeOut))
    items: list[DisputeOut]
    total: int


class DisputeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"person_id": "5b0c6c1e-8f9e-4a57-9a43-2f4d1c7b8a10", "kind": "funding",
         "summary": "Split of the supported-accommodation cost", "opened": "2027-03-02"}]})
    person_id: str = Field(min_length=1, max_length=36)
    kind: DisputeKind = Field(description="`ending` starts at stage 3, the others at 1.")
    summary: FreeText = Field(min_length=1, max_length=4000,
                         description="The nature of the dispute; no NHS numbers or names.")
    opened: dt.date | None = Field(default=None, description="When it arose, if recorded "
                                   "after the fact; today when omitted.")


class EscalateIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"reason": "no agreement between team managers within 5 working days",
         "from_stage": 1}]})
    reason: FreeText = Field(min_length=1, max_length=4000)
    from_stage: int | None = Field(
        default=None, ge=1, le=3,
        description="The stage the caller means to leave (the one they saw). 409 when the "
        "dispute is no longer there. When omitted, the stage it was at when the request "
        "arrived: of two escalations at once, one is 409, so none skips a stage.")


class ResolveDisputeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"outcome": "60:40 council:ICB split agreed at stage 2"}]})
    outcome: FreeText = Field(min_length=1, max_length=4000)


@router.get("/api/v1/disputes", response_model=DisputePage,
            summary="Disputes by stage, overdue, person or kind")
def list_disputes(
    request: Request, hub: HubDep, principal: Reader,
    stage: Annotated[int | None, Query(ge=1, le=4)] = None,
    overdue: Annotated[bool | None, Query(description="Unresolved and past the stage's "
                                          "deadline.")] = None,
    person_id: Annotated[str | None, Query(max_length=36)] = None,
    kind: Annotated[DisputeKind | None, Query()] = None,
    resolved: Annotated[bool | None, Query(description="Resolved or still open.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> dict[str, object]:
    today = hub.clock.today()
    with write_transaction(hub.engine) as conn:
        total, rows = DisputeStore(conn).query(
            today, stage=stage, overdue=overdue, person_id=person_id, kind=kind,
            resolved=resolved, limit=limit, offset=offset)
        items = [workflow.dispute_json(row, today) for row in rows]
        for item in items:
            audit_read(conn, request, principal, "dispute", item["id"], item["person_id"])
    return {"items": items, "total": total}


@router.get("/api/v1/disputes/{dispute_id}", response_model=DisputeOut,
            summary="One dispute with its history", responses=NOT_FOUND)
def get_dispute(request: Request, hub: HubDep, principal: Reader,
                dispute_id: DisputeId) -> dict[str, Any]:
    with write_transaction(hub.engine) as conn:
        item = workflow.get_dispute(conn, hub.clock.today(), dispute_id)
        audit_read(conn, request, principal, "dispute", dispute_id, item["person_id"])
    return item


@router.post("/api/v1/disputes", response_model=DisputeOut, status_code=201,
             summary="Log a dispute: its stage and deadline follow from its kind",
             responses=NOT_FOUND)
def open_dispute(request: Request, hub: HubDep, principal: Owner,
                 body: DisputeIn) -> dict[str, Any]:
    with hub.uow() as uow:
        item = workflow.open_dispute(uow, hub.clock, person_id=body.person_id,
                                     kind=body.kind, summary=body.summary,
                                     opened=body.opened, by=principal.token_id,
                                     policy=hub.policy)
        audit_write(uow.connection, request, principal, "dispute", item["id"],
                    item["person_id"])
        uow.commit()
    return item


@router.post("/api/v1/disputes/{dispute_id}/escalate", response_model=DisputeOut,
             summary="Escalate to the next stage, starting today",
             responses={**NOT_FOUND, **CONFLICT})
def escalate(request: Request, hub: HubDep, principal: Owner, dispute_id: DisputeId,
             body: EscalateIn) -> dict[str, Any]:
    expected = body.from_stage
    if expected is None:
        # The stage as the request found it, read before queueing for the row: a second
        # escalation that waited behind the first must not escalate again (1 → 3).
        with hub.engine.connect() as conn:
            expected = workflow.stage_of(conn, dispute_id)
    with hub.uow() as uow:
        item = workflow.escalate_dispute(uow, hub.clock, dispute_id, reason=body.reason,
                                         by=principal.token_id, from_stage=expected)
        audit_write(uow.connection, request, principal, "dispute", dispute_id,
                    item["person_id"])
        uow.commit()
    return item


@router.post("/api/v1/disputes/{dispute_id}/resolve", response_model=DisputeOut,
             summary="Record the outcome", responses=NOT_FOUND)
def resolve(request: Request, hub: HubDep, principal: Owner, dispute_id: DisputeId,
            body: ResolveDisputeIn) -> dict[str, Any]:
    with hub.uow() as uow:
        item = workflow.resolve_dispute(uow, hub.clock, dispute_id, outcome=body.outcome,
                                        by=principal.token_id, policy=hub.policy)
        audit_write(uow.connection, request, principal, "dispute", dispute_id,
                    item["person_id"])
        uow.commit()
    return item
