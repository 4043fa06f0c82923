"""Registration, linking a replacement card, and confirming the email address by a mailed code."""

import re
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from app.extensions import db
from app.models import Account, AuditEvent, CardCertificate, CardLogin, EmailVerification, utcnow
from tests.factories import make_account
from tests.support import REGISTRATION, card_login, card_of, free_port, register


def _tags(app):
    with app.app_context():
        return [e.tag for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))]


def _code(mailbox) -> str:
    return re.search(r"\b(\d{6})\b", mailbox.messages[-1].get_payload(decode=True).decode()).group(1)


def test_registration_stores_the_id_only_as_a_keyed_hash_and_mails_a_code(client, pki, app, mailbox):
    response = register(client, pki)
    assert response.status_code == 201
    body = response.get_json()
    assert body["status"] == "registered" and body["email_sent"] is True
    account = body["account"]
    assert account["name"] == "王小明"
    assert account["national_id_masked"] == "A12****789"
    assert account["phone"] == "+886912345678"
    assert account["email"] == "wang@example.com" and account["email_verified"] is False
    assert account["devices"] == [] and len(account["cards"]) == 1
    with app.app_context():
        stored = db.session.scalar(select(Account))
        assert "A123456789" not in (stored.national_id_hash, stored.national_id_masked)
        assert len(stored.national_id_hash) == 64
    [mail] = mailbox.messages
    assert mail["To"] == "wang@example.com"
    assert re.search(r"\b\d{6}\b", mail.get_payload(decode=True).decode())
    assert "account:registered" in _tags(app) and "account:email:code_sent" in _tags(app)
    assert client.get("/api/v1/account").get_json()["name"] == "王小明"


def test_registration_needs_a_card_login_first(client):
    response = client.post("/api/v1/account/register", json=REGISTRATION)
    assert response.status_code == 401 and response.get_json()["error"] == "card_login_required"


def test_a_card_login_registers_at_most_once(client, pki, app):
    assert register(client, pki).status_code == 201
    again = client.post("/api/v1/account/register", json=REGISTRATION)
    assert again.status_code == 401
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Account)) == 1


def test_a_stale_card_login_cannot_register(client, pki, app):
    card_login(client, pki, card_of(pki, "A123456789"))
    with app.app_context():
        db.session.execute(update(CardLogin).values(consumed_at=utcnow() - timedelta(hours=1)))
        db.session.commit()
    response = client.post("/api/v1/account/register", json=REGISTRATION)
    assert response.status_code == 401 and response.get_json()["error"] == "card_login_required"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"national_id": "A123456788"}, "invalid_national_id"),
        ({"national_id": "hello"}, "invalid_national_id"),
        ({"national_id": None}, "invalid_national_id"),
        ({"national_id": "B223456782"}, "national_id_mismatch"),  # valid, but not this card's last 4
        ({"email": "not-an-address"}, "invalid_email"),
        ({"email": None}, "invalid_email"),
        ({"phone": "02-2345-6789"}, "invalid_phone"),  # a landline
        ({"phone": "+1 650 253 0000"}, "invalid_phone"),
        ({"phone": "123"}, "invalid_phone"),
    ],
)
def test_bad_registration_input_is_a_400_and_changes_nothing(client, pki, app, fields, code):
    card_login(client, pki, card_of(pki, "A123456789"))
    response = client.post("/api/v1/account/register", json={**REGISTRATION, **fields})
    assert response.status_code == 400 and response.get_json()["error"] == code
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Account)) == 0
    # …and the card login is still good for a corrected attempt.
    assert client.post("/api/v1/account/register", json=REGISTRATION).status_code == 201


def test_a_replacement_card_links_to_the_account_after_the_id_is_entered(client, pki, app):
    # 林志豪 registered years ago with the card that has since expired; now he comes with the new one.
    with app.app_context():
        account = make_account(pki, card_of(pki, "F131313136", "expired"))
    response = card_login(client, pki, card_of(pki, "F131313136"))
    assert response.get_json()["status"] == "registration_required"
    linked = client.post("/api/v1/account/register", json={"national_id": "F131313136"})
    assert linked.status_code == 200
    body = linked.get_json()
    assert body["status"] == "card_linked" and body["account"]["name"] == "林志豪"
    assert [card["expired"] for card in body["account"]["cards"]] == [False, True]  # both stay on record
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Account)) == 1
        assert {c.account_id for c in db.session.scalars(select(CardCertificate))} == {account.id}
    assert "card:linked" in _tags(app)
    # From now on the new card logs straight in.
    client.post("/api/v1/logout")
    assert card_login(client, pki, card_of(pki, "F131313136")).get_json()["status"] == "logged_in"


def test_the_expired_card_stays_on_record_but_cannot_log_in(client, pki, app):
    assert register(client, pki, "F131313136").status_code == 201
    client.post("/api/v1/logout")
    expired = card_login(client, pki, card_of(pki, "F131313136", "expired"))
    assert expired.status_code == 401 and expired.get_json()["error"] == "certificate_expired"
    assert card_login(client, pki, card_of(pki, "F131313136")).get_json()["status"] == "logged_in"


def test_linking_refuses_a_card_whose_name_differs_from_the_account(client, pki, app):
    with app.app_context():
        make_account(pki, card_of(pki, "A123456789"), name="別人", link_card=False)
    card_login(client, pki, card_of(pki, "A123456789"))
    response = client.post("/api/v1/account/register", json={"national_id": "A123456789"})
    assert response.status_code == 409 and response.get_json()["error"] == "name_mismatch"
    assert "account:registration:failure" in _tags(app)


def test_two_racing_registrations_of_one_card_login_make_one_account(app, pki, client):
    card_login(client, pki, card_of(pki, "A123456789"))
    token = client.csrf()
    results = []

    def attempt():
        results.append(
            client.raw.post("/api/v1/account/register", json=REGISTRATION, headers={"X-CSRF-Token": token}).status_code
        )

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results).count(201) == 1, results
    assert all(status in (201, 401, 409) for status in results), results
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Account)) == 1


def test_the_mailed_code_confirms_the_email(client, pki, app, mailbox):
    register(client, pki)
    response = client.post("/api/v1/account/verify-email", json={"code": _code(mailbox)})
    assert response.status_code == 200 and response.get_json() == {"status": "verified"}
    assert client.get("/api/v1/account").get_json()["email_verified"] is True
    assert "account:email:confirmed" in _tags(app)


def test_five_wrong_codes_lock_confirmation_for_a_while(client, pki, app, mailbox):
    register(client, pki)
    code = _code(mailbox)
    wrong = "000000" if code != "000000" else "111111"
    answers = [client.post("/api/v1/account/verify-email", json={"code": wrong}) for _ in range(5)]
    assert [a.status_code for a in answers] == [400, 400, 400, 400, 429]
    assert [a.get_json().get("attempts_left") for a in answers[:4]] == [4, 3, 2, 1]
    assert answers[-1].get_json()["error"] == "too_many_attempts"
    # While locked even the right code is refused…
    locked = client.post("/api/v1/account/verify-email", json={"code": code})
    assert locked.status_code == 429 and locked.get_json()["retry_after"] > 0
    assert client.post("/api/v1/account/email-code").status_code == 429
    # …and once the lock has passed, the right code works.
    with app.app_context():
        db.session.execute(update(EmailVerification).values(locked_until=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert client.post("/api/v1/account/verify-email", json={"code": code}).status_code == 200
    assert "account:email:locked" in _tags(app)


def test_an_expired_code_is_refused(client, pki, app, mailbox):
    register(client, pki)
    with app.app_context():
        db.session.execute(update(EmailVerification).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    response = client.post("/api/v1/account/verify-email", json={"code": _code(mailbox)})
    assert response.status_code == 400 and response.get_json()["error"] == "code_expired"


def test_a_new_code_can_be_sent_but_not_in_a_burst(client, pki, app, mailbox):
    register(client, pki)
    assert client.post("/api/v1/account/email-code").status_code == 429  # just sent one
    with app.app_context():
        db.session.execute(update(EmailVerification).values(created_at=utcnow() - timedelta(minutes=2)))
        db.session.commit()
    response = client.post("/api/v1/account/email-code")
    assert response.status_code == 200 and response.get_json()["email_sent"] is True
    assert len(mailbox.messages) == 2
    assert client.post("/api/v1/account/verify-email", json={"code": _code(mailbox)}).status_code == 200


def test_registration_survives_a_mail_server_that_is_down(app_config, pki, mailbox):
    from app import create_app
    from app.extensions import db as database
    from tests.support import ApiClient

    app_config.SMTP_PORT = 9  # nothing listens there
    app = create_app(app_config)
    with app.app_context():
        database.create_all()
    try:
        client = ApiClient(app.test_client())
        response = register(client, pki)
        assert response.status_code == 201 and response.get_json()["email_sent"] is False
        with app.app_context():
            assert database.session.scalar(select(func.count()).select_from(Account)) == 1
            sent = database.session.scalar(select(AuditEvent).where(AuditEvent.tag == "account:email:code_sent"))
            assert sent.details["delivered"] is False
    finally:
        with app.app_context():
            database.drop_all()


class RefusingMailServer:
    """An SMTP server that takes no recipient (aiosmtpd's RCPT hook answers 550)."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        return "550 5.1.1 mailbox unavailable"


@pytest.fixture
def refusing_mail_server(app):
    from aiosmtpd.controller import Controller

    controller = Controller(RefusingMailServer(), hostname="127.0.0.1", port=free_port())
    controller.start()
    app.config["SMTP_PORT"] = controller.port
    yield controller
    controller.stop()


@pytest.mark.parametrize("to_console", [False, True], ids=["smtp", "also-to-console"])
def test_a_code_the_mail_server_refused_is_not_reported_as_sent(client, pki, app, refusing_mail_server, to_console,
                                                               capsys):
    # Development also prints mail to the console; the person was not mailed all the same.
    app.config["MAIL_TO_CONSOLE"] = to_console
    response = register(client, pki)
    assert response.status_code == 201 and response.get_json()["email_sent"] is False
    assert response.get_json()["account"]["email_code"]["sent"] is False
    assert client.get("/api/v1/account").get_json()["email_code"]["sent"] is False
    with app.app_context():
        [sent] = db.session.scalars(select(AuditEvent).where(AuditEvent.tag == "account:email:code_sent"))
        assert sent.details["delivered"] is False and "mailbox unavailable" in sent.details["error"]
        verification = db.session.scalar(select(EmailVerification))
        assert verification.sent_at is None and "mailbox unavailable" in verification.send_error
    assert ("----- mail to wang@example.com" in capsys.readouterr().out) is to_console

    # The resend (one a minute, as before) tells the truth too.
    with app.app_context():
        db.session.execute(update(EmailVerification).values(created_at=utcnow() - timedelta(minutes=2)))
        db.session.execute(update(Account).values(email_code_resent_at=None))
        db.session.commit()
    again = client.post("/api/v1/account/email-code")
    assert again.status_code == 200 and again.get_json() == {"status": "not_sent", "email_sent": False}
    assert client.post("/api/v1/account/email-code").status_code == 429


def test_a_resend_the_mail_server_refused_leaves_the_code_already_mailed_working(client, pki, app, mailbox):
    from aiosmtpd.controller import Controller

    register(client, pki)
    first = _code(mailbox)
    with app.app_context():
        db.session.execute(update(EmailVerification).values(created_at=utcnow() - timedelta(minutes=2)))
        db.session.execute(update(Account).values(email_code_resent_at=None))
        db.session.commit()
    refusing = Controller(RefusingMailServer(), hostname="127.0.0.1", port=free_port())
    refusing.start()
    app.config["SMTP_PORT"] = refusing.port
    try:
        assert client.post("/api/v1/account/email-code").get_json()["email_sent"] is False
    finally:
        refusing.stop()
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(EmailVerification)) == 2
    verified = client.post("/api/v1/account/verify-email", json={"code": first})
    assert verified.status_code == 200 and verified.get_json() == {"status": "verified"}


def test_the_account_page_says_a_code_was_sent_only_when_it_was(client, pki, app, mailbox):
    register(client, pki)
    assert client.get("/api/v1/account").get_json()["email_code"]["sent"] is True
    with app.app_context():
        [verification] = db.session.scalars(select(EmailVerification))
        assert verification.sent_at is not None and verification.send_error is None
    page = client.get("/account").get_data(as_text=True)
    # Both sentences are on the page; account.js shows the one the API's email_code.sent picks.
    assert 'id="email-code-sent"' in page and 'id="email-code-not-sent"' in page
    client.post("/api/v1/account/verify-email", json={"code": _code(mailbox)})
    assert client.get("/api/v1/account").get_json()["email_code"] is None


def test_the_account_api_needs_a_login(client):
    response = client.get("/api/v1/account")
    assert response.status_code == 401 and response.get_json()["error"] == "login_required"


def test_registration_names_every_wrong_field_at_once(client, pki, app):
    wrong = register(client, pki, national_id="A123456789", email="not-an-address", phone="12")
    assert wrong.status_code == 400
    body = wrong.get_json()
    assert body["error"] == "invalid_email" and [other["error"] for other in body["also"]] == ["invalid_phone"]
    assert all(other["message"] for other in body["also"])
    bad_id = client.post("/api/v1/account/register", json={"national_id": "A12", "email": "x", "phone": "1"})
    assert [bad_id.get_json()["error"], *[o["error"] for o in bad_id.get_json()["also"]]] == [
        "invalid_national_id", "invalid_email", "invalid_phone"]
    missing = client.post("/api/v1/account/register", json={"national_id": "A123456789", "email": "", "phone": ""})
    assert missing.status_code == 400 and missing.get_json()["error"] == "invalid_email"
    assert [other["error"] for other in missing.get_json()["also"]] == ["invalid_phone"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Account)) == 0  # nothing registered, nothing spent
    one = client.post("/api/v1/account/register", json={"national_id": "A123456789", "email": "wang@example.com",
                                                        "phone": "12"})
    assert one.get_json()["error"] == "invalid_phone" and "also" not in one.get_json()
