"""SQLite as the embedded default (app/sqlite.py): each connection in WAL with a busy timeout, full sync and
foreign keys; the write lock taken by a transaction's first write, not before, and waited for in turn; and
the real topology, gunicorn with 2 workers × 8 threads on one file, answering 16 clients logging in at once,
while an auditor's download of the trail stalls, without a 5xx."""

from __future__ import annotations

import base64
import collections
import hashlib
import html
import json
import os
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
import sqlalchemy as sa

from app import audit_chain, create_app
from app.audit import Tags
from app.extensions import db
from app.models import AuditChainHead, AuditEvent, utcnow
from app.oidc.keys import ensure_keys
from iccard.demo_pki import identity_check_token
from tests.factories import RP, make_account, make_device, make_oidc_client
from tests.support import ApiClient, card_of, free_port, make_config, make_signature

ROOT = Path(__file__).resolve().parents[2]

CLIENTS = 16
LOAD_SECONDS = 6
# A deployment's trail after a while: its CSV export (10 MB) is more than the sockets between the server and
# a stalled download buffer (4 MB on Linux), so the server is left waiting in the middle of it.
TRAIL_EVENTS = 10_000
USER_AGENT = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) " * 4


@pytest.fixture
def sqlite_app(sqlite_database, pki):
    application = create_app(make_config(pki.directory.parent, sqlite_database, SQLITE_BUSY_TIMEOUT=0.25))
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


def _path(app) -> str:
    return sa.make_url(app.config["SQLALCHEMY_DATABASE_URI"]).database


def test_a_connection_is_in_wal_with_a_busy_timeout_full_sync_and_foreign_keys(sqlite_app):
    with sqlite_app.app_context(), db.engine.connect() as connection:
        def pragma(name):
            return connection.exec_driver_sql(f"PRAGMA {name}").scalar()

        assert pragma("journal_mode") == "wal"
        assert pragma("busy_timeout") == 250
        assert pragma("synchronous") == 2  # FULL: a commit is on disk when it returns
        assert pragma("foreign_keys") == 1
    # Kept in the file: any other process opening it, the CLI's or a worker's, works in the same log.
    with sqlite3.connect(_path(sqlite_app)) as other:
        assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_reference_to_no_row_is_refused_as_on_postgresql(sqlite_app):
    with sqlite_app.app_context(), pytest.raises(sa.exc.IntegrityError, match="FOREIGN KEY"):
        make_device(SimpleNamespace(id=999))  # no account 999


def _another_writer_waits(app) -> bool:
    """Whether a second connection, waiting for nobody, finds the write lock taken."""
    other = sqlite3.connect(_path(app), timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc)
        return True
    else:
        other.execute("ROLLBACK")
        return False
    finally:
        other.close()


def test_reads_take_no_lock_and_the_first_write_takes_it_until_the_commit(sqlite_app):
    head = AuditChainHead.__table__
    with sqlite_app.app_context():
        db.session.execute(sa.select(head.c.events)).all()
        assert not _another_writer_waits(sqlite_app)  # a request that only reads holds nobody up
        db.session.execute(head.update().values(events=head.c.events))
        assert _another_writer_waits(sqlite_app)
        db.session.execute(sa.select(head.c.events)).all()
        assert _another_writer_waits(sqlite_app)
        db.session.commit()
        assert not _another_writer_waits(sqlite_app)


def test_a_select_for_update_takes_the_write_lock_as_a_row_lock_would(sqlite_app):
    # SQLite has no FOR UPDATE; what it serializes on PostgreSQL (guesses at a national ID) waits here too.
    with sqlite_app.app_context():
        db.session.execute(sa.select(AuditChainHead.id).with_for_update()).all()
        assert _another_writer_waits(sqlite_app)
        db.session.rollback()
        assert not _another_writer_waits(sqlite_app)


def test_a_write_waits_for_the_writer_before_it(sqlite_app):
    holder = sqlite3.connect(_path(sqlite_app), isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    done = threading.Timer(0.1, holder.execute, ("COMMIT",))  # within the 0.25 s busy timeout
    done.start()
    head = AuditChainHead.__table__
    try:
        with sqlite_app.app_context():
            db.session.execute(head.update().values(events=head.c.events))
            db.session.commit()
    finally:
        done.join()
        holder.close()


def test_a_write_that_does_not_get_its_turn_within_the_busy_timeout_is_a_503(sqlite_app):
    holder = sqlite3.connect(_path(sqlite_app), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        response = ApiClient(sqlite_app.test_client()).post("/api/v1/card-login/begin")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert response.status_code == 503, response.get_data(as_text=True)  # try again: not a 500
    assert response.headers["Retry-After"]


# -- gunicorn, 2 workers × 8 threads, on one SQLite file ----------------------------------------------------


class Server:
    """gunicorn serving MoCert on ``database_url`` (development settings without mail to the console or rate
    limits, and the demo PKI's CRL, OCSP and identity check served by the test's revocation server)."""

    def __init__(self, tmp_path: Path, database_url: str, pki, revocation_server) -> None:
        self.port = free_port()
        self.url = f"http://localhost:{self.port}"
        self.log_path = tmp_path / "gunicorn.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MOCERT_")} | {
            "MOCERT_ENV": "development",
            "MOCERT_INSTANCE_DIR": str(tmp_path / "instance"),
            "MOCERT_DATABASE_URL": database_url,
            "MOCERT_PUBLIC_URL": self.url,
            "MOCERT_DEMO_PKI_DIR": str(pki.directory),
            "MOCERT_OIDC_KEYS_DIR": str(tmp_path / "oidc-keys"),
            "MOCERT_NATIONAL_ID_HMAC_KEY": secrets.token_hex(32),
            "MOCERT_IDENTITY_CHECK_URL": f"{revocation_server.url}/pki/demo/identity-check",
            "MOCERT_IDENTITY_CHECK_TOKEN": identity_check_token(pki.directory),
            "MOCERT_MAIL_TO_CONSOLE": "0",
            "MOCERT_RATELIMIT_ENABLED": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        self._process: subprocess.Popen | None = None

    def start(self, *, workers: int, threads: int) -> None:
        self._log = open(self.log_path, "ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "wsgi:app", "--bind", f"127.0.0.1:{self.port}",
             "--workers", str(workers), "--threads", str(threads), "--worker-class", "gthread",
             "--timeout", "60", "--graceful-timeout", "5", "--error-logfile", "-", "--no-control-socket"],
            cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self._process.poll() is None, f"gunicorn exited: {self.log()}"
            try:
                if requests.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        pytest.fail(f"gunicorn did not answer within 60 s: {self.log()}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(timeout=10)
        self._log.close()

    def flask(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=120)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


@pytest.fixture
def server(tmp_path, sqlite_database, pki, revocation_server):
    """MoCert under gunicorn on a migrated SQLite file: 王小明 registered, a relying party, a trail of
    TRAIL_EVENTS events and a service token that may read it."""
    server = Server(tmp_path, sqlite_database, pki, revocation_server)
    ensure_keys(tmp_path / "oidc-keys")
    config = make_config(pki.directory.parent, sqlite_database,
                         NATIONAL_ID_HMAC_KEY=server.env["MOCERT_NATIONAL_ID_HMAC_KEY"])
    app = create_app(config)
    with app.app_context():
        make_account(pki, card_of(pki, "A123456789"), email_verified_at=utcnow())
        server.rp = make_oidc_client(app)
        _fill_trail(TRAIL_EVENTS)
        created = app.test_cli_runner().invoke(args=["admin", "token", "create", "--name", "audit", "--scope", "read"])
        server.audit_token = json.loads(created.output)["service_token"]
        db.session.remove()
        db.engine.dispose()
    server.start(workers=2, threads=8)
    yield server
    server.stop()


def _fill_trail(events: int) -> None:
    """``events`` past card logins in the audit trail, sealed into its chain (inserted at once: recording them
    one by one would take most of the test's time)."""
    now = utcnow()
    rows = [{"occurred_at": now, "tag": Tags.CARD_LOGIN_SUCCESS.value, "actor": "anonymous", "account_id": None,
             "ip": "192.0.2.1", "user_agent": USER_AGENT,
             "details": {"login_id": secrets.token_urlsafe(32), "card": secrets.token_hex(32),
                         "registration_required": True}} for _ in range(events)]
    db.session.execute(sa.insert(AuditEvent.__table__), rows)
    db.session.commit()
    audit_chain.seal(db.session)


class StalledExport:
    """An auditor's download of the audit trail as CSV, read no further than its first rows (a slow link,
    a paused download): the server's generator waits in the middle of its query, the query open."""

    def __init__(self, server: Server) -> None:
        self.response = requests.get(f"{server.url}/api/v1/admin/audit.csv", stream=True, timeout=30,
                                     headers={"Authorization": f"Bearer {server.audit_token}"})
        assert self.response.status_code == 200, self.response.text
        assert self.response.raw.read(4096)

    def close(self) -> None:
        self.response.close()


class Person:
    """A browser of 王小明's that logs in with the card, then signs in at the relying party: authorization
    code, PKCE, code exchange. Every write a login makes: the challenge, its claim, the session, the code,
    the tokens, and their audit events (recorded unlinked; the workers' sealers link them)."""

    def __init__(self, server: Server, pki) -> None:
        self.server, self.pki, self.card = server, pki, card_of(pki, "A123456789")
        self.answers: collections.Counter = collections.Counter()
        self.failures: list[str] = []
        self.logins = 0

    def login(self) -> None:
        url, http = self.server.url, requests.Session()
        headers = {"X-CSRF-Token": http.get(f"{url}/api/v1/csrf", timeout=30).json()["csrf_token"]}
        begin = self._expect("card-login/begin", 200, http.post(f"{url}/api/v1/card-login/begin", headers=headers,
                                                                timeout=30))
        signed = make_signature(self.pki, self.card, begin.json()["tbs"], "PKCS7", begin.json()["hashAlgorithm"])
        done = http.post(f"{url}/api/v1/card-login/complete", json={"login_id": begin.json()["login_id"], **signed},
                         headers=headers, timeout=30)
        self._expect("card-login/complete", 200, done)
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = urlencode({"response_type": "code", "client_id": self.server.rp["client_id"],
                           "redirect_uri": f"{RP}/cb", "scope": "openid", "state": "s",
                           "nonce": secrets.token_urlsafe(12), "code_challenge": challenge,
                           "code_challenge_method": "S256"})
        answer = http.get(f"{url}/authorize?{query}", allow_redirects=False, timeout=30)
        if answer.status_code == 200:  # the first time: the consent page
            action = html.unescape(re.search(r'<form method="post" action="([^"]+)"', answer.text).group(1))
            fields = {k: html.unescape(v) for k, v in re.findall(r'name="([^"]+)" value="([^"]*)"', answer.text)}
            answer = http.post(url + action, data={**fields, "decision": "approve"}, allow_redirects=False,
                               timeout=30)
            step = "consent"
        else:
            step = "authorize"
        code = parse_qs(urlsplit(self._expect(step, 302, answer).headers["Location"]).query)["code"][0]
        token = requests.post(f"{url}/oauth/token", data={"grant_type": "authorization_code", "code": code,
                              "redirect_uri": f"{RP}/cb", "code_verifier": verifier},
                              auth=(self.server.rp["client_id"], self.server.rp["client_secret"]), timeout=30)
        self._expect("token", 200, token)
        self.logins += 1

    def _expect(self, step: str, status: int, response: requests.Response) -> requests.Response:
        self.answers[step, response.status_code] += 1
        if response.status_code != status:
            self.failures.append(f"{step}: {response.status_code} {response.text[:200]}")
            raise _Refused
        return response

    def keep_logging_in(self, until: float) -> None:
        """Log in again and again until ``until`` (time.monotonic()); once at least."""
        while True:
            try:
                self.login()
            except _Refused:
                pass
            except requests.RequestException as exc:
                self.failures.append(f"no answer: {exc!r}")
            if time.monotonic() >= until:
                return


class _Refused(Exception):
    pass


def test_two_workers_of_eight_threads_on_one_file_answer_16_clients_without_a_5xx(server, pki):
    first = Person(server, pki)
    first.keep_logging_in(until=0)  # once: the consent, given before the rush
    assert first.logins == 1, first.failures
    # Meanwhile an auditor's export stalls; in SQLite's rollback journal no commit can pass its open read.
    export = StalledExport(server)
    people = [Person(server, pki) for _ in range(CLIENTS)]
    until = time.monotonic() + LOAD_SECONDS
    threads = [threading.Thread(target=person.keep_logging_in, args=(until,)) for person in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=LOAD_SECONDS + 60)
    export.close()

    answers = sum((person.answers for person in people), collections.Counter())
    failures = [failure for person in people for failure in person.failures]
    errors = sum(count for (_, status), count in answers.items() if status >= 500)
    summary = f"{sum(p.logins for p in people)} logins, answers {dict(answers)}, failures {failures[:5]}"
    assert errors == 0 and not failures, summary
    assert all(person.logins for person in people), summary  # every client got through, again and again
    verified = server.flask("audit", "verify")
    assert verified.returncode == 0 and "audit trail whole" in verified.stdout, verified.stdout + verified.stderr
    # The workers' sealers sealed the logins' events as they came: at most the last second's wait.
    sealed = int(re.search(r"whole: (\d+) events", verified.stdout).group(1))
    assert sealed > TRAIL_EVENTS + sum(p.logins for p in people), verified.stdout
    assert "older than that" not in verified.stdout, verified.stdout
