"""OpenID Connect Back-Channel Logout: each client's logout URI, and the logout tokens owed to the sites

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-09 00:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("oidc_clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("backchannel_logout_uri", sa.String(length=2000), nullable=True))
        batch_op.add_column(sa.Column("backchannel_logout_session_required", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))

    op.create_table(
        "backchannel_logouts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("auth_session_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=60), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_backchannel_logouts_account_id_accounts")),
        sa.ForeignKeyConstraint(["auth_session_id"], ["auth_sessions.id"],
                                name=op.f("fk_backchannel_logouts_auth_session_id_auth_sessions")),
        sa.ForeignKeyConstraint(["client_id"], ["oidc_clients.id"],
                                name=op.f("fk_backchannel_logouts_client_id_oidc_clients")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backchannel_logouts")),
    )
    with op.batch_alter_table("backchannel_logouts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_backchannel_logouts_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_backchannel_logouts_client_id"), ["client_id"], unique=False)
        batch_op.create_index("ix_backchannel_logouts_pending", ["sent_at", "failed_at", "next_attempt_at"],
                              unique=False)
    # A session's end looks up the sites it logged in to by its codes.
    op.create_index("ix_oidc_authorization_codes_auth_session_id", "oidc_authorization_codes", ["auth_session_id"])


def downgrade():
    op.drop_index("ix_oidc_authorization_codes_auth_session_id", table_name="oidc_authorization_codes")
    op.drop_table("backchannel_logouts")
    with op.batch_alter_table("oidc_clients", schema=None) as batch_op:
        batch_op.drop_column("backchannel_logout_session_required")
        batch_op.drop_column("backchannel_logout_uri")
