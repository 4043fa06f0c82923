"""card logins count their identity checks and remember the confirmed national ID

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 00:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("card_logins", schema=None) as batch_op:
        batch_op.add_column(sa.Column("identity_checks", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("identity_confirmed_hash", sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table("card_logins", schema=None) as batch_op:
        batch_op.drop_column("identity_confirmed_hash")
        batch_op.drop_column("identity_checks")
