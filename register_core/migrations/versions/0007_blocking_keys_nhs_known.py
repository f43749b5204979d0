"""person_blocking_keys.nhs_known: a record with an NHS number looks only among people without

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 16:35:00.000000
"""
from alembic import op
import sqlalchemy as sa

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('person_blocking_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('nhs_known', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.drop_index('ix_person_blocking_keys_key')
        batch_op.create_index('ix_person_blocking_keys_key_nhs_known', ['key', 'nhs_known'],
                              unique=False)
    op.execute(
        "UPDATE person_blocking_keys SET nhs_known = EXISTS (SELECT 1 FROM persons "
        "WHERE persons.id = person_blocking_keys.person_id "
        "AND persons.nhs_number IS NOT NULL)")


def downgrade() -> None:
    with op.batch_alter_table('person_blocking_keys', schema=None) as batch_op:
        batch_op.drop_index('ix_person_blocking_keys_key_nhs_known')
        batch_op.create_index('ix_person_blocking_keys_key', ['key'], unique=False)
        batch_op.drop_column('nhs_known')
