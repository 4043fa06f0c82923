"""The audit trail is a hash chain: appends link, ``flask audit verify`` names the first broken link."""

from __future__ import annotations

import threading
from enum import StrEnum

import pytest
import sqlalchemy as sa
from flask_migrate import downgrade, upgrade
from sqlalchemy import delete, insert, select, text, update

from app import audit_chain
from app.audit import record
from app.audit_chain import GENESIS, event_hash
from app.extensions import db
from app.models import AuditChainHead, AuditEvent, utcnow


class ChainTags(StrEnum):
    """Events no code records, appended here to see the chain hold them."""

    EVENT = "test:event"
    FIRST = "test:first"
    SECOND = "test:second"
    THIRD = "test:third"
    ROLLED_BACK = "test:rolled_back"
    CONCURRENT = "test:concurrent"

postgresql_only = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def _record(app, count: int) -> list[int]:
    """Record ``count`` events, each committed on its own; returns the ids of the whole trail."""
    with app.app_context():
        for number in range(count):
            record(ChainTags.EVENT, actor="test", number=number)
            db.session.commit()
        return list(db.session.scalars(select(AuditEvent.id).order_by(AuditEvent.id)))


def _events(app) -> list[AuditEvent]:
    with app.app_context():
        events = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        db.session.expunge_all()
        return events


def _head(app) -> tuple[str, int]:
    with app.app_context():
        head = db.session.get(AuditChainHead, audit_chain.HEAD_ID)
        return head.last_hash, head.events


def _verify(app, *args: str):
    return app.test_cli_runner().invoke(args=["audit", "verify", *args])


def _tamper(app, *statements) -> None:
    """Change the database behind the application's back (past the PostgreSQL trigger, as its owner could)."""
    with app.app_context():
        with db.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SET LOCAL session_replication_role = replica"))
            for statement in statements:
                connection.execute(statement)


def _recomputed(event: AuditEvent) -> str:
    return event_hash(
        event.prev_hash,
        occurred_at=event.occurred_at,
        tag=event.tag,
        actor=event.actor,
        account_id=event.account_id,
        ip=event.ip,
        user_agent=event.user_agent,
        details=event.details,
    )


def test_events_of_one_transaction_link_in_order(app):
    with app.app_context():
        recorded = [
            record(ChainTags.FIRST, actor="test", items=(1, 2), place="臺灣"),
            record(ChainTags.SECOND, actor="test", by_number={1: "one"}),
            record(ChainTags.THIRD, actor="test"),
        ]
        assert recorded[0].details == {"items": [1, 2], "place": "臺灣"}  # as the database will give it back
        db.session.commit()

    events = _events(app)
    assert [e.tag for e in events] == ["test:first", "test:second", "test:third"]
    assert [e.prev_hash for e in events] == [GENESIS, events[0].hash, events[1].hash]
    assert all(_recomputed(e) == e.hash for e in events)
    assert _head(app) == (events[-1].hash, 3)


def test_events_of_separate_transactions_link_and_a_rolled_back_one_leaves_no_trace(app):
    with app.app_context():
        record(ChainTags.FIRST, actor="test")
        db.session.commit()
        record(ChainTags.ROLLED_BACK, actor="test")
        db.session.rollback()
    with app.test_request_context(headers={"User-Agent": "Test/1.0"}, environ_base={"REMOTE_ADDR": "192.0.2.7"}):
        record(ChainTags.SECOND, actor="test", detail="with request")
        db.session.commit()

    events = _events(app)
    assert [e.tag for e in events] == ["test:first", "test:second"]
    assert (events[1].ip, events[1].user_agent, events[1].prev_hash) == ("192.0.2.7", "Test/1.0", events[0].hash)
    assert _recomputed(events[1]) == events[1].hash
    assert _head(app) == (events[1].hash, 2)


def test_verify_passes_a_whole_trail(app):
    _record(app, 5)
    result = _verify(app)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"audit trail whole: 5 events, last hash {_head(app)[0]}"


def test_verify_passes_an_empty_trail(app):
    result = _verify(app)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"audit trail whole: 0 events, last hash {GENESIS}"


def test_verify_walks_in_batches_and_shows_progress_on_stderr_for_a_big_trail(app, monkeypatch):
    _record(app, 7)
    monkeypatch.setattr(audit_chain, "PROGRESS_FROM", 5)
    result = _verify(app, "--batch-size", "2")
    assert result.exit_code == 0, result.output
    assert "checking the audit trail" in result.stderr
    assert result.stdout.strip().startswith("audit trail whole: 7 events")


@pytest.mark.parametrize(
    "change",
    [
        {"details": {"number": 99}},
        {"tag": "test:other"},
        {"actor": "someone"},
        {"occurred_at": utcnow()},
        {"ip": "203.0.113.9"},
    ],
    ids=lambda change: next(iter(change)),
)
def test_editing_an_event_by_sql_is_named(app, change):
    ids = _record(app, 4)
    _tamper(app, update(AuditEvent.__table__).where(AuditEvent.id == ids[1]).values(**change))
    result = _verify(app)
    assert result.exit_code == 1
    assert result.output.strip().startswith(f"audit trail broken: event {ids[1]}: content changed")


def test_editing_an_event_by_a_sql_string_is_named(app):
    ids = _record(app, 3)
    _tamper(app, text("UPDATE audit_events SET tag = 'card:login:success' WHERE id = :id").bindparams(id=ids[2]))
    result = _verify(app)
    assert result.exit_code == 1
    assert f"event {ids[2]}: content changed" in result.output


def test_rewriting_an_event_with_a_fresh_hash_breaks_the_next_link(app):
    ids = _record(app, 4)
    forged = _events(app)[1]
    forged.tag = "test:forged"
    forged_hash = _recomputed(forged)
    _tamper(app, update(AuditEvent.__table__).where(AuditEvent.id == ids[1]).values(tag=forged.tag, hash=forged_hash))
    result = _verify(app)
    assert result.exit_code == 1
    assert f"event {ids[2]}: previous link missing" in result.output
    assert f"event {ids[1]} was rewritten" in result.output


@pytest.mark.parametrize(
    "position, named",
    [
        (0, "event {second}: previous link missing"),
        (2, "event {fourth}: previous link missing"),
        (4, "head does not match"),
    ],
    ids=["first", "middle", "newest"],
)
def test_deleting_an_event_is_caught(app, position, named):
    ids = _record(app, 5)
    _tamper(app, delete(AuditEvent.__table__).where(AuditEvent.id == ids[position]))
    result = _verify(app)
    assert result.exit_code == 1
    assert named.format(second=ids[1], fourth=ids[3]) in result.output


def test_appending_after_the_newest_event_was_deleted_does_not_hide_it(app):
    ids = _record(app, 3)
    _tamper(app, delete(AuditEvent.__table__).where(AuditEvent.id == ids[-1]))
    new_ids = _record(app, 1)
    result = _verify(app)
    assert result.exit_code == 1
    assert f"event {new_ids[-1]}: previous link missing" in result.output


def test_an_anchor_from_an_earlier_run_catches_a_trail_rebuilt_from_scratch(app):
    _record(app, 3)
    anchor = _head(app)[0]
    assert _verify(app, "--anchor", anchor).exit_code == 0

    # Someone with write access throws the trail away and builds a consistent new one.
    _tamper(
        app,
        delete(AuditEvent.__table__),
        update(AuditChainHead.__table__).values(last_hash=GENESIS, events=0),
    )
    _record(app, 2)
    assert _verify(app).exit_code == 0  # consistent in itself
    result = _verify(app, "--anchor", anchor)
    assert result.exit_code == 1
    assert f"anchor not found (no event has the hash {anchor}" in result.output


def test_the_database_refuses_a_fork(app):
    _record(app, 2)
    first = _events(app)[0]
    fork = {column: getattr(first, column) for column in ("tag", "actor", "details", "prev_hash", "hash")}
    with app.app_context(), pytest.raises(sa.exc.IntegrityError):
        with db.engine.begin() as connection:
            connection.execute(insert(AuditEvent.__table__).values(occurred_at=utcnow(), **fork))


def test_the_application_never_updates_or_deletes_an_event(app):
    _record(app, 1)
    with app.app_context():
        event = db.session.scalar(select(AuditEvent))
        event.tag = "test:changed"
        with pytest.raises(RuntimeError, match="append-only"):
            db.session.commit()
        db.session.rollback()
        db.session.delete(db.session.scalar(select(AuditEvent)))
        with pytest.raises(RuntimeError, match="append-only"):
            db.session.commit()
        db.session.rollback()
    assert _verify(app).exit_code == 0


@postgresql_only
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET tag = 'test:changed'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
    ],
    ids=["update", "delete", "truncate"],
)
def test_postgresql_refuses_changing_the_trail(app, statement):
    _record(app, 2)
    with app.app_context(), pytest.raises(sa.exc.DBAPIError, match="audit_events is append-only"):
        with db.engine.begin() as connection:
            connection.execute(text(statement))
    assert _verify(app).exit_code == 0


def test_concurrent_appends_leave_one_chain(app):
    threads, each = 4, 10
    start = threading.Barrier(threads)
    errors = []

    def append(number: int) -> None:
        try:
            with app.app_context():  # its own session and connection
                start.wait()
                for index in range(each):
                    record(ChainTags.CONCURRENT, actor=f"thread:{number}", index=index)
                    db.session.commit()
        except Exception as exc:  # the assertion below shows it
            errors.append(exc)

    workers = [threading.Thread(target=append, args=(number,)) for number in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    result = _verify(app)
    assert result.exit_code == 0, result.output
    assert f"whole: {threads * each} events" in result.output


def test_the_migration_links_the_events_already_there(app):
    with app.app_context():
        downgrade(revision="0004")
        table = sa.table(
            "audit_events",
            sa.column("occurred_at", sa.DateTime(timezone=True)),
            sa.column("tag", sa.String()),
            sa.column("actor", sa.String()),
            sa.column("details", sa.JSON()),
        )
        with db.engine.begin() as connection:
            connection.execute(
                insert(table),
                [{"occurred_at": utcnow(), "tag": f"old:{n}", "actor": "test", "details": {"n": n}} for n in range(3)],
            )
        upgrade()
    result = _verify(app)
    assert result.exit_code == 0, result.output
    assert "whole: 3 events" in result.output
    _record(app, 1)
    assert "whole: 4 events" in _verify(app).output
