"""Every migration, up and down, on SQLite and on PostgreSQL: the migrated database is exactly the schema the
models describe, and undoing them all leaves nothing behind.

The other tests share one migrated database per run (tests/conftest.py); this one migrates a fresh one.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from app import create_app
from app.extensions import db
from tests.factories import make_account, make_device
from tests.support import card_of, make_config


@pytest.fixture(params=["sqlite", "postgresql"])
def unmigrated_app(request, tmp_path, pki, postgres_server):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'migrations.db'}"
    else:
        url = postgres_server()
    application = create_app(make_config(pki.directory.parent, url))
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


def _differences() -> list:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        return compare_metadata(context, db.metadata)


def _tables() -> set[str]:
    return set(sa.inspect(db.engine).get_table_names())


def test_every_migration_runs_up_and_down_and_the_result_matches_the_models(unmigrated_app):
    with unmigrated_app.app_context():
        upgrade()
        assert _differences() == []
        downgrade(revision="base")
        assert _tables() <= {"alembic_version"}
        upgrade()  # and up again from nothing
        assert _differences() == []


def test_on_sqlite_a_downgrade_that_rebuilds_a_table_keeps_the_rows_that_refer_to_it(tmp_path, pki):
    # Undoing 0007 rebuilds ``accounts`` (a copy made, the old table dropped, the copy renamed); with the
    # application's foreign keys on, the drop would be refused, or delete what refers to it.
    application = create_app(make_config(pki.directory.parent, f"sqlite:///{tmp_path / 'migrations.db'}"))
    with application.app_context():
        upgrade()
        account = make_account(pki, card_of(pki, "A123456789"))
        make_device(account)
        downgrade(revision="0006")
        upgrade()
        with db.engine.connect() as connection:
            devices = sa.text("SELECT count(*) FROM devices WHERE account_id = :id")
            assert connection.scalar(devices, {"id": account.id}) == 1
            assert connection.scalar(sa.text("SELECT count(*) FROM card_certificates")) == 1
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # on again after the migrations
        db.session.remove()
        db.engine.dispose()


def test_0017_fills_in_from_the_audit_trail_who_revoked_since_when_and_which_codes_went_out(unmigrated_app, pki):
    from datetime import datetime, timedelta, timezone

    from app.models import AuditEvent, Device, EmailVerification

    at = datetime(2026, 5, 1, tzinfo=timezone.utc)
    with unmigrated_app.app_context():
        upgrade()
        account = make_account(pki, card_of(pki, "A123456789"))
        other = make_account(pki, card_of(pki, "B223456782"))
        unbound, revoked = make_device(account, status="revoked"), make_device(account, status="revoked")
        suspended = make_device(account, status="suspended")
        cloned = make_device(account, possibly_cloned=True)
        for owner, count in ((account, 2), (other, 1)):
            for number in range(count):
                db.session.add(EmailVerification(account_id=owner.id, email="x@example.com", code_hash="h",
                                                 created_at=at, expires_at=at + timedelta(minutes=10)))
        events = [("device:unbound", unbound.id, 0), ("device:suspended", suspended.id, 1),
                  ("device:suspended", suspended.id, 2), ("device:possibly_cloned", cloned.id, 3),
                  ("device:possibly_cloned", cloned.id, 4)]
        for tag, device, hours in events:
            db.session.add(AuditEvent(tag=tag, actor="x", account_id=account.id, details={"device": device},
                                      occurred_at=at + timedelta(hours=hours)))
        for owner, delivered in ((account, True), (account, False), (other, True)):  # the newest is what counts
            db.session.add(AuditEvent(tag="account:email:code_sent", actor="x", account_id=owner.id,
                                      details={"delivered": delivered}, occurred_at=at))
        db.session.commit()
        ids = [d.id for d in (unbound, revoked, suspended, cloned)]
        account_id = account.id
        db.session.remove()

        downgrade(revision="0016")
        upgrade()
        devices = {d.id: d for d in db.session.scalars(sa.select(Device).where(Device.id.in_(ids)))}
        assert [devices[i].revoked_by for i in ids] == ["owner", "service", None, None]
        assert devices[ids[2]].suspended_at == at + timedelta(hours=2)  # the newest suspension
        assert devices[ids[3]].possibly_cloned_at == at + timedelta(hours=3)  # the first finding
        codes = db.session.scalars(sa.select(EmailVerification).order_by(EmailVerification.id)).all()
        assert [(c.account_id == account_id, c.sent_at is not None) for c in codes] == [
            (True, True), (True, False), (False, True)]  # the account's newest code was not taken
        assert codes[1].send_error
        db.session.remove()
