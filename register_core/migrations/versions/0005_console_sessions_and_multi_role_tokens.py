"""console sessions; a token may hold several roles (comma-separated), so role columns widen

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 14:50:00.000000
"""
from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.alter_column('role', existing_type=sa.String(length=30),
                              type_=sa.String(length=120), existing_nullable=False)
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.alter_column('role', existing_type=sa.String(length=30),
                              type_=sa.String(length=120), existing_nullable=False)
    op.create_table('console_sessions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('token_id', sa.String(length=36), nullable=False),
    sa.Column('csrf_token', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['token_id'], ['api_tokens.id'],
                            name=op.f('fk_console_sessions_token_id_api_tokens')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_console_sessions'))
    )
    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_console_sessions_token_id'), ['token_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_console_sessions_token_id'))
    op.drop_table('console_sessions')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.alter_column('role', existing_type=sa.String(length=120),
                              type_=sa.String(length=30), existing_nullable=False)
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.alter_column('role', existing_type=sa.String(length=120),
                              type_=sa.String(length=30), existing_nullable=False)
