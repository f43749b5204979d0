"""Read-side queries only the web console asks: traffic per minute, what one message
changed, and the exceptions worklist with an age filter.

Everything else the console shows comes from the same adapters the API uses
(``message_store``, ``outbox``, ``ExceptionStore``, ``DisputeStore``, ``views``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, false, func, select, true

from .database import as_utc as _utc
from .exceptions_store import ExceptionFilter, exception_json
from .tables import (
    entitlements,
    facts,
    inbox_messages,
    person_merges,
    register_changes,
    register_exceptions,
)

_m = inbox_messages.c


def messages_per_minute(conn: Connection, now: datetime, minutes: int = 60
                        ) -> dict[str, list[int]]:
    """Messages received per source in each of the last ``minutes`` minutes, oldest first.

    Counted in the database per (source, minute), so an hour of heavy traffic is at most
    sources × 60 rows here, whatever the message count.
    """
    now = _utc(now)
    start = (now - timedelta(minutes=minutes - 1)).replace(second=0, microsecond=0)
    if conn.dialect.name == "postgresql":
        minute = func.to_char(func.date_trunc("minute", func.timezone("UTC", _m.received_at)),
                              "YYYY-MM-DD HH24:MI")
    else:
        minute = func.strftime("%Y-%m-%d %H:%M", _m.received_at)
    rows = conn.execute(select(_m.source, minute.label("minute"), func.count())
                        .where(_m.received_at >= start)
                        .group_by(_m.source, minute)).all()
    slots = {(start + timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M"): i
             for i in range(minutes)}
    counts: dict[str, list[int]] = {}
    for source, stamp, count in rows:
        index = slots.get(str(stamp))
        if index is not None:
            counts.setdefault(source, [0] * minutes)[index] += int(count)
    return dict(sorted(counts.items()))


def message_commands(conn: Connection, message_id: int) -> list[Any] | None:
    """The commands stored on arrival ([[kind, command], ...]); None once replay cleared them
    or when the message could not be mapped."""
    value = conn.execute(select(_m.commands).where(_m.id == message_id)).scalar_one_or_none()
    return list(value) if value else None


def changes_from(conn: Connection, source: str, source_ref: str) -> list[dict[str, Any]]:
    """Register values a message changed: every projected value records the source and the
    source's reference (MSH-10, event id) of the fact that moved it."""
    c = register_changes.c
    rows = conn.execute(select(c.person_id, c.field, c.old_value, c.new_value, c.recorded_by,
                               c.at)
                        .where(and_(c.source == source, c.source_ref == source_ref))
                        .order_by(c.id)).mappings()
    return [{**row, "at": _utc(row["at"])} for row in rows]


def facts_from(conn: Connection, source: str, source_ref: str) -> list[dict[str, Any]]:
    """The journal facts a message recorded (their kind and date, not their payload)."""
    f = facts.c
    rows = conn.execute(select(f.person_id, f.seq, f.kind, f.effective, f.retracted_by)
                        .where(and_(f.source == source, f.source_ref == source_ref))
                        .order_by(f.person_id, f.seq)).mappings()
    return [dict(row) for row in rows]


@dataclass(frozen=True, kw_only=True)
class Worklist(ExceptionFilter):
    """The API's exception filter plus a minimum age, which the worklist sorts by."""

    statuses: tuple[str, ...] | None = None
    older_than_days: int | None = None


def exception_worklist(conn: Connection, wanted: Worklist, now: datetime, *, limit: int = 100,
                       offset: int = 0) -> tuple[int, list[dict[str, Any]]]:
    """(total, page) oldest first, with the council and ICB of the person's entitlement."""
    t = register_exceptions.c
    conditions = []
    if wanted.status:
        conditions.append(t.status == wanted.status)
    elif wanted.statuses:
        conditions.append(t.status.in_(wanted.statuses))
    if wanted.kind:
        conditions.append(t.kind == wanted.kind)
    if wanted.person_id:
        conditions.append(t.person_id == wanted.person_id)
    if wanted.council:
        conditions.append(entitlements.c.responsible_council == wanted.council)
    if wanted.icb:
        conditions.append(entitlements.c.responsible_icb == wanted.icb)
    if wanted.older_than_days:
        try:
            cutoff = _utc(now) - timedelta(days=wanted.older_than_days)
        except OverflowError:  # older than the calendar: nothing is that old
            cutoff = None
        conditions.append(t.raised <= cutoff if cutoff is not None else false())
    joined = register_exceptions.outerjoin(entitlements,
                                           entitlements.c.person_id == t.person_id)
    where = and_(true(), *conditions)
    total = conn.execute(select(func.count()).select_from(joined).where(where)).scalar_one()
    rows = conn.execute(select(register_exceptions, entitlements.c.responsible_council,
                               entitlements.c.responsible_icb)
                        .select_from(joined).where(where).order_by(t.raised, t.id)
                        .limit(limit).offset(offset)).mappings()
    return int(total), [{**exception_json(row), "council": row["responsible_council"],
                         "icb": row["responsible_icb"]} for row in rows]


def merged_into(conn: Connection, person_id: str) -> dict[str, Any] | None:
    """The standing merge that moved ``person_id`` into another person (survivor, when, by
    what), or None: a merged-away record stays in ``persons``, empty, and must not look live."""
    m = person_merges.c
    row = conn.execute(select(m.survivor_id, m.merged_at, m.source, m.source_ref)
                       .where(and_(m.merged_id == person_id, m.unmerged_at.is_(None)))
                       .order_by(m.merged_at.desc(), m.id.desc()).limit(1)).mappings().first()
    return {**row, "merged_at": _utc(row["merged_at"])} if row else None
