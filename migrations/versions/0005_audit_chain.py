"""tamper-evident audit trail: hash chain, append-only on PostgreSQL

Each audit event gets ``prev_hash`` and ``hash`` (app/audit_chain.py); existing events are linked in id
order. ``audit_chain_head`` holds the newest hash and the count. On PostgreSQL a trigger refuses UPDATE,
DELETE and TRUNCATE of ``audit_events``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 00:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

from app.audit_chain import GENESIS, HEAD_ID, event_hash


# revision identifiers, used by Alembic.
revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BATCH = 1000

# The table as this revision knows it; DateTime and JSON give back what the application hashes.
audit_events = sa.table(
    "audit_events",
    sa.column("id", sa.Integer()),
    sa.column("occurred_at", sa.DateTime(timezone=True)),
    sa.column("tag", sa.String()),
    sa.column("actor", sa.String()),
    sa.column("account_id", sa.Integer()),
    sa.column("ip", sa.String()),
    sa.column("user_agent", sa.String()),
    sa.column("details", sa.JSON()),
    sa.column("prev_hash", sa.String()),
    sa.column("hash", sa.String()),
)

APPEND_ONLY_FUNCTION = """
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
        USING HINT = 'The audit trail is never updated or deleted.';
END
$$
"""


def upgrade():
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('hash', sa.String(length=64), nullable=True))

    last_hash, count = _link_existing_events(op.get_bind())

    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_audit_events_prev_hash'), ['prev_hash'])

    head = op.create_table('audit_chain_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('last_hash', sa.String(length=64), nullable=False),
    sa.Column('events', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_chain_head'))
    )
    op.bulk_insert(head, [{"id": HEAD_ID, "last_hash": last_hash, "events": count}])

    if op.get_bind().dialect.name == "postgresql":
        op.execute(APPEND_ONLY_FUNCTION)
        op.execute(
            "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()"
        )


def _link_existing_events(connection):
    """Hash the events already there, in id order and in batches; returns (last hash, count)."""
    prev_hash, count, last_id = GENESIS, 0, 0
    while True:
        rows = connection.execute(
            sa.select(audit_events).where(audit_events.c.id > last_id).order_by(audit_events.c.id).limit(BATCH)
        ).all()
        if not rows:
            return prev_hash, count
        links = []
        for row in rows:
            hash_ = event_hash(
                prev_hash,
                occurred_at=row.occurred_at,
                tag=row.tag,
                actor=row.actor,
                account_id=row.account_id,
                ip=row.ip,
                user_agent=row.user_agent,
                details=row.details,
            )
            links.append({"event_id": row.id, "new_prev_hash": prev_hash, "new_hash": hash_})
            prev_hash, count, last_id = hash_, count + 1, row.id
        connection.execute(
            audit_events.update()
            .where(audit_events.c.id == sa.bindparam("event_id"))
            .values(prev_hash=sa.bindparam("new_prev_hash"), hash=sa.bindparam("new_hash")),
            links,
        )


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_events_no_truncate ON audit_events")
        op.execute("DROP TRIGGER audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION audit_events_append_only()")

    op.drop_table('audit_chain_head')

    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_audit_events_prev_hash'), type_='unique')
        batch_op.drop_column('hash')
        batch_op.drop_column('prev_hash')
