"""What the Flow page shows, gathered in one read: queues in and out, traffic, SLA clock.

Plain data for the templates; the queries are the API's (``message_store.inbound_queues``,
``outbox.queues``, ``outbox.open_by_due``, ``outbox.overdue``) plus the per-minute count.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from register_core.adapters import console_reads, message_store, outbox

SLA_ROWS = 15
DUE_SOON = timedelta(hours=24)  # the default outbound warning window


def _minute_labels(now: datetime, minutes: int) -> list[str]:
    start = now - timedelta(minutes=minutes - 1)
    return [(start + timedelta(minutes=i)).strftime("%H:%M") for i in range(minutes)]


def flow(conn: Connection, now: datetime, minutes: int = 60) -> dict[str, Any]:
    per_queue, totals = message_store.inbound_queues(conn, now)
    per_minute = console_reads.messages_per_minute(conn, now, minutes)
    labels = _minute_labels(now, minutes)
    inbound = []
    for source, channel, figures in per_queue:
        counts = per_minute.get(source, [0] * minutes)
        inbound.append({"source": source, "channel": channel, **vars(figures),
                        "per_minute": counts, "last_hour": sum(counts)})
    all_sources = [sum(column) for column in zip(*per_minute.values(), strict=True)] \
        if per_minute else [0] * minutes
    return {
        "as_of": now,
        "inbound": inbound,
        "inbound_totals": vars(totals),
        "per_minute_total": all_sources,
        "labels": labels,
        "outbound": outbox.queues(conn, now),
        **sla(conn, now),
    }


def sla(conn: Connection, now: datetime) -> dict[str, Any]:
    """Open deliveries soonest due first, and those past due (marked breached or not yet)."""
    open_total, _ = outbox.open_by_due(conn, limit=1)
    _, upcoming = outbox.open_by_due(conn, limit=SLA_ROWS, breached=False)
    breached_total, breached = outbox.open_by_due(conn, limit=SLA_ROWS, breached=True)
    unmarked = outbox.overdue(conn, now, limit=SLA_ROWS)
    late_ids = {d["id"] for d in unmarked}

    def with_time_left(row: dict[str, Any]) -> dict[str, Any]:
        left = (outbox.aware(row["due_at"]) - now).total_seconds()
        return {**row, "seconds_left": left}

    due_soon = [with_time_left(r) for r in upcoming
                if r["id"] not in late_ids and outbox.aware(r["due_at"]) - now <= DUE_SOON]
    return {
        "sla_open_total": open_total,
        "sla_due_soon": due_soon,
        "sla_breached": [with_time_left(r) for r in [*breached, *unmarked]][:SLA_ROWS],
        "sla_breached_total": breached_total + len(unmarked),
    }
