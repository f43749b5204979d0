"""The operations API (architecture section 5): sources, the message store, replay, queues.

Integration engineers manage all of it; auditors may read. Routes only translate: the
queries live in ``register_core.adapters.message_store``, sources in ``SourceRegistry``.
A poll source's bearer token is write-only: every response shows it as ``***``, and a PUT
that sends ``***`` back keeps the stored one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from register_core.adapters import message_store, outbox
from register_core.adapters.database import write_transaction
from register_core.adapters.security import Principal, Role
from register_core.adapters.sources import SourceDefinition
from register_core.domain.errors import InvalidValue, NotFound
from register_core.services.replay import ReplayRefusal, ReplayRefused, requeue_one
from s117hub.bootstrap import Hub

from .auth import audit_listed_errors, audit_message, audit_write, require_roles
from .errors import HttpProblem
from .routes_register import (
    PROBLEM_RESPONSES,
    HubDep,
    Limit,
    Offset,
    Problem,
    json_example,
    page_config,
)

MASK = "***"
# Inbox pseudo-sources of messages that could not be attributed: never a configured id.
RESERVED_SOURCE_IDS = frozenset({"unknown-sender", "unparseable"})

Engineer = Annotated[Principal, Depends(require_roles(Role.INTEGRATION_ENGINEER))]
OpsReader = Annotated[Principal,
                      Depends(require_roles(Role.INTEGRATION_ENGINEER, Role.AUDITOR))]

router = APIRouter(prefix="/api/v1", tags=["operations"], responses=PROBLEM_RESPONSES)

NOT_FOUND = {404: {"model": Problem, "description": "No such source or message"}}
CONFLICT = {409: {"model": Problem, "description": "Refused in the current state"}}

# -- sources -------------------------------------------------------------------------------

SOURCE_EXAMPLES = {
    "hl7": {"summary": "A trust EPR sending HL7 v2 over MLLP", "value": {
        "source_id": "trust-a", "kind": "hl7v2-mllp", "display_name": "Trust A EPR",
        "organisation_code": "RX1", "hl7_sending_application": "EPR",
        "hl7_sending_facility": "RX1", "code_map": {"S3": "03", "S2": "02", "CTO": "CTO"},
        "legal_status_location": {"segment": "ZLS", "code_field": 1}}},
    "poll": {"summary": "A council change feed pulled by the poller", "value": {
        "source_id": "council-x", "kind": "council-poll", "display_name": "Council X",
        "organisation_code": "E10000034",
        "poll": {"url": "https://council-x.example/s117/changes", "interval_seconds": 300,
                 "bearer_token": "write-only: shown as ***"}}},
}

SourceId = Annotated[str, Path(min_length=1, max_length=64, description="The source id.")]
SourceBody = Annotated[SourceDefinition, Body(openapi_examples=SOURCE_EXAMPLES)]


SOURCE_OUT = SOURCE_EXAMPLES["hl7"]["value"] | {"enabled": True}


class SourcePage(BaseModel):
    model_config = page_config(SOURCE_OUT)
    items: list[SourceDefinition]
    total: int


def _masked(definition: SourceDefinition) -> dict[str, Any]:
    body = definition.model_dump(mode="json")
    if body.get("poll") and body["poll"].get("bearer_token"):
        body["poll"]["bearer_token"] = MASK
    return body


def _checked(definition: SourceDefinition, existing: SourceDefinition | None
             ) -> SourceDefinition:
    """Refuse ids the inbox uses itself; swap a ``***`` token back for the stored one."""
    if len(definition.source_id) > 64:
        raise InvalidValue("at most 64 characters", field="source_id", rule="max-length")
    if definition.source_id in RESERVED_SOURCE_IDS:
        raise InvalidValue(f"{definition.source_id!r} is reserved for rejected messages",
                           field="source_id", rule="reserved-source-id")
    poll = definition.poll
    if poll is None or poll.bearer_token != MASK:
        return definition
    kept = existing.poll.bearer_token if existing and existing.poll else None
    if kept is None:
        raise InvalidValue("send the token itself: no stored token to keep",
                           field="poll.bearer_token", rule="masked-token-needs-stored-token")
    return definition.model_copy(update={"poll": poll.model_copy(update={"bearer_token": kept})})


def _audit_source_change(hub: Hub, request: Request, principal: Principal,
                         source_id: str) -> None:
    # A source is configuration, not a person's record: person_id stays empty. The registry
    # commits on its own, so this row follows in a transaction of its own.
    with write_transaction(hub.engine) as conn:
        audit_write(conn, request, principal, "source", source_id, None)


def _fresh(hub: Hub, source_id: str) -> SourceDefinition | None:
    hub.sources.invalidate()  # another process may have changed it within the cache TTL
    return hub.sources.get(source_id)


def _stored(hub: Hub, source_id: str) -> dict[str, Any]:
    """What was saved, as stored (the registry fills in a missing display name)."""
    definition = _fresh(hub, source_id)
    assert definition is not None, "saved a moment ago"
    return _masked(definition)


@router.get("/sources", response_model=SourcePage, summary="Partner systems that send")
def list_sources(hub: HubDep, _principal: OpsReader) -> dict[str, Any]:
    hub.sources.invalidate()
    items = [_masked(s) for s in hub.sources.list()]
    return {"items": items, "total": len(items)}


@router.post("/sources", response_model=SourceDefinition, status_code=201,
             summary="Add a source (409 if the id exists)",
             responses={**CONFLICT, 201: json_example(SOURCE_OUT)})
def create_source(request: Request, hub: HubDep, principal: Engineer,
                  definition: SourceBody) -> dict[str, Any]:
    if _fresh(hub, definition.source_id) is not None:
        raise HttpProblem(409, "conflict", f"source {definition.source_id!r} already exists; "
                          "PUT /api/v1/sources/{id} replaces it")
    definition = _checked(definition, None)
    hub.sources.save(definition, hub.clock.now())
    _audit_source_change(hub, request, principal, definition.source_id)
    return _stored(hub, definition.source_id)


@router.get("/sources/{source_id}", response_model=SourceDefinition, summary="One source",
            responses={**NOT_FOUND, 200: json_example(SOURCE_OUT)})
def get_source(hub: HubDep, _principal: OpsReader, source_id: SourceId) -> dict[str, Any]:
    definition = _fresh(hub, source_id)
    if definition is None:
        raise NotFound(f"no source {source_id!r}", field="source_id", rule="source-exists")
    return _masked(definition)


@router.put("/sources/{source_id}", response_model=SourceDefinition,
            summary="Create or replace a source (201 when new, 200 when replaced)",
            responses={200: json_example(SOURCE_OUT),
                       201: {"model": SourceDefinition, "description": "Created"}
                       | json_example(SOURCE_OUT)})
def put_source(request: Request, response: Response, hub: HubDep, principal: Engineer,
               source_id: SourceId, definition: SourceBody) -> dict[str, Any]:
    if definition.source_id != source_id:
        raise InvalidValue("the body's source_id must match the path", field="source_id",
                           rule="id-matches-path")
    definition = _checked(definition, _fresh(hub, source_id))
    created = hub.sources.save(definition, hub.clock.now())
    _audit_source_change(hub, request, principal, source_id)
    response.status_code = 201 if created else 200
    return _stored(hub, source_id)


@router.delete("/sources/{source_id}", status_code=204, response_class=Response,
               summary="Remove a source (its stored messages stay)", responses=NOT_FOUND)
def delete_source(request: Request, hub: HubDep, principal: Engineer,
                  source_id: SourceId) -> Response:
    if not hub.sources.delete(source_id):
        raise NotFound(f"no source {source_id!r}", field="source_id", rule="source-exists")
    _audit_source_change(hub, request, principal, source_id)
    return Response(status_code=204)


# -- message store -------------------------------------------------------------------------

Status = Literal["received", "applied", "failed", "rejected"]

MESSAGE_EXAMPLE: dict[str, Any] = {
    "id": 42, "source": "trust-a", "message_id": "MSG0001", "channel": "hl7v2-mllp",
    "message_type": "ADT^A01", "status": "failed", "received_at": "2026-06-01T09:00:00Z",
    "processed_at": None, "attempts": 0, "resent": 0,
    "error": {"error": "unknown-code", "message": "local code 'XX' is not in the code map",
              "location": "ZLS-1", "line": None},
    "person_ids": []}


class MessageOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [MESSAGE_EXAMPLE]})
    id: int = Field(description="The hub's id of the stored message.")
    source: str = Field(description="Source id, or `unknown-sender` / `unparseable`.")
    message_id: str = Field(description="The sender's id: MSH-10 control id or event id.")
    channel: str = Field(examples=["hl7v2-mllp"])
    message_type: str | None = Field(examples=["ADT^A01"])
    status: Status
    received_at: datetime
    processed_at: datetime | None
    attempts: int = Field(description="Times a worker processed it.")
    resent: int = Field(description="Duplicates the sender sent again (acknowledged only).")
    error: dict[str, Any] | None = Field(description="Why it failed or was rejected.")
    person_ids: list[str] = Field(description="Register people it changed (when applied).")


class MessageDetailOut(MessageOut):
    model_config = ConfigDict(json_schema_extra={"examples": [
        MESSAGE_EXAMPLE | {"payload": "MSH|^~\\&|EPR|RX1|…", "ack": "MSH|^~\\&|…MSA|AE|…"}]})
    payload: str = Field(description="The raw message as received (personal data).")
    ack: str | None = Field(description="The acknowledgement the hub sent back.")


class MessagePage(BaseModel):
    model_config = page_config(MESSAGE_EXAMPLE)
    items: list[MessageOut]
    total: int


# The API's wording of each refusal ``register_core.services.replay`` decides (409).
REPLAY_REFUSALS: dict[ReplayRefusal, str] = {
    "rejected": "a rejected message (unknown sender, unparseable, or refused as sent) cannot "
                "be replayed: configure the source or have the sender correct it, and ask "
                "the sender to send it again",
    "applied": "this message was applied already; replaying it appends its facts again — "
               "add ?force=true if that is intended",
    "changed": "the message changed while it was being replayed (another replay, or a "
               "worker applying it): look at it again",
}


class ReplayAccepted(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"id": 42,
                                                              "status": "received"}]})
    id: int
    status: Literal["received"]


@router.get("/messages", response_model=MessagePage,
            summary="Search the inbound message store (newest first)")
def search_messages(
    request: Request, hub: HubDep, principal: OpsReader,
    source: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[Status | None, Query()] = None,
    channel: Annotated[str | None, Query(max_length=20, examples=["hl7v2-mllp"])] = None,
    since: Annotated[datetime | None, Query(description="Received at or after (ISO 8601).")
                     ] = None,
    until: Annotated[datetime | None, Query(description="Received before (ISO 8601).")
                     ] = None,
    control_id: Annotated[str | None, Query(max_length=200,
                                            description="MSH-10 or event id.")] = None,
    person_id: Annotated[str | None, Query(max_length=36,
                                           description="A register person id.")] = None,
    limit: Limit = 50, offset: Offset = 0,
) -> dict[str, Any]:
    if since is not None and until is not None and message_store.utc(until) <= \
            message_store.utc(since):
        raise InvalidValue("until must be after since", field="until", rule="until-after-since")
    wanted = message_store.MessageFilter(
        source=source, statuses=[status] if status else None, channel=channel, since=since,
        until=until, control_id=control_id, person_id=person_id)
    with write_transaction(hub.engine) as conn:
        total, items = message_store.search(conn, wanted, limit=limit, offset=offset)
        audit_listed_errors(conn, request, principal, items)
    return {"items": items, "total": total}


# le: ids are 64-bit in the database; a larger one is a 422, not a driver overflow (500).
MessageId = Annotated[int, Path(ge=1, le=2**63 - 1,
                                description="The hub's id of the stored message.")]


@router.get("/messages/{message_id}", response_model=MessageDetailOut, responses=NOT_FOUND,
            summary="One stored message with its raw payload (audited read)")
def get_message(request: Request, hub: HubDep, principal: OpsReader,
                message_id: MessageId) -> dict[str, Any]:
    with write_transaction(hub.engine) as conn:
        message = message_store.get(conn, message_id)
        if message is None:
            raise NotFound(f"no message {message_id}", field="message_id",
                           rule="message-exists")
        # The payload names a patient: reading it is a read of personal data.
        audit_message(conn, request, principal, "read", message)
    return message


@router.get("/messages/{message_id}/raw", responses={
    **NOT_FOUND, 200: {"content": {"application/octet-stream": {}},
                       "description": "The bytes received, exactly."}},
    response_class=Response, summary="One stored message exactly as received (audited read)")
def get_message_bytes(request: Request, hub: HubDep, principal: OpsReader,
                      message_id: MessageId) -> Response:
    """The message byte for byte as it arrived — in the sender's character set (an HL7
    MSH-18 of 8859/1, or none and Latin-1 bytes), with a NUL or invalid bytes it was refused
    for — where `payload` in `GET /api/v1/messages/{id}` is the text the hub read."""
    with write_transaction(hub.engine) as conn:
        message = message_store.get(conn, message_id)
        received = message_store.received_bytes(conn, message_id)
        if message is None or received is None:
            raise NotFound(f"no message {message_id}", field="message_id",
                           rule="message-exists")
        audit_message(conn, request, principal, "read", message)
    return Response(received, media_type="application/octet-stream", headers={
        "content-disposition": f'attachment; filename="message-{message_id}.bin"'})


@router.post("/messages/{message_id}/replay", response_model=ReplayAccepted, status_code=202,
             summary="Process a stored message again from its raw payload",
             responses={**NOT_FOUND, **CONFLICT})
def replay_message(
    request: Request, hub: HubDep, principal: Engineer, message_id: MessageId,
    force: Annotated[bool, Query(description="Required to replay an `applied` message, "
                                 "whose facts would be appended again.")] = False,
) -> dict[str, Any]:
    """Put a stored message back to `received` and hint a worker; it is mapped afresh.

    Replay is for **failed** messages after the cause is fixed — a code-map entry or another
    change to the source's configuration (`PUT /api/v1/sources/{id}`). A `rejected` message
    (unknown sender, unparseable) was never attributed to a source and cannot be replayed:
    the sender must send it again once configured. An `applied` message is refused (409)
    unless `force=true`, because re-applying it appends its facts to the register again.
    A message still `received` is only hinted again.
    """
    try:
        message = requeue_one(hub.inbox, message_id, force=force)
    except ReplayRefused as refused:
        raise HttpProblem(409, "conflict", REPLAY_REFUSALS[refused.reason]) from None
    with write_transaction(hub.engine) as conn:
        audit_message(conn, request, principal, "write", message, message["people_concerned"])
    hub.notify(message["partition"])
    return {"id": message_id, "status": "received"}


# -- queues --------------------------------------------------------------------------------


class QueueFiguresOut(BaseModel):
    depth: int = Field(description="Received, waiting for a worker. A message stays received "
                       "(and counted here) until the transaction that applies it commits: "
                       "inbound has no separate in-flight state.")
    failed: int
    rejected: int
    applied_last_hour: int
    oldest_received_age_seconds: float | None = Field(
        description="Age of the oldest message still waiting; null when none waits.")


class InboundQueueOut(QueueFiguresOut):
    source: str
    channel: str


class InboundQueues(BaseModel):
    queues: list[InboundQueueOut]
    totals: QueueFiguresOut


class OutboundQueueOut(BaseModel):
    subscription_id: str
    depth: int = Field(description="Deliveries waiting to be sent (pending or retrying).")
    in_flight: int = Field(description="Deliveries a worker has claimed and is sending.")
    failed: int = Field(description="Dead letters: out of attempts or refused by the "
                        "partner; `POST /deliveries/{id}/retry` sends one again.")
    breached: int = Field(description="Open deliveries past their five-working-day due time.")
    oldest_age_seconds: float | None = Field(
        description="Age of the oldest delivery waiting or in flight; null when none.")


class OutboundQueues(BaseModel):
    """Per subscriber, open deliveries only: one with nothing open is not listed."""

    queues: list[OutboundQueueOut]


class QueuesOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "as_of": "2026-06-01T09:00:00+00:00",
        "inbound": {"queues": [{"source": "trust-a", "channel": "hl7v2-mllp", "depth": 2,
                                "failed": 1, "rejected": 0, "applied_last_hour": 120,
                                "oldest_received_age_seconds": 3.5}],
                    "totals": {"depth": 2, "failed": 1, "rejected": 0,
                               "applied_last_hour": 120,
                               "oldest_received_age_seconds": 3.5}},
        "outbound": {"queues": [{"subscription_id": "council-x", "depth": 1, "in_flight": 0,
                                 "failed": 0, "breached": 0,
                                 "oldest_age_seconds": 12.0}]}}]})
    as_of: datetime
    inbound: InboundQueues
    outbound: OutboundQueues


@router.get("/queues", response_model=QueuesOut,
            summary="Queue depth, failures and age: inbound per source and channel, "
            "outbound per subscriber")
def queues(hub: HubDep, _principal: OpsReader) -> dict[str, Any]:
    now = hub.clock.now()
    with hub.engine.connect() as conn:
        per_queue, totals = message_store.inbound_queues(conn, now)
        outbound = outbox.queues(conn, now)
    return {
        "as_of": now,
        "inbound": {"queues": [{"source": source, "channel": channel, **vars(figures)}
                               for source, channel, figures in per_queue],
                    "totals": vars(totals)},
        "outbound": {"queues": outbound},
    }
