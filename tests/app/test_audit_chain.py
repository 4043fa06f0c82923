"""The audit trail is a hash chain: recording is one INSERT that waits for no one, the sealer links what was
recorded, ``flask audit verify`` names the first broken link and says what is not yet sealed."""

from __future__ import annotations

import logging
import re
import threading
import time
from datetime import timedelta
from enum import StrEnum

import pytest
import sqlalchemy as sa
from flask_migrate import downgrade, upgrade
from sqlalchemy import delete, event, func, insert, select, text, update

from app import audit_chain
from app.audit import record
from app.audit_chain import GENESIS, event_hash
from app.extensions import db
from app.models import AuditChainHead, AuditEvent, AuditLink, AuditUnsealed, utcnow


class ChainTags(StrEnum):
    """Events no code records, appended here to see the chain hold them."""

    EVENT = "test:event"
    FIRST = "test:first"
    SECOND = "test:second"
    THIRD = "test:third"
    ROLLED_BACK = "test:rolled_back"
    CONCURRENT = "test:concurrent"
    HELD = "test:held"

postgresql_only = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

EVENTS, LINKS, QUEUE, HEAD = (AuditEvent.__table__, AuditLink.__table__, AuditUnsealed.__table__,
                              AuditChainHead.__table__)


def _record(app, count: int, *, sealed: bool = True) -> list[int]:
    """Record ``count`` events, each committed on its own, then seal them; returns the ids of the whole trail."""
    with app.app_context():
        for number in range(count):
            record(ChainTags.EVENT, actor="test", number=number)
            db.session.commit()
        if sealed:
            audit_chain.seal(db.session)
        return list(db.session.scalars(select(AuditEvent.id).order_by(AuditEvent.id)))


def _seal(app, **options) -> audit_chain.Sealed:
    with app.app_context():
        return audit_chain.seal(db.session, **options)


def _events(app) -> list[AuditEvent]:
    with app.app_context():
        events = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        db.session.expunge_all()
        return events


def _links(app) -> list[AuditLink]:
    with app.app_context():
        links = db.session.scalars(select(AuditLink).order_by(AuditLink.position)).all()
        db.session.expunge_all()
        return links


def _queued(app) -> list[int]:
    with app.app_context():
        return list(db.session.scalars(select(AuditUnsealed.event_id).order_by(AuditUnsealed.event_id)))


def _head(app) -> tuple[str, int]:
    with app.app_context():
        head = db.session.get(AuditChainHead, audit_chain.HEAD_ID)
        return head.last_hash, head.events


def _verify(app, *args: str):
    return app.test_cli_runner().invoke(args=["audit", "verify", *args])


def _tamper(app, *statements) -> None:
    """Change the database behind the application's back: past PostgreSQL's triggers and foreign keys, as its
    owner could (session_replication_role), and past SQLite's foreign keys."""
    with app.app_context():
        with db.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SET LOCAL session_replication_role = replica"))
            else:
                connection.exec_driver_sql("PRAGMA foreign_keys = OFF")  # before the first write: outside it
            for statement in statements:
                connection.execute(statement)
        db.engine.dispose()  # no connection stays in the pool with SQLite's checks off


def _recomputed(link: AuditLink, event: AuditEvent) -> str:
    return event_hash(
        link.prev_hash,
        occurred_at=event.occurred_at,
        tag=event.tag,
        actor=event.actor,
        account_id=event.account_id,
        ip=event.ip,
        user_agent=event.user_agent,
        details=event.details,
    )


# -- recording and sealing ----------------------------------------------------------------------------------


def test_recording_an_event_is_one_insert_that_queues_it_unsealed(app):
    statements = []
    with app.app_context():
        listener = lambda conn, cursor, statement, *args: statements.append(statement)  # noqa: E731
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            record(ChainTags.EVENT, actor="test")
            db.session.flush()
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
        db.session.commit()
    assert len(statements) == 1 and statements[0].lstrip().upper().startswith("INSERT INTO AUDIT_EVENTS"), statements
    [recorded] = _events(app)
    assert _queued(app) == [recorded.id]  # by the trigger, in the same transaction
    assert _links(app) == [] and _head(app) == (GENESIS, 0)  # the head is never touched by recording


def test_events_of_one_transaction_are_sealed_in_order(app):
    with app.app_context():
        recorded = [
            record(ChainTags.FIRST, actor="test", items=(1, 2), place="臺灣"),
            record(ChainTags.SECOND, actor="test", by_number={1: "one"}),
            record(ChainTags.THIRD, actor="test"),
        ]
        assert recorded[0].details == {"items": [1, 2], "place": "臺灣"}  # as the database will give it back
        db.session.commit()
    sealed = _seal(app)

    events, links = _events(app), _links(app)
    assert [e.tag for e in events] == ["test:first", "test:second", "test:third"]
    assert [link.event_id for link in links] == [e.id for e in events]
    assert [link.position for link in links] == [1, 2, 3]
    assert [link.prev_hash for link in links] == [GENESIS, links[0].hash, links[1].hash]
    assert all(_recomputed(link, e) == link.hash for link, e in zip(links, events))
    assert _head(app) == (links[-1].hash, 3) == (sealed.last_hash, sealed.events)
    assert _queued(app) == []


def test_events_of_separate_transactions_link_and_a_rolled_back_one_leaves_no_trace(app):
    with app.app_context():
        record(ChainTags.FIRST, actor="test")
        db.session.commit()
        record(ChainTags.ROLLED_BACK, actor="test")
        db.session.rollback()
    with app.test_request_context(headers={"User-Agent": "Test/1.0"}, environ_base={"REMOTE_ADDR": "192.0.2.7"}):
        record(ChainTags.SECOND, actor="test", detail="with request")
        db.session.commit()
    assert len(_queued(app)) == 2  # the rolled back one never was
    _seal(app)

    events, links = _events(app), _links(app)
    assert [e.tag for e in events] == ["test:first", "test:second"]
    assert (events[1].ip, events[1].user_agent, links[1].prev_hash) == ("192.0.2.7", "Test/1.0", links[0].hash)
    assert _recomputed(links[1], events[1]) == links[1].hash
    assert _head(app) == (links[1].hash, 2)


def test_sealing_goes_on_from_the_head_batch_by_batch(app):
    _record(app, 3)
    _record(app, 5, sealed=False)
    sealed = _seal(app, batch_size=2)
    assert (sealed.events, sealed.busy) == (5, False)
    assert [link.position for link in _links(app)] == list(range(1, 9))
    assert _queued(app) == []
    assert str(_seal(app)) == "sealed nothing: no event waits"
    assert "whole: 8 events" in _verify(app).output


def test_a_failed_sealing_leaves_nothing_half_written_and_the_next_round_seals(app, caplog):
    from app.audit_sealer import Sealer

    _record(app, 2, sealed=False)
    with app.app_context():
        engine = db.engine

    def fail_at_the_head(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("UPDATE AUDIT_CHAIN_HEAD"):  # links and queue written by now
            raise RuntimeError("the database went away")

    sealer = Sealer(app, interval=1)
    event.listen(engine, "before_cursor_execute", fail_at_the_head)
    try:
        with caplog.at_level(logging.ERROR, logger="app.audit_sealer"):
            assert sealer.run_once() is False
    finally:
        event.remove(engine, "before_cursor_execute", fail_at_the_head)
    assert "sealing the audit trail failed" in caplog.text and "the database went away" in caplog.text
    assert _links(app) == [] and len(_queued(app)) == 2 and _head(app) == (GENESIS, 0)

    assert sealer.run_once() is True
    assert _queued(app) == [] and _head(app)[1] == 2
    assert _verify(app).exit_code == 0


def test_a_server_process_seals_on_its_own_within_the_interval(app_config):
    from app import create_app

    app_config.AUDIT_SEAL_INTERVAL = 0.05
    application = create_app(app_config)
    sealer = application.extensions["audit_sealer"]
    try:
        assert application.test_client().get("/healthz").status_code == 200  # the first request starts it
        recorded_at = time.monotonic()
        _record(application, 3, sealed=False)
        while _queued(application) and time.monotonic() < recorded_at + 5:
            time.sleep(0.02)
        waited = time.monotonic() - recorded_at
        assert _queued(application) == [], "not sealed within 5 s"
        assert waited < 2, waited
        result = _verify(application)
        assert result.exit_code == 0 and "whole: 3 events" in result.output, result.output
    finally:
        sealer.stop()
        with application.app_context():
            db.session.remove()
            db.engine.dispose()


# -- audit verify ---------------------------------------------------------------------------------------------


def test_verify_passes_a_whole_trail(app):
    _record(app, 5)
    result = _verify(app)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"audit trail whole: 5 events, last hash {_head(app)[0]}"


def test_verify_passes_an_empty_trail(app):
    result = _verify(app)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"audit trail whole: 0 events, last hash {GENESIS}"


def test_verify_says_how_many_events_wait_for_the_sealer_and_the_window(app):
    _record(app, 2)
    _record(app, 3, sealed=False)
    app.config["AUDIT_SEAL_INTERVAL"] = 0.5  # as in production; the tests' own configuration runs no sealer
    result = _verify(app)
    assert result.exit_code == 0, result.output  # not a break
    sealed, waiting = result.output.strip().splitlines()
    assert sealed == f"audit trail whole: 2 events, last hash {_head(app)[0]}"
    assert waiting.startswith("3 events not yet sealed, the oldest ")
    assert waiting.endswith(" s old; sealed within ~1 s (MOCERT_AUDIT_SEAL_INTERVAL=0.5)")

    app.config["AUDIT_SEAL_INTERVAL"] = 0
    assert "no sealer runs in this configuration" in _verify(app).output


def test_verify_says_when_waiting_events_are_older_than_the_window(app):
    with app.app_context():
        db.session.add(AuditEvent(occurred_at=utcnow() - timedelta(hours=1), tag="test:old", actor="test", details={}))
        db.session.commit()
    app.config["AUDIT_SEAL_INTERVAL"] = 0.5
    result = _verify(app)
    assert result.exit_code == 0, result.output
    # An hour and the seconds the test took to get here (more than one on a loaded machine).
    assert re.search(r"1 event not yet sealed, the oldest 36[0-5]\d\.\d s old", result.output), result.output
    assert "no sealer ran" in result.output and "flask audit seal seals them now" in result.output
    assert app.test_cli_runner().invoke(args=["audit", "seal"]).output.startswith("sealed 1 event, last hash ")
    assert _verify(app).output.strip().splitlines() == [f"audit trail whole: 1 events, last hash {_head(app)[0]}"]


def test_verify_walks_in_batches_and_shows_progress_on_stderr_for_a_big_trail(app, monkeypatch):
    _record(app, 7)
    monkeypatch.setattr(audit_chain, "PROGRESS_FROM", 5)
    result = _verify(app, "--batch-size", "2")
    assert result.exit_code == 0, result.output
    assert "checking the audit trail" in result.stderr
    assert result.stdout.strip().startswith("audit trail whole: 7 events")


# -- what verify catches --------------------------------------------------------------------------------------


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
    _tamper(app, update(EVENTS).where(EVENTS.c.id == ids[1]).values(**change))
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
    forged, link = _events(app)[1], _links(app)[1]
    forged.tag = "test:forged"
    _tamper(
        app,
        update(EVENTS).where(EVENTS.c.id == ids[1]).values(tag=forged.tag),
        update(LINKS).where(LINKS.c.event_id == ids[1]).values(hash=_recomputed(link, forged)),
    )
    result = _verify(app)
    assert result.exit_code == 1
    assert f"event {ids[2]}: previous link missing" in result.output
    assert f"event {ids[1]} was rewritten" in result.output


@pytest.mark.parametrize("position", [0, 2, 4], ids=["first", "middle", "newest"])
def test_deleting_an_event_leaves_its_link_naming_nothing(app, position):
    ids = _record(app, 5)
    _tamper(app, delete(EVENTS).where(EVENTS.c.id == ids[position]))
    result = _verify(app)
    assert result.exit_code == 1
    named = f"event {ids[position]}: event missing (the chain's link at position {position + 1} names it"
    assert named in result.output


@pytest.mark.parametrize(
    "position, named",
    [
        (0, "event {second}: previous link missing"),
        (2, "event {fourth}: previous link missing"),
        (4, "head does not match"),
    ],
    ids=["first", "middle", "newest"],
)
def test_deleting_an_event_with_its_link_is_caught(app, position, named):
    ids = _record(app, 5)
    _tamper(app, delete(LINKS).where(LINKS.c.event_id == ids[position]),
            delete(EVENTS).where(EVENTS.c.id == ids[position]))
    result = _verify(app)
    assert result.exit_code == 1
    assert named.format(second=ids[1], fourth=ids[3]) in result.output


def test_appending_after_the_newest_event_was_deleted_does_not_hide_it(app):
    ids = _record(app, 3)
    _tamper(app, delete(LINKS).where(LINKS.c.event_id == ids[-1]), delete(EVENTS).where(EVENTS.c.id == ids[-1]))
    new_ids = _record(app, 1)
    result = _verify(app)
    assert result.exit_code == 1
    assert f"event {new_ids[-1]}: previous link missing" in result.output


def test_an_event_taken_off_the_queue_before_it_was_sealed_is_named(app):
    _record(app, 2)
    unsealed = _record(app, 1, sealed=False)[-1]
    _tamper(app, delete(QUEUE).where(QUEUE.c.event_id == unsealed))
    result = _verify(app)
    assert result.exit_code == 1
    assert f"event {unsealed}: neither sealed nor queued (it is in no link and not queued" in result.output


@postgresql_only
def test_an_event_inserted_around_the_trigger_is_named(app):
    _record(app, 2)
    _tamper(app, insert(EVENTS).values(occurred_at=utcnow(), tag="test:slipped_in", actor="test", details={}))
    slipped = _events(app)[-1]
    assert _queued(app) == []
    result = _verify(app)
    assert result.exit_code == 1
    assert f"event {slipped.id}: neither sealed nor queued" in result.output


def test_an_event_removed_before_it_was_sealed_is_named_and_the_others_are_sealed(app):
    _record(app, 1)
    ids = _record(app, 3, sealed=False)
    _tamper(app, delete(EVENTS).where(EVENTS.c.id == ids[2]))
    assert _seal(app).events == 2  # its queue entry, naming nothing, stays for verify
    result = _verify(app)
    assert result.exit_code == 1
    assert f"event {ids[2]}: queued event missing (it was queued for sealing and is gone" in result.output


def test_a_link_appended_without_the_head_is_caught(app):
    _record(app, 2)
    _record(app, 1, sealed=False)
    forged = _events(app)[-1]
    last = _links(app)[-1]
    link = AuditLink(position=3, event_id=forged.id, prev_hash=last.hash)
    _tamper(
        app,
        insert(LINKS).values(position=3, event_id=forged.id, prev_hash=last.hash,
                             hash=_recomputed(link, forged), sealed_at=utcnow()),
        delete(QUEUE),
    )
    result = _verify(app)
    assert result.exit_code == 1 and "audit trail broken: head does not match (the head names 2 events" in result.output


def test_an_anchor_from_an_earlier_run_catches_a_trail_rebuilt_from_scratch(app):
    _record(app, 3)
    anchor = _head(app)[0]
    assert _verify(app, "--anchor", anchor).exit_code == 0

    # Someone with write access throws the trail away and builds a consistent new one.
    _tamper(app, delete(LINKS), delete(QUEUE), delete(EVENTS), update(HEAD).values(last_hash=GENESIS, events=0))
    _record(app, 2)
    assert _verify(app).exit_code == 0  # consistent in itself
    result = _verify(app, "--anchor", anchor)
    assert result.exit_code == 1
    assert f"anchor not found (no event has the hash {anchor}" in result.output


# -- what the database refuses -------------------------------------------------------------------------------


def test_the_database_refuses_a_fork_or_an_event_sealed_twice(app):
    _record(app, 2)
    _record(app, 1, sealed=False)
    first, unsealed = _links(app)[0], _events(app)[-1]
    with app.app_context():
        for forged in (
            {"position": 3, "event_id": unsealed.id, "prev_hash": first.prev_hash, "hash": "f" * 64},  # a fork
            {"position": 3, "event_id": first.event_id, "prev_hash": _head(app)[0], "hash": "f" * 64},  # twice
        ):
            with pytest.raises(sa.exc.IntegrityError), db.engine.begin() as connection:
                connection.execute(insert(LINKS).values(sealed_at=utcnow(), **forged))


def test_the_application_never_updates_or_deletes_an_event_or_a_link(app):
    _record(app, 1)
    with app.app_context():
        for model, column in ((AuditEvent, "tag"), (AuditLink, "hash")):
            row = db.session.scalar(select(model))
            setattr(row, column, "test:changed")
            with pytest.raises(RuntimeError, match="append-only"):
                db.session.commit()
            db.session.rollback()
            db.session.delete(db.session.scalar(select(model)))
            with pytest.raises(RuntimeError, match="append-only"):
                db.session.commit()
            db.session.rollback()
    assert _verify(app).exit_code == 0


@postgresql_only
@pytest.mark.parametrize(
    "statement, refusal",
    [
        ("UPDATE audit_events SET tag = 'test:changed'", "audit_events is append-only"),
        ("DELETE FROM audit_events", "audit_events is append-only"),
        ("TRUNCATE audit_events CASCADE", "is append-only"),  # with its links, whichever trigger fires first
        ("UPDATE audit_links SET hash = prev_hash", "audit_links is append-only"),
        ("DELETE FROM audit_links", "audit_links is append-only"),
        ("TRUNCATE audit_links", "audit_links is append-only"),
        ("DELETE FROM audit_unsealed", "an event leaves the queue only once it is sealed"),
        ("UPDATE audit_unsealed SET event_id = event_id + 100", "an event leaves the queue only once it is sealed"),
        ("TRUNCATE audit_unsealed", "an event leaves the queue only once it is sealed"),
    ],
    ids=["update", "delete", "truncate", "update-link", "delete-link", "truncate-links", "dequeue", "requeue",
         "truncate-queue"],
)
def test_postgresql_refuses_changing_the_trail(app, statement, refusal):
    _record(app, 2)
    _record(app, 1, sealed=False)
    with app.app_context(), pytest.raises(sa.exc.DBAPIError, match=refusal):
        with db.engine.begin() as connection:
            connection.execute(text(statement))
    assert _verify(app).exit_code == 0


# -- concurrency ---------------------------------------------------------------------------------------------


@postgresql_only
def test_an_uncommitted_event_holds_up_no_other_transaction(app):
    with app.app_context():
        record(ChainTags.HELD, actor="test")
        db.session.flush()  # its INSERT done, its transaction open
        with app.app_context():  # another session, on another connection
            db.session.execute(text("SET LOCAL lock_timeout = '2s'"))  # a wait fails the test, never hangs it
            started = time.monotonic()
            record(ChainTags.EVENT, actor="test")
            db.session.commit()
            assert time.monotonic() - started < 1
            assert audit_chain.seal(db.session).events == 1  # the committed one; the other is not visible yet
        db.session.commit()
    assert _seal(app).events == 1
    assert [link.event_id for link in _links(app)] == [e.id for e in reversed(_events(app))]  # seal order
    result = _verify(app)
    assert result.exit_code == 0 and "whole: 2 events" in result.output, result.output


def test_concurrent_recording_and_racing_sealers_leave_one_chain(app):
    writers, each, sealers = 6, 15, 2
    start = threading.Barrier(writers + sealers)
    writing = threading.Event()
    errors = []

    def write(number: int) -> None:
        try:
            with app.app_context():  # its own session and connection
                start.wait()
                for index in range(each):
                    record(ChainTags.CONCURRENT, actor=f"thread:{number}", index=index)
                    db.session.commit()
        except Exception as exc:  # the assertion below shows it
            errors.append(exc)

    def seal() -> None:
        try:
            with app.app_context():
                start.wait()
                while writing.is_set():
                    audit_chain.seal(db.session, batch_size=7)
                    time.sleep(0.005)
        except Exception as exc:
            errors.append(exc)

    writing.set()
    workers = [threading.Thread(target=write, args=(number,)) for number in range(writers)]
    racers = [threading.Thread(target=seal) for _ in range(sealers)]
    for thread in workers + racers:
        thread.start()
    for thread in workers:
        thread.join()
    writing.clear()
    for thread in racers:
        thread.join()
    assert errors == []
    _seal(app)
    assert sorted(link.event_id for link in _links(app)) == [e.id for e in _events(app)]  # each once
    result = _verify(app)
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines() == [f"audit trail whole: {writers * each} events, last hash "
                                                  f"{_head(app)[0]}"]


# -- migrations -------------------------------------------------------------------------------------------


def test_the_migrations_link_the_events_already_there(app):
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


def test_the_sealer_migration_keeps_the_chain_and_its_downgrade_links_the_unsealed_too(app):
    _record(app, 3)
    _record(app, 2, sealed=False)
    with app.app_context():
        downgrade(revision="0014")
        with db.engine.connect() as connection:
            old = connection.execute(text("SELECT id, prev_hash, hash FROM audit_events ORDER BY id")).all()
            head = connection.execute(text("SELECT last_hash, events FROM audit_chain_head")).one()
        assert [row.prev_hash for row in old] == [GENESIS] + [row.hash for row in old[:-1]]  # 0005's chain
        assert tuple(head) == (old[-1].hash, 5)
        upgrade()
    links = _links(app)
    assert [(link.event_id, link.prev_hash, link.hash) for link in links] == [tuple(row) for row in old]
    assert _queued(app) == []
    result = _verify(app)
    assert result.exit_code == 0 and f"whole: 5 events, last hash {old[-1].hash}" in result.output, result.output
    _record(app, 1)  # the trigger is back
    assert "whole: 6 events" in _verify(app).output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditLink)) == 6


@pytest.mark.parametrize("position", [0, -5, 7], ids=["at 0", "below", "past the end"])
def test_a_link_put_outside_the_chains_positions_is_caught(app, position):
    # A link at 0 would take a queued event off the queue unsealed for good; one past the end would stick the
    # sealer on its position: either way verify must not call the trail whole.
    _record(app, 2)
    waiting = _record(app, 1, sealed=False)[-1]
    _tamper(app, insert(LINKS).values(position=position, event_id=waiting, prev_hash="f" * 64, hash="e" * 64,
                                      sealed_at=utcnow()))
    _seal(app)
    result = _verify(app)
    assert result.exit_code == 1 and f"audit trail broken: event {waiting}: " in result.output
    # Even with a hash that follows on, its position gives it away.
    _tamper(app, delete(LINKS).where(LINKS.c.event_id == waiting))
    last, event = _links(app)[-1], next(e for e in _events(app) if e.id == waiting)
    link = AuditLink(position=position, event_id=waiting, prev_hash=last.hash)
    _tamper(app, insert(LINKS).values(position=position, event_id=waiting, prev_hash=last.hash,
                                      hash=_recomputed(link, event), sealed_at=utcnow()))
    result = _verify(app)
    assert result.exit_code == 1 and f"event {waiting}: " in result.output, result.output
