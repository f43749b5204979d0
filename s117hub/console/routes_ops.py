"""Integration engineers' pages: Flow, Messages (with replay), Deliveries (with retry).

Reading needs the roles of the API's read routes (engineer or auditor); replay and retry
the engineer's. Opening one message or delivery is audited as the API's GET is: the raw
payload and the partner's answer are a person's data.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Path, Query, Request, Response

from register_core.adapters import console_reads, message_store, outbox
from register_core.adapters.outbox import STATUSES as DELIVERY_STATUSES
from register_core.domain.errors import InvalidValue, NotFound
from s117hub.api.auth import audit_listed_errors, audit_message, audit_read

from . import actions, figures
from .filters import day_filter, england_midnight
from .web import (
    ENGINEER,
    OPS_READERS,
    REGISTER_READERS,
    SECURITY_HEADERS,
    ConsoleRoute,
    ConsoleUser,
    actor,
    hub_of,
    read_and_audit,
    render,
    see_other,
    viewer,
)

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
Reader = Annotated[ConsoleUser, Depends(viewer(OPS_READERS))]
# The Flow page's own refresh is not activity: an unattended console still times out.
PassiveReader = Annotated[ConsoleUser, Depends(viewer(OPS_READERS, touch=False))]
Engineer = Annotated[ConsoleUser, Depends(actor(ENGINEER))]
MESSAGE_STATUSES = ("received", "applied", "failed", "rejected")
PAGE_SIZE = 50
MAX_OFFSET = 1_000_000
Text = Annotated[str, Query(max_length=200)]


# -- flow ------------------------------------------------------------------------------------


@router.get("/ui/flow")
def flow_page(request: Request, user: Reader) -> Response:
    hub = hub_of(request)
    with hub.engine.connect() as conn:
        data = figures.flow(conn, hub.clock.now())
    return render(request, "flow.html", user, active="flow", flow=data)


@router.get("/ui/flow/fragment")
def flow_fragment(request: Request, user: PassiveReader) -> Response:
    hub = hub_of(request)
    with hub.engine.connect() as conn:
        data = figures.flow(conn, hub.clock.now())
    return render(request, "_flow.html", user, flow=data)


# -- messages ----------------------------------------------------------------------------


@router.get("/ui/messages")
def messages_page(request: Request, user: Reader, source: Text = "", status: Text = "",
                  since: Text = "", until: Text = "", control_id: Text = "",
                  person_id: Text = "",
                  offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> Response:
    hub = hub_of(request)
    if status and status not in MESSAGE_STATUSES:
        raise InvalidValue("unknown status", field="status", rule="known-status")
    first, last = day_filter(since, "since"), day_filter(until, "until")
    wanted = message_store.MessageFilter(
        source=source.strip() or None, statuses=[status] if status else None,
        since=england_midnight(first) if first else None,
        # The whole last day: the next English midnight (a DST day is 23 or 25 hours).
        until=england_midnight(last + timedelta(days=1)) if last else None,
        control_id=control_id.strip() or None, person_id=person_id.strip() or None)
    with read_and_audit(hub) as conn:
        total, items = message_store.search(conn, wanted, limit=PAGE_SIZE, offset=offset)
        audit_listed_errors(conn, request, user.principal, items)
        sources = sorted({q[0] for q in message_store.inbound_queues(conn, hub.clock.now())[0]})
    form = {"source": source, "status": status, "since": since, "until": until,
            "control_id": control_id, "person_id": person_id}
    return render(request, "messages.html", user, active="messages", items=items,
                  total=total, offset=offset, page_size=PAGE_SIZE, form=form,
                  sources=sources, statuses=MESSAGE_STATUSES)


MessageId = Annotated[int, Path(ge=1, le=2**62)]


@router.get("/ui/messages/{message_id}/raw")
def message_bytes(request: Request, user: Reader, message_id: MessageId) -> Response:
    """The message byte for byte as received (to send it again to a test system, or to see
    a charset problem): ``GET /api/v1/messages/{id}/raw`` for the console's session."""
    hub = hub_of(request)
    with read_and_audit(hub) as conn:
        message = message_store.get(conn, message_id)
        received = message_store.received_bytes(conn, message_id)
        if message is None or received is None:
            raise NotFound(f"no message {message_id}")
        audit_message(conn, request, user.principal, "read", message)
    return Response(received, media_type="application/octet-stream", headers={
        **SECURITY_HEADERS,
        "Content-Disposition": f'attachment; filename="message-{message_id}.bin"'})


@router.get("/ui/messages/{message_id}")
def message_page(request: Request, user: Reader, message_id: MessageId) -> Response:
    hub = hub_of(request)
    with read_and_audit(hub) as conn:
        message = message_store.get(conn, message_id)
        if message is None:
            raise NotFound(f"no message {message_id}")
        audit_message(conn, request, user.principal, "read", message)
        commands = console_reads.message_commands(conn, message_id)
        changes = console_reads.changes_from(conn, message["source"], message["message_id"])
        recorded = console_reads.facts_from(conn, message["source"], message["message_id"])
    return render(request, "message.html", user, active="messages", message=message,
                  commands=commands, changes=changes, facts=recorded,
                  may_replay=user.may(ENGINEER), may_read_people=user.may(REGISTER_READERS))


@router.post("/ui/messages/{message_id}/replay")
def replay(request: Request, user: Engineer, message_id: MessageId,
           force: Annotated[str, Form(max_length=10)] = "") -> Response:
    actions.replay_message(request, hub_of(request), user.principal, message_id,
                           force=force == "yes")
    return see_other(f"/ui/messages/{message_id}?done=replayed")


# -- deliveries --------------------------------------------------------------------------


@router.get("/ui/deliveries")
def deliveries_page(request: Request, user: Reader, status: Text = "",
                    subscription_id: Text = "", person_id: Text = "") -> Response:
    hub = hub_of(request)
    if status and status not in DELIVERY_STATUSES:
        raise InvalidValue("unknown status", field="status", rule="known-status")
    person = person_id.strip() or None
    # One person's deliveries are few: show them all (delivered too), to follow a change
    # from the register to each partner. Otherwise the engineer's worklist.
    shown: list[str | None] = [status] if status else ([None] if person else
                                                        ["failed", "retrying"])
    form = {"status": status, "subscription_id": subscription_id, "person_id": person_id}
    # Each section pages on its own: ``offset`` for a single list, ``offset_failed`` /
    # ``offset_retrying`` for the worklist's two, so the failed list is reachable past 50.
    params = {wanted: "offset" if len(shown) == 1 else f"offset_{wanted}" for wanted in shown}
    offsets = {wanted: _offset(request, param) for wanted, param in params.items()}
    sections = []
    with hub.engine.connect() as conn:
        for wanted in shown:
            total, items = outbox.search(conn, status=wanted,
                                         subscription_id=subscription_id.strip() or None,
                                         person_id=person, limit=PAGE_SIZE,
                                         offset=offsets[wanted])
            # The other sections keep their place while this one pages.
            kept = {params[o]: offsets[o] for o in shown if o != wanted and offsets[o]}
            sections.append({"status": wanted or "all", "total": total, "items": items,
                             "offset": offsets[wanted], "param": params[wanted],
                             "query": urlencode({**form, **kept})})
    return render(request, "deliveries.html", user, active="deliveries", sections=sections,
                  form=form, page_size=PAGE_SIZE, statuses=DELIVERY_STATUSES,
                  may_retry=user.may(ENGINEER))


def _offset(request: Request, name: str) -> int:
    """A page offset from the query string (its name depends on the sections shown)."""
    text = request.query_params.get(name, "").strip()
    if not text:
        return 0
    if not (text.isascii() and text.isdigit() and int(text) <= MAX_OFFSET):
        raise InvalidValue(f"an offset is a whole number up to {MAX_OFFSET}", field=name,
                           rule="offset")
    return int(text)


DeliveryId = Annotated[int, Path(ge=1, le=2**62)]


@router.get("/ui/deliveries/{delivery_id}")
def delivery_page(request: Request, user: Reader, delivery_id: DeliveryId) -> Response:
    hub = hub_of(request)
    with read_and_audit(hub) as conn:
        item = outbox.get(conn, delivery_id)
        if item is None:
            raise NotFound(f"no delivery {delivery_id}")
        audit_read(conn, request, user.principal, "delivery", str(delivery_id),
                   item["person_id"])
        newer = outbox.later_delivered(conn, item)
    return render(request, "delivery.html", user, active="deliveries", item=item,
                  newer=newer, may_retry=user.may(ENGINEER), now=hub.clock.now(),
                  aware=outbox.aware)


@router.post("/ui/deliveries/{delivery_id}/retry")
def retry(request: Request, user: Engineer, delivery_id: DeliveryId,
          force: Annotated[str, Form(max_length=10)] = "") -> Response:
    actions.retry_delivery(request, hub_of(request), user.principal, delivery_id,
                           force=force == "yes")
    return see_other(f"/ui/deliveries/{delivery_id}?done=retried")

