"""The ``poll_cursors`` row of a polled FHIR source: where it got to, and its backoff.

    cursor           JSON ``{"Patient": "<meta.lastUpdated>", "Encounter": …, …}``: one
                     position per resource type, since each type is searched on its own
    failures         consecutive failed polls (0 after a good one)
    next_attempt_at  when the source is next due: the interval after a good poll, an
                     exponential, capped delay after a failure
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from register_core.adapters.database import writer
from register_core.adapters.tables import poll_cursors

DEFAULT_BACKOFF_CAP = 3600.0  # seconds: a failing source is still tried once an hour


@dataclass(frozen=True)
class CursorState:
    source: str
    cursor: dict[str, str] = field(default_factory=dict)
    failures: int = 0
    next_attempt_at: datetime | None = None
    updated_at: datetime | None = None

    def due(self, now: datetime) -> bool:
        return self.next_attempt_at is None or self.next_attempt_at <= now


def backoff_delay(failures: int, base_seconds: float,
                  cap_seconds: float = DEFAULT_BACKOFF_CAP) -> float:
    """base·2^failures, capped (but never below the base interval)."""
    return min(max(cap_seconds, base_seconds), base_seconds * 2 ** min(failures, 30))


def _decode(text: str | None) -> dict[str, str]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items() if v is not None}


class PollCursors:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def load(self, source: str) -> CursorState:
        with self.engine.connect() as conn:
            row = conn.execute(select(poll_cursors)
                               .where(poll_cursors.c.source == source)).first()
        if row is None:
            return CursorState(source=source)
        return CursorState(source=source, cursor=_decode(row.cursor), failures=row.failures,
                           next_attempt_at=_aware(row.next_attempt_at),
                           updated_at=_aware(row.updated_at))

    def save_cursor(self, source: str, cursor: dict[str, str], now: datetime) -> None:
        """Persist the position (after the page's resources are stored); backoff untouched."""
        self._upsert(source, {"cursor": json.dumps(cursor, sort_keys=True), "updated_at": now})

    def record_success(self, source: str, now: datetime, interval_seconds: float) -> None:
        self._upsert(source, {"updated_at": now, "failures": 0,
                              "next_attempt_at": now + timedelta(seconds=interval_seconds)})

    def record_failure(self, source: str, now: datetime, interval_seconds: float,
                       cap_seconds: float = DEFAULT_BACKOFF_CAP) -> CursorState:
        failures = self.load(source).failures + 1
        delay = backoff_delay(failures, interval_seconds, cap_seconds)
        self._upsert(source, {"updated_at": now, "failures": failures,
                              "next_attempt_at": now + timedelta(seconds=delay)})
        return self.load(source)

    def _upsert(self, source: str, values: dict[str, Any]) -> None:
        with writer(self.engine) as conn, conn.begin():
            dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            insert_values = {"source": source, "failures": 0, **values}
            stmt = dialect_insert(poll_cursors).values(**insert_values)
            conn.execute(stmt.on_conflict_do_update(index_elements=["source"], set_=values))


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; they were stored as UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
