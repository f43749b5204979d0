"""FHIR R4 REST at ``/fhir/r4`` (architecture section 4): thin HTTP over connectors.fhir.

    POST /fhir/r4                   transaction or batch Bundle
    POST /fhir/r4/{type}            Patient | Encounter | EpisodeOfCare
    PUT  /fhir/r4/{type}/{id}
    GET  /fhir/r4/metadata          CapabilityStatement (any valid token)
    GET  /fhir/r4/EpisodeOfCare?patient.identifier=…   the register: S117 entitlements
    GET  /fhir/r4/EpisodeOfCare/{id}                   one (id = the person's register id)

Only a ``source-system`` token submits, as its own bound source, which must be a configured,
enabled ``fhir-r4`` source (else 403). The submission is stored in the inbox before the answer
(connectors.fhir.submission) and audited as a write of an ``inbound-message``. Errors are
OperationOutcome: the route's own here, the auth and routing ones via ``errors.py``.

A body over ``MAX_BODY_BYTES`` (the council REST limit, 10 MiB) is refused with 413 before it
is read in full, and not stored; a Bundle over 1,000 entries is refused with 413 and stored
``rejected`` (connectors.fhir.submission).

The register is read as FHIR by the roles that read it over ``/api/v1`` (register-owner,
auditor; not source-system): the resource is the outbound EpisodeOfCare
(connectors.fhir.search), and each episode served is audited as a read of that person's
``entitlement``, in the transaction that read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from connectors.fhir.capability import capability_statement
from connectors.fhir.outcome import FHIR_JSON, operation_outcome, outcome_for_http
from connectors.fhir.patients import RegisterPatients
from connectors.fhir.search import (
    SEARCH_PARAMETER,
    SearchError,
    episode_for,
    local_id_systems,
    matching_people,
    parse_search,
    searchset,
)
from connectors.fhir.submission import FhirAnswer, FhirSubmissions, Interaction, Submission
from register_core.adapters.database import write_transaction
from register_core.adapters.security import Principal, Role
from register_core.adapters.sources import SourceDefinition
from s117hub.bootstrap import Hub

from .auth import audit_read, audit_write, authenticate, get_hub, require_roles
from .errors import HttpProblem
from .routes_council import MAX_EVENTS_BYTES

MAX_BODY_BYTES = MAX_EVENTS_BYTES  # as a council REST request

BASE_PATH = "/fhir/r4"
ACCEPTED_MEDIA_TYPES = frozenset({"application/fhir+json", "application/json"})

router = APIRouter(prefix=BASE_PATH, tags=["fhir"])


class FhirResponse(JSONResponse):
    media_type = FHIR_JSON


@dataclass(frozen=True)
class Submitter:
    principal: Principal
    source: SourceDefinition


def fhir_submitter(principal: Annotated[Principal, Depends(require_roles(Role.SOURCE_SYSTEM))],
                   hub: Annotated[Hub, Depends(get_hub)]) -> Submitter:
    """The token's own source, when it is an enabled fhir-r4 source: anything else is 403."""
    source = hub.sources.get(principal.source) if principal.source else None
    if source is None or source.kind != "fhir-r4" or not source.enabled:
        raise HttpProblem(403, "forbidden", "this token is not bound to an enabled fhir-r4 "
                                            "source; it may not submit FHIR")
    return Submitter(principal, source)


CurrentSubmitter = Annotated[Submitter, Depends(fhir_submitter)]

# Synthetic: an NHS number from the 999 test range, no name.
PATIENT_EXAMPLE: dict[str, Any] = {
    "resourceType": "Patient", "id": "rx1-000123", "meta": {"versionId": "1"},
    "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000018"}],
    "birthDate": "1980-02-02"}
OUTCOME_EXAMPLE: dict[str, Any] = {
    "resourceType": "OperationOutcome", "issue": [{
        "severity": "information", "code": "informational",
        "diagnostics": "stored as message 42"}]}
CAPABILITY_EXAMPLE: dict[str, Any] = {
    "resourceType": "CapabilityStatement", "status": "active", "kind": "instance",
    "fhirVersion": "4.0.1", "format": ["application/fhir+json"],
    "rest": [{"mode": "server", "resource": [
        {"type": "Patient", "interaction": [{"code": "create"}, {"code": "update"}]}]}]}
_BODY_DOC: dict[str, Any] = {
    "requestBody": {"required": True, "content": {
        FHIR_JSON: {"schema": {"type": "object"}, "example": PATIENT_EXAMPLE},
        "application/json": {"schema": {"type": "object"}, "example": PATIENT_EXAMPLE}}},
}


def _fhir_example(example: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {FHIR_JSON: {"example": example}}}

_ANSWERS: dict[int | str, dict[str, Any]] = {
    400: {"description": "OperationOutcome: not JSON, not FHIR, fails R4 validation, or a "
                         "Bundle entry to POST/PUT without a resource"},
    401: {"description": "OperationOutcome: no valid token"},
    403: {"description": "OperationOutcome: not a source-system token of a fhir-r4 source"},
    404: {"description": "OperationOutcome: not a resource type the hub takes"},
    413: {"description": "OperationOutcome (too-costly): a body over 10 MiB (not stored), or "
                         "a Bundle of more than 1,000 entries (stored, rejected)"},
    422: {"description": "OperationOutcome: a code or business rule the hub cannot accept; "
                         "a Bundle entry of a type the hub does not take (`not-supported`, "
                         "the whole Bundle: transaction and batch are all or nothing); an "
                         "Encounter/EpisodeOfCare whose patient is neither in the Bundle, an "
                         "NHS number, nor a record the register holds for the source "
                         "(`not-found`, kept and replayable)"},
}


@router.get("/metadata", response_class=FhirResponse, dependencies=[Depends(authenticate)],
            summary="CapabilityStatement (FHIR 4.0.1)",
            responses={200: _fhir_example(CAPABILITY_EXAMPLE, "CapabilityStatement"),
                       401: _ANSWERS[401], 503: {"description": "OperationOutcome: the "
                                                 "database is unavailable"}})
def metadata(request: Request, hub: Annotated[Hub, Depends(get_hub)]) -> FhirResponse:
    return FhirResponse(capability_statement(_base_url(request), hub.clock.now()))


# -- the register as FHIR (read-only) ---------------------------------------------------------

RegisterReader = Annotated[Principal, Depends(require_roles(Role.REGISTER_OWNER, Role.AUDITOR))]
HubDep = Annotated[Hub, Depends(get_hub)]

# Synthetic: what mapping.outbound.episode_of_care renders, with the register id as ``id``.
EPISODE_EXAMPLE: dict[str, Any] = {
    "resourceType": "EpisodeOfCare", "id": "6b1f8a56-7d0e-4a53-9a38-0c5c2f1f9e11",
    "identifier": [{"system": "urn:s117hub:register-id",
                    "value": "6b1f8a56-7d0e-4a53-9a38-0c5c2f1f9e11"}],
    "status": "active",
    "type": [{"coding": [{"system": "urn:s117hub:episode-type", "code": "s117-aftercare",
                          "display": "Section 117 aftercare"}]}],
    "patient": {"identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number",
                               "value": "9990000018"}},
    "period": {"start": "2026-03-01"},
    "managingOrganization": {"identifier": {
        "system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "QGH"}},
    "extension": [{"url": "urn:s117hub:extension:responsible-council", "valueIdentifier": {
        "system": "https://www.ons.gov.uk/Id/gss-code", "value": "E10000034"}}]}
SEARCHSET_EXAMPLE: dict[str, Any] = {
    "resourceType": "Bundle", "type": "searchset", "timestamp": "2026-06-01T09:00:00+00:00",
    "total": 1, "link": [{"relation": "self", "url": "http://127.0.0.1:8117/fhir/r4/"
                          "EpisodeOfCare?patient.identifier=https%3A%2F%2Ffhir.nhs.uk%2FId"
                          "%2Fnhs-number%7C9990000018"}],
    "entry": [{"fullUrl": "http://127.0.0.1:8117/fhir/r4/EpisodeOfCare/"
                          "6b1f8a56-7d0e-4a53-9a38-0c5c2f1f9e11",
               "resource": EPISODE_EXAMPLE, "search": {"mode": "match"}}]}
# Declared here rather than as typed parameters: a FastAPI validation error would be a
# plain-JSON 422, and every refusal under /fhir/ is an OperationOutcome (checked in the route).
_SEARCH_DOC: dict[str, Any] = {"parameters": [{
    "name": SEARCH_PARAMETER, "in": "query", "required": True, "schema": {"type": "string"},
    "description": "One token: `https://fhir.nhs.uk/Id/nhs-number|<NHS number>`, a bare "
                   "NHS number, `urn:s117hub:register-id|<register id>`, or "
                   "`<a source's fhir_local_id_system>|<local id>`. No other parameter is "
                   "taken.",
    "example": "https://fhir.nhs.uk/Id/nhs-number|9990000018"}]}
_READ_DOC: dict[str, Any] = {"parameters": [{
    "name": "resource_id", "in": "path", "required": True, "schema": {"type": "string"},
    "description": "The person's register id (the EpisodeOfCare's logical id).",
    "example": "6b1f8a56-7d0e-4a53-9a38-0c5c2f1f9e11"}]}
_READ_ANSWERS: dict[int | str, dict[str, Any]] = {
    401: _ANSWERS[401],
    403: {"description": "OperationOutcome: not a register-owner or auditor token"},
    503: {"description": "OperationOutcome: the database is unavailable"},
}


@router.get("/EpisodeOfCare", response_class=FhirResponse, openapi_extra=_SEARCH_DOC,
            summary="Search the S117 register as EpisodeOfCare by patient identifier",
            responses={**_READ_ANSWERS, 200: _fhir_example(
                SEARCHSET_EXAMPLE, "searchset Bundle (total 0 and no entry when nothing "
                                   "matches)"),
                       400: {"description": "OperationOutcome: no, another or a malformed "
                                            "parameter (e.g. an NHS number that fails its "
                                            "check digit); `expression` names the part"}})
def search_episodes(request: Request, hub: HubDep,
                    principal: RegisterReader) -> FhirResponse:
    try:
        query = parse_search(request.query_params.multi_items(),
                             local_id_systems(hub.sources.list()))
    except SearchError as refused:
        return FhirResponse(refused.outcome(), status_code=refused.status)
    with write_transaction(hub.engine) as conn:
        episodes = []
        for person_id in matching_people(conn, query):
            episode = episode_for(conn, person_id, hub.clock, hub.policy)
            if episode is not None:
                audit_read(conn, request, principal, "entitlement", person_id, person_id)
                episodes.append(episode)
        # Built inside the transaction: a search that fails here records no reads.
        body = searchset(_base_url(request), query, episodes, hub.clock.now())
    return FhirResponse(body)


@router.get("/EpisodeOfCare/{resource_id}", response_class=FhirResponse,
            openapi_extra=_READ_DOC, summary="Read one person's S117 EpisodeOfCare",
            responses={**_READ_ANSWERS, 200: _fhir_example(EPISODE_EXAMPLE, "EpisodeOfCare"),
                       404: {"description": "OperationOutcome: no S117 episode with this id "
                                            "(no such person, or entitlement status none)"}})
def read_episode(request: Request, hub: HubDep, principal: RegisterReader) -> FhirResponse:
    person_id = request.path_params["resource_id"]
    with write_transaction(hub.engine) as conn:
        episode = episode_for(conn, person_id, hub.clock, hub.policy)
        if episode is not None:
            audit_read(conn, request, principal, "entitlement", person_id, person_id)
    if episode is None:
        return FhirResponse(outcome_for_http(404, "no S117 EpisodeOfCare with this id"),
                            status_code=404)
    return FhirResponse(episode)


@router.post("", response_class=FhirResponse, openapi_extra=_BODY_DOC,
             responses={**_ANSWERS, 200: _fhir_example(
                 {"resourceType": "Bundle", "type": "transaction-response", "entry": [
                     {"response": {"status": "201 Created"}}]},
                 "transaction-response or batch-response Bundle")},
             summary="Submit a transaction or batch Bundle")
async def post_bundle(request: Request, submitter: CurrentSubmitter) -> FhirResponse:
    return await _submit(request, submitter, "bundle")


@router.post("/{resource_type}", response_class=FhirResponse, openapi_extra=_BODY_DOC,
             responses={**_ANSWERS, 201: _fhir_example(OUTCOME_EXAMPLE, "Stored")},
             status_code=201,
             summary="Create a Patient, Encounter or EpisodeOfCare")
async def create_resource(request: Request, submitter: CurrentSubmitter,
                          resource_type: str) -> FhirResponse:
    return await _submit(request, submitter, "create", resource_type)


@router.put("/{resource_type}/{resource_id}", response_class=FhirResponse,
            openapi_extra=_BODY_DOC,
            responses={**_ANSWERS, 200: _fhir_example(OUTCOME_EXAMPLE, "Stored")},
            summary="Update (or create) a Patient, Encounter or EpisodeOfCare")
async def update_resource(request: Request, submitter: CurrentSubmitter, resource_type: str,
                          resource_id: str) -> FhirResponse:
    return await _submit(request, submitter, "update", resource_type, resource_id)


async def _submit(request: Request, submitter: Submitter, interaction: Interaction,
                  resource_type: str | None = None,
                  resource_id: str | None = None) -> FhirResponse:
    raw = await _read_body(request, MAX_BODY_BYTES)
    if raw is None:
        return FhirResponse(operation_outcome(
            "too-costly", f"the body is over {MAX_BODY_BYTES} bytes; send at most "
            f"{MAX_BODY_BYTES} bytes (split a large Bundle)"), status_code=413)
    hub: Hub = request.app.state.hub
    submissions = FhirSubmissions(request.app.state.intake, hub.clock,
                                  RegisterPatients(hub.engine))
    media = _media_type(request)

    def store_and_audit() -> Submission:
        if media is not None and media not in ACCEPTED_MEDIA_TYPES:
            submission = submissions.reject(
                submitter.source, raw, f"content type {media!r} is not taken; send "
                "application/fhir+json", status=415,
                outcome=operation_outcome("not-supported", f"content type {media!r} is not "
                                          "taken; send application/fhir+json"))
        else:
            submission = submissions.submit(submitter.source, raw, interaction=interaction,
                                            resource_type=resource_type,
                                            resource_id=resource_id)
        with write_transaction(hub.engine) as conn:
            audit_write(conn, request, submitter.principal, "inbound-message",
                        str(submission.inbox_id), None)
        return submission

    submission = await run_in_threadpool(store_and_audit)
    return _response(request, submission.answer)


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None once it is known to be over ``limit`` bytes (not read further)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            return None
    return bytes(body)


def _response(request: Request, answer: FhirAnswer) -> FhirResponse:
    headers = {"Location": f"{_base_url(request)}/{answer.location}"} if answer.location else None
    return FhirResponse(answer.body, status_code=answer.status, headers=headers)


def _media_type(request: Request) -> str | None:
    header = request.headers.get("content-type")
    if not header:
        return None  # lenient: a body without a content type is read as FHIR JSON
    return header.split(";", 1)[0].strip().lower()


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + BASE_PATH
