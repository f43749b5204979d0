"""Disputes over SQLAlchemy Core, in the caller's transaction.

The stage rules (initial stage, deadlines in England working days, escalation) are in
``register_core.domain.rules.disputes``; the workflow in ``register_core.services.disputes``.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, true, update

from .tables import disputes, facts, persons


class DisputeStore:
    def __init__(self, connection: Connection) -> None:
        self.conn = connection

    def person_exists(self, person_id: str) -> bool:
        return self.conn.execute(
            select(persons.c.id).where(persons.c.id == person_id)).first() is not None

    def journal_holder(self, dispute_id: str) -> str | None:
        """Whose journal holds the dispute's opening (``services.disputes``): the person it
        was opened for, or whoever their record was merged into since."""
        return self.conn.execute(select(facts.c.person_id).where(and_(
            facts.c.source == "register", facts.c.source_ref == f"dispute:{dispute_id}",
            facts.c.kind == "dispute-opened", facts.c.retracted_by.is_(None)))
            .order_by(facts.c.id.desc()).limit(1)).scalar()

    def create(self, *, person_id: str, kind: str, summary: str, opened: date, stage: int,
               stage_due: date | None, history: list[dict[str, Any]], created_by: str,
               now: datetime) -> str:
        dispute_id = str(uuid.uuid4())
        self.conn.execute(insert(disputes).values(
            id=dispute_id, person_id=person_id, kind=kind, opened=opened, stage=stage,
            stage_started=opened, stage_due=stage_due, summary=summary, outcome=None,
            resolved=None, history=history, created_by=created_by, created_at=now))
        return dispute_id

    def get(self, dispute_id: str, *, for_update: bool = False) -> dict[str, Any] | None:
        query = select(disputes).where(disputes.c.id == dispute_id)
        if for_update and self.conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = self.conn.execute(query).mappings().first()
        return dict(row) if row is not None else None

    def move_stage(self, dispute_id: str, *, stage: int, started: date, due: date | None,
                   history: list[dict[str, Any]]) -> None:
        self.conn.execute(update(disputes).where(disputes.c.id == dispute_id).values(
            stage=stage, stage_started=started, stage_due=due, history=history))

    def resolve(self, dispute_id: str, *, outcome: str, resolved: date,
                history: list[dict[str, Any]]) -> None:
        self.conn.execute(update(disputes).where(disputes.c.id == dispute_id).values(
            outcome=outcome, resolved=resolved, history=history))

    def query(self, today: date, *, stage: int | None = None, overdue: bool | None = None,
              person_id: str | None = None, kind: str | None = None,
              resolved: bool | None = None, limit: int = 100,
              offset: int = 0) -> tuple[int, list[dict[str, Any]]]:
        """Disputes, oldest first. ``overdue``: unresolved and past the stage deadline."""
        conditions = []
        if stage is not None:
            conditions.append(disputes.c.stage == stage)
        if person_id:
            conditions.append(disputes.c.person_id == person_id)
        if kind:
            conditions.append(disputes.c.kind == kind)
        if resolved is True:
            conditions.append(disputes.c.resolved.is_not(None))
        elif resolved is False:
            conditions.append(disputes.c.resolved.is_(None))
        late = and_(disputes.c.resolved.is_(None), disputes.c.stage_due.is_not(None),
                    disputes.c.stage_due < today)
        if overdue is True:
            conditions.append(late)
        elif overdue is False:
            conditions.append(~late)
        where = and_(true(), *conditions)
        total = self.conn.execute(
            select(func.count()).select_from(disputes).where(where)).scalar_one()
        rows = self.conn.execute(select(disputes).where(where)
                                 .order_by(disputes.c.opened, disputes.c.created_at,
                                           disputes.c.id)
                                 .limit(limit).offset(offset)).mappings()
        return int(total), [dict(r) for r in rows]
