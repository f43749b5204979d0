"""Read-side queries over the inbox: the message store the operations API and replay search.

Writes stay in ``inbox.py`` (store, mark, requeue); this module only selects. The one portable
wrinkle is ``person_ids``, a JSON list: PostgreSQL asks JSONB containment (``@>``), SQLite
asks ``json_each``, so the filter is exact on both rather than a LIKE on the JSON text.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    case,
    cast,
    column,
    exists,
    func,
    literal,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB

from .database import as_utc as utc
from .tables import inbox_messages, person_identifiers, persons

_m = inbox_messages.c

# What a listing shows: everything but the raw payload and the ACK we sent.
SUMMARY_COLUMNS = (_m.id, _m.source, _m.message_id, _m.channel, _m.message_type, _m.status,
                   _m.received_at, _m.processed_at, _m.attempts, _m.resent, _m.error,
                   _m.person_ids, _m.partition)


@dataclass(frozen=True)
class MessageFilter:
    """Every field optional; the ones given are ANDed. ``since``/``until`` bound received-at
    (``since`` inclusive, ``until`` exclusive); naive date-times are taken as UTC."""

    source: str | None = None
    statuses: Collection[str] | None = None
    channel: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    control_id: str | None = None  # the sender's message id (MSH-10, event id)
    person_id: str | None = None
    ids: Collection[int] | None = None


def _mentions_person(dialect: str, person_id: str) -> ColumnElement[bool]:
    if dialect == "postgresql":
        return cast(_m.person_ids, JSONB).contains(literal([person_id], JSONB))
    each = func.json_each(_m.person_ids).table_valued("value").alias("person_each")
    return exists(select(literal(1)).select_from(each).where(column("value") == person_id))


def _where(dialect: str, wanted: MessageFilter) -> ColumnElement[bool]:
    clauses: list[ColumnElement[bool]] = []
    if wanted.source is not None:
        clauses.append(_m.source == wanted.source)
    if wanted.statuses is not None:
        clauses.append(_m.status.in_(list(wanted.statuses)))
    if wanted.channel is not None:
        clauses.append(_m.channel == wanted.channel)
    if wanted.since is not None:
        clauses.append(_m.received_at >= utc(wanted.since))
    if wanted.until is not None:
        clauses.append(_m.received_at < utc(wanted.until))
    if wanted.control_id is not None:
        clauses.append(_m.message_id == wanted.control_id)
    if wanted.person_id is not None:
        clauses.append(_mentions_person(dialect, wanted.person_id))
    if wanted.ids is not None:
        clauses.append(_m.id.in_(list(wanted.ids)))
    return and_(true(), *clauses)


def _summary(row: Any) -> dict[str, Any]:
    return {
        "id": row.id, "source": row.source, "message_id": row.message_id,
        "channel": row.channel, "message_type": row.message_type, "status": row.status,
        "received_at": utc(row.received_at),
        "processed_at": utc(row.processed_at) if row.processed_at else None,
        "attempts": row.attempts, "resent": row.resent, "error": row.error,
        "person_ids": list(row.person_ids or []), "partition": row.partition,
    }


def search(conn: Connection, wanted: MessageFilter, *, limit: int = 50, offset: int = 0
           ) -> tuple[int, list[dict[str, Any]]]:
    """(total matching, one page newest first) — newest by received-at, then id."""
    where = _where(conn.dialect.name, wanted)
    total = conn.execute(select(func.count()).select_from(inbox_messages).where(where)
                         ).scalar_one()
    rows = conn.execute(select(*SUMMARY_COLUMNS).where(where)
                        .order_by(_m.received_at.desc(), _m.id.desc())
                        .limit(limit).offset(offset)).all()
    return int(total), [_summary(r) for r in rows]


def select_ids(conn: Connection, wanted: MessageFilter) -> list[int]:
    """Every matching id in arrival order (replay processes them in that order)."""
    return list(conn.execute(select(_m.id).where(_where(conn.dialect.name, wanted))
                             .order_by(_m.id)).scalars())


def summaries(conn: Connection, ids: Sequence[int]) -> list[dict[str, Any]]:
    """The listing form of the given messages, in arrival order."""
    if not ids:
        return []
    rows = conn.execute(select(*SUMMARY_COLUMNS).where(_m.id.in_(list(ids))).order_by(_m.id))
    return [_summary(r) for r in rows]


def get(conn: Connection, message_id: int) -> dict[str, Any] | None:
    """One message with its raw payload and the ACK we sent."""
    row = conn.execute(select(*SUMMARY_COLUMNS, _m.payload, _m.ack)
                       .where(_m.id == message_id)).first()
    if row is None:
        return None
    return {**_summary(row), "payload": row.payload, "ack": row.ack}


@dataclass(frozen=True)
class QueueFigures:
    depth: int = 0  # received, waiting for a worker
    failed: int = 0
    rejected: int = 0
    applied_last_hour: int = 0
    oldest_received_age_seconds: float | None = None

    def plus(self, other: QueueFigures) -> QueueFigures:
        ages = [a for a in (self.oldest_received_age_seconds,
                            other.oldest_received_age_seconds) if a is not None]
        return QueueFigures(
            depth=self.depth + other.depth, failed=self.failed + other.failed,
            rejected=self.rejected + other.rejected,
            applied_last_hour=self.applied_last_hour + other.applied_last_hour,
            oldest_received_age_seconds=max(ages) if ages else None)


def inbound_queues(conn: Connection, now: datetime
                   ) -> tuple[list[tuple[str, str, QueueFigures]], QueueFigures]:
    """Per (source, channel) figures, and the totals over all of them.

    Messages rejected before they could be attributed carry the pseudo-sources
    ``unknown-sender`` / ``unparseable`` (and ``unstorable``: data the database refused), so
    they show as queues of their own: an unknown sender is what an engineer must configure.
    A known sender's refused messages (a NUL, an unsupported version, a reused MSH-10) count
    under their source.
    """
    now = utc(now)

    def count_where(condition: ColumnElement[bool]) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    rows = conn.execute(
        select(_m.source, _m.channel,
               count_where(_m.status == "received").label("depth"),
               count_where(_m.status == "failed").label("failed"),
               count_where(_m.status == "rejected").label("rejected"),
               count_where(and_(_m.status == "applied",
                                _m.processed_at >= now - timedelta(hours=1))
                           ).label("applied_last_hour"),
               func.min(case((_m.status == "received", _m.received_at))).label("oldest"))
        .group_by(_m.source, _m.channel).order_by(_m.source, _m.channel)).all()
    queues: list[tuple[str, str, QueueFigures]] = []
    totals = QueueFigures()
    for row in rows:
        oldest = _as_datetime(row.oldest)
        figures = QueueFigures(
            depth=int(row.depth), failed=int(row.failed), rejected=int(row.rejected),
            applied_last_hour=int(row.applied_last_hour),
            oldest_received_age_seconds=(max(0.0, (now - oldest).total_seconds())
                                         if oldest is not None else None))
        queues.append((row.source, row.channel, figures))
        totals = totals.plus(figures)
    return queues, totals


def _as_datetime(value: Any) -> datetime | None:
    """MIN over a CASE loses the column type on SQLite, which then returns the stored text."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return utc(value)


def received_bytes(conn: Connection, message_id: int) -> bytes | None:
    """The message exactly as it arrived: the bytes kept beside the text where the text does
    not give them back (``inbox_messages.raw``), else the text encoded as UTF-8. (Rows
    stored before the ``raw`` column: the text as UTF-8, whatever it was sent in.)"""
    row = conn.execute(select(_m.payload, _m.raw).where(_m.id == message_id)).first()
    if row is None:
        return None
    return bytes(row.raw) if row.raw is not None else row.payload.encode("utf-8")


def people_concerned(conn: Connection, message: dict[str, Any]) -> list[str]:
    """The registered people a stored message is about: those it was applied to, or, for one
    that linked no one (failed, rejected by a rule, waiting), the people its mapped commands
    name by NHS number or by the source's own id — so reading its payload is audited against
    them. A message that never mapped names no one the hub can tell."""
    if message["person_ids"]:
        return list(message["person_ids"])
    commands = conn.execute(select(_m.commands).where(_m.id == message["id"])).scalar()
    refs = [ref for _, command in commands or [] for ref in _person_refs(command)]
    nhs_numbers = {ref["nhs_number"] for ref in refs if ref.get("nhs_number")}
    local_ids = {ref["local_id"] for ref in refs if ref.get("local_id")}
    found: set[str] = set()
    if nhs_numbers:
        found.update(conn.execute(select(persons.c.id).where(
            persons.c.nhs_number.in_(sorted(nhs_numbers)))).scalars())
    if local_ids:
        found.update(conn.execute(select(person_identifiers.c.person_id).where(and_(
            person_identifiers.c.source == message["source"],
            person_identifiers.c.value.in_(sorted(local_ids))))).scalars())
    return sorted(found)


def _person_refs(value: Any) -> Iterator[dict[str, Any]]:
    """Every PersonRef in a command's JSON (a merge names two)."""
    if isinstance(value, dict):
        if "nhs_number" in value and "local_id" in value:
            yield value
        for inner in value.values():
            yield from _person_refs(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _person_refs(inner)
