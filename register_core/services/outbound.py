"""Outbound status changes: who is told (outbox rows in the change's own transaction), what
an attempt's outcome means for the delivery, and the five-working-day SLA clock.

``enqueue_status_changes`` is called by the unit of work that recorded the change, with its
connection: the outbox rows commit or roll back with the register change, so no change is
ever lost between "recorded" and "queued" and none is queued that did not happen.
"""

from __future__ import annotations

import random
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, delete, select

from mapping.outbound import (
    Ended,
    EntitlementState,
    FieldChange,
    PersonState,
    StatusChange,
)
from register_core.adapters import outbox
from register_core.adapters.subscriptions import (
    RetrySettings,
    SubscriptionDefinition,
    load_all,
)
from register_core.adapters.tables import persons, subscriptions
from register_core.domain.calendar import add_working_days
from register_core.domain.position import Position

from .handlers import STATUS_FIELDS, Applied

ENGLAND = ZoneInfo("Europe/London")
SLA_WORKING_DAYS = 5
Change = tuple[str, str | None, str | None]


def due_time(received_at: datetime, working_days: int = SLA_WORKING_DAYS) -> datetime:
    """The same London wall-clock time, ``working_days`` England working days after the
    London date the notice was received on (weekends and bank holidays do not count)."""
    local = outbox.aware(received_at).astimezone(ENGLAND)
    day = add_working_days(local.date(), working_days)
    return datetime.combine(day, time(local.hour, local.minute, local.second),
                            tzinfo=ENGLAND).astimezone(UTC)


_EMPTY = frozenset({None, "none", "False"})  # a new person's "no entitlement, not on a CTO"
# A person without an entitlement row yet (new, or never detained) has no stored status: to
# partners that is status ``none`` and not on a CTO, as the published schema says
# (``EntitlementState``: status none | pending | active | ended, on_cto false by default).
_NO_ROW_YET = {"entitlement.status": "none", "entitlement.on_cto": "False"}


def status_changes(changes: Sequence[Change]) -> list[Change]:
    """The status-field changes partners are told of. A person's first save reports every
    field as changed from None (``entitlement.status`` None → ``none``): that is no news.
    An old status or CTO flag of None is told as ``none`` / ``False``, the same as for a
    person whose entitlement row says so."""
    return [(name, _NO_ROW_YET.get(name) if old is None else old, new)
            for name, old, new in changes
            if name in STATUS_FIELDS and not (old in _EMPTY and new in _EMPTY)]


def wanted_by(sub: SubscriptionDefinition, changes: Sequence[Change],
              position: Position | None) -> bool:
    """Whether the subscriber asked for this change (fields, and council / ICB before or
    after the change). A disabled subscriber is asked too: its deliveries are queued and wait
    until it is enabled again (no worker claims them meanwhile), so pausing a partner loses
    nothing; their SLA clock runs all the same (``outbox`` module docstring)."""
    names = {name for name, _, _ in status_changes(changes)}
    if not names or (sub.changes.fields and not names & set(sub.changes.fields)):
        return False
    ent = position.entitlement if position else None
    for wanted, field_name, now in (
            (sub.changes.councils, "entitlement.responsible_council",
             ent.responsible_council if ent else None),
            (sub.changes.icbs, "entitlement.responsible_icb",
             ent.responsible_icb if ent else None)):
        if not wanted:
            continue
        values = {now} | {old for name, old, _ in changes if name == field_name}
        if not values & set(wanted):
            return False
    return True


def snapshot(conn: Connection, person_id: str, position: Position, changes: Sequence[Change],
             received_at: datetime, now: datetime) -> StatusChange:
    """The state partners are told of, read in the change's own transaction."""
    who = conn.execute(select(persons.c.nhs_number, persons.c.family_name,
                              persons.c.given_name, persons.c.birth_date)
                       .where(persons.c.id == person_id)).first()
    ent = position.entitlement
    return StatusChange(
        change_id=0,  # the outbox row's id, filled in when rendered
        person=PersonState(register_id=person_id, nhs_number=who.nhs_number if who else None),
        family_name=who.family_name if who else None,
        given_name=who.given_name if who else None,
        birth_date=who.birth_date if who else None,
        entitlement=EntitlementState(
            status=ent.status, start=ent.start, trigger_section=ent.trigger_section,
            responsible_council=ent.responsible_council, responsible_icb=ent.responsible_icb,
            named_practitioner=ent.named_practitioner, next_review_due=ent.next_review_due,
            on_cto=position.on_cto,
            ended=Ended(date=ent.ended.date, reason=ent.ended.reason) if ent.ended else None),
        changes=[FieldChange(field=n, old=o, new=v) for n, o, v in status_changes(changes)],
        notice_received_at=received_at, changed_at=now)


def enqueue_status_changes(conn: Connection, applied: Applied, received_at: datetime,
                           now: datetime, *,
                           subscriptions: Iterable[SubscriptionDefinition] | None = None
                           ) -> list[int]:
    """Write one delivery per interested subscriber, in the caller's transaction.

    Returns the new delivery ids (empty when nothing partners care about changed). Pass
    ``subscriptions`` (e.g. ``SubscriptionRegistry.list()``) to skip reading them here.
    """
    changes = status_changes(applied.changes)
    if not changes or applied.position is None:
        return []
    subs = list(subscriptions) if subscriptions is not None else load_all(conn)
    wanted = [s for s in subs if wanted_by(s, changes, applied.position)]
    if not wanted:
        return []
    # The definitions may have been read before this transaction locked anything (or from a
    # cache): keep those still there, with their kind as it stands now.
    current = _held_subscriptions(conn, [s.subscription_id for s in wanted])
    wanted = [s for s in wanted if current.get(s.subscription_id) is not None]
    if not wanted:
        return []
    received_at = outbox.aware(received_at).astimezone(UTC)  # SQLite hands back naive UTC
    change = snapshot(conn, applied.person_id, applied.position, changes, received_at, now)
    due = due_time(received_at)
    _, ids = outbox.add_change(
        conn, person_id=applied.person_id,
        changes=[c.model_dump(mode="json") for c in change.changes],
        document=change.model_dump(mode="json", exclude={"change_id"}),
        received_at=received_at, now=now,
        deliveries=[outbox.NewDelivery(subscription_id=s.subscription_id,
                                       kind=current[s.subscription_id] or s.kind,
                                       received_at=received_at, due_at=due) for s in wanted])
    return ids


# Per transaction: the subscriptions it holds (locked on PostgreSQL), id -> kind, None: gone.
_held: weakref.WeakKeyDictionary[object, dict[str, str | None]] = weakref.WeakKeyDictionary()


def _held_subscriptions(conn: Connection, ids: Sequence[str]) -> dict[str, str | None]:
    """The kind of each subscription, None when it no longer exists, held until this
    transaction ends. On PostgreSQL the rows are locked ``FOR KEY SHARE`` (what a foreign
    key would take): removing a subscription waits for this transaction's deliveries to
    commit, so the removal cancels them too, and a removal committed first is seen here (no
    delivery is written for it). Without the lock a delivery written between a removal's
    read and its commit was left pending for a subscriber that no longer exists. Editing a
    subscription (PUT) does not wait on it: a kind changed meanwhile is put right when the
    delivery is claimed (``outbox.claim``). SQLite has one writer at a time, which orders
    them anyway. Read once per transaction and subscription (a batch queues hundreds of
    changes)."""
    transaction = conn.get_transaction()
    held = _held.setdefault(transaction, {}) if transaction is not None else {}
    missing = sorted(set(ids) - held.keys())
    if missing:
        query = (select(subscriptions.c.id, subscriptions.c.kind)
                 .where(subscriptions.c.id.in_(missing)).order_by(subscriptions.c.id))
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(read=True, key_share=True)
        found: dict[str, str] = {row.id: row.kind for row in conn.execute(query)}
        held.update({sid: found.get(sid) for sid in missing})
    return {sid: held[sid] for sid in ids}


def remove_subscription(conn: Connection, subscription_id: str, now: datetime) -> int | None:
    """Remove a subscriber and cancel its undelivered deliveries in the caller's
    transaction (one transaction: no window where the subscriber is gone but its deliveries
    still wait, and none is orphaned by a change queued meanwhile, see
    ``_held_subscriptions``). The number cancelled, or None when there was no such
    subscriber."""
    if not conn.execute(delete(subscriptions)
                        .where(subscriptions.c.id == subscription_id)).rowcount:
        return None
    return outbox.cancel_open(conn, subscription_id, now)


def enqueue_on_change(now: Callable[[], datetime]
                      ) -> Callable[[Connection, Applied], list[int]]:
    """For changes that no inbound message caused (the nightly sweep moving a position as
    time passes): the hub itself is the notice, so the SLA clock starts when it noticed."""

    # Read once per transaction (a sweep or merge page has hundreds of changes), not per change.
    read_in: weakref.WeakKeyDictionary[object, list[SubscriptionDefinition]] = (
        weakref.WeakKeyDictionary())

    def on_change(conn: Connection, applied: Applied) -> list[int]:
        at = now()
        transaction = conn.get_transaction()
        if transaction is None:
            return enqueue_status_changes(conn, applied, at, at)
        if transaction not in read_in:
            read_in[transaction] = load_all(conn)
        return enqueue_status_changes(conn, applied, at, at, subscriptions=read_in[transaction])

    return on_change


def render_change(claimed: outbox.Claimed) -> StatusChange:
    return StatusChange.model_validate({**claimed.document, "change_id": claimed.change_id})


# -- attempts --------------------------------------------------------------------------------

AttemptKind = Literal["delivered", "transient", "permanent"]


@dataclass(frozen=True)
class Attempt:
    """One try at the partner, as the connector saw it (library errors already mapped)."""

    kind: AttemptKind
    status_code: int | None = None
    error: dict[str, Any] | None = None  # {"kind": "timeout" | "http" | "ack" | …, "message"}
    body: str | None = None
    retry_after: float | None = None  # seconds the partner asked us to wait


def backoff(attempts: int, retry: RetrySettings, retry_after: float | None = None,
            rand: Callable[[], float] = random.random) -> float:
    """Seconds before the next try: base·2^(n-1) capped, the upper half random (jitter);
    never sooner than the partner's Retry-After."""
    ceiling = min(retry.max_backoff_seconds,
                  retry.min_backoff_seconds * 2 ** max(0, attempts - 1))
    delay = ceiling / 2 + rand() * ceiling / 2
    return max(delay, retry_after or 0.0)


def outcome(claimed: outbox.Claimed, attempt: Attempt, retry: RetrySettings, now: datetime,
            rand: Callable[[], float] = random.random) -> outbox.Result:
    """What the delivery row becomes after ``attempt``: the retry policy, in one place."""
    common: dict[str, Any] = {"id": claimed.id, "claim": claimed.claim,
                              "status_code": attempt.status_code, "error": attempt.error,
                              "body": attempt.body}
    if attempt.kind == "delivered":
        return outbox.Result(status="delivered", **common)
    if attempt.kind == "permanent" or (claimed.attempts >= retry.max_attempts
                                       and now >= outbox.aware(claimed.due_at)):
        return outbox.Result(status="failed", **common)
    # Attempts used up but still within the SLA window: keep trying (the backoff is at its
    # cap by then, hourly by default) until the due time passes, then dead-letter.
    delay = backoff(claimed.attempts, retry, attempt.retry_after, rand)
    return outbox.Result(status="retrying", next_attempt_at=now + timedelta(seconds=delay),
                         **common)


# -- SLA -------------------------------------------------------------------------------------

@dataclass
class SlaEvents:
    warnings: list[dict[str, Any]] = field(default_factory=list)
    breaches: list[tuple[dict[str, Any], str]] = field(default_factory=list)  # (row, exc id)


def check_sla(conn: Connection, now: datetime, warn_before: timedelta,
              names: dict[str, str] | None = None, *, late_delivered: Sequence[int] = (),
              scan: bool = True, alert_retry_in: timedelta | None = None) -> SlaEvents:
    """Mark warnings and breaches once each (race-safe), opening a ``delivery-sla-breach``
    exception per breach. ``late_delivered``: ids just delivered, possibly after due;
    ``scan=False`` looks at those only (the delivery loop), not at every open delivery.
    ``alert_retry_in``: each alert raised now is tried again after this unless the webhook
    accepts it first (``alert_accepted``); None when there is no webhook to retry."""
    names = names or {}
    events = SlaEvents()
    retry_at = now + alert_retry_in if alert_retry_in is not None else None
    rows = outbox.delivered_late(conn, list(late_delivered))
    if scan:
        for row in outbox.needing_warning(conn, now + warn_before):
            # Already overdue: the breach is the alert, a warning would only be noise.
            alert = outbox.aware(row["due_at"]) > now
            if outbox.mark_warned(conn, row["id"], now, retry_at if alert else None) and alert:
                events.warnings.append(row)
        rows = [*outbox.overdue(conn, now), *rows]
    for row in rows:
        sub = row["subscription_id"]
        exception_id = outbox.mark_breached(conn, row, now, names.get(sub, sub), retry_at)
        if exception_id:
            events.breaches.append((row, exception_id))
    return events


def outstanding_alert(row: dict[str, Any], now: datetime
                      ) -> tuple[Literal["warning", "breach"], datetime] | None:
    """The alert of this delivery the webhook has not accepted yet and that still matters,
    with when it was raised: the breach; else the warning while the delivery is open and
    not yet due (a delivered or breached one makes the warning moot); else None."""
    if row["breached_at"] is not None and row["breach_alerted_at"] is None:
        return "breach", outbox.aware(row["breached_at"])
    if (row["warned_at"] is not None and row["warning_alerted_at"] is None
            and row["breached_at"] is None and row["status"] in outbox.OPEN
            and outbox.aware(row["due_at"]) > now):
        return "warning", outbox.aware(row["warned_at"])
    return None


def alert_retry_delay(waited: timedelta, least: float, most: float) -> timedelta:
    """Before the next try of an alert outstanding for ``waited``: as long again (so the
    tries double apart), between ``least`` and ``most`` seconds."""
    return timedelta(seconds=min(most, max(least, waited.total_seconds())))
