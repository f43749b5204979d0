"""Exceptions workflow API (architecture section 5; issue 4): list, read, assign, resolve,
dismiss. The disputes routes (``routes_disputes``) ride on the same ``router``.

Register owners act; auditors read. Every exception names a person, so every read is audited
as a read of their record and every decision as a write, in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from mapping.council_models import FreeText, SingleLine
from reconciliation.exceptions import SAME_PERSON
from register_core.adapters.database import write_transaction
from register_core.adapters.exceptions_store import ExceptionFilter, ExceptionStore
from register_core.adapters.security import Principal, Role
from register_core.domain.errors import NotFound
from register_core.services import exceptions as workflow
from s117hub.bootstrap import Hub

from .auth import audit_read, audit_write, get_hub, require_roles
from .corrections import Correction, CorrectionIn
from .routes_disputes import router as disputes_router
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
ExceptionId = Annotated[str, Path(max_length=36, description="The exception's id.")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such exception"}}

router = APIRouter(responses=PROBLEM_RESPONSES)


class ExceptionOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "0d6f4c1e-…", "person_id": "5b0c6c1e-…", "kind": "review-overdue",
        "status": "open", "raised": "2026-06-02T09:00:00+00:00",
        "summary": "The 3-month s117 review after discharge on 2026-02-01 was due by "
                   "2026-05-01 and is overdue",
        "detail": {"review": "3-month", "due": "2026-05-01", "facts": ["fact 2: …"]},
        "fingerprint": "review-overdue:3-month|2026-05-01", "assigned_to": None,
        "decision": None, "reason": None, "closed_by": None, "closed_at": None}]})
    id: str
    person_id: str | None
    kind: str = Field(description="Stable identifier (architecture section 7).")
    status: Literal["open", "assigned", "resolved", "dismissed"]
    raised: datetime
    summary: str = Field(description="What was found; never an NHS number or a name.")
    detail: dict[str, Any] = Field(description="The values behind it, with the facts cited.")
    fingerprint: str = Field(description="Kind plus the facts behind it: a dismissed "
                             "exception is not reopened until this changes.")
    assigned_to: str | None
    decision: str | None
    reason: str | None
    closed_by: str | None = Field(description="Token id of who decided, or `system` when "
                                  "the condition no longer holds.")
    closed_at: datetime | None


class ExceptionPage(BaseModel):
    model_config = page_config(example_of(ExceptionOut))
    items: list[ExceptionOut]
    total: int


class AssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"assignee": "s117-coordinator-2"}]})
    assignee: SingleLine = Field(min_length=1, max_length=100,
                                examples=["s117-coordinator-2"])


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"decision": "corrected", "reason": "council confirmed by phone, recorded here",
         "apply": {"type": "s117.confirmed", "start": "2026-03-01"}},
        {"decision": "accept-source:trust-a", "reason": "the ward record is right"}]})
    decision: SingleLine = Field(
        default="resolved", max_length=100,
        description="`resolved` (dealt with), `corrected` (with `apply`), "
        "`accept-source:<source>` (a conflict settled for that source), or `dismiss`.")
    reason: FreeText = Field(min_length=1, max_length=2000)
    apply: CorrectionIn | None = Field(
        default=None, description="A correction recorded on the register as a fact with "
        "source `register` and source_ref `exception:<id>`.")


class DismissIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"reason": "the trust corrected the discharge date; nothing was missed"}]})
    reason: FreeText = Field(min_length=1, max_length=2000)


@router.get("/api/v1/exceptions", response_model=ExceptionPage, tags=["exceptions"],
            summary="Exceptions the register raised, by status, kind, person or body")
def list_exceptions(
    request: Request, hub: HubDep, principal: Reader,
    status: Annotated[Literal["open", "assigned", "resolved", "dismissed"] | None, Query(
        description="open, assigned, resolved or dismissed; all when omitted.")] = None,
    kind: Annotated[str | None, Query(max_length=40, examples=["review-overdue"])] = None,
    person_id: Annotated[str | None, Query(max_length=36)] = None,
    council: Annotated[str | None, Query(max_length=12, description="Responsible council "
                                         "(GSS code).")] = None,
    icb: Annotated[str | None, Query(max_length=12, description="Responsible ICB.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> dict[str, object]:
    wanted = ExceptionFilter(status=status, kind=kind, person_id=person_id, council=council,
                             icb=icb)
    with write_transaction(hub.engine) as conn:
        total, items = ExceptionStore(conn).query(wanted, limit=limit, offset=offset)
        for item in items:
            audit_read(conn, request, principal, "exception", item["id"], item["person_id"])
    return {"items": items, "total": total}


@router.get("/api/v1/exceptions/{exception_id}", response_model=ExceptionOut, tags=["exceptions"],
            summary="One exception", responses=NOT_FOUND)
def get_exception(request: Request, hub: HubDep, principal: Reader,
                  exception_id: ExceptionId) -> dict[str, Any]:
    with write_transaction(hub.engine) as conn:
        item = ExceptionStore(conn).get(exception_id)
        if item is None:
            raise NotFound("no exception with this id", field="exception_id",
                           rule="exception-exists")
        audit_read(conn, request, principal, "exception", exception_id, item["person_id"])
    return item


@router.post("/api/v1/exceptions/{exception_id}/assign", response_model=ExceptionOut,
             tags=["exceptions"], summary="Assign an open exception to someone",
             responses=NOT_FOUND)
def assign(request: Request, hub: HubDep, principal: Owner, exception_id: ExceptionId,
           body: AssignIn) -> dict[str, Any]:
    return assign_and_audit(request, hub, principal, exception_id, body.assignee)


def assign_and_audit(request: Request, hub: Hub, principal: Principal, exception_id: str,
                     assignee: str) -> dict[str, Any]:
    """Assign, with the audit row in the same transaction (the API's and the console's)."""
    with hub.uow() as uow:
        item = workflow.assign_exception(uow, exception_id, assignee)
        audit_write(uow.connection, request, principal, "exception", exception_id,
                    item["person_id"])
        uow.commit()
    return item


@router.post("/api/v1/exceptions/{exception_id}/resolve", response_model=ExceptionOut,
             tags=["exceptions"], responses=NOT_FOUND,
             summary="Resolve with a decision and reason, optionally applying a correction")
def resolve(request: Request, hub: HubDep, principal: Owner, exception_id: ExceptionId,
            body: ResolveIn) -> dict[str, Any]:
    return close_and_audit(request, hub, principal, exception_id, body.decision, body.reason,
                  body.apply)


@router.post("/api/v1/exceptions/{exception_id}/dismiss", response_model=ExceptionOut,
             tags=["exceptions"], responses=NOT_FOUND,
             summary="Dismiss: not a problem; stays dismissed until the facts behind it change")
def dismiss(request: Request, hub: HubDep, principal: Owner, exception_id: ExceptionId,
            body: DismissIn) -> dict[str, Any]:
    return close_and_audit(request, hub, principal, exception_id, "dismiss", body.reason,
                           None)


class ReopenIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"reason": "the GP confirms one person registered twice; ask again"}]})
    reason: FreeText = Field(min_length=1, max_length=2000)


@router.post("/api/v1/exceptions/{exception_id}/reopen", response_model=ExceptionOut,
             tags=["exceptions"], responses=NOT_FOUND,
             summary="Ask again about two people kept apart (different-people or un-merge)")
def reopen(request: Request, hub: HubDep, principal: Owner, exception_id: ExceptionId,
           body: ReopenIn) -> dict[str, Any]:
    """A ``different-people`` decision is not final: this opens a new identity-uncertain
    exception on the same pair (the decided one stays as the record of it), to be resolved
    ``same-person`` or ``different-people`` again."""
    with hub.uow() as uow:
        item = workflow.reopen_identity_question(uow, hub.clock, exception_id,
                                                 reason=body.reason, by=principal.token_id)
        for person_id in (item["person_id"], item["detail"].get("candidate_person_id")):
            audit_write(uow.connection, request, principal, "exception", item["id"],
                        person_id)
        uow.commit()
    return item


def close_and_audit(request: Request, hub: Hub, principal: Principal, exception_id: str,
                    decision: str, reason: str, correction: Correction | None
                    ) -> dict[str, Any]:
    """Resolve (``decision``) or dismiss (``"dismiss"``), with the audit row in the same
    transaction: the API's and the console's one way to close an exception."""
    with hub.uow() as uow:
        item = workflow.close_exception(
            uow, hub.clock, exception_id, decision=decision, reason=reason,
            by=principal.token_id, correction=correction.command if correction else None,
            policy=hub.policy)
        audit_write(uow.connection, request, principal, "exception", exception_id,
                    item["person_id"])
        if item.get("decision") == SAME_PERSON:
            # The merge changed the survivor's record too (it took the facts): a write of
            # theirs, as the un-merge route audits both people.
            survivor = (item.get("detail") or {}).get("candidate_person_id")
            if survivor and survivor != item["person_id"]:
                audit_write(uow.connection, request, principal, "exception", exception_id,
                            survivor)
        uow.commit()
    return item


router.include_router(disputes_router)
