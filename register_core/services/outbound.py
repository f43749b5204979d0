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

from sqlalchemy import Connection, bindparam, delete, exists, or_, select

from mapping.outbound import (
    MERGED_FROM,
    MERGED_INTO,
    Ended,
    EntitlementState,
    FieldChange,
    LinkedRecord,
    PersonState,
    RecordRef,
    StatusChange,
)
from register_core.adapters import outbox
from register_core.adapters.subscriptions import (
    RetrySettings,
    SubscriptionDefinition,
    load_all,
)
from register_core.adapters.tables import (
    entitlements,
    outbound_changes,
    outbound_deliveries,
    person_merges,
    persons,
    subscriptions,
)
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


def entitlement_state(position: Position) -> EntitlementState:
    ent = position.entitlement
    return EntitlementState(
        status=ent.status, start=ent.start, trigger_section=ent.trigger_section,
        responsible_council=ent.responsible_council, responsible_icb=ent.responsible_icb,
        named_practitioner=ent.named_practitioner, next_review_due=ent.next_review_due,
        on_cto=position.on_cto,
        ended=Ended(date=ent.ended.date, reason=ent.ended.reason) if ent.ended else None)


def snapshot(conn: Connection, person_id: str, position: Position, changes: Sequence[Change],
             received_at: datetime, now: datetime) -> StatusChange:
    """The state partners are told of, read in the change's own transaction."""
    return _snapshot(conn, person_id, entitlement_state(position),
                     [FieldChange(field=n, old=o, new=v) for n, o, v in status_changes(changes)],
                     None, received_at, now)


# The person as partners are told of them, and whether any merge (open or undone) names them:
# one round trip, the one a change's document needed before merges were told.
_WHO = (select(persons.c.nhs_number, persons.c.family_name, persons.c.given_name,
               persons.c.birth_date,
               or_(exists().where(person_merges.c.merged_id == persons.c.id),
                   exists().where(person_merges.c.survivor_id == persons.c.id))
               .label("merges"))
        .where(persons.c.id == bindparam("pid")))


def _who(conn: Connection, person_id: str) -> Any:
    return conn.execute(_WHO, {"pid": person_id}).first()


def _snapshot(conn: Connection, person_id: str, entitlement: EntitlementState,
              changes: list[FieldChange], links: MergeLinks | None, received_at: datetime,
              now: datetime, who: Any = None) -> StatusChange:
    who = who if who is not None else _who(conn, person_id)
    merged_into = merged_record = None
    merged_from: list[RecordRef] = []
    if links is not None:
        if links.merged_into is not None:
            merged_into = _survivor(conn, links.merged_into)
            merged_record = _brought(person_id, links.own or {})
        merged_from = [_brought(mid, moved) for mid, moved in links.brought]
    return StatusChange(
        change_id=0,  # the outbox row's id, filled in when rendered
        person=PersonState(register_id=person_id, nhs_number=who.nhs_number if who else None),
        family_name=who.family_name if who else None,
        given_name=who.given_name if who else None,
        birth_date=who.birth_date if who else None,
        entitlement=entitlement, changes=changes, notice_received_at=received_at,
        changed_at=now, merged_into=merged_into, merged_record=merged_record,
        merged_from=merged_from)


# -- merges ----------------------------------------------------------------------------------
#
# A merge (HL7 A40, a same-person decision, reconcile's link, an NHS number arriving for a
# local-id record) empties the merged person into the survivor; an un-merge moves it back
# (``person_merges`` records both). What partners must hear of is read from that record and
# compared with what the person's last outbound document said: a link made or undone is a
# change (``person.merged_into`` / ``person.merged_from``) even when no status field moved,
# told to every subscriber that hears of the status change or has heard of the person
# before; and each survivor concerned is told too (its document carries the ``replaces``
# side), to the same subscribers, unless its own document in this transaction already was.


@dataclass(frozen=True)
class MergeLinks:
    """A person's merge links as the register holds them now (open merges only)."""

    merged_into: str | None = None  # the survivor this person was merged into
    own: dict[str, Any] | None = None  # what moved off this person then (``moved``)
    brought: tuple[tuple[str, dict[str, Any]], ...] = ()  # (merged id, moved), by merge

    @property
    def merged_from(self) -> tuple[str, ...]:
        return tuple(sorted(mid for mid, _ in self.brought))

    @property
    def told_as(self) -> tuple[str | None, tuple[str, ...]]:
        return self.merged_into, self.merged_from


_MERGES_OF = (select(person_merges.c.survivor_id, person_merges.c.merged_id,
                     person_merges.c.moved, person_merges.c.unmerged_at)
              .where(or_(person_merges.c.merged_id == bindparam("pid"),
                         person_merges.c.survivor_id == bindparam("pid")))
              .order_by(person_merges.c.merged_at, person_merges.c.id))
_LAST_TOLD = (select(outbound_changes.c.document)
              .where(outbound_changes.c.person_id == bindparam("pid"))
              .order_by(outbound_changes.c.id.desc()).limit(1))


def merge_links(conn: Connection, person_id: str) -> MergeLinks:
    merged_into = own = None
    brought: list[tuple[str, dict[str, Any]]] = []
    for row in conn.execute(_MERGES_OF, {"pid": person_id}):
        if row.unmerged_at is not None:
            continue
        if row.merged_id == person_id:
            merged_into, own = row.survivor_id, row.moved or {}
        else:
            brought.append((row.merged_id, row.moved or {}))
    return MergeLinks(merged_into, own, tuple(brought))


def told_links(conn: Connection, person_id: str) -> tuple[str | None, tuple[str, ...]]:
    """The links the person's last outbound document carried (none before merges were
    told, or when nothing was ever told)."""
    document = conn.execute(_LAST_TOLD, {"pid": person_id}).scalar()
    if not document:
        return None, ()
    into = document.get("merged_into") or {}
    return into.get("register_id"), tuple(sorted(
        record["register_id"] for record in document.get("merged_from") or []))


def link_changes(told: tuple[str | None, tuple[str, ...]], links: MergeLinks
                 ) -> list[FieldChange]:
    """The merge links made or undone since ``told``."""
    (was_into, was_from), (into, now_from) = told, links.told_as
    found = []
    if was_into != into:
        found.append(FieldChange(field=MERGED_INTO, old=was_into, new=into))
    found += [FieldChange(field=MERGED_FROM, old=None, new=mid)
              for mid in now_from if mid not in was_from]
    found += [FieldChange(field=MERGED_FROM, old=mid, new=None)
              for mid in was_from if mid not in now_from]
    return found


def _brought(register_id: str, moved: dict[str, Any]) -> RecordRef:
    """A merged record as it was when merged: its register id and the NHS number that
    moved off it (the survivor's since). Not the sources' local identifiers that moved with
    it: partners know the record by these two, and need no one else's ids."""
    return RecordRef(register_id=register_id, nhs_number=moved.get("nhs_number"))


def _survivor(conn: Connection, person_id: str) -> LinkedRecord:
    """The survivor as partners know it (register id, NHS number) and, for HL7's PID
    only, as its A08 names it."""
    who = conn.execute(select(persons.c.nhs_number, persons.c.family_name,
                              persons.c.given_name, persons.c.birth_date)
                       .where(persons.c.id == person_id)).first()
    return LinkedRecord(
        register_id=person_id, nhs_number=who.nhs_number if who else None,
        family_name=who.family_name if who else None,
        given_name=who.given_name if who else None,
        birth_date=who.birth_date if who else None)


def heard_of(conn: Connection, person_id: str, subscription_ids: Sequence[str]) -> set[str]:
    """The subscribers that were ever queued a change of this person (not cancelled)."""
    if not subscription_ids:
        return set()
    d = outbound_deliveries
    return set(conn.execute(select(d.c.subscription_id).distinct().where(
        d.c.subscription_id.in_(sorted(subscription_ids)), d.c.person_id == person_id,
        d.c.status != "cancelled")).scalars())


_EVER_TOLD = (select(outbound_changes.c.person_id).distinct()
              .where(outbound_changes.c.person_id.in_(bindparam("ids", expanding=True))))


def ever_told(conn: Connection, person_ids: Sequence[str]) -> set[str]:
    """Which of these people any partner was ever queued a change of: one indexed read for a
    page of merges, so a bulk path asks ``enqueue_status_changes`` about a merge that moved no
    register value (news only to partners that heard of the person, ``heard_of``) for those
    people alone, and pays nothing per person for the rest."""
    if not person_ids:
        return set()
    return set(conn.execute(_EVER_TOLD, {"ids": sorted(set(person_ids))}).scalars())


def stored_entitlement(conn: Connection, person_id: str) -> EntitlementState:
    """The person's entitlement as the register stored it (the projection)."""
    e = entitlements.c
    row = conn.execute(select(e.status, e.start, e.trigger_section, e.responsible_council,
                              e.responsible_icb, e.named_practitioner, e.next_review_due,
                              e.ended_date, e.ended, e.on_cto)
                       .where(e.person_id == person_id)).first()
    if row is None:
        return EntitlementState(status="none")
    ended = None
    if row.ended_date is not None:
        ended = Ended(date=row.ended_date, reason=(row.ended or {}).get("reason"))
    return EntitlementState(
        status=row.status, start=row.start, trigger_section=row.trigger_section,
        responsible_council=row.responsible_council, responsible_icb=row.responsible_icb,
        named_practitioner=row.named_practitioner, next_review_due=row.next_review_due,
        on_cto=bool(row.on_cto), ended=ended)


# Per transaction: person -> subscriber -> the links its last document in it carried.
_sent: weakref.WeakKeyDictionary[object, dict[str, dict[str, tuple[Any, ...]]]] = (
    weakref.WeakKeyDictionary())


def _sent_in(conn: Connection) -> dict[str, dict[str, tuple[Any, ...]]]:
    transaction = conn.get_transaction()
    return _sent.setdefault(transaction, {}) if transaction is not None else {}


def enqueue_status_changes(conn: Connection, applied: Applied, received_at: datetime,
                           now: datetime, *,
                           subscriptions: Iterable[SubscriptionDefinition] | None = None
                           ) -> list[int]:
    """Write one delivery per interested subscriber, in the caller's transaction.

    Returns the new delivery ids (empty when nothing partners care about changed). Pass
    ``subscriptions`` (e.g. ``SubscriptionRegistry.list()``) to skip reading them here.

    A merge made or undone is news too (section above): it is looked for whenever a
    document is queued, for a person a merge emptied (no facts left), and for callers that
    pass no ``subscriptions`` (one-off register decisions: an un-merge, a same-person
    decision), so the batch paths pay nothing for it on a change no partner wants.
    """
    position = applied.position
    if position is None:
        return []
    changes = status_changes(applied.changes)
    look = applied.fact_seq < 1 or subscriptions is None
    if not changes and not look:
        return []
    subs = list(subscriptions) if subscriptions is not None else load_all(conn)
    wanted = [s for s in subs if wanted_by(s, changes, position)] if changes else []
    if not wanted and not (look and subs):
        return []
    received_at = outbox.aware(received_at).astimezone(UTC)  # SQLite hands back naive UTC
    who = _who(conn, applied.person_id)
    links = merge_links(conn, applied.person_id) if who is not None and who.merges else None
    moved = (link_changes(told_links(conn, applied.person_id), links)
             if links is not None else [])
    if moved:
        known = {s.subscription_id for s in wanted}
        heard = heard_of(conn, applied.person_id,
                         [s.subscription_id for s in subs if s.subscription_id not in known])
        wanted += [s for s in subs if s.subscription_id in heard]
    if not wanted:
        return []
    told = [FieldChange(field=n, old=o, new=v) for n, o, v in changes] + moved
    ids, wanted = _queue(conn, applied.person_id, entitlement_state(position), told,
                         links or MergeLinks(), wanted, received_at, now, who=who)
    for item in moved:
        if item.field != MERGED_INTO or not wanted:
            continue
        for survivor in (item.old, item.new):
            if survivor is not None:
                ids += _tell_survivor(conn, survivor, applied.person_id, wanted,
                                      received_at, now)
    return ids


def _tell_survivor(conn: Connection, survivor_id: str, merged_id: str,
                   subs: Sequence[SubscriptionDefinition], received_at: datetime,
                   now: datetime) -> list[int]:
    """The survivor's side of a merge or un-merge of ``merged_id``: its current state with
    its links, to the subscribers told of the merged person that have not had a document of
    the survivor with those links in this transaction (its own status change, usually)."""
    links = merge_links(conn, survivor_id)
    sent = _sent_in(conn).get(survivor_id, {})
    todo = [s for s in subs if sent.get(s.subscription_id) != links.told_as]
    if not todo:
        return []
    joined = merged_id in links.merged_from
    change = FieldChange(field=MERGED_FROM, old=None if joined else merged_id,
                         new=merged_id if joined else None)
    ids, _ = _queue(conn, survivor_id, stored_entitlement(conn, survivor_id), [change], links,
                    todo, received_at, now)
    return ids


def _queue(conn: Connection, person_id: str, entitlement: EntitlementState,
           changes: list[FieldChange], links: MergeLinks,
           wanted: Sequence[SubscriptionDefinition], received_at: datetime, now: datetime,
           who: Any = None) -> tuple[list[int], list[SubscriptionDefinition]]:
    """Store one change of the person and a delivery per subscriber still there."""
    # The definitions may have been read before this transaction locked anything (or from a
    # cache): keep those still there, with their kind as it stands now.
    current = _held_subscriptions(conn, [s.subscription_id for s in wanted])
    kept = [s for s in wanted if current.get(s.subscription_id) is not None]
    if not kept:
        return [], []
    change = _snapshot(conn, person_id, entitlement, changes, links, received_at, now, who)
    due = due_time(received_at)
    _, ids = outbox.add_change(
        conn, person_id=person_id,
        changes=[c.model_dump(mode="json") for c in change.changes],
        document=change.model_dump(mode="json", exclude={"change_id"}),
        received_at=received_at, now=now,
        deliveries=[outbox.NewDelivery(subscription_id=s.subscription_id,
                                       kind=current[s.subscription_id] or s.kind,
                                       received_at=received_at, due_at=due) for s in kept])
    sent = _sent_in(conn).setdefault(person_id, {})
    for s in kept:
        sent[s.subscription_id] = links.told_as
    return ids, kept


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
