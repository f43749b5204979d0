"""Register exceptions over SQLAlchemy Core, in the caller's transaction.

The rules of which rows open and close are in ``reconciliation.exceptions``; this module only
reads and writes ``register_exceptions`` (and reads ``entitlements`` to filter by council/ICB).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, insert, select, true, update

from reconciliation.exceptions import StoredException
from reconciliation.findings import Finding

from .database import as_utc
from .tables import entitlements, person_identifiers, persons, register_exceptions

_T = register_exceptions
# Built once: the sweep runs these per person, and building a statement per call cost more
# than SQLite took to run it.
_FOR_PERSON = (select(_T.c.id, _T.c.kind, _T.c.status, _T.c.fingerprint, _T.c.summary,
                      _T.c.detail, _T.c.closed_by)
               .where(_T.c.person_id == bindparam("pid")).order_by(_T.c.raised, _T.c.id))
_FOR_PEOPLE = (select(_T.c.person_id, _T.c.id, _T.c.kind, _T.c.status, _T.c.fingerprint,
                      _T.c.summary, _T.c.detail, _T.c.closed_by)
               .where(_T.c.person_id.in_(bindparam("pids", expanding=True)))
               .order_by(_T.c.person_id, _T.c.raised, _T.c.id))
_INSERT = insert(_T)
_REFRESH = (update(_T).where(_T.c.id == bindparam("eid"))
            .values(summary=bindparam("summary"), detail=bindparam("detail")))


def _aware(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def exception_json(row: Any) -> dict[str, Any]:
    """The API shape of one exception (no NHS number or name: detectors keep them out)."""
    raised, closed = _aware(row["raised"]), _aware(row["closed_at"])
    return {"id": row["id"], "person_id": row["person_id"], "kind": row["kind"],
            "status": row["status"], "raised": raised.isoformat() if raised else None,
            "summary": row["summary"], "detail": row["detail"],
            "fingerprint": row["fingerprint"], "assigned_to": row["assigned_to"],
            "decision": row["decision"], "reason": row["reason"],
            "closed_by": row["closed_by"],
            "closed_at": closed.isoformat() if closed else None}


def _stored(row: Any) -> StoredException:
    return StoredException(id=row["id"], kind=row["kind"], status=row["status"],
                           fingerprint=row["fingerprint"], summary=row["summary"],
                           detail=row["detail"] or {}, closed_by=row["closed_by"])


@dataclass(frozen=True, kw_only=True)
class ExceptionFilter:
    status: str | None = None
    kind: str | None = None
    person_id: str | None = None
    council: str | None = None
    icb: str | None = None


class ExceptionStore:
    def __init__(self, connection: Connection) -> None:
        self.conn = connection

    # -- sync -------------------------------------------------------------------------------

    def for_person(self, person_id: str) -> list[StoredException]:
        rows = self.conn.execute(_FOR_PERSON, {"pid": person_id}).mappings()
        return [_stored(r) for r in rows]

    def for_people(self, person_ids: Iterable[str]) -> dict[str, list[StoredException]]:
        """``for_person`` for many people in one query (the sweep reads a page at a time)."""
        found: dict[str, list[StoredException]] = {pid: [] for pid in person_ids}
        if not found:
            return found
        for r in self.conn.execute(_FOR_PEOPLE, {"pids": list(found)}).mappings():
            found[r["person_id"]].append(_stored(r))
        return found

    def open_many(self, person_id: str, findings: Iterable[Finding],
                  raised: datetime) -> list[tuple[str, str]]:
        """Insert one open exception per finding; returns (id, kind) of each."""
        return self.open_for_people([(person_id, f) for f in findings], raised)

    def open_for_people(self, findings: Iterable[tuple[str, Finding]],
                        raised: datetime) -> list[tuple[str, str]]:
        """Insert one open exception per (person id, finding), in one statement."""
        rows = [{"id": str(uuid.uuid4()), "person_id": pid, "kind": f.kind,
                 "status": "open", "fingerprint": f.fingerprint, "summary": f.summary,
                 "detail": f.detail, "raised": raised} for pid, f in findings]
        if rows:
            self.conn.execute(_INSERT, rows)
        return [(r["id"], r["kind"]) for r in rows]

    def refresh(self, exception_id: str, found: Finding) -> None:
        self.refresh_many([(exception_id, found)])

    def refresh_many(self, refreshed: Iterable[tuple[str, Finding]]) -> None:
        """New summary and detail for each (exception id, finding), in one statement."""
        rows = [{"eid": eid, "summary": f.summary, "detail": f.detail} for eid, f in refreshed]
        if rows:
            self.conn.execute(_REFRESH, rows)

    def close(self, exception_ids: Iterable[str], *, status: str, decision: str, reason: str,
              closed_by: str, at: datetime) -> None:
        ids = list(exception_ids)
        if ids:
            self.conn.execute(update(_T).where(_T.c.id.in_(ids)).values(
                status=status, decision=decision, reason=reason, closed_by=closed_by,
                closed_at=at))

    # -- one exception ------------------------------------------------------------------------

    def get(self, exception_id: str, *, for_update: bool = False) -> dict[str, Any] | None:
        query = select(_T).where(_T.c.id == exception_id)
        if for_update and self.conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = self.conn.execute(query).mappings().first()
        return exception_json(row) if row is not None else None

    def lock_person(self, person_id: str) -> None:
        """Take the person's row lock (PostgreSQL) before touching their exceptions: the sync
        locks the person first too, so the two never wait on each other in a circle."""
        if self.conn.dialect.name == "postgresql":
            self.conn.execute(select(persons.c.id).where(persons.c.id == person_id)
                              .with_for_update())

    def assign(self, exception_id: str, assignee: str) -> None:
        self.conn.execute(update(_T).where(_T.c.id == exception_id)
                          .values(status="assigned", assigned_to=assignee))

    # -- queries ------------------------------------------------------------------------------

    def query(self, wanted: ExceptionFilter, *, limit: int = 100,
              offset: int = 0) -> tuple[int, list[dict[str, Any]]]:
        conditions = []
        if wanted.status:
            conditions.append(_T.c.status == wanted.status)
        if wanted.kind:
            conditions.append(_T.c.kind == wanted.kind)
        if wanted.person_id:
            conditions.append(_T.c.person_id == wanted.person_id)
        if wanted.council:
            conditions.append(entitlements.c.responsible_council == wanted.council)
        if wanted.icb:
            conditions.append(entitlements.c.responsible_icb == wanted.icb)
        source = _T.outerjoin(entitlements, entitlements.c.person_id == _T.c.person_id)
        where = and_(true(), *conditions)
        total = self.conn.execute(
            select(func.count()).select_from(source).where(where)).scalar_one()
        rows = self.conn.execute(select(_T).select_from(source).where(where)
                                 .order_by(_T.c.raised, _T.c.id)
                                 .limit(limit).offset(offset)).mappings()
        return int(total), [exception_json(r) for r in rows]

    def live_counts(self) -> dict[str, int]:
        """Open and assigned exceptions by kind (the board report and the CLI read this)."""
        rows = self.conn.execute(select(_T.c.kind, func.count()).where(
            _T.c.status.in_(("open", "assigned"))).group_by(_T.c.kind))
        return {kind: int(n) for kind, n in rows}


def register_identifier(conn: Connection, person_id: str, source: str) -> str:
    """The register's own identifier for a person (``source``, person id), added if missing,
    so a correction made at the register can name a person who has no NHS number."""
    found = conn.execute(select(person_identifiers.c.person_id).where(and_(
        person_identifiers.c.source == source, person_identifiers.c.value == person_id))).first()
    if found is None:
        conn.execute(insert(person_identifiers).values(person_id=person_id, source=source,
                                                       value=person_id))
    return person_id
