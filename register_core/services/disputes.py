"""The dispute workflow (s117 escalation dispute protocol; s117-rules.md "Disputes").

Stages 1-3 have deadlines in England working days from the day the stage started (5, 10, 15);
stage 4 (external) has none. Disputes about ending start at stage 3. Every step is appended to
the dispute's history.

Care continues throughout a dispute (dispute protocol 3): an entitlement stays active however
long a dispute about ending runs. So the position must know of disputes: opening one and
resolving it are also recorded as facts in the person's journal (``RecordDisputeOpened``,
``RecordDisputeResolved``, source ``register``, source_ref ``dispute:<id>``), through the one
write path, in the same transaction. The person is recomputed there and then (an ending that a
resolution lets stand takes effect; partners hear of a status change), their exceptions are
synced, and their version moves, so the sweep's checkpoint no longer holds. An ending dated
while a dispute about ending is open (opened on or before it, not resolved by it) does not end
the entitlement (``rules.ending``); escalation changes no date that matters, so it is not
journalled.

Each function works in the caller's unit of work and does not commit, so the route can write
the audit row in the same transaction.

Escalation is a compare-and-set on the stage: the caller says which stage it means to leave
(``from_stage``: what it saw, or ``stage_of`` read before its transaction), and a dispute
already past it is ``ConcurrentChange`` (409). Two escalations at once thus move a dispute one
stage, not two (the row lock alone only made the second wait, then escalate again).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from sqlalchemy import Connection

from mapping.council_models import control_character_in
from reconciliation.findings import DetectorPolicy
from register_core import views
from register_core.adapters.disputes_store import DisputeStore
from register_core.adapters.unit_of_work import SqlUnitOfWork
from register_core.domain.commands import (
    Command,
    PersonRef,
    Provenance,
    RecordDisputeOpened,
    RecordDisputeResolved,
)
from register_core.domain.errors import (
    ConcurrentChange,
    ImpossibleDates,
    InvalidValue,
    NotFound,
)
from register_core.domain.position import Policy
from register_core.domain.rules import disputes as dispute_rules
from register_core.ports import Clock

from .handlers import record_for_person
from .merges import open_merge_of
from .outbound import enqueue_status_changes
from .reconcile import reconcile_person

MAX_TEXT = 4000
REGISTER_SOURCE = "register"


def dispute_json(row: dict[str, Any], today: date) -> dict[str, Any]:
    """Architecture section 7's dispute, plus when the stage started and its history."""
    started = row["stage_started"]
    return {**views.dispute_json(row, today),
            "stage_started": started.isoformat() if started else None,
            "history": list(row["history"] or [])}


def _text(value: str, field: str) -> str:
    text = value.strip()
    if not text or len(text) > MAX_TEXT:
        raise InvalidValue(f"{field} is 1 to {MAX_TEXT} characters", field=field,
                           rule=f"dispute-{field}")
    # Free text: line breaks and tabs are fine; NUL (PostgreSQL cannot store it) and the
    # other control characters are not.
    if (found := control_character_in(text, free_text=True)) is not None:
        raise InvalidValue(f"{field} may not hold control characters other than tab and "
                           f"line breaks (found {found})", field=field,
                           rule="no-control-characters")
    return text


def _journal(uow: SqlUnitOfWork, clock: Clock, person_id: str, dispute_id: str, by: str,
             command_of: Callable[[Provenance], Command], policy: Policy | None,
             rules: DetectorPolicy | None) -> None:
    """Record the dispute's step in the person's journal, tell partners of a status change
    it made, and bring the person's exceptions (and sweep checkpoint) in step."""
    prov = Provenance(source=REGISTER_SOURCE, source_ref=f"dispute:{dispute_id}",
                      received_at=clock.now(), recorded_by=by)
    applied = record_for_person(person_id, command_of(prov), uow, clock, policy)
    enqueue_status_changes(uow.connection, applied, prov.received_at, clock.now())
    reconcile_person(uow, person_id, clock, policy, rules=rules)


def _live(store: DisputeStore, dispute_id: str) -> dict[str, Any]:
    row = store.get(dispute_id, for_update=True)
    if row is None:
        raise NotFound("no dispute with this id", field="dispute_id", rule="dispute-exists")
    if row["resolved"] is not None:
        raise InvalidValue("the dispute is resolved already", field="dispute_id",
                           rule="dispute-open")
    return row


def open_dispute(uow: SqlUnitOfWork, clock: Clock, *, person_id: str, kind: str,
                 summary: str, opened: date | None, by: str, policy: Policy | None = None,
                 rules: DetectorPolicy | None = None) -> dict[str, Any]:
    """Log a dispute; ``policy`` is the hub's (the person is recomputed under it)."""
    store = DisputeStore(uow.connection)
    today = clock.today()
    stage = dispute_rules.initial_stage(kind)  # refuses an unknown kind
    opened = opened or today
    if opened > today:
        raise ImpossibleDates("a dispute cannot be opened in the future", field="opened",
                              rule="dispute-opened-not-in-future")
    if not store.person_exists(person_id):
        raise NotFound("no person with this id", field="person_id", rule="person-exists")
    merge = open_merge_of(uow, person_id)
    if merge is not None:
        # The record is empty since the merge: a dispute logged on it would never count for
        # the person, and its journal entry would stop the merge being undone.
        raise InvalidValue(f"this person was merged into {merge['survivor_id']}: log the "
                           "dispute on that record", field="person_id",
                           rule="dispute-on-live-person")
    due = dispute_rules.stage_due(opened, stage)
    history = [{"event": "opened", "date": opened.isoformat(), "stage": stage,
                "stage_due": due.isoformat() if due else None, "by": by,
                "at": clock.now().isoformat()}]
    dispute_id = store.create(person_id=person_id, kind=kind, summary=_text(summary, "summary"),
                              opened=opened, stage=stage, stage_due=due, history=history,
                              created_by=by, now=clock.now())
    _journal(uow, clock, person_id, dispute_id, by, lambda prov: RecordDisputeOpened(
        person=PersonRef(), provenance=prov, dispute_id=dispute_id, dispute_kind=kind,
        date=opened), policy, rules)
    return dispute_json(store.get(dispute_id) or {}, today)


def stage_of(conn: Connection, dispute_id: str) -> int | None:
    """The dispute's stage now (None if there is no such dispute): read before the write
    transaction, it is the stage a caller that named none means to leave."""
    row = DisputeStore(conn).get(dispute_id)
    return None if row is None else int(row["stage"])


def escalate_dispute(uow: SqlUnitOfWork, clock: Clock, dispute_id: str, *, reason: str,
                     by: str, from_stage: int | None = None) -> dict[str, Any]:
    """To the next stage, which starts today with its own deadline.

    ``from_stage``: the stage the caller means to leave; if the dispute is elsewhere by now
    (someone escalated it meanwhile) nothing changes and ``ConcurrentChange`` says where.
    """
    store = DisputeStore(uow.connection)
    row = _live(store, dispute_id)  # locked (PostgreSQL) / under the write lock (SQLite)
    if from_stage is not None and row["stage"] != from_stage:
        raise ConcurrentChange(
            f"the dispute is at stage {row['stage']} now, not {from_stage}: it was escalated "
            "meanwhile; read it again before escalating", field="from_stage",
            rule="dispute-stage-unchanged")
    today = clock.today()
    stage = dispute_rules.next_stage(row["stage"])  # refuses beyond stage 4
    due = dispute_rules.stage_due(today, stage)
    history = [*(row["history"] or []), {
        "event": "escalated", "date": today.isoformat(), "from_stage": row["stage"],
        "stage": stage, "stage_due": due.isoformat() if due else None,
        "was_overdue": dispute_rules.is_stage_overdue(row["stage_due"], today, False),
        "reason": _text(reason, "reason"), "by": by, "at": clock.now().isoformat()}]
    store.move_stage(dispute_id, stage=stage, started=today, due=due, history=history)
    return dispute_json(store.get(dispute_id) or {}, today)


def resolve_dispute(uow: SqlUnitOfWork, clock: Clock, dispute_id: str, *, outcome: str,
                    by: str, policy: Policy | None = None,
                    rules: DetectorPolicy | None = None) -> dict[str, Any]:
    """Record the outcome (today) and recompute the person under the hub's ``policy``."""
    store = DisputeStore(uow.connection)
    row = _live(store, dispute_id)
    today = clock.today()
    outcome = _text(outcome, "outcome")
    history = [*(row["history"] or []), {
        "event": "resolved", "date": today.isoformat(), "stage": row["stage"],
        "was_overdue": dispute_rules.is_stage_overdue(row["stage_due"], today, False),
        "outcome": outcome, "by": by, "at": clock.now().isoformat()}]
    store.resolve(dispute_id, outcome=outcome, resolved=today, history=history)
    # Beside its opening: the person's record may have been merged into another since.
    holder = store.journal_holder(dispute_id) or row["person_id"]
    _journal(uow, clock, holder, dispute_id, by, lambda prov: RecordDisputeResolved(
        person=PersonRef(), provenance=prov, dispute_id=dispute_id, date=today),
        policy, rules)
    return dispute_json(store.get(dispute_id) or {}, today)


def get_dispute(conn: Connection, today: date, dispute_id: str) -> dict[str, Any]:
    row = DisputeStore(conn).get(dispute_id)
    if row is None:
        raise NotFound("no dispute with this id", field="dispute_id", rule="dispute-exists")
    return dispute_json(row, today)
