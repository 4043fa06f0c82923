"""SP-API-WEB-01: agencies' requests that name no one until a phone approves, followed by their page

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 00:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("sp_requests", schema=None) as batch_op:
        batch_op.alter_column("account_id", existing_type=sa.Integer(), nullable=True)
        batch_op.alter_column("hashed_id_num", existing_type=sa.String(length=64), nullable=True)
        batch_op.add_column(sa.Column("browser_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("released_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_sp_requests_browser_hash"), ["browser_hash"])


def downgrade():
    # A WEB-01 request that no phone approved names no one: it cannot be kept without an account.
    op.execute("DELETE FROM sp_requests WHERE account_id IS NULL OR hashed_id_num IS NULL")
    with op.batch_alter_table("sp_requests", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_sp_requests_browser_hash"), type_="unique")
        batch_op.drop_column("released_at")
        batch_op.drop_column("browser_hash")
        batch_op.alter_column("hashed_id_num", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("account_id", existing_type=sa.Integer(), nullable=False)
