"""outbound: SLA alerts retried until the webhook accepts them; superseded deliveries

``warning_alerted_at`` / ``breach_alerted_at``: when the alert webhook accepted the alert;
``alert_retry_at``: when an alert not accepted yet is tried again (partial index: only rows
with an alert outstanding). ``superseded_by``: a dead letter closed because a later delivery
gave the partner a newer state (status ``superseded``).

Existing rows: alerts the webhook accepted before (a ``delivery_alerts`` row without error)
count as alerted; a failed delivery with a later delivered one to the same subscriber for
the same person becomes ``superseded``.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 12:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

OUTSTANDING = sa.text("alert_retry_at IS NOT NULL")
_LATER_DELIVERED = (
    "FROM outbound_deliveries later WHERE later.subscription_id = "
    "outbound_deliveries.subscription_id AND later.person_id = outbound_deliveries.person_id "
    "AND later.id > outbound_deliveries.id AND later.status = 'delivered'")


def upgrade() -> None:
    with op.batch_alter_table('outbound_deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('warning_alerted_at', sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column('breach_alerted_at', sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column('alert_retry_at', sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column(
            'superseded_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
            nullable=True))
        batch_op.create_index('ix_outbound_deliveries_alert_retry', ['alert_retry_at'],
                              unique=False, postgresql_where=OUTSTANDING,
                              sqlite_where=OUTSTANDING)
    for kind, marked, alerted in (('warning', 'warned_at', 'warning_alerted_at'),
                                  ('breach', 'breached_at', 'breach_alerted_at')):
        op.execute(
            f"UPDATE outbound_deliveries SET {alerted} = {marked} "  # noqa: S608 (constants)
            f"WHERE {marked} IS NOT NULL AND EXISTS (SELECT 1 FROM delivery_alerts a "
            f"WHERE a.delivery_id = outbound_deliveries.id AND a.kind = '{kind}' "
            "AND a.error IS NULL)")
    op.execute(
        "UPDATE outbound_deliveries SET status = 'superseded', claim = NULL, "  # noqa: S608
        f"lease_until = NULL, superseded_by = (SELECT min(later.id) {_LATER_DELIVERED}) "
        f"WHERE status = 'failed' AND EXISTS (SELECT 1 {_LATER_DELIVERED})")


def downgrade() -> None:
    op.execute("UPDATE outbound_deliveries SET status = 'failed' "
               "WHERE status = 'superseded'")
    with op.batch_alter_table('outbound_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_outbound_deliveries_alert_retry')
        batch_op.drop_column('superseded_by')
        batch_op.drop_column('alert_retry_at')
        batch_op.drop_column('breach_alerted_at')
        batch_op.drop_column('warning_alerted_at')
