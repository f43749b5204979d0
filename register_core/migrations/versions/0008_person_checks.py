"""person_checks: the version, rules and date up to which each person's sweep result holds

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 23:50:00.000000
"""
from alembic import op
import sqlalchemy as sa

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Empty at first: every person is swept once more, and kept from then on.
    op.create_table(
        'person_checks',
        sa.Column('person_id', sa.String(length=36), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('rules', sa.String(length=64), nullable=False),
        sa.Column('holds_until', sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(['person_id'], ['persons.id'], ),
        sa.PrimaryKeyConstraint('person_id'),
    )


def downgrade() -> None:
    op.drop_table('person_checks')
