"""the phones' inboxes of pushed requests, and their Web Push subscriptions

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 00:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "inbox_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=True),
        sa.Column("access_hash", sa.String(length=64), nullable=True),
        sa.Column("access_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("public_id", sa.String(length=64), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("challenge", sa.LargeBinary(), nullable=True),
        sa.Column("scanned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("consumed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failure", sa.String(length=60), nullable=True),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name=op.f("fk_inbox_sessions_device_id_devices")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_sessions")),
        sa.UniqueConstraint("access_hash", name=op.f("uq_inbox_sessions_access_hash")),
        sa.UniqueConstraint("public_id", name=op.f("uq_inbox_sessions_public_id")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_inbox_sessions_token_hash")),
    )
    op.create_index(op.f("ix_inbox_sessions_device_id"), "inbox_sessions", ["device_id"], unique=False)
    op.create_index("ix_inbox_sessions_expires_at", "inbox_sessions", ["expires_at"], unique=False)
    op.create_table(
        "push_subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("endpoint", sa.String(length=1000), nullable=False),
        sa.Column("p256dh", sa.String(length=100), nullable=False),
        sa.Column("auth", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name=op.f("fk_push_subscriptions_device_id_devices")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_push_subscriptions")),
        sa.UniqueConstraint("endpoint", name=op.f("uq_push_subscriptions_endpoint")),
    )
    op.create_index(op.f("ix_push_subscriptions_device_id"), "push_subscriptions", ["device_id"], unique=False)
    # A phone's inbox lists the person's pushed requests still open: one read along this index.
    op.create_index("ix_sp_requests_inbox", "sp_requests", ["account_id", "op_mode", "expires_at"], unique=False)


def downgrade():
    op.drop_index("ix_sp_requests_inbox", table_name="sp_requests")
    op.drop_index(op.f("ix_push_subscriptions_device_id"), table_name="push_subscriptions")
    op.drop_table("push_subscriptions")
    op.drop_index("ix_inbox_sessions_expires_at", table_name="inbox_sessions")
    op.drop_index(op.f("ix_inbox_sessions_device_id"), table_name="inbox_sessions")
    op.drop_table("inbox_sessions")
