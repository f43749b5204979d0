"""The dispute workflow (s117 escalation dispute protocol; s117-rules.md "Disputes").

Stages 1-3 have deadlines in England working days from the day the stage started (5, 10, 15);
stage 4 (external) has none. Disputes about ending start at stage 3. Every step is appended to
the dispute's history. A dispute changes nothing on the register: care continues throughout
(dispute protocol 3), so an entitlement stays active however long a dispute about ending runs
(only a lawful joint ending ends it).

Each function works in the caller's unit of work and does not commit, so the route can write
the audit row in the same transaction.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Connection

from register_core import views
from register_core.adapters.disputes_store import DisputeStore
from register_core.adapters.unit_of_work import SqlUnitOfWork
from register_core.domain.errors import ImpossibleDates, InvalidValue, NotFound
from register_core.domain.rules import disputes as rules
from register_core.ports import Clock

MAX_TEXT = 4000


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
    return text


def _live(store: DisputeStore, dispute_id: str) -> dict[str, Any]:
    row = store.get(dispute_id, for_update=True)
    if row is None:
        raise NotFound("no dispute with this id", field="dispute_id", rule="dispute-exists")
    if row["resolved"] is not None:
        raise InvalidValue("the dispute is resolved already", field="dispute_id",
                           rule="dispute-open")
    return row


def open_dispute(uow: SqlUnitOfWork, clock: Clock, *, person_id: str, kind: str,
                 summary: str, opened: date | None, by: str) -> dict[str, Any]:
    store = DisputeStore(uow.connection)
    today = clock.today()
    stage = rules.initial_stage(kind)  # refuses an unknown kind
    opened = opened or today
    if opened > today:
        raise ImpossibleDates("a dispute cannot be opened in the future", field="opened",
                              rule="dispute-opened-not-in-future")
    if not store.person_exists(person_id):
        raise NotFound("no person with this id", field="person_id", rule="person-exists")
    due = rules.stage_due(opened, stage)
    history = [{"event": "opened", "date": opened.isoformat(), "stage": stage,
                "stage_due": due.isoformat() if due else None, "by": by,
                "at": clock.now().isoformat()}]
    dispute_id = store.create(person_id=person_id, kind=kind, summary=_text(summary, "summary"),
                              opened=opened, stage=stage, stage_due=due, history=history,
                              created_by=by, now=clock.now())
    return dispute_json(store.get(dispute_id) or {}, today)


def escalate_dispute(uow: SqlUnitOfWork, clock: Clock, dispute_id: str, *, reason: str,
                     by: str) -> dict[str, Any]:
    """To the next stage, which starts today with its own deadline."""
    store = DisputeStore(uow.connection)
    row = _live(store, dispute_id)
    today = clock.today()
    stage = rules.next_stage(row["stage"])  # refuses beyond stage 4
    due = rules.stage_due(today, stage)
    history = [*(row["history"] or []), {
        "event": "escalated", "date": today.isoformat(), "from_stage": row["stage"],
        "stage": stage, "stage_due": due.isoformat() if due else None,
        "was_overdue": rules.is_stage_overdue(row["stage_due"], today, False),
        "reason": _text(reason, "reason"), "by": by, "at": clock.now().isoformat()}]
    store.move_stage(dispute_id, stage=stage, started=today, due=due, history=history)
    return dispute_json(store.get(dispute_id) or {}, today)


def resolve_dispute(uow: SqlUnitOfWork, clock: Clock, dispute_id: str, *, outcome: str,
                    by: str) -> dict[str, Any]:
    store = DisputeStore(uow.connection)
    row = _live(store, dispute_id)
    today = clock.today()
    outcome = _text(outcome, "outcome")
    history = [*(row["history"] or []), {
        "event": "resolved", "date": today.isoformat(), "stage": row["stage"],
        "was_overdue": rules.is_stage_overdue(row["stage_due"], today, False),
        "outcome": outcome, "by": by, "at": clock.now().isoformat()}]
    store.resolve(dispute_id, outcome=outcome, resolved=today, history=history)
    return dispute_json(store.get(dispute_id) or {}, today)


def get_dispute(conn: Connection, today: date, dispute_id: str) -> dict[str, Any]:
    row = DisputeStore(conn).get(dispute_id)
    if row is None:
        raise NotFound("no dispute with this id", field="dispute_id", rule="dispute-exists")
    return dispute_json(row, today)
