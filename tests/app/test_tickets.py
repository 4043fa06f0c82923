"""The single-use ticket (a binding's or a login's QR code): found by its token, claimed once, attempts
counted in the claim itself."""

from __future__ import annotations

import secrets
import threading
from datetime import timedelta

import pytest

from app.extensions import db
from app.models import Binding, CardLogin, utcnow
from app.services import sessions, tickets
from app.services.tokens import digest
from tests.factories import make_account
from tests.support import card_of


@pytest.fixture
def binding(app, pki):
    """A fresh binding's id and token, as ``Devices.create_binding`` issues them."""
    with app.app_context():
        account = make_account(pki, card_of(pki, "A123456789"))
        _, auth_session = sessions.open(account, method="card", lifetime=timedelta(hours=1))
        ticket, token = tickets.issue(Binding, ttl=timedelta(minutes=5), account=account, auth_session=auth_session)
        db.session.commit()
        return ticket.id, token


def test_a_ticket_is_found_by_its_token_which_is_stored_only_as_its_digest(app, binding):
    binding_id, token = binding
    with app.app_context():
        found = tickets.by_token(Binding, token)
        assert found is not None and found.id == binding_id
        assert found.token_hash == digest(token) and token not in (found.public_id, found.token_hash)
        assert found.status(utcnow()) == "pending"
        for other in (token[:-1] + ("A" if token[-1] != "A" else "B"), "x" * 19, "x" * 101, None, 42):
            assert tickets.by_token(Binding, other) is None


def test_a_ticket_is_consumed_once_and_never_once_expired(app, binding):
    binding_id, _ = binding
    with app.app_context():
        ticket = db.session.get(Binding, binding_id)
        assert tickets.consume(ticket) is True
        assert tickets.consume(ticket) is False
        assert ticket.consumed_at is not None and ticket.status(utcnow()) == "scanned"  # its answer is checked
        just_past = ticket.expires_at + Binding.CHECK_GRACE / 2
        assert ticket.status(just_past) == "scanned"  # an answer taken in time may finish past expiry
        # One that never finished (the checking request died) is expired, so the computer stops waiting.
        assert ticket.status(ticket.expires_at + Binding.CHECK_GRACE) == "expired"
        tickets.fail(ticket, "user_not_verified")
        db.session.commit()
        assert ticket.status(utcnow()) == "failed"
        fresh, _ = tickets.issue(Binding, ttl=timedelta(seconds=-1), account=ticket.account,
                                 auth_session=ticket.auth_session)
        db.session.commit()
        assert tickets.consume(fresh) is False and fresh.status(utcnow()) == "expired"


def test_of_answers_racing_for_one_ticket_exactly_one_is_taken(app, binding):
    binding_id, _ = binding
    racers = 6
    barrier = threading.Barrier(racers)
    won = []

    def answer():
        with app.app_context():
            ticket = db.session.get(Binding, binding_id)
            barrier.wait()
            won.append(tickets.consume(ticket))

    threads = [threading.Thread(target=answer) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(won) == [False] * (racers - 1) + [True]


def test_a_claim_counts_its_attempts_in_the_same_statement_and_stops_at_the_limit(app):
    # No ticket kind counts attempts yet (the agencies' tickets will): a card login's counter shows the claim.
    with app.app_context():
        login = CardLogin(id=secrets.token_urlsafe(16), tbs="x", hash_algorithm="SHA256",
                          expires_at=utcnow() + timedelta(minutes=1))
        db.session.add(login)
        db.session.commit()
        claims = [tickets.claim(login, count=CardLogin.identity_checks, below=2) for _ in range(3)]
        assert claims == [True, True, False]
        assert login.identity_checks == 2
