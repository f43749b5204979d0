"""The outbound outbox over SQLAlchemy Core: one row per (status change, subscriber).

States of a delivery::

    pending ──claim──▶ sending ──2xx / AA──────────────▶ delivered
       ▲                  │ ──timeout, 5xx, 429, AE──▶ retrying ──claim──▶ sending …
       │                  │ ──4xx, AR, last attempt──▶ failed (dead letter)
       └──manual retry────┴────────────────────────────── failed
    (a lease that runs out puts ``sending`` back to ``retrying``: the worker died)
    pending, retrying, failed ──a later one of the person delivered──▶ superseded
    pending, retrying, failed ──removed subscriber, or by hand──▶ cancelled

A breach (``breached_at``) is recorded once, when an open delivery passes its due time or one
is delivered after it, and is never cleared: a delivery later superseded or cancelled still
missed its deadline, and the SLA figures count it so.

A disabled subscriber's deliveries are queued all the same and wait (no worker claims them)
until it is enabled again; their SLA clock runs meanwhile: the five-working-day duty is the
hub's, whatever the reason the partner was not told.

When a delivery is delivered, the partner holds a state newer than any earlier delivery of
the same subscriber and person that is still open (normally a dead letter: earlier ones go
first): those are closed as ``superseded`` (``superseded_by`` the delivered one), so they
neither wait for a retry nor run into an SLA breach.

A delivery is claimed only when no earlier delivery of the same subscriber and person is
pending, sending or retrying, so each partner sees one person's changes in order. On
PostgreSQL claims use ``FOR UPDATE SKIP LOCKED`` so any number of workers share the work;
SQLite has one writer at a time, which serialises claims anyway.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)

from .database import as_utc as utc
from .tables import (
    outbound_changes,
    outbound_deliveries,
    register_exceptions,
    subscriptions,
)

d = outbound_deliveries
WAITING = ("pending", "retrying")
IN_ORDER = ("pending", "sending", "retrying")  # blocks later deliveries of the same person
OPEN = ("pending", "sending", "retrying", "failed")  # not (yet) delivered: the SLA runs
SUPERSEDABLE = ("pending", "retrying", "failed")  # open and not in flight
STATUSES = ("pending", "sending", "retrying", "delivered", "failed", "cancelled",
            "superseded")
BODY_LIMIT = 4000
BREACH_KIND = "delivery-sla-breach"


@dataclass(frozen=True)
class NewDelivery:
    subscription_id: str
    kind: str
    received_at: datetime
    due_at: datetime


@dataclass(frozen=True)
class Claimed:
    id: int
    subscription_id: str
    person_id: str
    kind: str
    idempotency_key: str
    attempts: int  # including this one
    claim: str
    change_id: int
    document: dict[str, Any]
    due_at: datetime


@dataclass(frozen=True)
class Result:
    """What one attempt came to; ``status`` is delivered, retrying or failed."""

    id: int
    claim: str
    status: str
    status_code: int | None = None
    error: dict[str, Any] | None = None
    body: str | None = None
    next_attempt_at: datetime | None = None


_INSERT_CHANGE = insert(outbound_changes).returning(outbound_changes.c.id)
_INSERT_DELIVERIES = insert(d).returning(d.c.id, sort_by_parameter_order=True)


def add_change(conn: Connection, *, person_id: str, changes: list[dict[str, Any]],
               document: dict[str, Any], received_at: datetime, now: datetime,
               deliveries: list[NewDelivery]) -> tuple[int, list[int]]:
    """Store the change and its deliveries in the caller's transaction.

    Ids increase with each change (the person's row lock orders a person's changes), which
    is the order the deliveries of one subscriber and person go out in."""
    change_id = conn.execute(_INSERT_CHANGE, {
        "person_id": person_id, "changes": changes, "document": document,
        "received_at": received_at, "created_at": now}).scalar_one()
    rows = [{"change_id": change_id, "subscription_id": new.subscription_id,
             "person_id": person_id, "kind": new.kind,
             "idempotency_key": uuid.uuid4().hex[:20].upper(), "status": "pending",
             "attempts": 0, "next_attempt_at": now, "received_at": new.received_at,
             "due_at": new.due_at, "created_at": now, "updated_at": now, "manual_retries": 0}
            for new in deliveries]
    return change_id, list(conn.execute(_INSERT_DELIVERIES, rows).scalars())


def _earlier_open() -> Any:
    e = outbound_deliveries.alias("earlier")
    return exists().where(and_(e.c.subscription_id == d.c.subscription_id,
                               e.c.person_id == d.c.person_id, e.c.id < d.c.id,
                               e.c.status.in_(IN_ORDER)))


def claim(conn: Connection, subscription_id: str, *, now: datetime, lease_until: datetime,
          limit: int) -> list[Claimed]:
    """Claim up to ``limit`` due deliveries, each the head of its person's queue."""
    heads = (select(d.c.id).where(and_(d.c.subscription_id == subscription_id,
                                       d.c.status.in_(WAITING), d.c.next_attempt_at <= now,
                                       ~_earlier_open()))
             .order_by(d.c.id).limit(limit))
    if conn.dialect.name == "postgresql":
        heads = heads.with_for_update(skip_locked=True, of=d)
    token = uuid.uuid4().hex
    # The transport follows the subscription's kind: a row queued just before a kind change
    # is sent in the new format, and says so from its first attempt on.
    current_kind = (select(subscriptions.c.kind)
                    .where(subscriptions.c.id == d.c.subscription_id).scalar_subquery())
    claimed = conn.execute(
        update(d).where(d.c.id.in_(heads.scalar_subquery()))
        .values(status="sending", claim=token, lease_until=lease_until,
                attempts=d.c.attempts + 1, updated_at=now,
                kind=func.coalesce(current_kind, d.c.kind))
        .returning(d.c.id, d.c.person_id, d.c.kind, d.c.idempotency_key, d.c.attempts,
                   d.c.change_id, d.c.due_at)).all()
    if not claimed:
        return []
    documents = dict(conn.execute(
        select(outbound_changes.c.id, outbound_changes.c.document)
        .where(outbound_changes.c.id.in_({r.change_id for r in claimed}))).all())
    return [Claimed(id=r.id, subscription_id=subscription_id, person_id=r.person_id,
                    kind=r.kind, idempotency_key=r.idempotency_key, attempts=r.attempts,
                    claim=token, change_id=r.change_id, document=documents[r.change_id],
                    due_at=r.due_at) for r in sorted(claimed, key=lambda r: r.id)]


_SETTLE = (update(d).where(d.c.id == bindparam("did"))
           .values(status=bindparam("status"), claim=None, lease_until=None,
                   updated_at=bindparam("now"), last_status_code=bindparam("code"),
                   last_error=bindparam("error"), response_body=bindparam("body"),
                   delivered_at=bindparam("delivered_at"),
                   next_attempt_at=bindparam("next_at")))


def record(conn: Connection, results: list[Result], now: datetime) -> list[int]:
    """Store attempts' outcomes; returns the ids whose claim was still ours (the others were
    re-claimed after their lease ran out, and that claim's outcome counts instead)."""
    if not results:
        return []
    by_id = {r.id: r for r in results}
    owned = (select(d.c.id, d.c.claim, d.c.next_attempt_at, d.c.subscription_id,
                    d.c.person_id).where(d.c.id.in_(by_id)))
    if conn.dialect.name == "postgresql":
        owned = owned.with_for_update()
    rows = [row for row in conn.execute(owned) if row.claim == by_id[row.id].claim]
    if rows:
        conn.execute(_SETTLE, [{
            "did": row.id, "status": by_id[row.id].status, "now": now,
            "code": by_id[row.id].status_code, "error": by_id[row.id].error,
            "body": by_id[row.id].body[:BODY_LIMIT] if by_id[row.id].body else None,
            "delivered_at": now if by_id[row.id].status == "delivered" else None,
            "next_at": (by_id[row.id].next_attempt_at or now)
            if by_id[row.id].status == "retrying" else row.next_attempt_at}
            for row in rows])
        delivered = [row for row in rows if by_id[row.id].status == "delivered"]
        if delivered:
            conn.execute(_SUPERSEDE, [{"sub": row.subscription_id, "person": row.person_id,
                                       "did": row.id, "now": now}
                                      for row in sorted(delivered, key=lambda r: r.id)])
    return sorted(row.id for row in rows)


_SUPERSEDE = (update(d).where(and_(d.c.subscription_id == bindparam("sub"),
                                   d.c.person_id == bindparam("person"),
                                   d.c.id < bindparam("did"),
                                   # not IN (…): an expanding parameter cannot executemany
                                   or_(*(d.c.status == status for status in SUPERSEDABLE))))
              .values(status="superseded", superseded_by=bindparam("did"), claim=None,
                      lease_until=None, updated_at=bindparam("now")))


def release_expired(conn: Connection, now: datetime) -> int:
    """Claims whose lease ran out (the worker died): back to ``retrying``, due at once."""
    return conn.execute(update(d).where(and_(d.c.status == "sending", d.c.lease_until < now))
                        .values(status="retrying", claim=None, lease_until=None,
                                next_attempt_at=now, updated_at=now)).rowcount


def due_subscriptions(conn: Connection, now: datetime, subscription_ids: list[str]
                      ) -> list[str]:
    """Of these subscribers, those with a delivery due now (one index probe each; it may
    be blocked behind an earlier one in flight, which the claim will find)."""
    due = []
    for sid in subscription_ids:
        if conn.execute(select(d.c.id).where(and_(
                d.c.subscription_id == sid, d.c.status.in_(WAITING),
                d.c.next_attempt_at <= now)).limit(1)).first():
            due.append(sid)
    return due


def next_attempt_at(conn: Connection, subscription_id: str) -> datetime | None:
    return conn.execute(select(func.min(d.c.next_attempt_at)).where(and_(
        d.c.subscription_id == subscription_id, d.c.status.in_(WAITING)))).scalar_one()


def cancel_open(conn: Connection, subscription_id: str, now: datetime) -> int:
    """A removed subscriber's waiting deliveries go nowhere: cancelled, history kept."""
    return conn.execute(update(d).where(and_(d.c.subscription_id == subscription_id,
                                             d.c.status.in_(OPEN)))
                        .values(status="cancelled", claim=None, lease_until=None,
                                updated_at=now)).rowcount


def relabel_open(conn: Connection, subscription_id: str, kind: str, now: datetime) -> int:
    """A subscriber whose ``kind`` changed is sent everything not yet delivered in the new
    format (the transport follows the subscription): its open deliveries say so. Closed
    ones keep the kind they were sent, or closed, as."""
    return conn.execute(update(d).where(and_(d.c.subscription_id == subscription_id,
                                             d.c.status.in_(OPEN), d.c.kind != kind))
                        .values(kind=kind, updated_at=now)).rowcount


# -- operations ------------------------------------------------------------------------------

_COLUMNS = (d.c.id, d.c.subscription_id, d.c.person_id, d.c.kind, d.c.change_id,
            d.c.idempotency_key, d.c.status, d.c.attempts, d.c.next_attempt_at,
            d.c.received_at, d.c.due_at, d.c.created_at, d.c.updated_at, d.c.delivered_at,
            d.c.last_status_code, d.c.last_error, d.c.response_body, d.c.manual_retries,
            d.c.warned_at, d.c.breached_at, d.c.warning_alerted_at, d.c.breach_alerted_at,
            d.c.superseded_by)


def _item(row: Any) -> dict[str, Any]:
    """A row as a dict, every time in it aware UTC (SQLite hands back naive ones)."""
    return {key: utc(value) if isinstance(value, datetime) else value
            for key, value in row._mapping.items()}


def search(conn: Connection, *, status: str | None = None, subscription_id: str | None = None,
           person_id: str | None = None, limit: int = 50, offset: int = 0
           ) -> tuple[int, list[dict[str, Any]]]:
    conditions = []
    if status:
        conditions.append(d.c.status == status)
    if subscription_id:
        conditions.append(d.c.subscription_id == subscription_id)
    if person_id:
        conditions.append(d.c.person_id == person_id)
    where = and_(True, *conditions)
    total = conn.execute(select(func.count()).select_from(d).where(where)).scalar_one()
    rows = conn.execute(select(*_COLUMNS).where(where).order_by(d.c.id.desc())
                        .limit(limit).offset(offset))
    return total, [_item(r) for r in rows]


def get(conn: Connection, delivery_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(*_COLUMNS).where(d.c.id == delivery_id)).first()
    return _item(row) if row else None


def later_delivered(conn: Connection, delivery: dict[str, Any]) -> int | None:
    """A later delivery of the same subscriber and person already delivered (it carried a
    newer state), or None."""
    return conn.execute(select(func.min(d.c.id)).where(and_(
        d.c.subscription_id == delivery["subscription_id"],
        d.c.person_id == delivery["person_id"], d.c.id > delivery["id"],
        d.c.status == "delivered"))).scalar_one()


RETRYABLE = ("failed", "superseded")


def retry_failed(conn: Connection, delivery_id: int, now: datetime) -> bool:
    """A dead letter (or a superseded one, sent on purpose) back to ``pending`` with a fresh
    round of attempts; False unless failed or superseded."""
    return bool(conn.execute(update(d).where(and_(d.c.id == delivery_id,
                                                  d.c.status.in_(RETRYABLE)))
                             .values(status="pending", attempts=0, next_attempt_at=now,
                                     superseded_by=None,
                                     manual_retries=d.c.manual_retries + 1, updated_at=now)
                             ).rowcount)


CANCELLABLE = SUPERSEDABLE


def cancel(conn: Connection, delivery_id: int, now: datetime) -> bool:
    """Close an open delivery that is not in flight as ``cancelled`` (it will not be sent
    and its SLA clock stops); False unless pending, retrying or failed."""
    return bool(conn.execute(update(d).where(and_(d.c.id == delivery_id,
                                                  d.c.status.in_(CANCELLABLE)))
                             .values(status="cancelled", claim=None, lease_until=None,
                                     updated_at=now)).rowcount)


def queues(conn: Connection, now: datetime) -> list[dict[str, Any]]:
    """Per subscriber (by id): waiting, in flight, failed, oldest waiting age, SLA breaches
    open. A subscriber with nothing open is not listed."""
    rows = conn.execute(
        select(d.c.subscription_id, d.c.status, func.count(), func.min(d.c.created_at),
               func.count(d.c.breached_at))
        .where(d.c.status.in_(OPEN)).group_by(d.c.subscription_id, d.c.status))
    out: dict[str, dict[str, Any]] = {}
    for sub, status, count, oldest, breached in rows:
        q = out.setdefault(sub, {"subscription_id": sub, "depth": 0, "in_flight": 0,
                                 "failed": 0, "breached": 0, "oldest_age_seconds": None})
        q["breached"] += breached
        if status == "failed":
            q["failed"] += count
            continue
        q["depth" if status in WAITING else "in_flight"] += count
        age = (now - aware(oldest)).total_seconds()
        q["oldest_age_seconds"] = max(age, q["oldest_age_seconds"] or 0.0)
    return [out[sub] for sub in sorted(out)]


def aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes: they were stored in UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# -- SLA -------------------------------------------------------------------------------------

def sla_totals(conn: Connection) -> dict[str, int]:
    """``open_total``: not delivered yet; ``breached_total``: every delivery whose breach was
    recorded, whatever became of it since (delivered late, superseded, cancelled: a missed
    deadline stays missed); ``open_breached_total``: of those, the ones still open."""
    is_open = d.c.status.in_(OPEN)
    breached = d.c.breached_at.is_not(None)
    open_total, breached_total, open_breached = conn.execute(select(
        func.coalesce(func.sum(case((is_open, 1), else_=0)), 0),
        func.count(d.c.breached_at),
        func.coalesce(func.sum(case((and_(is_open, breached), 1), else_=0)), 0))).one()
    return {"open_total": int(open_total), "breached_total": int(breached_total),
            "open_breached_total": int(open_breached)}


def open_by_due(conn: Connection, *, limit: int, offset: int = 0,
                breached: bool | None = None) -> tuple[int, list[dict[str, Any]]]:
    """Open deliveries, soonest due first (``breached``: only those whose breach was
    recorded, or only those not); the total is of open ones only (``sla_totals`` counts
    closed breaches too)."""
    conditions = [d.c.status.in_(OPEN)]
    if breached is not None:
        conditions.append(d.c.breached_at.is_not(None) if breached
                          else d.c.breached_at.is_(None))
    where = and_(*conditions)
    total = conn.execute(select(func.count()).select_from(d).where(where)).scalar_one()
    rows = conn.execute(select(*_COLUMNS).where(where).order_by(d.c.due_at, d.c.id)
                        .limit(limit).offset(offset))
    return total, [_item(r) for r in rows]


def needing_warning(conn: Connection, warn_from: datetime, limit: int = 500
                    ) -> list[dict[str, Any]]:
    rows = conn.execute(select(*_COLUMNS).where(and_(
        d.c.status.in_(OPEN), d.c.due_at <= warn_from, d.c.warned_at.is_(None)))
        .order_by(d.c.due_at).limit(limit))
    return [_item(r) for r in rows]


def overdue(conn: Connection, now: datetime, limit: int = 500) -> list[dict[str, Any]]:
    """Open deliveries past due and not yet counted as a breach."""
    rows = conn.execute(select(*_COLUMNS).where(and_(
        d.c.status.in_(OPEN), d.c.due_at <= now, d.c.breached_at.is_(None)))
        .order_by(d.c.due_at).limit(limit))
    return [_item(r) for r in rows]


def delivered_late(conn: Connection, ids: list[int]) -> list[dict[str, Any]]:
    """Of ``ids`` just delivered, those that arrived after their due time, unrecorded."""
    if not ids:
        return []
    rows = conn.execute(select(*_COLUMNS).where(and_(
        d.c.id.in_(ids), d.c.status == "delivered", d.c.delivered_at > d.c.due_at,
        d.c.breached_at.is_(None))))
    return [_item(r) for r in rows]


def mark_warned(conn: Connection, delivery_id: int, now: datetime,
                alert_retry_at: datetime | None = None) -> bool:
    """True for exactly one caller, however many sweepers race. ``alert_retry_at``: when
    the warning alert is tried again unless the webhook accepts it first (None: no retry)."""
    return bool(conn.execute(update(d).where(and_(d.c.id == delivery_id,
                                                  d.c.warned_at.is_(None)))
                             .values(warned_at=now, alert_retry_at=alert_retry_at)).rowcount)


def mark_breached(conn: Connection, delivery: dict[str, Any], now: datetime,
                  subscriber: str, alert_retry_at: datetime | None = None) -> str | None:
    """Record the breach and open its exception; the exception id, or None if another
    sweeper got there first. ``alert_retry_at`` as for ``mark_warned``."""
    retry_at: Any = alert_retry_at if alert_retry_at is not None else d.c.alert_retry_at
    won = conn.execute(update(d).where(and_(d.c.id == delivery["id"],
                                            d.c.breached_at.is_(None)))
                       .values(breached_at=now, alert_retry_at=retry_at)).rowcount
    if not won:
        return None
    exception_id = str(uuid.uuid4())
    conn.execute(insert(register_exceptions).values(
        id=exception_id, person_id=delivery["person_id"], kind=BREACH_KIND, status="open",
        fingerprint=f"{BREACH_KIND}:{delivery['id']}",
        summary=(f"Status change not delivered to {subscriber} within five working days "
                 f"(delivery {delivery['id']})"),
        detail={"delivery_id": delivery["id"], "subscription_id": delivery["subscription_id"],
                "change_id": delivery["change_id"], "status": delivery["status"],
                "attempts": delivery["attempts"],
                "received_at": _iso(delivery["received_at"]),
                "due_at": _iso(delivery["due_at"]),
                "delivered_at": _iso(delivery["delivered_at"]),
                "last_status_code": delivery["last_status_code"],
                "last_error": delivery["last_error"]},
        raised=now))
    return exception_id


def _iso(value: datetime | None) -> str | None:
    return utc(value).isoformat() if value else None


# -- SLA alerts not accepted yet -------------------------------------------------------------

def alerts_due(conn: Connection, now: datetime, limit: int = 50) -> list[dict[str, Any]]:
    """Deliveries with an alert outstanding whose next try is due, longest waiting first."""
    rows = conn.execute(select(*_COLUMNS, d.c.alert_retry_at).where(and_(
        d.c.alert_retry_at.is_not(None), d.c.alert_retry_at <= now))
        .order_by(d.c.alert_retry_at, d.c.id).limit(limit))
    return [_item(r) for r in rows]


def claim_alert(conn: Connection, delivery_id: int, now: datetime, next_at: datetime) -> bool:
    """Take the next try of this delivery's outstanding alert, moving the try after it to
    ``next_at``: True for exactly one caller, however many sweepers race."""
    return bool(conn.execute(update(d).where(and_(
        d.c.id == delivery_id, d.c.alert_retry_at.is_not(None), d.c.alert_retry_at <= now))
        .values(alert_retry_at=next_at)).rowcount)


def alert_accepted(conn: Connection, delivery_id: int, kind: str, now: datetime) -> None:
    """The webhook took the ``warning`` or ``breach`` alert: record it; nothing is retried
    unless a breach alert is still outstanding (a warning accepted after the breach)."""
    if kind == "breach":
        values: dict[str, Any] = {"breach_alerted_at": now, "alert_retry_at": None}
    else:
        breach_outstanding = and_(d.c.breached_at.is_not(None),
                                  d.c.breach_alerted_at.is_(None))
        values = {"warning_alerted_at": now,
                  "alert_retry_at": case((breach_outstanding, d.c.alert_retry_at),
                                         else_=None)}
    conn.execute(update(d).where(d.c.id == delivery_id).values(**values))


def drop_alert(conn: Connection, delivery_id: int, now: datetime) -> None:
    """No try any more: the alert is moot (delivered, superseded by the breach alert) or
    was given up."""
    conn.execute(update(d).where(and_(d.c.id == delivery_id, d.c.alert_retry_at <= now))
                 .values(alert_retry_at=None))


def breach_exception_ids(conn: Connection, delivery_ids: list[int]) -> dict[int, str]:
    """The ``delivery-sla-breach`` exception of each delivery (by its fingerprint)."""
    if not delivery_ids:
        return {}
    by_print = {f"{BREACH_KIND}:{i}": i for i in delivery_ids}
    rows = conn.execute(select(register_exceptions.c.fingerprint, register_exceptions.c.id)
                        .where(register_exceptions.c.fingerprint.in_(by_print)))
    return {by_print[fingerprint]: eid for fingerprint, eid in rows}
