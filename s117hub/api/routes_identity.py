"""Identity operations on the register (issue 4): undo a merge.

A merge (ADT A40, or "same-person" on an identity-uncertain exception) is recorded with what
it moved; ``POST /api/v1/people/{id}/unmerge`` on the merged person moves exactly that back.
Register owners only; audited as a write of both people's records.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict

from register_core.adapters.security import Principal, Role
from register_core.services.unmerging import unmerge_person
from s117hub.bootstrap import Hub

from .auth import audit_write, get_hub, require_roles
from .routes_register import PROBLEM_RESPONSES, Problem

HubDep = Annotated[Hub, Depends(get_hub)]
Owner = Annotated[Principal, Depends(require_roles(Role.REGISTER_OWNER))]
PersonId = Annotated[str, Path(max_length=36, description="The merged (emptied) person's id.")]

router = APIRouter(responses=PROBLEM_RESPONSES)


class UnmergeOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "merge_id": "3e1f0c2a-…", "survivor_id": "5b0c6c1e-…", "merged_id": "9a7d4b10-…",
        "facts_moved": 4}]})
    merge_id: str
    survivor_id: str
    merged_id: str
    facts_moved: int


@router.post("/api/v1/people/{person_id}/unmerge", response_model=UnmergeOut,
             tags=["register"], summary="Undo the merge that emptied this person",
             responses={404: {"model": Problem, "description": "No merge to undo"}})
def unmerge(request: Request, hub: HubDep, principal: Owner, person_id: PersonId
            ) -> dict[str, Any]:
    with hub.uow() as uow:
        outcome = unmerge_person(uow, person_id, by=principal.token_id, clock=hub.clock,
                                 policy=hub.policy)
        for touched in (outcome.merged.person_id, outcome.survivor.person_id):
            audit_write(uow.connection, request, principal, "person", touched, touched)
        uow.commit()
    return {"merge_id": outcome.merge_id, "survivor_id": outcome.survivor.person_id,
            "merged_id": outcome.merged.person_id, "facts_moved": outcome.facts_moved}
