"""phone login: login requests, the device of a mobile session, clients without card login

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('login_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=64), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('browser_hash', sa.String(length=64), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('authorize_query', sa.Text(), nullable=False),
    sa.Column('match_code', sa.String(length=8), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('challenge', sa.LargeBinary(), nullable=True),
    sa.Column('passkey_challenge', sa.LargeBinary(), nullable=True),
    sa.Column('scanned_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('consumed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('approved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('failure', sa.String(length=60), nullable=True),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.Column('device_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_login_requests_account_id_accounts')),
    sa.ForeignKeyConstraint(['client_id'], ['oidc_clients.id'], name=op.f('fk_login_requests_client_id_oidc_clients')),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_login_requests_device_id_devices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_requests')),
    sa.UniqueConstraint('public_id', name=op.f('uq_login_requests_public_id')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_login_requests_token_hash'))
    )
    with op.batch_alter_table('login_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_login_requests_client_id'), ['client_id'], unique=False)
        batch_op.create_index('ix_login_requests_expires_at', ['expires_at'], unique=False)

    with op.batch_alter_table('auth_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('device_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_auth_sessions_device_id_devices'), 'devices', ['device_id'], ['id'])

    with op.batch_alter_table('oidc_clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('allow_card_login', sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade():
    with op.batch_alter_table('oidc_clients', schema=None) as batch_op:
        batch_op.drop_column('allow_card_login')

    with op.batch_alter_table('auth_sessions', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_auth_sessions_device_id_devices'), type_='foreignkey')
        batch_op.drop_column('device_id')

    with op.batch_alter_table('login_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_login_requests_expires_at')
        batch_op.drop_index(batch_op.f('ix_login_requests_client_id'))

    op.drop_table('login_requests')
