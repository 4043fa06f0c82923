"""audit trail: events recorded unlinked, sealed into the chain by a sealer (audit_links, audit_unsealed)

Recording an event was three statements on the one ``audit_chain_head`` row, held until commit, so every
login of the deployment waited on it. Now it is the event's INSERT alone; a trigger queues its id in
``audit_unsealed``, and the sealer (app/audit_chain.py) links queued events into ``audit_links`` and moves
the head, in one transaction per batch.

Upgrade: each event's ``prev_hash`` and ``hash`` move verbatim into ``audit_links``, at positions in id order
(the order 0005's chain had), so the chain, and any last hash kept as an anchor, stay as they were.

Downgrade: ``audit_events`` gets ``prev_hash`` and ``hash`` back, relinked in id order from the content, as
0005 linked them; events not yet sealed are linked too. Where the sealer sealed in id order (always on
SQLite) the hashes come out the same; where it did not (PostgreSQL commits out of id order) they differ from
the first such event on, and anchors kept from then on no longer match. Relinking from the content also
hides an edit: run ``flask audit verify`` first.

PostgreSQL: ``audit_links`` is append-only like ``audit_events`` (UPDATE, DELETE, TRUNCATE refused), and a
queued id can be taken off the queue only once its link exists. On SQLite a batch operation on
``audit_events`` rebuilds the table and drops its trigger: a later migration that does one must create the
trigger again (``audit verify`` names the events it then misses).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 00:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

from app.audit_chain import GENESIS, HEAD_ID, event_hash


# revision identifiers, used by Alembic.
revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

BATCH = 1000

# The tables as this revision knows them; DateTime and JSON give back what the application hashes.
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
audit_chain_head = sa.table(
    "audit_chain_head", sa.column("id", sa.Integer()), sa.column("last_hash", sa.String()),
    sa.column("events", sa.Integer()),
)

SQLITE_QUEUE_TRIGGER = (
    "CREATE TRIGGER audit_events_queue_for_sealing AFTER INSERT ON audit_events "
    "BEGIN INSERT INTO audit_unsealed (event_id) VALUES (NEW.id); END"
)

POSTGRESQL_UP = [
    # 0005's function, naming the table it guards: now it guards audit_links too.
    """
    CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
            USING HINT = 'The audit trail is never updated or deleted.';
    END
    $$
    """,
    "CREATE TRIGGER audit_links_append_only BEFORE UPDATE OR DELETE ON audit_links "
    "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()",
    "CREATE TRIGGER audit_links_no_truncate BEFORE TRUNCATE ON audit_links "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()",
    """
    CREATE FUNCTION audit_events_queue_for_sealing() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO audit_unsealed (event_id) VALUES (NEW.id);
        RETURN NULL;
    END
    $$
    """,
    "CREATE TRIGGER audit_events_queue_for_sealing AFTER INSERT ON audit_events "
    "FOR EACH ROW EXECUTE FUNCTION audit_events_queue_for_sealing()",
    """
    CREATE FUNCTION audit_unsealed_leaves_when_sealed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' AND EXISTS (SELECT 1 FROM audit_links WHERE event_id = OLD.event_id) THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION 'audit_unsealed: % refused: an event leaves the queue only once it is sealed', TG_OP
            USING HINT = 'The sealer (flask audit seal) links it first.';
    END
    $$
    """,
    "CREATE TRIGGER audit_unsealed_leaves_when_sealed BEFORE UPDATE OR DELETE ON audit_unsealed "
    "FOR EACH ROW EXECUTE FUNCTION audit_unsealed_leaves_when_sealed()",
    "CREATE TRIGGER audit_unsealed_no_truncate BEFORE TRUNCATE ON audit_unsealed "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_unsealed_leaves_when_sealed()",
]

POSTGRESQL_DOWN = [
    "DROP TRIGGER audit_unsealed_no_truncate ON audit_unsealed",
    "DROP TRIGGER audit_unsealed_leaves_when_sealed ON audit_unsealed",
    "DROP FUNCTION audit_unsealed_leaves_when_sealed()",
    "DROP TRIGGER audit_events_queue_for_sealing ON audit_events",
    "DROP FUNCTION audit_events_queue_for_sealing()",
    "DROP TRIGGER audit_links_no_truncate ON audit_links",
    "DROP TRIGGER audit_links_append_only ON audit_links",
    # 0005's function as it was.
    """
    CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
            USING HINT = 'The audit trail is never updated or deleted.';
    END
    $$
    """,
]


def upgrade():
    links = op.create_table(
        "audit_links",
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("sealed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["audit_events.id"], name=op.f("fk_audit_links_event_id_audit_events")),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_audit_links")),
        sa.UniqueConstraint("event_id", name=op.f("uq_audit_links_event_id")),
        sa.UniqueConstraint("prev_hash", name=op.f("uq_audit_links_prev_hash")),
    )
    # One statement, however long the trail. They were linked when recorded: sealed_at is occurred_at.
    op.execute(
        links.insert().from_select(
            ["position", "event_id", "prev_hash", "hash", "sealed_at"],
            sa.select(
                sa.func.row_number().over(order_by=audit_events.c.id),
                audit_events.c.id,
                audit_events.c.prev_hash,
                audit_events.c.hash,
                audit_events.c.occurred_at,
            ),
        )
    )

    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_audit_events_prev_hash"), type_="unique")
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")

    op.create_table(
        "audit_unsealed",
        sa.Column("event_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_audit_unsealed")),
    )

    if op.get_bind().dialect.name == "postgresql":
        for statement in POSTGRESQL_UP:
            op.execute(statement)
    else:
        op.execute(SQLITE_QUEUE_TRIGGER)  # after the batch above, which rebuilt the table


def downgrade():
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        for statement in POSTGRESQL_DOWN:
            op.execute(statement)
    else:
        op.execute("DROP TRIGGER audit_events_queue_for_sealing")

    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))

    if postgresql:  # 0005's trigger refuses the UPDATE of each event that relinking is
        op.execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only")
    last_hash, count = _link_in_id_order(op.get_bind())
    if postgresql:
        op.execute("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only")
    op.execute(audit_chain_head.update().where(audit_chain_head.c.id == HEAD_ID).values(last_hash=last_hash,
                                                                                        events=count))

    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_audit_events_prev_hash"), ["prev_hash"])

    op.drop_table("audit_unsealed")
    op.drop_table("audit_links")


def _link_in_id_order(connection):
    """0005's chain: every event, in id order and in batches; returns (last hash, count)."""
    prev_hash, count, last_id = GENESIS, 0, 0
    while True:
        rows = connection.execute(
            sa.select(audit_events).where(audit_events.c.id > last_id).order_by(audit_events.c.id).limit(BATCH)
        ).all()
        if not rows:
            return prev_hash, count
        linked = []
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
            linked.append({"event_id": row.id, "new_prev_hash": prev_hash, "new_hash": hash_})
            prev_hash, count, last_id = hash_, count + 1, row.id
        connection.execute(
            audit_events.update()
            .where(audit_events.c.id == sa.bindparam("event_id"))
            .values(prev_hash=sa.bindparam("new_prev_hash"), hash=sa.bindparam("new_hash")),
            linked,
        )
