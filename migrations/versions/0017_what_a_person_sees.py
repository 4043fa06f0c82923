"""what a person's page says about their phones and their confirmation code: who revoked a device, since when
it is suspended, when it was found possibly cloned; whether the mail server took a code

Rows from before are filled in from the audit trail where it tells (an unbinding by its owner is
``device:unbound``; any other revocation was the service's); a code from before counts as sent, as it was
reported then.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 00:00:00.000000

"""
import json

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("revoked_by", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("possibly_cloned_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("email_verifications") as batch:
        batch.add_column(sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("send_error", sa.String(length=200), nullable=True))

    connection = op.get_bind()
    connection.execute(sa.text("UPDATE email_verifications SET sent_at = created_at"))
    # The newest event of each kind per device says who and when.
    latest: dict[tuple[str, int], object] = {}
    rows = connection.execute(sa.text(
        "SELECT tag, occurred_at, details FROM audit_events WHERE tag IN "
        "('device:unbound', 'device:suspended', 'device:possibly_cloned') ORDER BY id"
    ))
    for tag, occurred_at, details in rows:
        details = json.loads(details) if isinstance(details, str) else details or {}
        if isinstance(details.get("device"), int):
            latest[(tag, details["device"])] = occurred_at
    unbound = {device for tag, device in latest if tag == "device:unbound"}
    revoked = connection.execute(sa.text("SELECT id FROM devices WHERE status = 'revoked'")).scalars().all()
    for device in revoked:
        connection.execute(sa.text("UPDATE devices SET revoked_by = :by WHERE id = :id"),
                           {"by": "owner" if device in unbound else "service", "id": device})
    for (tag, device), occurred_at in latest.items():
        if tag == "device:suspended":
            connection.execute(sa.text("UPDATE devices SET suspended_at = :at WHERE id = :id AND status = 'suspended'"),
                               {"at": occurred_at, "id": device})
        elif tag == "device:possibly_cloned":
            connection.execute(
                sa.text("UPDATE devices SET possibly_cloned_at = :at WHERE id = :id AND possibly_cloned"),
                {"at": occurred_at, "id": device},
            )


def downgrade():
    with op.batch_alter_table("email_verifications") as batch:
        batch.drop_column("send_error")
        batch.drop_column("sent_at")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("possibly_cloned_at")
        batch.drop_column("suspended_at")
        batch.drop_column("revoked_by")
