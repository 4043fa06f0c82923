"""A national ID is claimed only with the identity check's yes; its refusals tell nothing about accounts."""

import base64
import threading

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import func, select

from app.extensions import db
from app.models import Account, AuditEvent, CardCertificate, CardLogin
from iccard.certificate import CitizenCertificate
from iccard.demo_pki import identity_check_token
from tests.factories import make_account
from tests.support import REGISTRATION, ApiClient, card_login, card_of

# 黃俊傑's card, like some real ones, does not carry the last four digits of his ID (C123456781).
HOLDER_ID = "C123456781"


@pytest.fixture
def bare_card(pki):
    """A valid demo card whose certificate lacks the last-four-digits attribute (2.16.886.1.100.2.51), for
    one test: the demo PKI is the session's, and other tests count its cards."""
    manifest_file = pki.directory / "manifest.json"
    original = manifest_file.read_text()
    card = pki.issue_card("黃俊傑", HOLDER_ID, "TEST000000000101", id_last4=False)
    assert CitizenCertificate.from_certificate(pki.card_certificate(card)).id_last4 is None
    yield card
    manifest_file.write_text(original)
    pki.__dict__.pop("manifest", None)
    for leftover in (pki.directory / "cards").glob("TEST000000000101.*"):
        leftover.unlink()


def _pending_login(client, pki, card):
    response = card_login(client, pki, card)
    assert response.get_json()["status"] == "registration_required", response.get_json()


def _claim(client, national_id, **fields):
    return client.post("/api/v1/account/register", json={**REGISTRATION, "national_id": national_id, **fields})


def _accounts(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Account))


def _events(app, tag):
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent).where(AuditEvent.tag == tag).order_by(AuditEvent.id)))


def _identity_checks_asked(revocation_server) -> int:
    return sum(path.endswith("/identity-check") for path in revocation_server.requests)


def test_a_card_without_the_last_four_cannot_register_someone_elses_id(client, pki, app, bare_card):
    _pending_login(client, pki, bare_card)
    refused = _claim(client, "A123456789")  # 王小明's ID
    assert refused.status_code == 400 and refused.get_json()["error"] == "national_id_mismatch"
    assert _accounts(app) == 0
    [failure] = _events(app, "account:registration:failure")
    assert failure.details["reason"] == "identity_not_confirmed" and failure.account_id is None

    # 王小明's own card still registers his ID, and logs in with it afterwards.
    victim = ApiClient(app.test_client())
    _pending_login(victim, pki, card_of(pki, "A123456789"))
    assert _claim(victim, "A123456789").status_code == 201
    victim.post("/api/v1/logout")
    assert card_login(victim, pki, card_of(pki, "A123456789")).get_json()["status"] == "logged_in"


def test_a_card_without_the_last_four_registers_its_holders_id_and_logs_in_only_there(client, pki, app, bare_card):
    _pending_login(client, pki, bare_card)
    registered = _claim(client, HOLDER_ID, email="huang@example.com")
    assert registered.status_code == 201 and registered.get_json()["account"]["name"] == "黃俊傑"
    client.post("/api/v1/logout")
    logged_in = card_login(client, pki, bare_card).get_json()
    assert logged_in["status"] == "logged_in" and logged_in["account"]["national_id_masked"] == "C12****781"


def test_a_refusal_is_byte_identical_whether_or_not_the_id_has_an_account(
    client, pki, app, bare_card, revocation_server
):
    with app.app_context():
        registered = make_account(pki, card_of(pki, "B223456782"))  # 陳美玲 has an account
        registered_id, registered_name = registered.id, registered.name
    answers = []
    for national_id in ("B223456782", "D223456784"):  # registered, and not
        _pending_login(client, pki, bare_card)  # a fresh card login each time, so the tries left are equal
        answers.append(_claim(client, national_id, email="", phone=""))
    first, second = answers
    assert first.status_code == second.status_code == 400
    assert first.data == second.data
    assert first.get_json() == {
        "error": "national_id_mismatch",
        "message": first.get_json()["message"],
        "attempts_left": 4,
    }
    skip = {"Set-Cookie", "Date"}
    assert [h for h in first.headers if h[0] not in skip] == [h for h in second.headers if h[0] not in skip]
    # …and the trail records both alike, tied to no account; 陳美玲's account is untouched.
    failures = _events(app, "account:registration:failure")
    assert [(f.account_id, f.details["reason"]) for f in failures] == [(None, "identity_not_confirmed")] * 2
    with app.app_context():
        account = db.session.get(Account, registered_id)
        assert account.name == registered_name and len(account.cards) == 1
    assert _identity_checks_asked(revocation_server) == 2


def test_the_last_four_filter_refuses_before_the_identity_check_is_asked(client, pki, app, revocation_server):
    _pending_login(client, pki, card_of(pki, "A123456789"))
    refused = _claim(client, "B223456782")
    assert refused.status_code == 400 and refused.get_json()["error"] == "national_id_mismatch"
    assert _identity_checks_asked(revocation_server) == 0
    assert _events(app, "account:registration:failure")[-1].details["reason"] == "id_last4_mismatch"


def test_an_unavailable_identity_check_is_a_503_and_the_card_login_can_try_again(client, pki, app, revocation_server):
    _pending_login(client, pki, card_of(pki, "A123456789"))
    revocation_server.down.add("identity")
    for _ in range(7):  # more than the tries a login has: none of them is counted
        unavailable = _claim(client, "A123456789")
        assert unavailable.status_code == 503 and unavailable.get_json()["error"] == "identity_check_unavailable"
    assert _accounts(app) == 0
    with app.app_context():
        assert db.session.scalar(select(CardLogin.identity_checks)) == 0
    assert _events(app, "account:registration:failure")[-1].details["reason"] == "identity_check_unavailable"
    revocation_server.down.clear()
    assert _claim(client, "A123456789").status_code == 201


def test_an_identity_check_with_the_wrong_credentials_is_unavailable_not_denied(client, pki, app):
    from iccard.identity_check import IdentityCheckClient

    accounts = app.extensions["mocert"].accounts  # its client is built at startup, from the settings
    good = accounts.identity_check
    accounts.identity_check = IdentityCheckClient(good.url, token="not-the-demo-token", timeout=good.timeout)
    _pending_login(client, pki, card_of(pki, "A123456789"))
    assert _claim(client, "A123456789").status_code == 503
    accounts.identity_check = good
    assert _claim(client, "A123456789").status_code == 201


def test_bad_input_asks_no_identity_check_and_counts_no_try(client, pki, app, revocation_server):
    _pending_login(client, pki, card_of(pki, "A123456789"))
    for fields in ({"national_id": "A123456788"}, {"email": "not-an-address"}, {"phone": "02-2345-6789"}):
        assert client.post("/api/v1/account/register", json={**REGISTRATION, **fields}).status_code == 400
    assert _identity_checks_asked(revocation_server) == 0
    with app.app_context():
        assert db.session.scalar(select(CardLogin.identity_checks)) == 0


def test_a_confirmed_id_is_not_asked_again_when_the_form_is_corrected(client, pki, app, revocation_server):
    _pending_login(client, pki, card_of(pki, "A123456789"))
    missing_email = _claim(client, "A123456789", email="")
    assert missing_email.status_code == 400 and missing_email.get_json()["error"] == "invalid_email"
    assert _claim(client, "A123456789").status_code == 201
    assert _identity_checks_asked(revocation_server) == 1
    assert [e.tag for e in _events(app, "account:identity:confirmed")] == ["account:identity:confirmed"]


def test_each_id_tried_counts_against_the_card_login(client, pki, app, bare_card):
    _pending_login(client, pki, bare_card)
    wrong = ["A123456789", "B223456782", "D223456784", "E120000001", "H123456786"]
    answers = [_claim(client, national_id) for national_id in wrong]
    assert [a.status_code for a in answers] == [400] * 5
    assert [a.get_json()["attempts_left"] for a in answers] == [4, 3, 2, 1, 0]
    # Out of tries: even the holder's own ID waits for a new card login.
    exhausted = _claim(client, HOLDER_ID)
    assert exhausted.status_code == 429 and exhausted.get_json()["error"] == "too_many_identity_checks"
    assert _accounts(app) == 0
    _pending_login(client, pki, bare_card)
    assert _claim(client, HOLDER_ID).status_code == 201


def test_parallel_tries_on_one_card_login_ask_the_identity_check_at_most_the_allowed_number(
    client, pki, app, bare_card, revocation_server
):
    _pending_login(client, pki, bare_card)
    token = client.csrf()
    statuses = []

    def attempt():
        response = client.raw.post(
            "/api/v1/account/register",
            json={**REGISTRATION, "national_id": "A123456789"},
            headers={"X-CSRF-Token": token},
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=attempt) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [400] * 5 + [429] * 7, statuses
    assert _identity_checks_asked(revocation_server) == 5
    with app.app_context():
        assert db.session.scalar(select(CardLogin.identity_checks)) == 5


def test_a_proven_claim_that_conflicts_takes_nothing_and_tells_the_owner(client, pki, app, mailbox):
    # 林志豪's account bears another name than his new card (a name change, or a mistake): the service desk decides.
    old_card, new_card = card_of(pki, "F131313136", "expired"), card_of(pki, "F131313136")
    with app.app_context():
        account = make_account(pki, old_card, name="林志浩")
        account_id = account.id
    _pending_login(client, pki, new_card)
    refused = client.post("/api/v1/account/register", json={"national_id": "F131313136"})
    assert refused.status_code == 409 and refused.get_json()["error"] == "name_mismatch"
    assert "服務台" in refused.get_json()["message"]  # the service desk

    old_fingerprint = CitizenCertificate.from_certificate(pki.card_certificate(old_card)).fingerprint
    new_fingerprint = CitizenCertificate.from_certificate(pki.card_certificate(new_card)).fingerprint
    with app.app_context():
        account = db.session.get(Account, account_id)
        assert account.name == "林志浩" and [c.fingerprint for c in account.cards] == [old_fingerprint]
        new = db.session.scalar(select(CardCertificate).where(CardCertificate.fingerprint == new_fingerprint))
        assert new.account_id is None
    [conflict] = [e for e in _events(app, "account:registration:failure") if e.details["reason"] == "claim_conflict"]
    assert conflict.account_id == account_id
    assert conflict.details["card"] == new_fingerprint and conflict.details["account_cards"] == [old_fingerprint]
    [notice] = _events(app, "account:conflict:notice_sent")
    assert notice.details["delivered"] is True
    [mail] = mailbox.messages
    assert mail["To"] == "person@example.com" and "F13****136" in mail.get_payload(decode=True).decode()

    # The card login is spent: sending the form again neither links the card nor mails the owner again.
    again = client.post("/api/v1/account/register", json={"national_id": "F131313136"})
    assert again.status_code == 401 and len(mailbox.messages) == 1
    assert client.get("/api/v1/account").status_code == 401


def test_a_proven_card_is_not_linked_to_a_locked_account(client, pki, app):
    from app.models import utcnow

    with app.app_context():
        account = make_account(pki, card_of(pki, "F131313136", "expired"))
        account.locked_at = utcnow()
        db.session.commit()
    _pending_login(client, pki, card_of(pki, "F131313136"))
    refused = client.post("/api/v1/account/register", json={"national_id": "F131313136"})
    assert refused.status_code == 403 and refused.get_json()["error"] == "account_locked"
    with app.app_context():
        linked = select(func.count()).select_from(CardCertificate).where(CardCertificate.account_id.is_not(None))
        assert db.session.scalar(linked) == 1


# -- the demo identity check itself ---------------------------------------------------------------------------


def _ask_demo(client, pki, card, national_id, token=None):
    der = pki.card_certificate(card).public_bytes(Encoding.DER)
    return client.raw.post(
        "/pki/demo/identity-check",
        json={"certificate": base64.b64encode(der).decode(), "national_id": national_id},
        headers={"Authorization": f"Bearer {token or identity_check_token(pki.directory)}"},
    )


def test_the_demo_identity_check_confirms_only_a_cards_own_id(client, pki, bare_card):
    assert _ask_demo(client, pki, bare_card, HOLDER_ID).get_json() == {"result": "confirmed"}
    assert _ask_demo(client, pki, bare_card, "A123456789").get_json() == {"result": "denied"}
    assert _ask_demo(client, pki, card_of(pki, "A123456789"), "A123456789").get_json() == {"result": "confirmed"}


def test_the_demo_identity_check_wants_its_credential_and_a_well_formed_question(client, pki):
    assert _ask_demo(client, pki, card_of(pki, "A123456789"), "A123456789", token="guess").status_code == 401
    bearer = {"Authorization": f"Bearer {identity_check_token(pki.directory)}"}
    for body in ({}, {"certificate": "%%%", "national_id": "A123456789"}, {"certificate": 1, "national_id": []}):
        assert client.raw.post("/pki/demo/identity-check", json=body, headers=bearer).status_code == 400


def test_the_demo_identity_check_refuses_text_no_database_could_store_and_json_without_end(client, pki):
    """Read as every JSON body is (app/input_checks.json_value): a 400, never a 500."""
    unstorable = _ask_demo(client, pki, card_of(pki, "A123456789"), "A12345678\ud800")
    assert unstorable.status_code == 400 and unstorable.get_json() == {"error": "bad_request"}
    bearer = {"Authorization": f"Bearer {identity_check_token(pki.directory)}", "Content-Type": "application/json"}
    deep = client.raw.post("/pki/demo/identity-check", data="[" * 30_000 + "]" * 30_000, headers=bearer)
    assert deep.status_code == 400
