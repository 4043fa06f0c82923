"""The OIDC clients cached per process (app/services/client_directory.py), forgotten on every process when one
changes (app/invalidation.py): over Redis between processes, by their time to live without it."""

from __future__ import annotations

import contextlib
import os
import time

import pytest
import redis
from sqlalchemy import event

from app import create_app, wiring
from app.extensions import db
from app.services import clients
from tests.factories import make_oidc_client
from tests.support import make_config, missing

REDIS_URL = os.environ.get("MOCERT_TEST_REDIS_URL", "redis://127.0.0.1:6379")


@contextlib.contextmanager
def statements_of(app):
    seen: list[str] = []
    listener = lambda conn, cursor, statement, *args: seen.append(statement)  # noqa: E731
    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", listener)


def _active(app, client_id):
    with app.app_context():
        return wiring.parts().clients.active(client_id)


def _eventually(predicate, seconds=10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def redis_url():
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except redis.RedisError as exc:
        missing(f"Redis not reachable at {REDIS_URL}: {exc}")
    return REDIS_URL


def _second_process(instance_dir, database_url, **settings):
    """Another MoCert process on the same database, as a second gunicorn worker or instance would be."""
    return create_app(make_config(instance_dir, database_url, **settings))


def test_a_client_is_read_once_per_process_and_its_copy_is_in_no_session(app):
    client_id = make_oidc_client(app)["client_id"]
    assert _active(app, client_id).client_id == client_id
    with statements_of(app) as statements:
        for _ in range(5):
            copy = _active(app, client_id)
    assert statements == []
    with app.app_context():
        assert copy not in db.session  # never written back, never expired by a commit


def test_a_change_committed_in_this_process_is_seen_at_once(app):
    client_id = make_oidc_client(app)["client_id"]
    assert _active(app, client_id) is not None
    with app.app_context():
        clients.disable(clients.get(client_id), actor="admin", reason="test")
    assert _active(app, client_id) is None
    with app.app_context():
        clients.enable(clients.get(client_id), actor="admin", reason="test")
        clients.update(clients.get(client_id), {"name": "新名字"}, actor="admin", reason="test")
    assert _active(app, client_id).name == "新名字"


def test_a_change_rolled_back_keeps_the_copy(app):
    client_id = make_oidc_client(app)["client_id"]
    assert _active(app, client_id).name == "Example RP"
    with app.app_context():
        clients.get(client_id).name = "never saved"
        db.session.flush()
        db.session.rollback()
    with statements_of(app) as statements:
        assert _active(app, client_id).name == "Example RP"
    assert statements == []


def test_another_process_forgets_a_changed_client_at_once_over_redis(instance_dir, database_url, redis_url):
    first = _second_process(instance_dir, database_url, REDIS_URL=redis_url)
    second = _second_process(instance_dir, database_url, REDIS_URL=redis_url, CLIENT_CACHE_SECONDS=3600)
    client_id = make_oidc_client(first)["client_id"]
    assert _active(second, client_id) is not None  # cached there, for an hour
    time.sleep(0.5)  # its follower subscribed (one subscribing later forgets everything it holds anyway)
    with first.app_context():
        clients.disable(clients.get(client_id), actor="admin", reason="lost its secret")
    assert _eventually(lambda: _active(second, client_id) is None), "the second process still serves the client"


def test_without_redis_another_process_sees_the_change_within_its_time_to_live(app, instance_dir, database_url):
    second = _second_process(instance_dir, database_url, CLIENT_CACHE_SECONDS=5)
    client_id = make_oidc_client(app)["client_id"]
    assert _active(second, client_id) is not None
    with app.app_context():
        clients.disable(clients.get(client_id), actor="admin", reason="test")
    assert _active(second, client_id) is not None  # no message can reach it: its copy stands…
    assert _eventually(lambda: _active(second, client_id) is None, seconds=15)  # …until it is 5 s old


def test_made_up_client_ids_are_remembered_as_unknown(app):
    with statements_of(app) as statements:
        for _ in range(3):
            assert _active(app, "no-such-client") is None
    assert len(statements) == 1


def test_a_process_whose_channel_was_cut_forgets_everything_and_hears_again(instance_dir, database_url, redis_url):
    first = _second_process(instance_dir, database_url, REDIS_URL=redis_url)
    second = _second_process(instance_dir, database_url, REDIS_URL=redis_url, CLIENT_CACHE_SECONDS=3600)
    client_id = make_oidc_client(first)["client_id"]
    assert _active(second, client_id) is not None
    time.sleep(0.5)
    connection = redis.Redis.from_url(redis_url)
    with first.app_context():
        # Changed while no one listens (every follower cut: ours, and any other run's, which reconnect too).
        connection.client_kill_filter(_type="pubsub")
        clients.update(clients.get(client_id), {"name": "改名"}, actor="admin", reason="test")
    connection.close()
    assert _eventually(lambda: _active(second, client_id).name == "改名"), "the change made while cut was kept"
    with first.app_context():
        clients.disable(clients.get(client_id), actor="admin", reason="test")
    assert _eventually(lambda: _active(second, client_id) is None), "the follower did not listen again"


def test_a_redis_url_redis_py_cannot_use_refuses_to_start(instance_dir, database_url):
    with pytest.raises(SystemExit) as refused:
        _second_process(instance_dir, database_url, REDIS_URL="redis+sentinel://127.0.0.1:26379/mymaster")
    assert "MOCERT_REDIS_URL" in refused.value.reason
