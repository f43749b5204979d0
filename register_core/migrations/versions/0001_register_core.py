"""register core

Revision ID: 0001
Revises: 
Create Date: 2026-12-01 11:12:34.700850
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    op.create_table('api_tokens',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=30), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=True),
    sa.Column('label', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=36), nullable=False),
    sa.Column('role', sa.String(length=30), nullable=False),
    sa.Column('action', sa.String(length=10), nullable=False),
    sa.Column('resource', sa.String(length=60), nullable=False),
    sa.Column('resource_id', sa.String(length=100), nullable=True),
    sa.Column('person_id', sa.String(length=36), nullable=True),
    sa.Column('purpose', sa.String(length=200), nullable=True),
    sa.Column('request', sa.String(length=300), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_person_id'), ['person_id'], unique=False)

    op.create_table('persons',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('nhs_number', sa.String(length=10), nullable=True),
    sa.Column('nhs_number_verified', sa.Boolean(), nullable=True),
    sa.Column('family_name', sa.String(length=200), nullable=True),
    sa.Column('given_name', sa.String(length=200), nullable=True),
    sa.Column('birth_date', sa.Date(), nullable=True),
    sa.Column('sex', sa.String(length=20), nullable=True),
    sa.Column('postcode', sa.String(length=10), nullable=True),
    sa.Column('gp_practice_ods', sa.String(length=12), nullable=True),
    sa.Column('death_date', sa.Date(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_persons')),
    sa.UniqueConstraint('nhs_number', name=op.f('uq_persons_nhs_number'))
    )
    op.create_table('detentions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('person_id', sa.String(length=36), nullable=False),
    sa.Column('ref', sa.String(length=120), nullable=False),
    sa.Column('section', sa.String(length=2), nullable=False),
    sa.Column('start', sa.Date(), nullable=False),
    sa.Column('end', sa.Date(), nullable=True),
    sa.Column('end_reason', sa.String(length=40), nullable=True),
    sa.Column('provider_ods', sa.String(length=12), nullable=True),
    sa.ForeignKeyConstraint(['person_id'], ['persons.id'], name=op.f('fk_detentions_person_id_persons')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_detentions'))
    )
    with op.batch_alter_table('detentions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_detentions_person_id'), ['person_id'], unique=False)

    op.create_table('disputes',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('person_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('opened', sa.Date(), nullable=False),
    sa.Column('stage', sa.Integer(), nullable=False),
    sa.Column('stage_started', sa.Date(), nullable=False),
    sa.Column('stage_due', sa.Date(), nullable=True),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('outcome', sa.Text(), nullable=True),
    sa.Column('resolved', sa.Date(), nullable=True),
    sa.Column('history', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_by', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['persons.id'], name=op.f('fk_disputes_person_id_persons')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_disputes'))
    )
    with op.batch_alter_table('disputes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_disputes_person_id'), ['person_id'], unique=False)

    op.create_table('entitlements',
    sa.Column('person_id', sa.String(length=36), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('start', sa.Date(), nullable=True),
    sa.Column('pending_since', sa.Date(), nullable=True),
    sa.Column('trigger_section', sa.String(length=2), nullable=True),
    sa.Column('trigger_episode', sa.String(length=100), nullable=True),
    sa.Column('responsible_council', sa.String(length=12), nullable=True),
    sa.Column('responsible_icb', sa.String(length=12), nullable=True),
    sa.Column('named_practitioner', sa.String(length=200), nullable=True),
    sa.Column('aftercare_plan_date', sa.Date(), nullable=True),
    sa.Column('last_review', sa.Date(), nullable=True),
    sa.Column('next_review_due', sa.Date(), nullable=True),
    sa.Column('ended_date', sa.Date(), nullable=True),
    sa.Column('ended', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('on_cto', sa.Boolean(), nullable=False),
    sa.Column('in_hospital', sa.Boolean(), nullable=False),
    sa.Column('explain', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('detentions', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('as_of', sa.Date(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['persons.id'], name=op.f('fk_entitlements_person_id_persons')),
    sa.PrimaryKeyConstraint('person_id', name=op.f('pk_entitlements'))
    )
    with op.batch_alter_table('entitlements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_entitlements_next_review_due'), ['next_review_due'], unique=False)
        batch_op.create_index(batch_op.f('ix_entitlements_responsible_council'), ['responsible_council'], unique=False)
        batch_op.create_index(batch_op.f('ix_entitlements_responsible_icb'), ['responsible_icb'], unique=False)
        batch_op.create_index(batch_op.f('ix_entitlements_status'), ['status'], unique=False)

    op.create_table('facts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('person_id', sa.String(length=36), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('effective', sa.Date(), nullable=True),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('source_ref', sa.String(length=200), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_by', sa.String(length=100), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('retracted_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['person_id'], ['persons.id'], name=op.f('fk_facts_person_id_persons')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_facts')),
    sa.UniqueConstraint('person_id', 'seq', name='uq_facts_person_seq')
    )
    with op.batch_alter_table('facts', schema=None) as batch_op:
        batch_op.create_index('ix_facts_kind_effective', ['kind', 'effective'], unique=False)
        batch_op.create_index('ix_facts_source_ref', ['source', 'source_ref'], unique=False)

    op.create_table('person_identifiers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('person_id', sa.String(length=36), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['persons.id'], name=op.f('fk_person_identifiers_person_id_persons')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_person_identifiers')),
    sa.UniqueConstraint('source', 'value', name='uq_person_identifiers_source_value')
    )
    with op.batch_alter_table('person_identifiers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_person_identifiers_person_id'), ['person_id'], unique=False)

    op.create_table('register_changes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('person_id', sa.String(length=36), nullable=False),
    sa.Column('field', sa.String(length=60), nullable=False),
    sa.Column('old_value', sa.Text(), nullable=True),
    sa.Column('new_value', sa.Text(), nullable=True),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('source_ref', sa.String(length=200), nullable=False),
    sa.Column('recorded_by', sa.String(length=100), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['persons.id'], name=op.f('fk_register_changes_person_id_persons')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_register_changes'))
    )
    with op.batch_alter_table('register_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_register_changes_person_id'), ['person_id'], unique=False)

    op.create_table('register_exceptions',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('person_id', sa.String(length=36), nullable=True),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('fingerprint', sa.String(length=200), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('detail', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('raised', sa.DateTime(timezone=True), nullable=False),
    sa.Column('assigned_to', sa.String(length=100), nullable=True),
    sa.Column('decision', sa.Text(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('closed_by', sa.String(length=100), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['person_id'], ['persons.id'], name=op.f('fk_register_exceptions_person_id_persons')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_register_exceptions'))
    )
    with op.batch_alter_table('register_exceptions', schema=None) as batch_op:
        batch_op.create_index('ix_register_exceptions_fingerprint', ['fingerprint'], unique=False)
        batch_op.create_index(batch_op.f('ix_register_exceptions_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_register_exceptions_person_id'), ['person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_register_exceptions_status'), ['status'], unique=False)

    


def downgrade() -> None:
    
    with op.batch_alter_table('register_exceptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_register_exceptions_status'))
        batch_op.drop_index(batch_op.f('ix_register_exceptions_person_id'))
        batch_op.drop_index(batch_op.f('ix_register_exceptions_kind'))
        batch_op.drop_index('ix_register_exceptions_fingerprint')

    op.drop_table('register_exceptions')
    with op.batch_alter_table('register_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_register_changes_person_id'))

    op.drop_table('register_changes')
    with op.batch_alter_table('person_identifiers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_person_identifiers_person_id'))

    op.drop_table('person_identifiers')
    with op.batch_alter_table('facts', schema=None) as batch_op:
        batch_op.drop_index('ix_facts_source_ref')
        batch_op.drop_index('ix_facts_kind_effective')

    op.drop_table('facts')
    with op.batch_alter_table('entitlements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_entitlements_status'))
        batch_op.drop_index(batch_op.f('ix_entitlements_responsible_icb'))
        batch_op.drop_index(batch_op.f('ix_entitlements_responsible_council'))
        batch_op.drop_index(batch_op.f('ix_entitlements_next_review_due'))

    op.drop_table('entitlements')
    with op.batch_alter_table('disputes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_disputes_person_id'))

    op.drop_table('disputes')
    with op.batch_alter_table('detentions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_detentions_person_id'))

    op.drop_table('detentions')
    op.drop_table('persons')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_person_id'))
        batch_op.drop_index(batch_op.f('ix_audit_log_at'))

    op.drop_table('audit_log')
    op.drop_table('api_tokens')
    
