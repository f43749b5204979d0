"""inbox: the bytes received, where the payload text does not give them back

``inbox_messages.raw``: the message exactly as it arrived, kept only when the stored text,
encoded as UTF-8, is not those bytes (a Latin-1 or other MSH-18 character set, bytes invalid
in the charset named, a NUL, a body that is not UTF-8); NULL means ``payload`` encoded as
UTF-8 is what was received. Existing rows: NULL (what they were is not known).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 12:45:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('inbox_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('raw', sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('inbox_messages', schema=None) as batch_op:
        batch_op.drop_column('raw')
