"""identity: blocking keys per person (probabilistic linking in the write path) and the
merges that can be undone; keys are filled in for the people already registered

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 15:00:00.000000
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
_PAGE = 1000


def upgrade() -> None:
    op.create_table('person_blocking_keys',
    sa.Column('person_id', sa.String(length=36), nullable=False),
    sa.Column('key', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['persons.id'],
                            name=op.f('fk_person_blocking_keys_person_id_persons')),
    sa.PrimaryKeyConstraint('person_id', 'key', name=op.f('pk_person_blocking_keys'))
    )
    with op.batch_alter_table('person_blocking_keys', schema=None) as batch_op:
        batch_op.create_index('ix_person_blocking_keys_key', ['key'], unique=False)
    op.create_table('person_merges',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('survivor_id', sa.String(length=36), nullable=False),
    sa.Column('merged_id', sa.String(length=36), nullable=False),
    sa.Column('fact_ids', _JSON, nullable=False),
    sa.Column('moved', _JSON, nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('source_ref', sa.String(length=200), nullable=False),
    sa.Column('merged_by', sa.String(length=100), nullable=False),
    sa.Column('merged_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('unmerged_by', sa.String(length=100), nullable=True),
    sa.Column('unmerged_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['merged_id'], ['persons.id'],
                            name=op.f('fk_person_merges_merged_id_persons')),
    sa.ForeignKeyConstraint(['survivor_id'], ['persons.id'],
                            name=op.f('fk_person_merges_survivor_id_persons')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_person_merges'))
    )
    with op.batch_alter_table('person_merges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_person_merges_merged_id'), ['merged_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_person_merges_survivor_id'), ['survivor_id'],
                              unique=False)
    _fill_keys()


def _fill_keys() -> None:
    """Keys for the people registered before this revision, a page at a time."""
    from reconciliation.blocking import person_blocking_keys
    from reconciliation.identity import Candidate

    persons = sa.table('persons', sa.column('id', sa.String), sa.column('family_name', sa.String),
                       sa.column('given_name', sa.String), sa.column('birth_date', sa.Date),
                       sa.column('postcode', sa.String))
    keys = sa.table('person_blocking_keys', sa.column('person_id', sa.String),
                    sa.column('key', sa.String))
    conn = op.get_bind()
    after = ''
    while True:
        rows = conn.execute(sa.select(persons).where(persons.c.id > after)
                            .order_by(persons.c.id).limit(_PAGE)).all()
        if not rows:
            return
        values = [{'person_id': r.id, 'key': key} for r in rows
                  for key in dict.fromkeys(person_blocking_keys(Candidate(
                      id=r.id, family_name=r.family_name, given_name=r.given_name,
                      birth_date=r.birth_date, postcode=r.postcode)))]
        if values:
            conn.execute(sa.insert(keys), values)
        after = rows[-1].id


def downgrade() -> None:
    with op.batch_alter_table('person_merges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_person_merges_survivor_id'))
        batch_op.drop_index(batch_op.f('ix_person_merges_merged_id'))
    op.drop_table('person_merges')
    with op.batch_alter_table('person_blocking_keys', schema=None) as batch_op:
        batch_op.drop_index('ix_person_blocking_keys_key')
    op.drop_table('person_blocking_keys')
