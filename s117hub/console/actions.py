"""What the console's buttons do: the same adapter and service calls as the API routes
(``routes_operations``, ``routes_outbound``, ``routes_exceptions``), each audited the same way.

Refusals are the API's (409 for a rejected or already-applied message, a delivery that is not
failed, or a newer state already delivered), raised as ``Refused`` so they show as a page.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import Request
from pydantic import TypeAdapter, ValidationError

from register_core.adapters import outbox
from register_core.adapters.security import Principal
from register_core.domain.errors import InvalidValue, NotFound
from register_core.services.replay import ReplayRefusal, ReplayRefused, requeue_one
from s117hub.api.auth import audit_message, audit_write
from s117hub.api.corrections import CorrectionIn
from s117hub.api.routes_exceptions import assign_and_audit, close_and_audit
from s117hub.api.routes_outbound import get_outbound
from s117hub.bootstrap import Hub

from .web import Refused, read_and_audit

# The corrections a resolve form may apply, and what its one free-text box means for each.
CORRECTION_TYPES: dict[str, str | None] = {
    "s117.confirmed": None,
    "aftercare-plan.agreed": None,
    "review.completed": None,
    "named-practitioner.set": "name",
    "ordinary-residence.changed": "council_code",
    "child.s85-notified": None,
}
_DATE_FIELD = {"s117.confirmed": "start"}
_corrections: TypeAdapter[Any] = TypeAdapter(CorrectionIn)


# The console's wording of each refusal ``register_core.services.replay`` decides (409).
REPLAY_REFUSALS: dict[ReplayRefusal, str] = {
    "rejected": "A rejected message (unknown sender or unparseable) cannot be replayed: "
                "configure the source and ask the sender to send it again.",
    "applied": "This message was applied already; replaying it appends its facts again. "
               "Tick “replay anyway” if that is intended.",
    "changed": "The message changed while it was being replayed (another replay, or a "
               "worker applying it): look at it again.",
}


def replay_message(request: Request, hub: Hub, principal: Principal, message_id: int, *,
                   force: bool) -> None:
    """``POST /api/v1/messages/{id}/replay``: back to ``received``, and a worker is hinted."""
    try:
        message = requeue_one(hub.inbox, message_id, force=force)
    except ReplayRefused as refused:
        raise Refused(409, REPLAY_REFUSALS[refused.reason]) from None
    with hub.engine.begin() as conn:
        audit_message(conn, request, principal, "write", message, message["people_concerned"])
    hub.notify(message["partition"])


def retry_delivery(request: Request, hub: Hub, principal: Principal, delivery_id: int, *,
                   force: bool) -> None:
    """``POST /api/v1/deliveries/{id}/retry``: a dead letter goes back to ``pending``."""
    with read_and_audit(hub) as conn:
        item = outbox.get(conn, delivery_id)
        if item is None:
            raise NotFound(f"no delivery {delivery_id}", field="delivery_id",
                           rule="delivery-exists")
        if item["status"] != "failed":
            raise Refused(409, f"Delivery {delivery_id} is {item['status']}; only a failed "
                               "delivery can be retried.")
        newer = outbox.later_delivered(conn, item)
        if newer is not None and not force:
            raise Refused(409, f"Delivery {newer} already gave the partner a newer state for "
                               "this person. Tick “send the older state anyway” to retry.")
        outbox.retry_failed(conn, delivery_id, hub.clock.now())
        audit_write(conn, request, principal, "delivery", str(delivery_id), item["person_id"])
    get_outbound(request, hub).hint(item["subscription_id"])


def assign_exception(request: Request, hub: Hub, principal: Principal, exception_id: str,
                     assignee: str) -> None:
    assign_and_audit(request, hub, principal, exception_id, assignee)


def close_exception(request: Request, hub: Hub, principal: Principal, exception_id: str, *,
                    decision: str, reason: str, correction: Any | None = None) -> None:
    """Resolve (with ``decision``) or dismiss (``decision="dismiss"``), as the API does."""
    close_and_audit(request, hub, principal, exception_id, decision, reason, correction)


# The review form's joint choice: yes / no / unknown ("" or "unknown": the API's null).
_JOINT: dict[str, bool | None] = {"yes": True, "no": False, "unknown": None, "": None}


def correction_from_form(kind: str, on: str, value: str, *, review_kind: str = "",
                         joint: str = "") -> Any | None:
    """The resolve form's optional correction (type, date, text; a review's kind and whether
    it was joint) as the API's ``apply``."""
    kind = kind.strip()
    if not kind:
        return None
    if kind not in CORRECTION_TYPES:
        raise InvalidValue("unknown correction type", field="apply.type",
                           rule="exception-correction")
    body: dict[str, Any] = {"type": kind}
    if on.strip():
        try:
            body[_DATE_FIELD.get(kind, "date")] = date.fromisoformat(on.strip())
        except ValueError:
            raise InvalidValue("the correction's date must be YYYY-MM-DD",
                               field="apply.date", rule="iso-date") from None
    if kind == "review.completed":
        # Said on the form, not assumed: a review recorded joint when it was not would
        # let an ending stand that joint policy 16.1 says needs a joint review.
        if joint.strip() not in _JOINT:
            raise InvalidValue("joint is yes, no or unknown", field="apply.joint",
                               rule="exception-correction")
        body["kind"] = review_kind.strip() or "scheduled"
        body["joint"] = _JOINT[joint.strip()]
    text_field = CORRECTION_TYPES[kind]
    if text_field is not None:
        body[text_field] = value.strip()
    try:
        return _corrections.validate_python(body)
    except ValidationError as invalid:
        fields = ", ".join(".".join(str(p) for p in e["loc"][1:]) or "apply"
                           for e in invalid.errors())
        raise InvalidValue(f"the correction is incomplete or invalid ({fields})",
                           field="apply", rule="exception-correction") from None
