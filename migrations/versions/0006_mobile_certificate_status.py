"""mobile-certificate revocation status, CRL and OCSP

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 00:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
