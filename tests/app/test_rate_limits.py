"""The limits hold across workers only in shared storage: two processes counting in one Redis, and why
production refuses memory:// (each process counts alone)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support import missing

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("MOCERT_TEST_REDIS_URL", "redis://127.0.0.1:6379")
LIMIT = 6

# One worker: its own process and its own app, sending card-login begins; prints the statuses.
WORKER = """
import json, os, sys
from config import TestingConfig
from app import create_app
config = TestingConfig()
config.RATELIMIT_ENABLED = True
config.RATELIMIT_KEY_PREFIX = os.environ["TEST_RATELIMIT_KEY_PREFIX"]
client = create_app(config).test_client()
token = client.get("/api/v1/csrf").get_json()["csrf_token"]
statuses = [client.post("/api/v1/card-login/begin", headers={"X-CSRF-Token": token}).status_code
            for _ in range(int(sys.argv[1]))]
print(json.dumps(statuses))
"""


@pytest.fixture
def redis_prefix():
    """A key prefix of this test alone (parallel runs and other users of the Redis never collide); its
    keys are deleted afterwards."""
    try:
        import redis
    except ImportError:
        missing("the redis client is not installed (requirements.txt pins it)")
    connection = redis.Redis.from_url(REDIS_URL)
    try:
        connection.ping()
    except redis.RedisError as exc:
        missing(f"Redis not reachable at {REDIS_URL}: {exc}")
    prefix = f"mocert-test-{uuid.uuid4().hex}"
    yield prefix
    for key in connection.scan_iter(match=f"*{prefix}*"):
        connection.delete(key)
    connection.close()


@pytest.fixture
def shared_database(tmp_path, pki):
    from app import create_app
    from app.extensions import db
    from tests.support import make_config as _config

    url = f"sqlite:///{tmp_path / 'mocert.db'}"
    app = create_app(_config(pki.directory.parent, url))
    with app.app_context():
        db.create_all()
    return {"MOCERT_ENV": "testing", "MOCERT_DATABASE_URL": url, "MOCERT_INSTANCE_DIR": str(tmp_path),
            "MOCERT_DEMO_PKI_DIR": str(pki.directory)}


def _worker(environment: dict, requests: int) -> list[int]:
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(requests)], cwd=ROOT, env={**os.environ, **environment},
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _two_workers(environment: dict) -> list[int]:
    """LIMIT + 1 card-login begins split across two processes, the second one's last being the (LIMIT+1)th."""
    environment = {**environment, "MOCERT_CARD_LOGIN_RATE_LIMIT": f"{LIMIT}/minute"}
    first = _worker(environment, LIMIT // 2)
    second = _worker(environment, LIMIT - LIMIT // 2 + 1)
    return first + second


def test_two_workers_sharing_redis_count_together(shared_database, redis_prefix):
    statuses = _two_workers(
        {**shared_database, "MOCERT_RATELIMIT_STORAGE_URI": REDIS_URL, "TEST_RATELIMIT_KEY_PREFIX": redis_prefix}
    )
    assert statuses == [200] * LIMIT + [429]


def test_two_workers_with_memory_storage_each_count_alone(shared_database):
    # Why production refuses memory://: the same requests all pass.
    statuses = _two_workers(
        {**shared_database, "MOCERT_RATELIMIT_STORAGE_URI": "memory://", "TEST_RATELIMIT_KEY_PREFIX": "memory"}
    )
    assert statuses == [200] * (LIMIT + 1)
