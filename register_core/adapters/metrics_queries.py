"""The figures ``/metrics`` exposes, read from the database at scrape time.

Inbox and outbox rows are the truth (architecture section 1), so every process — API, MLLP
listener, workers — that answers a scrape reports the same numbers. One grouped query per
table; labels are source, channel, subscriber, status and kind ids only (never an NHS number
or a name).

ACK codes: for messages whose stored ``ack`` is an HL7 ACK (it holds an ``MSA`` segment) the
code is its MSA-1 — what the sender was actually told (AA, AE, AR, or CA/CE/CR in enhanced
mode); for the others (FHIR, council REST/CSV, pollers, which answer in HTTP) it is derived
from the row's status as the HL7 equivalent: ``rejected`` → AR, ``failed`` → AE, anything
else → AA. The ``basis`` of each count says which (``msa`` or ``status``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, case, func, literal, select

from .database import as_utc as _utc
from .tables import inbox_messages, outbound_deliveries, register_exceptions

_m = inbox_messages.c
_d = outbound_deliveries.c
_x = register_exceptions.c
OPEN_DELIVERY = ("pending", "sending", "retrying", "failed")
MSA_MARKER = "MSA|"
MSA_CODE_LENGTH = 2


@dataclass(frozen=True)
class QueueRow:
    """One (owner, status) queue: owner is the inbox source or the outbox subscriber."""

    owner: str
    status: str
    depth: int
    oldest_age_seconds: float


@dataclass(frozen=True)
class AckRow:
    channel: str
    code: str
    basis: str  # "msa": read from the ACK we sent; "status": derived from the row's status
    count: int


@dataclass(frozen=True)
class DeliveredRow:
    subscription_id: str
    within_sla: int
    late: int


@dataclass(frozen=True)
class BreachRow:
    subscription_id: str
    open_breached: int  # open and past due now, recorded by the sweeper or not
    recorded: int  # every delivery the sweeper marked breached, whatever became of it


@dataclass(frozen=True)
class ExceptionRow:
    kind: str
    status: str
    count: int


@dataclass
class HubFigures:
    inbox: list[QueueRow] = field(default_factory=list)
    acks: list[AckRow] = field(default_factory=list)
    outbox: list[QueueRow] = field(default_factory=list)
    delivered: list[DeliveredRow] = field(default_factory=list)
    breaches: list[BreachRow] = field(default_factory=list)
    exceptions: list[ExceptionRow] = field(default_factory=list)


def hub_figures(conn: Connection, now: datetime) -> HubFigures:
    now = _utc(now)
    return HubFigures(inbox=_inbox(conn, now), acks=_acks(conn), outbox=_outbox(conn, now),
                      delivered=_delivered(conn), breaches=_breaches(conn, now),
                      exceptions=_exceptions(conn))


def _inbox(conn: Connection, now: datetime) -> list[QueueRow]:
    rows = conn.execute(select(_m.source, _m.status, func.count(), func.min(_m.received_at))
                        .group_by(_m.source, _m.status).order_by(_m.source, _m.status))
    return [QueueRow(source, status, int(count), _age(now, oldest))
            for source, status, count, oldest in rows]


def _msa_code(dialect: str) -> Any:
    """MSA-1 of the stored ACK text, or NULL when it holds no MSA segment."""
    find = func.strpos if dialect == "postgresql" else func.instr
    position = find(_m.ack, literal(MSA_MARKER))
    return case((position > 0, func.substr(_m.ack, position + len(MSA_MARKER),
                                           MSA_CODE_LENGTH)), else_=None)


def _acks(conn: Connection) -> list[AckRow]:
    msa = _msa_code(conn.dialect.name).label("msa")
    rows = conn.execute(select(_m.channel, msa, _m.status, func.count())
                        .group_by(_m.channel, msa, _m.status))
    counts: dict[tuple[str, str, str], int] = {}
    for channel, code, status, count in rows:
        if code and code.strip():
            key = (channel, code.strip().upper(), "msa")
        else:
            key = (channel, {"rejected": "AR", "failed": "AE"}.get(status, "AA"), "status")
        counts[key] = counts.get(key, 0) + int(count)
    return [AckRow(channel, code, basis, count)
            for (channel, code, basis), count in sorted(counts.items())]


def _outbox(conn: Connection, now: datetime) -> list[QueueRow]:
    rows = conn.execute(select(_d.subscription_id, _d.status, func.count(),
                               func.min(_d.created_at))
                        .group_by(_d.subscription_id, _d.status)
                        .order_by(_d.subscription_id, _d.status))
    return [QueueRow(sub, status, int(count), _age(now, oldest))
            for sub, status, count, oldest in rows]


def _count_if(condition: Any) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _delivered(conn: Connection) -> list[DeliveredRow]:
    rows = conn.execute(
        select(_d.subscription_id, _count_if(_d.delivered_at <= _d.due_at),
               _count_if(_d.delivered_at > _d.due_at))
        .where(and_(_d.status == "delivered", _d.delivered_at.is_not(None)))
        .group_by(_d.subscription_id).order_by(_d.subscription_id))
    return [DeliveredRow(sub, int(within), int(late)) for sub, within, late in rows]


def _breaches(conn: Connection, now: datetime) -> list[BreachRow]:
    rows = conn.execute(
        select(_d.subscription_id,
               _count_if(and_(_d.status.in_(OPEN_DELIVERY), _d.due_at < now)),
               _count_if(_d.breached_at.is_not(None)))
        .group_by(_d.subscription_id).order_by(_d.subscription_id))
    return [BreachRow(sub, int(open_now), int(recorded)) for sub, open_now, recorded in rows]


def _exceptions(conn: Connection) -> list[ExceptionRow]:
    rows = conn.execute(select(_x.kind, _x.status, func.count())
                        .group_by(_x.kind, _x.status).order_by(_x.kind, _x.status))
    return [ExceptionRow(kind, status, int(count)) for kind, status, count in rows]


def _age(now: datetime, oldest: Any) -> float:
    if oldest is None:
        return 0.0
    if isinstance(oldest, str):  # SQLite may give back the stored text from an aggregate
        oldest = datetime.fromisoformat(oldest)
    return max(0.0, (now - _utc(oldest)).total_seconds())
