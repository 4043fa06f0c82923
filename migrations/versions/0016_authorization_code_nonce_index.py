"""the authorization codes found by their client and nonce (the replay check of every authorize request)

Every authorize request with a nonce asks whether a code of that client already carries it. With only
``client_id`` indexed that read walks every code of the client: a seq scan at a million codes, the whole
login's time (bench/accounts.py found it).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 00:00:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_oidc_authorization_codes_client_nonce", "oidc_authorization_codes", ["client_id", "nonce"])


def downgrade():
    op.drop_index("ix_oidc_authorization_codes_client_nonce", table_name="oidc_authorization_codes")
