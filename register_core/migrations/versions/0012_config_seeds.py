"""config as seed: the config file's sources and subscriptions as last applied

``config_seeds``: per kind (``source``, ``subscription``) and id, a digest of the config
file's entry as last applied and a digest per top-level field of the definition stored then.
Preloading applies an entry only when it is new or its digest changed, so a change made
through the API is no longer undone by the next ``serve``, ``worker`` or ``import-csv``.
Existing databases start empty here: the first start after upgrading applies every file
entry once (what every start did before), then only changed ones.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-09 10:00:00.000000
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'config_seeds',
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('digest', sa.String(length=64), nullable=False),
        sa.Column('fields', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'),
                  nullable=False),
        sa.Column('applied_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('kind', 'id', name=op.f('pk_config_seeds')),
    )


def downgrade() -> None:
    op.drop_table('config_seeds')
