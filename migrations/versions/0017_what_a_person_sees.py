"""what a person's page says about their phones and their confirmation code: who revoked a device, since when
it is suspended, when it was found possibly cloned; whether the mail server took a code

Rows from before are filled in from the audit trail where it tells (an unbinding by its owner is
``device:unbound``; any other revocation was the service's); a code from before counts as sent unless the
account's newest ``account:email:code_sent`` event recorded that the mail server did not take it.

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
    # A code from before went out unless the account's newest code_sent event says it did not (MoCert
    # recorded delivered False and answered email_sent False then, without keeping it on the code's row).
    connection.execute(sa.text("UPDATE email_verifications SET sent_at = created_at"))
    newest_sent: dict[int, bool] = {}
    for account_id, details in _events(connection, ("account:email:code_sent",), "account_id, details"):
        newest_sent[account_id] = _details(details).get("delivered") is not False
    refused = [{"account": account} for account, delivered in newest_sent.items() if account is not None and not delivered]
    if refused:
        connection.execute(sa.text(
            "UPDATE email_verifications SET sent_at = NULL, send_error = 'not taken by the mail server' "
            "WHERE id = (SELECT MAX(id) FROM email_verifications WHERE account_id = :account)"
        ), refused)

    # Who revoked a device: its owner when it was unbound (device:unbound), else the service. Since when it is
    # suspended: the newest suspension; since when possibly cloned: the first finding, as the code keeps it.
    unbound, suspended, cloned = set(), {}, {}
    for tag, occurred_at, details in _events(
        connection, ("device:unbound", "device:suspended", "device:possibly_cloned"), "tag, occurred_at, details"
    ):
        device = _details(details).get("device")
        if not isinstance(device, int):
            continue
        if tag == "device:unbound":
            unbound.add(device)
        elif tag == "device:suspended":
            suspended[device] = occurred_at
        else:
            cloned.setdefault(device, occurred_at)
    connection.execute(sa.text("UPDATE devices SET revoked_by = 'service' WHERE status = 'revoked'"))
    if unbound:
        connection.execute(sa.text("UPDATE devices SET revoked_by = 'owner' WHERE id = :id AND status = 'revoked'"),
                           [{"id": device} for device in sorted(unbound)])
    if suspended:
        connection.execute(sa.text("UPDATE devices SET suspended_at = :at WHERE id = :id AND status = 'suspended'"),
                           [{"at": at, "id": device} for device, at in suspended.items()])
    if cloned:
        connection.execute(sa.text("UPDATE devices SET possibly_cloned_at = :at WHERE id = :id AND possibly_cloned"),
                           [{"at": at, "id": device} for device, at in cloned.items()])


def _events(connection, tags: tuple[str, ...], columns: str):
    """The audit events of these tags in the order they happened, streamed (the trail may be long)."""
    names = ", ".join(f"'{tag}'" for tag in tags)  # our own constants
    return connection.execute(sa.text(f"SELECT {columns} FROM audit_events WHERE tag IN ({names}) ORDER BY id")
                              .execution_options(stream_results=True, yield_per=1000))


def _details(details) -> dict:
    return (json.loads(details) if isinstance(details, str) else details) or {}


def downgrade():
    with op.batch_alter_table("email_verifications") as batch:
        batch.drop_column("send_error")
        batch.drop_column("sent_at")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("possibly_cloned_at")
        batch.drop_column("suspended_at")
        batch.drop_column("revoked_by")
