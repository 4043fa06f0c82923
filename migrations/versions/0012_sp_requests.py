"""agencies' requests (TW FidO ATH, SIGN, BATSIGN) awaiting a person's phone

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 00:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "sp_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=False),
        sa.Column("transaction_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("hashed_id_num", sa.String(length=64), nullable=False),
        sa.Column("op_code", sa.String(length=10), nullable=False),
        sa.Column("op_mode", sa.String(length=10), nullable=False),
        sa.Column("hint", sa.Text(), nullable=False),
        sa.Column("sign_info", sa.JSON(), nullable=True),
        sa.Column("target_device_id", sa.Integer(), nullable=True),
        sa.Column("challenge_input", sa.Text(), nullable=False),
        sa.Column("ticket_check", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=True),
        sa.Column("signed_response", sa.Text(), nullable=True),
        sa.Column("cert", sa.Text(), nullable=True),
        sa.Column("public_id", sa.String(length=64), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("challenge", sa.LargeBinary(), nullable=True),
        sa.Column("scanned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("consumed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failure", sa.String(length=60), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_sp_requests_account_id_accounts")),
        sa.ForeignKeyConstraint(["agency_id"], ["agencies.id"], name=op.f("fk_sp_requests_agency_id_agencies")),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name=op.f("fk_sp_requests_device_id_devices")),
        sa.ForeignKeyConstraint(
            ["target_device_id"], ["devices.id"], name=op.f("fk_sp_requests_target_device_id_devices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sp_requests")),
        sa.UniqueConstraint("agency_id", "transaction_id", name=op.f("uq_sp_requests_agency_id")),
        sa.UniqueConstraint("public_id", name=op.f("uq_sp_requests_public_id")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_sp_requests_token_hash")),
    )
    op.create_index(op.f("ix_sp_requests_account_id"), "sp_requests", ["account_id"], unique=False)


def downgrade():
    op.drop_index(op.f("ix_sp_requests_account_id"), table_name="sp_requests")
    op.drop_table("sp_requests")
