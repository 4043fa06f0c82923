"""oidc

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 22:13:04.168656

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('oidc_clients',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('client_secret_hash', sa.String(length=64), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('redirect_uris', sa.JSON(), nullable=False),
    sa.Column('post_logout_redirect_uris', sa.JSON(), nullable=False),
    sa.Column('allowed_scopes', sa.JSON(), nullable=False),
    sa.Column('token_endpoint_auth_method', sa.String(length=40), nullable=False),
    sa.Column('jwks', sa.JSON(), nullable=True),
    sa.Column('id_token_signed_response_alg', sa.String(length=10), nullable=False),
    sa.Column('subject_type', sa.String(length=10), nullable=False),
    sa.Column('sector', sa.String(length=255), nullable=False),
    sa.Column('allow_national_id', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_oidc_clients')),
    sa.UniqueConstraint('client_id', name=op.f('uq_oidc_clients_client_id'))
    )
    op.create_table('oidc_client_assertions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('jti', sa.String(length=255), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['oidc_clients.id'], name=op.f('fk_oidc_client_assertions_client_id_oidc_clients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_oidc_client_assertions')),
    sa.UniqueConstraint('client_id', 'jti', name=op.f('uq_oidc_client_assertions_client_id'))
    )
    with op.batch_alter_table('oidc_client_assertions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oidc_client_assertions_expires_at'), ['expires_at'], unique=False)

    op.create_table('oidc_consents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('scopes', sa.JSON(), nullable=False),
    sa.Column('granted_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_oidc_consents_account_id_accounts')),
    sa.ForeignKeyConstraint(['client_id'], ['oidc_clients.id'], name=op.f('fk_oidc_consents_client_id_oidc_clients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_oidc_consents')),
    sa.UniqueConstraint('account_id', 'client_id', name=op.f('uq_oidc_consents_account_id'))
    )
    op.create_table('oidc_authorization_codes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('auth_session_id', sa.Integer(), nullable=False),
    sa.Column('auth_method', sa.String(length=20), nullable=False),
    sa.Column('redirect_uri', sa.Text(), nullable=False),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('nonce', sa.String(length=255), nullable=True),
    sa.Column('code_challenge', sa.String(length=128), nullable=True),
    sa.Column('code_challenge_method', sa.String(length=10), nullable=True),
    sa.Column('auth_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('acr', sa.String(length=80), nullable=False),
    sa.Column('amr', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_oidc_authorization_codes_account_id_accounts')),
    sa.ForeignKeyConstraint(['auth_session_id'], ['auth_sessions.id'], name=op.f('fk_oidc_authorization_codes_auth_session_id_auth_sessions')),
    sa.ForeignKeyConstraint(['client_id'], ['oidc_clients.id'], name=op.f('fk_oidc_authorization_codes_client_id_oidc_clients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_oidc_authorization_codes')),
    sa.UniqueConstraint('code_hash', name=op.f('uq_oidc_authorization_codes_code_hash'))
    )
    with op.batch_alter_table('oidc_authorization_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oidc_authorization_codes_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_oidc_authorization_codes_client_id'), ['client_id'], unique=False)

    op.create_table('oidc_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('auth_session_id', sa.Integer(), nullable=True),
    sa.Column('auth_method', sa.String(length=20), nullable=False),
    sa.Column('authorization_code_id', sa.Integer(), nullable=True),
    sa.Column('access_token_hash', sa.String(length=64), nullable=False),
    sa.Column('refresh_token_hash', sa.String(length=64), nullable=True),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('refresh_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_oidc_tokens_account_id_accounts')),
    sa.ForeignKeyConstraint(['auth_session_id'], ['auth_sessions.id'], name=op.f('fk_oidc_tokens_auth_session_id_auth_sessions')),
    sa.ForeignKeyConstraint(['authorization_code_id'], ['oidc_authorization_codes.id'], name=op.f('fk_oidc_tokens_authorization_code_id_oidc_authorization_codes')),
    sa.ForeignKeyConstraint(['client_id'], ['oidc_clients.id'], name=op.f('fk_oidc_tokens_client_id_oidc_clients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_oidc_tokens')),
    sa.UniqueConstraint('access_token_hash', name=op.f('uq_oidc_tokens_access_token_hash')),
    sa.UniqueConstraint('refresh_token_hash', name=op.f('uq_oidc_tokens_refresh_token_hash'))
    )
    with op.batch_alter_table('oidc_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oidc_tokens_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_oidc_tokens_auth_session_id'), ['auth_session_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_oidc_tokens_authorization_code_id'), ['authorization_code_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_oidc_tokens_client_id'), ['client_id'], unique=False)


def downgrade():
    with op.batch_alter_table('oidc_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oidc_tokens_client_id'))
        batch_op.drop_index(batch_op.f('ix_oidc_tokens_authorization_code_id'))
        batch_op.drop_index(batch_op.f('ix_oidc_tokens_auth_session_id'))
        batch_op.drop_index(batch_op.f('ix_oidc_tokens_account_id'))

    op.drop_table('oidc_tokens')
    with op.batch_alter_table('oidc_authorization_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oidc_authorization_codes_client_id'))
        batch_op.drop_index(batch_op.f('ix_oidc_authorization_codes_account_id'))

    op.drop_table('oidc_authorization_codes')
    op.drop_table('oidc_consents')
    with op.batch_alter_table('oidc_client_assertions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oidc_client_assertions_expires_at'))

    op.drop_table('oidc_client_assertions')
    op.drop_table('oidc_clients')
