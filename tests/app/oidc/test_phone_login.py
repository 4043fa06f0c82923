"""Logging in at /authorize with a bound phone (the software phone) or a passkey on the same device."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select, update

from app.extensions import db
from app.models import AuditEvent, AuthSession, Device, LoginRequest, utcnow
from webauthn.phone import NotAllowedError, PhoneBrowser, PhoneClient, ServerError, SoftwareAuthenticator

from .support import Computer, query, verify_id_token
from .support import rp_authorization as _authorize_url


def _events(app, tag):
    with app.app_context():
        return [e.details for e in db.session.scalars(select(AuditEvent).where(AuditEvent.tag == tag))]


def test_a_phone_logs_in_at_authorize_and_the_id_token_says_mobile(app, issuer, discovery, rp_client, phone, computer):
    rp, url, state, verifier, nonce = _authorize_url(discovery, rp_client)
    started = computer.start(url)
    assert started["client_name"] == "Example RP"
    assert re.fullmatch(r"\d\d[A-Z]", started["match_code"])
    assert started["url"].startswith(f"{issuer}/m/login/") and "<svg" in started["qr_svg"]
    assert computer.status(started["login_request_id"]).json() == {"status": "pending"}

    # The phone's page and API show the same site and code as the computer.
    token = started["url"].rsplit("/", 1)[1]
    phone_page = phone.session.get(started["url"], timeout=10)
    assert phone_page.status_code == 200 and 'id="phone-match-code"' in phone_page.text
    request = phone.login_request(started["url"])
    assert (request.client_name, request.match_code) == ("Example RP", started["match_code"])
    assert "allowCredentials" not in request.public_key  # discoverable: the phone is not logged in
    assert request.public_key["userVerification"] == "required"
    assert computer.status(started["login_request_id"]).json() == {"status": "scanned"}

    assert phone.approve(request) == {"status": "approved"}
    assert computer.status(started["login_request_id"]).json() == {"status": "approved"}
    done = computer.complete(started["login_request_id"])
    assert done.status_code == 200, done.text
    callback = computer.back_to_site(done.json()["redirect"])
    assert query(callback)["state"] == state
    tokens = rp.fetch_token(discovery["token_endpoint"], authorization_response=callback, code_verifier=verifier)
    claims = verify_id_token(discovery, tokens["id_token"], rp_client["client_id"], nonce)
    assert claims["acr"] == "urn:mocert:acr:mobile" and claims["amr"] == ["hwk", "user"]
    assert claims["name"] == "王小明"

    with app.app_context():
        session = db.session.scalars(select(AuthSession).where(AuthSession.method == "mobile")).one()
        device = db.session.scalars(select(Device)).one()
        assert session.device_id == device.id and device.last_used_at is not None
        row = db.session.scalars(select(LoginRequest)).one()
        assert row.token_hash != token and token not in row.token_hash  # stored hashed
    success = _events(app, "mobile:login:success")
    assert success and success[0]["client"] == rp_client["client_id"] and success[0]["device"] == device.id
    issued = _events(app, "oidc:login:success")[0]
    assert {"client": rp_client["client_id"], "method": "mobile"}.items() <= issued.items()
    # Completing twice is refused.
    assert computer.complete(started["login_request_id"]).status_code in (404, 409)


def test_a_token_approved_twice_is_refused(discovery, rp_client, phone, computer):
    _, url, *_ = _authorize_url(discovery, rp_client)
    started = computer.start(url)
    request = phone.login_request(started["url"])
    phone.approve(request)
    with pytest.raises(ServerError) as again:
        phone.approve(request)
    assert again.value.status == 409
    with pytest.raises(ServerError) as options:
        phone.login_request(started["url"])
    assert options.value.status == 409


def test_an_expired_login_token_is_410(app, discovery, rp_client, phone, computer):
    _, url, *_ = _authorize_url(discovery, rp_client)
    started = computer.start(url)
    request = phone.login_request(started["url"])
    with app.app_context():
        db.session.execute(update(LoginRequest).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    with pytest.raises(ServerError) as expired:
        phone.approve(request)
    assert expired.value.status == 410 and expired.value.code == "login_request_expired"
    assert computer.status(started["login_request_id"]).json() == {"status": "expired"}


def test_an_unknown_token_is_404(phone, issuer):
    with pytest.raises(ServerError) as unknown:
        phone.login_request(f"{issuer}/m/login/{'x' * 43}")
    assert unknown.value.status == 404


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"status": "revoked"}, "device_revoked"),
        ({"status": "suspended"}, "device_suspended"),
        (None, "device_expired"),
    ],
)
def test_revoked_suspended_or_expired_devices_are_refused_with_the_reason(
    app, discovery, rp_client, phone, computer, change, reason
):
    from app.models import MobileCertificate

    with app.app_context():
        if change:
            db.session.execute(update(Device).values(**change))
        else:
            db.session.execute(update(MobileCertificate).values(not_after=utcnow() - timedelta(days=1)))
        db.session.commit()
    _, url, *_ = _authorize_url(discovery, rp_client)
    started = computer.start(url)
    with pytest.raises(ServerError) as refused:
        phone.login(started["url"])
    assert refused.value.status == 403 and refused.value.code == reason
    assert refused.value.args[0]  # a message the phone shows
    assert computer.status(started["login_request_id"]).json() == {"status": "failed", "reason": reason}
    assert computer.complete(started["login_request_id"]).status_code == 409
    failures = _events(app, "mobile:login:failure")
    assert failures[0]["reason"] == reason and failures[0]["client"] == rp_client["client_id"]


def test_a_credential_unknown_to_mocert_is_refused(discovery, rp_client, phone, computer, app):
    _, url, *_ = _authorize_url(discovery, rp_client)
    started = computer.start(url)
    request = phone.login_request(started["url"])
    with pytest.raises(NotAllowedError):  # a phone with no MoCert key for this site: its browser says so
        PhoneClient(PhoneBrowser(SoftwareAuthenticator(None))).approve(request)
    with app.app_context():  # the key MoCert knew is forgotten (say, the device row was removed)
        db.session.execute(update(Device).values(credential_id=b"another credential"))
        db.session.commit()
    with pytest.raises(ServerError) as refused:
        phone.approve(request)
    assert refused.value.status == 401 and refused.value.code == "credential_unknown"
    assert computer.status(started["login_request_id"]).json() == {"status": "failed", "reason": "credential_unknown"}


def test_another_browser_session_cannot_follow_or_complete_the_login(
    issuer, pki, discovery, rp_client, phone, computer
):
    _, url, *_ = _authorize_url(discovery, rp_client)
    started = computer.start(url)
    phone.login(started["url"])
    other = Computer(issuer, pki)
    other.get(issuer + "/")  # a session of its own
    assert other.status(started["login_request_id"]).status_code == 404
    assert other.complete(started["login_request_id"]).status_code == 404
    # The browser that asked still can.
    assert computer.complete(started["login_request_id"]).status_code == 200


def test_the_login_page_offers_the_card_only_where_the_client_allows_it(
    issuer, pki, person, discovery, add_client, computer
):
    allowed = add_client()
    _, url, *_ = _authorize_url(discovery, allowed)
    _, page = computer.login_page(url)
    assert "Example RP" in page.text and 'id="login-card"' in page.text and "/login?next=" in page.text
    phone_only = add_client("--name", "Phone-only RP", "--redirect-uri", "https://rp.example/cb", "--no-card-login")
    _, url, *_ = _authorize_url(discovery, phone_only)
    _, page = computer.login_page(url)
    assert "Phone-only RP" in page.text and 'id="login-card"' not in page.text
    # A card session does not count for it: the person is sent to log in with the phone.
    computer.card_login()
    assert urlsplit(computer.get(url).headers["Location"]).path == "/authorize/login"


def test_a_passkey_on_the_same_device_logs_in(app, issuer, discovery, rp_client, phone, computer):
    rp, url, state, verifier, nonce = _authorize_url(discovery, rp_client)
    started = computer.start(url)
    base = f"/api/v1/login-requests/{started['login_request_id']}/passkey"
    options = computer.post(base + "/options", {})
    assert options.status_code == 200 and "allowCredentials" not in options.json()["publicKey"]
    # The same authenticator, on the computer this time (a passkey on this device).
    credential = phone.browser.get(options.json()["publicKey"], origin=issuer)
    done = computer.post(base + "/complete", {"credential": credential})
    assert done.status_code == 200, done.text
    callback = computer.back_to_site(done.json()["redirect"])
    tokens = rp.fetch_token(discovery["token_endpoint"], authorization_response=callback, code_verifier=verifier)
    claims = verify_id_token(discovery, tokens["id_token"], rp_client["client_id"], nonce)
    assert claims["amr"] == ["hwk", "user"]
    assert computer.post(base + "/complete", {"credential": credential}).status_code in (404, 409)


def test_another_browser_cannot_use_the_passkey_endpoints(issuer, pki, discovery, rp_client, computer):
    _, url, *_ = _authorize_url(discovery, rp_client)
    started = computer.start(url)
    other = Computer(issuer, pki)
    assert other.post(f"/api/v1/login-requests/{started['login_request_id']}/passkey/options", {}).status_code == 404


@pytest.mark.parametrize("token_binding", [{"status": "bogus"}, ["present"]])
def test_a_phone_answer_with_an_invalid_token_binding_is_refused(
    app, discovery, rp_client, phone, computer, monkeypatch, token_binding
):
    """WebAuthn L2 §7.2 step 14. The login token is consumed before its answer is checked (the challenge is
    single use), so the refusal fails this login request; the computer shows why."""
    from tests.support import client_data_with as _client_data_with

    _, url, *_ = _authorize_url(discovery, rp_client)
    started = computer.start(url)
    request = phone.login_request(started["url"])
    _client_data_with(monkeypatch, tokenBinding=token_binding)
    with pytest.raises(ServerError) as refused:
        phone.approve(request)
    assert refused.value.status == 401 and refused.value.code == "token_binding_invalid"
    assert computer.status(started["login_request_id"]).json() == {"status": "failed", "reason": "token_binding_invalid"}
    assert _events(app, "mobile:login:failure")[0]["reason"] == "token_binding_invalid"


def test_a_phone_answer_whose_token_binding_is_supported_logs_in(discovery, rp_client, phone, computer, monkeypatch):
    from tests.support import client_data_with as _client_data_with

    _, url, *_ = _authorize_url(discovery, rp_client)
    started = computer.start(url)
    _client_data_with(monkeypatch, tokenBinding={"status": "supported"})
    assert phone.login(started["url"]) == {"status": "approved"}


def test_a_phone_answer_naming_another_user_is_refused_and_audited(app, discovery, rp_client, phone, computer):
    """WebAuthn §7.2 step 6: the device is found by its credential id; a userHandle (not signed by the
    authenticator) that names anyone but the user the device was bound for is refused."""
    import base64

    _, url, *_ = _authorize_url(discovery, rp_client)
    started = computer.start(url)
    request = phone.login_request(started["url"])
    credential = phone.browser.get(request.public_key, origin=request.link.origin)
    assert credential["response"]["userHandle"]  # the software phone returns the handle it was bound with
    credential["response"]["userHandle"] = base64.urlsafe_b64encode(b"someone else's id").rstrip(b"=").decode()
    with pytest.raises(ServerError) as refused:
        phone._post(request.link.api_url("complete"), {"credential": credential}, expected_status=200)
    assert refused.value.status == 401 and refused.value.code == "user_handle_mismatch"
    assert computer.status(started["login_request_id"]).json() == {"status": "failed", "reason": "user_handle_mismatch"}
    failure = _events(app, "mobile:login:failure")[0]
    assert failure["reason"] == "user_handle_mismatch" and failure["device"] is not None


def _passkey_login(issuer, computer, phone, url) -> str:
    """A passkey login on this device with the options the login request came with; the redirect it gives."""
    started = computer.start(url)
    credential = phone.browser.get(started["passkey"]["publicKey"], origin=issuer)
    done = computer.post(f"/api/v1/login-requests/{started['login_request_id']}/passkey/complete",
                         {"credential": credential})
    assert done.status_code == 200, done.text
    return done.json()["redirect"]


def test_a_returning_person_goes_from_the_passkey_straight_back_to_the_site_with_a_code(
    app, issuer, pki, discovery, rp_client, phone, computer
):
    _, url, *_ = _authorize_url(discovery, rp_client)
    first = _passkey_login(issuer, computer, phone, url)
    assert first.startswith("/authorize?")  # the first time, the consent page
    computer.authorize(issuer + first)
    rp, url, state, verifier, nonce = _authorize_url(discovery, rp_client)
    redirect = _passkey_login(issuer, Computer(issuer, pki), phone, url)
    assert redirect.startswith("https://rp.example/cb?") and query(redirect)["state"] == state
    tokens = rp.fetch_token(discovery["token_endpoint"], authorization_response=redirect, code_verifier=verifier)
    claims = verify_id_token(discovery, tokens["id_token"], rp_client["client_id"], nonce)
    assert claims["amr"] == ["hwk", "user"] and claims["name"] == "王小明"
    issued = _events(app, "oidc:login:success")
    assert len(issued) == 2 and issued[-1]["method"] == "mobile"


@pytest.mark.parametrize(
    "before, now",
    [({}, {"prompt": "consent"}), ({"scope": "openid"}, {})],
    ids=["prompt=consent", "more scopes than granted"],
)
def test_a_passkey_login_that_must_ask_the_person_again_goes_back_to_authorize(
    issuer, pki, discovery, rp_client, phone, computer, before, now
):
    _, url, *_ = _authorize_url(discovery, rp_client, **before)
    computer.authorize(issuer + _passkey_login(issuer, computer, phone, url))  # consented once
    _, url, *_ = _authorize_url(discovery, rp_client, **now)
    redirect = _passkey_login(issuer, Computer(issuer, pki), phone, url)
    assert redirect.startswith("/authorize?") and "login_after=" in redirect


def test_a_phone_approving_for_a_returning_person_sends_the_computer_straight_back_with_a_code(
    issuer, pki, discovery, rp_client, phone, computer
):
    _, url, *_ = _authorize_url(discovery, rp_client)
    computer.authorize(issuer + _passkey_login(issuer, computer, phone, url))
    _, url, state, *_ = _authorize_url(discovery, rp_client)
    other = Computer(issuer, pki)
    started = other.start(url)
    phone.login(started["url"])
    done = other.complete(started["login_request_id"])
    assert done.status_code == 200 and query(done.json()["redirect"])["state"] == state
    assert "code" in query(done.json()["redirect"])


def test_a_login_request_draws_its_qr_code_only_when_asked(issuer, discovery, rp_client, computer):
    _, url, *_ = _authorize_url(discovery, rp_client)
    _, page = computer.login_page(url)
    authorize = html.unescape(re.search(r'data-authorize-query="([^"]*)"', page.text).group(1))
    plain = computer.post("/api/v1/login-requests", {"authorize": authorize}).json()
    assert "qr_svg" not in plain and plain["passkey"]["publicKey"]["challenge"]
    drawn = computer.post("/api/v1/login-requests", {"authorize": authorize, "qr": True}).json()
    assert "<svg" in drawn["qr_svg"]


def _started_passkey(issuer, computer, phone, discovery, rp_client):
    started = computer.start(_authorize_url(discovery, rp_client)[1])
    credential = phone.browser.get(started["passkey"]["publicKey"], origin=issuer)
    return started, credential, f"/api/v1/login-requests/{started['login_request_id']}/passkey/complete"


@pytest.mark.parametrize("spoil, status, reason", [
    (lambda c: c["response"].update(signature=c["response"]["signature"][:-4] + "AAAA"), 401, "bad_signature"),
    (lambda c: c.update(rawId="bm8gc3VjaCBjcmVkZW50aWFs", id="bm8gc3VjaCBjcmVkZW50aWFs"), 401, "credential_unknown"),
], ids=["forged signature", "unknown credential"])
def test_a_failed_passkey_answer_spends_the_request_and_is_audited_once(
    app, issuer, discovery, rp_client, phone, computer, spoil, status, reason
):
    started, credential, path = _started_passkey(issuer, computer, phone, discovery, rp_client)
    good = {**credential, "response": dict(credential["response"])}
    spoil(credential)
    refused = computer.post(path, {"credential": credential})
    assert (refused.status_code, refused.json()["error"]) == (status, reason)
    assert computer.status(started["login_request_id"]).json() == {"status": "failed", "reason": reason}
    assert computer.post(path, {"credential": good}).status_code == 409  # the one answer was taken
    failures = _events(app, "mobile:login:failure")
    assert [f["reason"] for f in failures] == [reason]
    assert not _events(app, "mobile:login:success")


def test_a_site_disabled_before_the_passkey_answers_spends_the_request(
    app, issuer, discovery, rp_client, phone, computer
):
    from app.services import clients

    started, credential, path = _started_passkey(issuer, computer, phone, discovery, rp_client)
    with app.app_context():
        clients.disable(clients.get(rp_client["client_id"]), actor="admin", reason="test")
    refused = computer.post(path, {"credential": credential})
    assert refused.status_code == 410 and refused.json()["error"] == "login_request_expired"
    assert computer.post(path, {"credential": credential}).status_code == 409
    assert [f["reason"] for f in _events(app, "mobile:login:failure")] == ["login_request_expired"]


# -- "not me, or a different code": declined on the phone ------------------------------------------------


def test_a_login_declined_on_the_phone_is_over_for_the_phone_and_the_computer_and_audited(
    app, discovery, rp_client, phone, computer
):
    _, url, *_ = _authorize_url(discovery, rp_client)
    started = computer.start(url)
    request = phone.login_request(started["url"])
    assert phone.decline(request) == {"status": "declined"}
    # The computer's page hears it at its next poll, without a reason code to decode: the person said no.
    assert computer.status(started["login_request_id"]).json() == {"status": "declined"}

    # The link is dead: approving, asking again for its options, declining again are refused with a code.
    with pytest.raises(ServerError) as approved:
        phone.approve(request)
    assert (approved.value.status, approved.value.code) == (409, "login_request_declined")
    assert approved.value.args[0]  # a message the phone shows
    with pytest.raises(ServerError) as reopened:
        phone.login_request(started["url"])
    assert (reopened.value.status, reopened.value.code) == (409, "login_request_declined")
    with pytest.raises(ServerError) as twice:
        phone.decline(request)
    assert (twice.value.status, twice.value.code) == (409, "login_request_declined")
    # Nor can the computer turn it into a session, by the phone's path or by a passkey of its own.
    assert computer.complete(started["login_request_id"]).json()["error"] == "login_not_approved"
    passkey = computer.post(f"/api/v1/login-requests/{started['login_request_id']}/passkey/options", {})
    assert (passkey.status_code, passkey.json()["error"]) == (409, "login_request_declined")

    with app.app_context():
        row = db.session.scalars(select(LoginRequest)).one()
        assert row.consumed_at is not None and row.approved_at is None and row.failure == "login_declined"
    declined = _events(app, "mobile:login:declined")
    assert declined == [{"login_request": started["login_request_id"], "client": rp_client["client_id"],
                         "scanned": True}]
    assert not _events(app, "mobile:login:approved") and not _events(app, "mobile:login:success")


def test_a_login_approved_first_cannot_be_declined_after(app, discovery, rp_client, phone, computer):
    _, url, *_ = _authorize_url(discovery, rp_client)
    started = computer.start(url)
    request = phone.login_request(started["url"])
    phone.approve(request)
    with pytest.raises(ServerError) as late:
        phone.decline(request)
    assert (late.value.status, late.value.code) == (409, "login_request_used")
    assert computer.status(started["login_request_id"]).json() == {"status": "approved"}
    assert not _events(app, "mobile:login:declined")


def test_an_answer_signed_before_the_decline_is_refused_after_it(app, discovery, rp_client, phone, computer):
    _, url, *_ = _authorize_url(discovery, rp_client)
    started = computer.start(url)
    request = phone.login_request(started["url"])
    credential = phone.browser.get(request.public_key, origin=request.link.origin)  # signed before the decline
    phone.decline(request)
    with pytest.raises(ServerError) as refused:
        phone._post(request.link.api_url("complete"), {"credential": credential}, expected_status=200)
    assert (refused.value.status, refused.value.code) == (409, "login_request_declined")
    assert computer.status(started["login_request_id"]).json() == {"status": "declined"}
    assert not _events(app, "mobile:login:approved")


def test_declines_and_an_approval_racing_for_one_request_take_it_once(app, discovery, rp_client, phone, computer):
    """The decline is a claim like the approval's (one conditional UPDATE): of answers racing, exactly one
    takes the request, and only the winner is audited."""
    import threading

    _, url, *_ = _authorize_url(discovery, rp_client)
    started = computer.start(url)
    request = phone.login_request(started["url"])
    credential = phone.browser.get(request.public_key, origin=request.link.origin)
    outcomes = []

    def attempt(step, body):
        try:
            outcomes.append(phone._post(request.link.api_url(step), body, expected_status=200)["status"])
        except ServerError as refused:
            outcomes.append(refused.code)

    threads = [threading.Thread(target=attempt, args=("decline", {})) for _ in range(3)]
    threads.insert(1, threading.Thread(target=attempt, args=("complete", {"credential": credential})))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    won = [o for o in outcomes if o in ("approved", "declined")]
    assert len(won) == 1 and len(outcomes) == 4
    assert set(outcomes) - set(won) <= {"login_request_used", "login_request_declined"}
    assert computer.status(started["login_request_id"]).json() == {"status": won[0]}
    assert len(_events(app, "mobile:login:declined")) == (won[0] == "declined")
    assert len(_events(app, "mobile:login:approved")) == (won[0] == "approved")


def test_an_expired_login_cannot_be_declined(app, discovery, rp_client, phone, computer):
    _, url, *_ = _authorize_url(discovery, rp_client)
    started = computer.start(url)
    request = phone.login_request(started["url"])
    with app.app_context():
        db.session.execute(update(LoginRequest).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    with pytest.raises(ServerError) as expired:
        phone.decline(request)
    assert (expired.value.status, expired.value.code) == (410, "login_request_expired")
    assert not _events(app, "mobile:login:declined")
