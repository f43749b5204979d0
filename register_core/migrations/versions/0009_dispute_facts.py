"""facts: disputes logged before their steps were journalled get their dispute-opened (and
dispute-resolved) facts, so the position sees them (an ending dated while a dispute about
ending is open does not end the entitlement)

The facts are what ``services.disputes`` now records (source ``register``, source_ref
``dispute:<id>``, the payload ``codec.to_json`` writes); each person touched moves to a new
version, so the sweep computes them again (it would anyway: the code changed).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 09:00:00.000000
"""
from datetime import UTC, date, datetime, time
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
_disputes = sa.table(
    'disputes', sa.column('id', sa.String()), sa.column('person_id', sa.String()),
    sa.column('kind', sa.String()), sa.column('opened', sa.Date()),
    sa.column('resolved', sa.Date()), sa.column('history', _JSON),
    sa.column('created_by', sa.String()), sa.column('created_at', sa.DateTime(timezone=True)))
_facts = sa.table(
    'facts', sa.column('person_id', sa.String()), sa.column('seq', sa.Integer()),
    sa.column('kind', sa.String()), sa.column('effective', sa.Date()),
    sa.column('payload', _JSON), sa.column('source', sa.String()),
    sa.column('source_ref', sa.String()), sa.column('received_at', sa.DateTime(timezone=True)),
    sa.column('recorded_by', sa.String()), sa.column('recorded_at', sa.DateTime(timezone=True)))
_persons = sa.table('persons', sa.column('id', sa.String()), sa.column('version', sa.Integer()))
# PersonRef's fields: a register record names no one (``codec.to_json`` keeps the Nones).
_NOBODY = dict.fromkeys(('nhs_number', 'nhs_number_verified', 'local_id', 'family_name',
                         'given_name', 'birth_date', 'sex', 'postcode', 'gp_practice_ods',
                         'death_date'))


def _aware(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _fact(dispute: Any, kind: str, day: date, at: datetime, by: str, now: datetime,
          extra: dict[str, Any]) -> dict[str, Any]:
    ref = f"dispute:{dispute.id}"
    return {
        'person_id': dispute.person_id, 'kind': kind, 'effective': day, 'source': 'register',
        'source_ref': ref, 'received_at': at, 'recorded_by': by, 'recorded_at': now,
        'payload': {'person': dict(_NOBODY),
                    'provenance': {'source': 'register', 'source_ref': ref,
                                   'received_at': at.isoformat(), 'recorded_by': by},
                    'dispute_id': dispute.id, **extra, 'date': day.isoformat()}}


def backfill(conn: sa.Connection, now: datetime) -> int:
    """Journal every dispute that is not yet; returns the facts written."""
    done = {ref for (ref,) in conn.execute(
        sa.select(_facts.c.source_ref).where(sa.and_(
            _facts.c.source == 'register', _facts.c.kind == 'dispute-opened')))}
    rows = [row for row in conn.execute(
        sa.select(_disputes).order_by(_disputes.c.opened, _disputes.c.created_at,
                                      _disputes.c.id))
            if f"dispute:{row.id}" not in done]
    if not rows:
        return 0
    seqs = dict(conn.execute(
        sa.select(_facts.c.person_id, sa.func.max(_facts.c.seq))
        .where(_facts.c.person_id.in_({row.person_id for row in rows}))
        .group_by(_facts.c.person_id)).all())
    written = []
    for row in rows:
        opened_at = _aware(row.created_at)
        facts = [_fact(row, 'dispute-opened', row.opened, opened_at, row.created_by, now,
                       {'dispute_kind': row.kind})]
        if row.resolved is not None:
            step = next((h for h in reversed(row.history or [])
                         if h.get('event') == 'resolved'), {})
            at = _aware(step['at']) if step.get('at') else datetime.combine(
                row.resolved, time(), tzinfo=UTC)
            facts.append(_fact(row, 'dispute-resolved', row.resolved, at,
                               step.get('by') or row.created_by, now, {}))
        for fact in facts:
            seqs[row.person_id] = (seqs.get(row.person_id) or 0) + 1
            written.append({**fact, 'seq': seqs[row.person_id]})
    conn.execute(sa.insert(_facts), written)
    conn.execute(sa.update(_persons).where(_persons.c.id.in_({row.person_id for row in rows}))
                 .values(version=_persons.c.version + 1))
    return len(written)


def upgrade() -> None:
    backfill(op.get_bind(), datetime.now(UTC))


def downgrade() -> None:
    # Older code cannot decode these kinds (``codec``): drop them. The disputes table still
    # holds every dispute; the next upgrade journals them again.
    op.execute("DELETE FROM facts WHERE source = 'register' "
               "AND kind IN ('dispute-opened', 'dispute-resolved')")
