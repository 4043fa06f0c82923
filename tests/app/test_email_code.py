"""The email-code limits hold under truly parallel requests: the app behind a real threaded HTTP server, 50
threads with their own HTTP sessions logged in as one account, all let go at once.

Reads of the codes are slowed down a little, as on a loaded database: a limit that checks first and writes
later then lets many requests through every time, instead of now and then.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import timedelta

import pytest
import requests
from sqlalchemy import event, func, select, update
from werkzeug.serving import make_server

from app.extensions import db
from app.models import Account, AuditEvent, EmailVerification, utcnow
from tests.support import register

PARALLEL = 50
SLOW_READ = 0.05  # seconds


@pytest.fixture
def slow_reads(app):
    def pause(conn, cursor, statement, parameters, context, executemany):  # after the read, before acting on it
        if statement.lstrip().upper().startswith("SELECT") and "email_verifications" in statement:
            time.sleep(SLOW_READ)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "after_cursor_execute", pause)
    yield
    event.remove(engine, "after_cursor_execute", pause)


@pytest.fixture
def served(app, slow_reads):
    """The app on a real port, each request in its own thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()
    server.server_close()


@pytest.fixture
def registered(client, pki, mailbox):
    """A freshly registered account: its session cookie and the code it was mailed."""
    assert register(client, pki).status_code == 201
    cookie = client.raw.get_cookie("mocert_session").value
    code = re.search(r"\b(\d{6})\b", mailbox.messages[-1].get_payload(decode=True).decode()).group(1)
    return cookie, code


def _race(url: str, cookie: str, path: str, bodies: list) -> list[requests.Response]:
    """POST each body from its own HTTP session (one account's cookie), all released at the same moment."""
    sessions = []
    for _ in bodies:
        http = requests.Session()
        http.cookies.set("mocert_session", cookie, domain="127.0.0.1", path="/")
        http.headers["X-CSRF-Token"] = http.get(f"{url}/api/v1/csrf", timeout=30).json()["csrf_token"]
        sessions.append(http)
    barrier = threading.Barrier(len(bodies))
    responses: list = [None] * len(bodies)

    def send(index: int) -> None:
        barrier.wait(timeout=60)
        try:
            responses[index] = sessions[index].post(f"{url}{path}", json=bodies[index], timeout=120)
        except requests.RequestException as exc:  # shown by the assertion below
            responses[index] = exc

    threads = [threading.Thread(target=send, args=(index,)) for index in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    for http in sessions:
        http.close()
    failed = [r for r in responses if not isinstance(r, requests.Response) or r.status_code >= 500]
    assert not failed, [r if not isinstance(r, requests.Response) else (r.status_code, r.text[:200]) for r in failed]
    return responses


def _count(app, tag: str) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.tag == tag))


def _errors(responses, status: int) -> list[str]:
    return [r.json().get("error") for r in responses if r.status_code == status]


def test_fifty_parallel_guesses_evaluate_only_the_allowed_number_of_attempts(app, served, registered):
    cookie, code = registered
    wrong = "000000" if code != "000000" else "111111"
    maximum = app.config["EMAIL_CODE_MAX_ATTEMPTS"]
    guesses = [{"code": wrong}] * (PARALLEL - 1) + [{"code": code}]
    responses = _race(served, cookie, "/api/v1/account/verify-email", guesses)

    failures = _count(app, "account:email:failure")
    locks = _count(app, "account:email:locked")
    confirmations = _count(app, "account:email:confirmed")
    wrong_answers = [r.json() for r in responses if r.status_code == 400 and r.json()["error"] == "wrong_code"]
    # Every evaluated guess is one audited outcome, and each counts down attempts_left by one.
    assert len(wrong_answers) == failures
    left = sorted((a["attempts_left"] for a in wrong_answers), reverse=True)
    assert left == list(range(maximum - 1, maximum - 1 - failures, -1))
    with app.app_context():
        verification = db.session.scalar(select(EmailVerification))
        account = db.session.scalar(select(Account))
    if confirmations == 0:
        # The right code came too late: exactly `maximum` guesses were evaluated, the last of them locked.
        assert (failures, locks) == (maximum - 1, 1)
        assert _errors(responses, 429) == ["too_many_attempts"] * (PARALLEL - failures)
        assert all(r.json()["retry_after"] > 0 for r in responses if r.status_code == 429)
        assert verification.locked_until is not None and verification.verified_at is None
        assert account.email_verified_at is None
    else:
        # The right code was among the first `maximum` evaluated: accepted once, and nothing after it is evaluated.
        assert confirmations == 1 and locks == 0 and failures < maximum
        assert [r.status_code for r in responses].count(200) == 1
        assert _errors(responses, 400).count("no_pending_code") == PARALLEL - failures - 1
        assert verification.verified_at is not None and account.email_verified_at is not None


def test_fifty_parallel_submissions_of_the_right_code_confirm_once(app, served, registered):
    cookie, code = registered
    responses = _race(served, cookie, "/api/v1/account/verify-email", [{"code": code}] * PARALLEL)
    assert [r.status_code for r in responses].count(200) == 1
    assert _errors(responses, 400) == ["no_pending_code"] * (PARALLEL - 1)
    assert _count(app, "account:email:confirmed") == 1
    assert _count(app, "account:email:failure") == 0
    with app.app_context():
        assert db.session.scalar(select(EmailVerification)).verified_at is not None
        assert db.session.scalar(select(Account)).email_verified_at is not None


def test_fifty_parallel_resends_mail_exactly_one_code(app, served, registered, mailbox):
    cookie, _ = registered
    with app.app_context():  # the registration's code is old enough for one resend
        db.session.execute(update(EmailVerification).values(created_at=utcnow() - timedelta(minutes=2)))
        db.session.commit()
    mailbox.messages.clear()
    responses = _race(served, cookie, "/api/v1/account/email-code", [None] * PARALLEL)
    sent = [r.json() for r in responses if r.status_code == 200]
    assert sent == [{"status": "sent", "email_sent": True}]
    assert _errors(responses, 429) == ["too_soon"] * (PARALLEL - 1)
    assert all(0 < r.json()["retry_after"] <= 61 for r in responses if r.status_code == 429)
    assert len(mailbox.messages) == 1
    assert _count(app, "account:email:code_sent") == 2  # the registration's and this one
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(EmailVerification)) == 2


def test_a_code_out_of_attempts_under_a_lowered_maximum_locks_at_the_next_try(app, client, registered):
    _, code = registered
    with app.app_context():  # seven misses were allowed before the maximum came down to five
        db.session.execute(update(EmailVerification).values(failed_attempts=7))
        db.session.commit()
    refused = client.post("/api/v1/account/verify-email", json={"code": code})
    assert refused.status_code == 429 and refused.json["error"] == "too_many_attempts"
    assert refused.json["retry_after"] > 0
    assert _count(app, "account:email:locked") == 1 and _count(app, "account:email:confirmed") == 0
    with app.app_context():
        db.session.execute(update(EmailVerification).values(locked_until=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert client.post("/api/v1/account/verify-email", json={"code": code}).status_code == 200


def test_a_resent_code_keeps_the_misses_made_at_the_one_it_replaces(app, client, registered, mailbox):
    _, code = registered
    wrong = "000000" if code != "000000" else "111111"
    misses = [client.post("/api/v1/account/verify-email", json={"code": wrong}) for _ in range(4)]
    assert [m.json["attempts_left"] for m in misses] == [4, 3, 2, 1]
    with app.app_context():  # the resend interval has passed
        db.session.execute(update(Account).values(email_code_resent_at=utcnow() - timedelta(minutes=2)))
        db.session.execute(update(EmailVerification).values(created_at=utcnow() - timedelta(minutes=2)))
        db.session.commit()
    assert client.post("/api/v1/account/email-code").status_code == 200
    new_code = re.search(r"\b(\d{6})\b", mailbox.messages[-1].get_payload(decode=True).decode()).group(1)
    other = "000000" if new_code != "000000" else "111111"
    refused = client.post("/api/v1/account/verify-email", json={"code": other})
    assert refused.status_code == 429 and refused.json["error"] == "too_many_attempts"  # the fifth miss, not the first
    assert _count(app, "account:email:locked") == 1
