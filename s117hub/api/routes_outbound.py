"""The outbound API (architecture section 5): subscriptions, deliveries, the SLA view.

Integration engineers manage subscriptions and retry dead letters; auditors may read. A
subscription's bearer token is write-only: responses show ``***``, and a PUT that sends
``***`` back keeps the stored one. The routes only translate: queries live in
``register_core.adapters.outbox``, subscriptions in ``SubscriptionRegistry``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Connection

from mapping.council_models import control_character_in
from mapping.outbound import COUNCIL_EXAMPLE, CouncilStatusDocument
from register_core.adapters import outbox
from register_core.adapters.database import write_transaction
from register_core.adapters.security import Principal, Role
from register_core.adapters.subscriptions import SubscriptionDefinition, SubscriptionRegistry
from register_core.domain.errors import InvalidValue, NotFound
from register_core.services.outbound import remove_subscription

from .auth import audit_read, audit_write, require_roles
from .errors import HttpProblem
from .routes_register import (
    PROBLEM_RESPONSES,
    HubDep,
    Limit,
    Offset,
    Problem,
    example_of,
    json_example,
    page_config,
)

MASK = "***"
Engineer = Annotated[Principal, Depends(require_roles(Role.INTEGRATION_ENGINEER))]
OpsReader = Annotated[Principal,
                      Depends(require_roles(Role.INTEGRATION_ENGINEER, Role.AUDITOR))]
router = APIRouter(prefix="/api/v1", tags=["outbound"], responses=PROBLEM_RESPONSES)
NOT_FOUND = {404: {"model": Problem, "description": "No such subscription or delivery"}}
CONFLICT = {409: {"model": Problem, "description": "Refused in the current state"}}


class Outbound:
    """What the routes need: the registry, and (when wired) the tasks to hint workers."""

    def __init__(self, registry: SubscriptionRegistry, tasks: Any = None) -> None:
        self.registry = registry
        self.tasks = tasks

    def hint(self, subscription_id: str) -> None:
        if self.tasks is not None:
            self.tasks.hint([subscription_id])


def get_outbound(request: Request, hub: HubDep) -> Outbound:
    """``app.state.outbound_tasks`` (or ``hub.outbound``) when wired; otherwise a registry
    of our own, and the sweeper finds retried deliveries without a hint."""
    state = request.app.state
    if not hasattr(state, "outbound_api"):
        tasks = getattr(state, "outbound_tasks", None) or getattr(hub, "outbound", None)
        registry = getattr(tasks, "registry", None) or SubscriptionRegistry(hub.engine)
        state.outbound_api = Outbound(registry, tasks)
    return state.outbound_api  # type: ignore[no-any-return]


OutboundDep = Annotated[Outbound, Depends(get_outbound)]

# -- subscriptions -------------------------------------------------------------------------

SUBSCRIPTION_EXAMPLES = {
    "fhir": {"summary": "A trust EPR told by FHIR conditional PUT", "value": {
        "subscription_id": "trust-a-fhir", "kind": "fhir-r4", "display_name": "Trust A EPR",
        "endpoint": "https://epr.trust-a.example/fhir/R4",
        "credentials": {"bearer_token": "write-only: shown as ***"},
        "changes": {"fields": ["entitlement.status", "entitlement.ended"], "icbs": ["QGH"]}}},
    "council": {"summary": "A council told by REST JSON", "value": {
        "subscription_id": "council-x", "kind": "council-rest", "display_name": "Council X",
        "endpoint": "https://s117.council-x.example/hub/status-changes",
        "changes": {"councils": ["E10000034"]},
        "retry": {"max_attempts": 12, "min_backoff_seconds": 5, "max_backoff_seconds": 3600,
                  "timeout_seconds": 15}}},
    "hl7": {"summary": "A trust told by HL7 v2 ADT^A08 over MLLP", "value": {
        "subscription_id": "trust-b-mllp", "kind": "hl7v2-mllp", "endpoint": "10.0.0.7:2575",
        "hl7": {"receiving_application": "PAS", "receiving_facility": "RX2",
                "version": "2.4"}}},
}
SubscriptionId = Annotated[str, Path(min_length=1, max_length=64)]


def _control_character(value: Any, path: str = "") -> tuple[str, str] | None:
    """(where, U+code) of the first control character in a string anywhere in ``value``."""
    if isinstance(value, str):
        found = control_character_in(value)
        return (path, found) if found else None
    if isinstance(value, BaseModel):
        items: Any = ((name, getattr(value, name)) for name in type(value).model_fields)
    elif isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list | tuple):
        items = ((f"[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for key, item in items:
        where = f"{path}{key}" if str(key).startswith("[") or not path else f"{path}.{key}"
        if (hit := _control_character(item, where)) is not None:
            return hit
    return None


# Only request bodies are checked (a definition stored before must still load): a NUL cannot
# be stored in PostgreSQL (it was a 500), and a line break has no place in a name, an
# address, a token (an HTTP header) or an MSH field.
class SubscriptionIn(SubscriptionDefinition):
    """A subscription as sent: no text in it may hold a control character (422 naming the
    field, and where inside it)."""

    @field_validator("*")
    @classmethod
    def _one_line(cls, value: Any) -> Any:
        if (hit := _control_character(value)) is not None:
            where, code_point = hit
            raise ValueError(f"{where + ': ' if where else ''}control characters are not "
                             f"allowed (found {code_point})")
        return value


def _as_definition(sent: SubscriptionIn) -> SubscriptionDefinition:
    # The routes and the registry deal in the plain definition (equality, model_copy).
    return SubscriptionDefinition.model_validate(sent.model_dump())


SubscriptionBody = Annotated[SubscriptionIn, AfterValidator(_as_definition),
                             Body(openapi_examples=SUBSCRIPTION_EXAMPLES)]


SUBSCRIPTION_OUT = SUBSCRIPTION_EXAMPLES["council"]["value"] | {"enabled": True}


class SubscriptionPage(BaseModel):
    model_config = page_config(SUBSCRIPTION_OUT)
    items: list[SubscriptionDefinition]
    total: int


def _masked(definition: SubscriptionDefinition) -> dict[str, Any]:
    body = definition.model_dump(mode="json")
    if body["credentials"].get("bearer_token"):
        body["credentials"]["bearer_token"] = MASK
    return body


def _kept_token(definition: SubscriptionDefinition, existing: SubscriptionDefinition | None
                ) -> SubscriptionDefinition:
    if definition.credentials.bearer_token != MASK:
        return definition
    kept = existing.credentials.bearer_token if existing else None
    if kept is None:
        raise InvalidValue("send the token itself: no stored token to keep",
                           field="credentials.bearer_token",
                           rule="masked-token-needs-stored-token")
    credentials = definition.credentials.model_copy(update={"bearer_token": kept})
    return definition.model_copy(update={"credentials": credentials})


def _fresh(out: Outbound, subscription_id: str) -> SubscriptionDefinition | None:
    out.registry.invalidate()  # another process may have changed it within the cache TTL
    return out.registry.get(subscription_id)


def _audit_change(hub: Any, request: Request, principal: Principal, sid: str) -> None:
    with write_transaction(hub.engine) as conn:  # configuration, not a person's record
        audit_write(conn, request, principal, "subscription", sid, None)


@router.get("/subscriptions", response_model=SubscriptionPage,
            summary="Partner systems that receive status changes")
def list_subscriptions(out: OutboundDep, _principal: OpsReader) -> dict[str, Any]:
    out.registry.invalidate()
    items = [_masked(s) for s in out.registry.list()]
    return {"items": items, "total": len(items)}


@router.post("/subscriptions", response_model=SubscriptionDefinition, status_code=201,
             summary="Add a subscription (409 if the id exists)",
             responses={**CONFLICT, 201: json_example(SUBSCRIPTION_OUT)})
def create_subscription(request: Request, hub: HubDep, out: OutboundDep, principal: Engineer,
                        definition: SubscriptionBody) -> dict[str, Any]:
    if _fresh(out, definition.subscription_id) is not None:
        raise HttpProblem(409, "conflict", f"subscription {definition.subscription_id!r} "
                          "already exists; PUT /api/v1/subscriptions/{id} replaces it")
    definition = _kept_token(definition, None)
    out.registry.save(definition, hub.clock.now())
    _audit_change(hub, request, principal, definition.subscription_id)
    return _masked(_fresh(out, definition.subscription_id) or definition)


@router.get("/subscriptions/{subscription_id}", response_model=SubscriptionDefinition,
            summary="One subscription",
            responses={**NOT_FOUND, 200: json_example(SUBSCRIPTION_OUT)})
def get_subscription(out: OutboundDep, _principal: OpsReader,
                     subscription_id: SubscriptionId) -> dict[str, Any]:
    definition = _fresh(out, subscription_id)
    if definition is None:
        raise NotFound(f"no subscription {subscription_id!r}", field="subscription_id",
                       rule="subscription-exists")
    return _masked(definition)


@router.put("/subscriptions/{subscription_id}", response_model=SubscriptionDefinition,
            summary="Create or replace a subscription (201 when new, 200 when replaced)",
            responses={200: json_example(SUBSCRIPTION_OUT),
                       201: {"model": SubscriptionDefinition, "description": "Created"}
                       | json_example(SUBSCRIPTION_OUT)})
def put_subscription(request: Request, response: Response, hub: HubDep, out: OutboundDep,
                     principal: Engineer, subscription_id: SubscriptionId,
                     definition: SubscriptionBody) -> dict[str, Any]:
    """`enabled: false` pauses sending: status changes are still queued for the partner
    and go, in order, once it is enabled again; their five-working-day SLA clock runs
    meanwhile (the duty is the hub's), so a long pause shows as breaches. A new `kind`
    applies to everything not yet delivered: those deliveries are sent, and listed, in the
    new format."""
    if definition.subscription_id != subscription_id:
        raise InvalidValue("the body's subscription_id must match the path",
                           field="subscription_id", rule="id-matches-path")
    definition = _kept_token(definition, _fresh(out, subscription_id))
    now = hub.clock.now()
    created = out.registry.save(definition, now)
    with write_transaction(hub.engine) as conn:
        # The transport follows the subscription's kind: what is still to be sent goes in
        # the new format, and its deliveries say so (delivered ones keep theirs).
        outbox.relabel_open(conn, subscription_id, definition.kind, now)
        audit_write(conn, request, principal, "subscription", subscription_id, None)
    response.status_code = 201 if created else 200
    out.hint(subscription_id)  # e.g. re-enabled: its waiting deliveries may go now
    return _masked(_fresh(out, subscription_id) or definition)


@router.delete("/subscriptions/{subscription_id}", status_code=204, response_class=Response,
               summary="Remove a subscription; its undelivered changes are cancelled",
               responses=NOT_FOUND)
def delete_subscription(request: Request, hub: HubDep, out: OutboundDep, principal: Engineer,
                        subscription_id: SubscriptionId) -> Response:
    # One transaction: the subscriber, its undelivered deliveries and the audit row go
    # together, and a change being queued for it meanwhile is cancelled with them.
    try:
        with write_transaction(hub.engine) as conn:
            if remove_subscription(conn, subscription_id, hub.clock.now()) is None:
                raise NotFound(f"no subscription {subscription_id!r}",
                               field="subscription_id", rule="subscription-exists")
            audit_write(conn, request, principal, "subscription", subscription_id, None)
    finally:
        out.registry.invalidate()
    return Response(status_code=204)


# -- deliveries ----------------------------------------------------------------------------

DeliveryStatus = Literal["pending", "sending", "retrying", "delivered", "failed", "cancelled",
                         "superseded"]


class DeliveryOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": 17, "subscription_id": "council-x", "person_id": "6b1f8a56-…", "kind":
        "council-rest", "change_id": 1042, "idempotency_key": "3F0C5E0A9A1B4D7C8E2F",
        "status": "failed", "attempts": 1, "next_attempt_at": "2026-06-01T09:00:00Z",
        "received_at": "2026-06-01T08:59:58Z", "due_at": "2026-06-08T08:59:58Z",
        "created_at": "2026-06-01T09:00:00Z", "updated_at": "2026-06-01T09:00:01Z",
        "delivered_at": None, "last_status_code": 400,
        "last_error": {"kind": "http", "message": "HTTP 400: will not succeed as sent"},
        "manual_retries": 0, "warned_at": None, "breached_at": None,
        "warning_alerted_at": None, "breach_alerted_at": None, "superseded_by": None}]})
    id: int
    subscription_id: str
    person_id: str
    kind: str
    change_id: int
    idempotency_key: str = Field(description="Idempotency-Key header / MSH-10 on every try.")
    status: DeliveryStatus = Field(description=(
        "`superseded`: closed because a later delivery to the same subscriber for the same "
        "person was delivered (the partner holds a newer state); `cancelled`: closed by "
        "hand or because the subscription was removed."))
    attempts: int
    next_attempt_at: datetime
    received_at: datetime = Field(description="When the hub received the causing notice.")
    due_at: datetime = Field(description="Five England working days after received_at.")
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None
    last_status_code: int | None
    last_error: dict[str, Any] | None
    manual_retries: int
    warned_at: datetime | None
    breached_at: datetime | None
    warning_alerted_at: datetime | None = Field(
        description="When the alert webhook accepted the SLA warning (null: not yet).")
    breach_alerted_at: datetime | None = Field(
        description="When the alert webhook accepted the breach alert (null: not yet).")
    superseded_by: int | None = Field(
        description="The later delivered delivery that superseded this one.")


class DeliveryDetailOut(DeliveryOut):
    response_body: str | None = Field(description="The partner's last refusal, as sent.")


class DeliveryPage(BaseModel):
    model_config = page_config(example_of(DeliveryOut))
    items: list[DeliveryOut]
    total: int


class RetryAccepted(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"id": 17,
                                                              "status": "pending"}]})
    id: int
    status: Literal["pending"]


class Cancelled(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"id": 17,
                                                              "status": "cancelled"}]})
    id: int
    status: Literal["cancelled"]


# le: ids are 64-bit in the database; a larger one is a 422, not a driver overflow (500).
DeliveryId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.get("/deliveries", response_model=DeliveryPage, summary="The outbox (newest first)")
def list_deliveries(
    hub: HubDep, _principal: OpsReader,
    status: Annotated[DeliveryStatus | None, Query()] = None,
    subscription_id: Annotated[str | None, Query(max_length=64)] = None,
    person_id: Annotated[str | None, Query(max_length=36)] = None,
    limit: Limit = 50, offset: Offset = 0,
) -> dict[str, Any]:
    with hub.engine.connect() as conn:
        total, items = outbox.search(conn, status=status, subscription_id=subscription_id,
                                     person_id=person_id, limit=limit, offset=offset)
    return {"items": items, "total": total}


@router.get("/deliveries/{delivery_id}", response_model=DeliveryDetailOut,
            responses=NOT_FOUND, summary="One delivery with the partner's response (audited)")
def get_delivery(request: Request, hub: HubDep, principal: OpsReader,
                 delivery_id: DeliveryId) -> dict[str, Any]:
    with write_transaction(hub.engine) as conn:
        item = _delivery(conn, delivery_id)
        audit_read(conn, request, principal, "delivery", str(delivery_id), item["person_id"])
    return item


def _delivery(conn: Connection, delivery_id: int) -> dict[str, Any]:
    item = outbox.get(conn, delivery_id)
    if item is None:
        raise NotFound(f"no delivery {delivery_id}", field="delivery_id",
                       rule="delivery-exists")
    return item


@router.post("/deliveries/{delivery_id}/retry", response_model=RetryAccepted,
             status_code=202, responses={**NOT_FOUND, **CONFLICT},
             summary="Send a failed delivery (dead letter) again")
def retry_delivery(
    request: Request, hub: HubDep, out: OutboundDep, principal: Engineer,
    delivery_id: DeliveryId,
    force: Annotated[bool, Query(description="Required when a later change for the same "
                                 "partner and person was delivered already: this one "
                                 "carries an older state.")] = False,
) -> dict[str, Any]:
    """Only a `failed` (or `superseded`) delivery can be retried: it goes back to `pending`
    with a fresh round of attempts and the same idempotency key. When the partner already
    has a newer change for the person (always so for a `superseded` one), sending this older
    state is refused (409) unless `force=true`."""
    now = hub.clock.now()
    with write_transaction(hub.engine) as conn:
        item = _delivery(conn, delivery_id)
        if item["status"] not in outbox.RETRYABLE:
            raise HttpProblem(409, "conflict", f"delivery {delivery_id} is {item['status']}; "
                              "only a failed delivery can be retried")
        newer = item["superseded_by"] or outbox.later_delivered(conn, item)
        if newer is not None and not force:
            raise HttpProblem(409, "conflict", f"delivery {newer} already gave the partner a "
                              "newer state for this person; add ?force=true to send this "
                              "older one anyway")
        outbox.retry_failed(conn, delivery_id, now)
        audit_write(conn, request, principal, "delivery", str(delivery_id), item["person_id"])
    out.hint(item["subscription_id"])
    return {"id": delivery_id, "status": "pending"}


@router.post("/deliveries/{delivery_id}/cancel", response_model=Cancelled,
             responses={**NOT_FOUND, **CONFLICT},
             summary="Close a delivery that is not to be sent (audited)")
def cancel_delivery(request: Request, hub: HubDep, principal: Engineer,
                    delivery_id: DeliveryId) -> dict[str, Any]:
    """A `pending`, `retrying` or `failed` delivery becomes `cancelled`: it is not sent, no
    longer open in `/sla` and cannot breach. A breach already recorded stays recorded: it
    still counts in `/sla` `breached_total` and the board report, and its exception stays
    for a person to resolve. One being sent right now (`sending`) cannot be cancelled."""
    now = hub.clock.now()
    with write_transaction(hub.engine) as conn:
        item = _delivery(conn, delivery_id)
        if not outbox.cancel(conn, delivery_id, now):
            raise HttpProblem(409, "conflict", f"delivery {delivery_id} is {item['status']}; "
                              "only a pending, retrying or failed delivery can be cancelled")
        audit_write(conn, request, principal, "delivery", str(delivery_id), item["person_id"])
    return {"id": delivery_id, "status": "cancelled"}


# -- SLA -----------------------------------------------------------------------------------


class SlaItem(DeliveryOut):
    seconds_left: float = Field(description="Until due; negative once breached.")
    breached: bool


class SlaOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "as_of": "2026-06-01T09:00:00+00:00", "open_total": 1, "breached_total": 2,
        "open_breached_total": 0,
        "items": [example_of(DeliveryOut) | {"seconds_left": 86400.0, "breached": False}]}]})
    as_of: datetime
    open_total: int = Field(description="Not delivered yet (pending, sending, retrying, "
                            "failed); superseded and cancelled ones are closed.")
    breached_total: int = Field(description=(
        "Every delivery whose SLA breach was recorded (`breached_at`), whatever became of "
        "it since: delivered late, superseded or cancelled ones still missed their due "
        "time."))
    open_breached_total: int = Field(description=(
        "Of those, the ones still open now (what `breached=true` lists)."))
    items: list[SlaItem] = Field(description="Open deliveries, soonest due first.")


@router.get("/sla", response_model=SlaOut,
            summary="Open deliveries by time left before the 5-working-day due time")
def sla(hub: HubDep, _principal: OpsReader,
        breached: Annotated[bool | None, Query(description="Only breached (true) or only "
                                               "not yet breached (false).")] = None,
        limit: Limit = 100, offset: Offset = 0) -> dict[str, Any]:
    now = hub.clock.now()
    with hub.engine.connect() as conn:
        _, rows = outbox.open_by_due(conn, limit=limit, offset=offset, breached=breached)
        totals = outbox.sla_totals(conn)
    items = []
    for row in rows:
        left = (outbox.aware(row["due_at"]) - now).total_seconds()
        items.append({**row, "seconds_left": left,
                      "breached": row["breached_at"] is not None or left < 0})
    return {"as_of": outbox.utc(now), **totals, "items": items}


@router.get("/outbound/council-status-document", response_model=CouncilStatusDocument,
            summary="The JSON document council-rest subscribers receive (an example)")
def council_status_document(_principal: OpsReader) -> dict[str, Any]:
    """Every `council-rest` subscriber gets `POST {endpoint}` with this body, headers
    `Content-Type: application/json`, `Idempotency-Key` (equal to `delivery_id`) and
    `Authorization: Bearer …` when configured. Answer 2xx once stored; 408, 425, 429 (with
    `Retry-After`) and 5xx are retried; any other 4xx is final (the delivery fails)."""
    return COUNCIL_EXAMPLE
