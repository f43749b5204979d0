"""outbound: subscriptions, the delivery outbox and SLA alerts (issue 5)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 11:55:23.274339
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

WAITING = sa.text("status IN ('pending', 'retrying')")
OPEN = sa.text("status IN ('pending', 'sending', 'retrying', 'failed')")


def upgrade() -> None:
    op.create_table('delivery_alerts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('delivery_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('url', sa.String(length=500), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_delivery_alerts'))
    )
    with op.batch_alter_table('delivery_alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_delivery_alerts_delivery_id'), ['delivery_id'], unique=False)

    op.create_table('outbound_changes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('person_id', sa.String(length=36), nullable=False),
    sa.Column('changes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('document', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbound_changes'))
    )
    with op.batch_alter_table('outbound_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbound_changes_person_id'), ['person_id'], unique=False)

    op.create_table('subscriptions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('endpoint', sa.String(length=500), nullable=False),
    sa.Column('config', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscriptions'))
    )
    op.create_table('outbound_deliveries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('change_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('subscription_id', sa.String(length=64), nullable=False),
    sa.Column('person_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('idempotency_key', sa.String(length=36), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('claim', sa.String(length=36), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_status_code', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('response_body', sa.Text(), nullable=True),
    sa.Column('manual_retries', sa.Integer(), nullable=False),
    sa.Column('warned_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('breached_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['change_id'], ['outbound_changes.id'], name=op.f('fk_outbound_deliveries_change_id_outbound_changes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbound_deliveries')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_outbound_deliveries_idempotency_key'))
    )
    with op.batch_alter_table('outbound_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_outbound_deliveries_waiting', ['subscription_id', 'id'], unique=False, postgresql_where=WAITING, sqlite_where=WAITING)
        batch_op.create_index('ix_outbound_deliveries_open_due', ['due_at'], unique=False, postgresql_where=OPEN, sqlite_where=OPEN)
        batch_op.create_index('ix_outbound_deliveries_status_next', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index('ix_outbound_deliveries_sub_person_id', ['subscription_id', 'person_id', 'id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('outbound_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_outbound_deliveries_sub_person_id')
        batch_op.drop_index('ix_outbound_deliveries_status_next')
        batch_op.drop_index('ix_outbound_deliveries_open_due')
        batch_op.drop_index('ix_outbound_deliveries_waiting')

    op.drop_table('outbound_deliveries')
    op.drop_table('subscriptions')
    with op.batch_alter_table('outbound_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbound_changes_person_id'))

    op.drop_table('outbound_changes')
    with op.batch_alter_table('delivery_alerts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_delivery_alerts_delivery_id'))

    op.drop_table('delivery_alerts')
