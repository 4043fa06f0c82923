"""the national ID for clients allowed it, sealed for one login

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 00:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("oidc_authorization_codes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("national_id_sealed", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("oidc_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("national_id_sealed", sa.LargeBinary(), nullable=True))


def downgrade():
    with op.batch_alter_table("oidc_tokens", schema=None) as batch_op:
        batch_op.drop_column("national_id_sealed")
    with op.batch_alter_table("oidc_authorization_codes", schema=None) as batch_op:
        batch_op.drop_column("national_id_sealed")
