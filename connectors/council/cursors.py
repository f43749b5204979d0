"""Where each polled source has got to, kept in ``poll_cursors`` (one row per source).

``cursor`` moves only after a page's events are committed to the inbox, so a crash between
the two re-fetches the page (its events come back as duplicates) rather than losing it.
``failures`` and ``next_attempt_at`` hold the backoff after the council could not be reached;
a success clears both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from register_core.adapters.database import writer
from register_core.adapters.tables import poll_cursors


@dataclass(frozen=True)
class CursorState:
    source: str
    cursor: str | None = None
    failures: int = 0
    next_attempt_at: datetime | None = None
    updated_at: datetime | None = None


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _upsert(conn: Connection, source: str, values: dict[str, Any]) -> None:
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    first = {"cursor": None, "failures": 0, "next_attempt_at": None, **values}
    stmt = dialect_insert(poll_cursors).values(source=source, **first)
    conn.execute(stmt.on_conflict_do_update(index_elements=["source"], set_=values))


class PollCursors:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, source: str) -> CursorState:
        with self.engine.connect() as conn:
            row = conn.execute(select(poll_cursors)
                               .where(poll_cursors.c.source == source)).first()
        if row is None:
            return CursorState(source=source)
        return CursorState(source=source, cursor=row.cursor, failures=row.failures,
                           next_attempt_at=_aware(row.next_attempt_at),
                           updated_at=_aware(row.updated_at))

    def advance(self, source: str, cursor: str | None, now: datetime) -> None:
        """The page up to ``cursor`` is stored: move on and clear any backoff."""
        with writer(self.engine) as conn, conn.begin():
            _upsert(conn, source, {"cursor": cursor, "failures": 0, "next_attempt_at": None,
                                   "updated_at": now})

    def record_failure(self, source: str, failures: int, next_attempt_at: datetime,
                       now: datetime) -> None:
        """The council could not be read: keep the cursor, hold off until ``next_attempt_at``."""
        with writer(self.engine) as conn, conn.begin():
            _upsert(conn, source, {"failures": failures, "next_attempt_at": next_attempt_at,
                                   "updated_at": now})

    def reset(self, source: str) -> None:
        """Forget a source's position (re-read its feed from the start; duplicates dedupe)."""
        with writer(self.engine) as conn, conn.begin():
            conn.execute(poll_cursors.delete().where(poll_cursors.c.source == source))
