"""Binding phones over the API with the software phone, and the person's device management."""

import threading
from datetime import timedelta

import pytest
from cryptography import x509
from sqlalchemy import func, select, update

from app import refusals, wiring
from app.extensions import db
from app.models import AuditEvent, Binding, CardCertificate, Device, MobileCertificate, utcnow
from app.services.refusals import Refusal
from tests.factories import make_account
from tests.support import ApiClient, card_login, card_of
from tests.support import client_data_with as _client_data_with
from webauthn.phone import PhoneBrowser, SoftwareAuthenticator

ORIGIN = "http://localhost"


@pytest.fixture
def person(client, pki, app):
    """王小明, registered with a confirmed email, logged in with his card on the computer."""
    with app.app_context():
        account = make_account(pki, card_of(pki, "A123456789"))
        account.email_verified_at = utcnow()
        db.session.commit()
    assert card_login(client, pki, card_of(pki, "A123456789")).get_json()["status"] == "logged_in"
    return client


@pytest.fixture
def phone_http(app):
    """The phone's own HTTP client: no cookie, no CSRF token, nothing shared with the computer."""
    return app.test_client()


@pytest.fixture
def phone():
    return PhoneBrowser(SoftwareAuthenticator(None))


def _start(computer) -> tuple[str, str]:
    response = computer.post("/api/v1/bindings", json={})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    return body["binding_id"], body["url"].rsplit("/", 1)[1]


def _bind(phone_http, phone, token, name="我的手機", origin=ORIGIN):
    options = phone_http.post(f"/api/v1/m/bind/{token}/options", json={})
    assert options.status_code == 200, options.get_json()
    credential = phone.create(options.get_json()["publicKey"], origin=origin)
    return phone_http.post(f"/api/v1/m/bind/{token}/complete", json={"credential": credential, "device_name": name})


def _tags(app):
    with app.app_context():
        return [e.tag for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))]


def test_binding_gives_a_qr_code_of_the_phone_url(person, app):
    response = person.post("/api/v1/bindings", json={})
    body = response.get_json()
    assert body["url"].startswith("http://localhost/m/bind/") and body["expires_in"] == 300
    assert body["qr_svg"].lstrip().startswith("<?xml") or "<svg" in body["qr_svg"]
    assert person.get(f"/api/v1/bindings/{body['binding_id']}").get_json() == {"status": "pending"}


def test_a_phone_binds_and_gets_a_mobile_certificate_for_one_year(person, phone_http, phone, app):
    binding_id, token = _start(person)
    options = phone_http.post(f"/api/v1/m/bind/{token}/options", json={}).get_json()
    assert options["account"] == {"name_masked": "王○明", "national_id_masked": "A12****789"}
    public_key = options["publicKey"]
    assert public_key["rp"]["id"] == "localhost"
    assert public_key["authenticatorSelection"]["userVerification"] == "required"
    assert public_key["authenticatorSelection"]["residentKey"] == "required"
    assert public_key["authenticatorSelection"]["authenticatorAttachment"] == "platform"
    assert {p["alg"] for p in public_key["pubKeyCredParams"]} == {-7, -257, -8}
    assert person.get(f"/api/v1/bindings/{binding_id}").get_json()["status"] == "scanned"

    credential = phone.create(public_key, origin=ORIGIN)
    response = phone_http.post(
        f"/api/v1/m/bind/{token}/complete", json={"credential": credential, "device_name": "  我的   手機 "}
    )
    assert response.status_code == 201, response.get_json()
    device = response.get_json()["device"]
    assert device["name"] == "我的 手機" and device["status"] == "active"

    status = person.get(f"/api/v1/bindings/{binding_id}").get_json()
    assert status["status"] == "completed" and status["device"]["id"] == device["id"]
    with app.app_context():
        stored = db.session.get(Device, device["id"])
        assert stored.attestation_format == "packed" and stored.aaguid == "20d2b06a-e7cc-4c4d-9412-da3919f8c6fe"
        assert "internal" in stored.transports and "hybrid" in stored.transports
        certificate = x509.load_der_x509_certificate(stored.certificate.der)
        assert certificate.not_valid_before_utc == stored.bound_at
        assert certificate.not_valid_after_utc.year == certificate.not_valid_before_utc.year + 1
        assert "A123456789" not in certificate.subject.rfc4514_string()
    assert "device:bound" in _tags(app) and "device:binding:scanned" in _tags(app)

    pem = person.get(f"/api/v1/devices/{device['id']}/certificate")
    assert pem.status_code == 200 and pem.data.startswith(b"-----BEGIN CERTIFICATE-----")
    assert x509.load_pem_x509_certificate(pem.data).serial_number == certificate.serial_number
    account = person.get("/api/v1/account").get_json()
    assert [d["id"] for d in account["devices"]] == [device["id"]]


def test_a_phone_without_user_verification_is_refused(person, phone_http, app):
    _, token = _start(person)
    response = _bind(phone_http, PhoneBrowser(SoftwareAuthenticator(None, user_verified=False)), token)
    assert response.status_code == 400 and response.get_json()["error"] == "user_not_verified"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Device)) == 0
    assert "device:binding:failure" in _tags(app)


def test_a_token_is_used_once(person, phone_http, phone):
    _, token = _start(person)
    assert _bind(phone_http, phone, token).status_code == 201
    again = phone_http.post(f"/api/v1/m/bind/{token}/options", json={})
    assert again.status_code == 409 and again.get_json()["error"] == "binding_used"


def test_an_expired_token_is_refused(person, phone_http, phone, app):
    binding_id, token = _start(person)
    with app.app_context():
        db.session.execute(update(Binding).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    response = phone_http.post(f"/api/v1/m/bind/{token}/options", json={})
    assert response.status_code == 410 and response.get_json()["error"] == "binding_expired"
    assert person.get(f"/api/v1/bindings/{binding_id}").get_json()["status"] == "expired"


def test_an_unknown_token_is_404(phone_http):
    response = phone_http.post("/api/v1/m/bind/" + "x" * 43 + "/options", json={})
    assert response.status_code == 404 and response.get_json()["error"] == "binding_unknown"


def test_a_binding_ends_with_the_computer_session_that_made_it(person, phone_http, phone):
    _, token = _start(person)
    person.post("/api/v1/logout")
    response = phone_http.post(f"/api/v1/m/bind/{token}/options", json={})
    assert response.status_code == 410


def test_another_accounts_binding_cannot_be_followed_or_answered_with_its_options(person, phone_http, phone, pki, app):
    binding_id, token = _start(person)
    other = ApiClient(app.test_client())
    with app.app_context():
        make_account(pki, card_of(pki, "B223456782")).email_verified_at = utcnow()
        db.session.commit()
    card_login(other, pki, card_of(pki, "B223456782"))
    assert other.get(f"/api/v1/bindings/{binding_id}").status_code == 404
    _, other_token = _start(other)
    # A response made for the other account's QR code does not complete this one.
    other_options = phone_http.post(f"/api/v1/m/bind/{other_token}/options", json={}).get_json()
    phone_http.post(f"/api/v1/m/bind/{token}/options", json={})
    credential = phone.create(other_options["publicKey"], origin=ORIGIN)
    response = phone_http.post(f"/api/v1/m/bind/{token}/complete", json={"credential": credential, "device_name": "x"})
    assert response.status_code == 400 and response.get_json()["error"] == "challenge_mismatch"


@pytest.mark.parametrize(("origin", "reason"), [("http://localhost:8080", "origin_mismatch")])
def test_a_response_for_another_origin_is_refused(person, phone_http, phone, origin, reason):
    _, token = _start(person)
    response = _bind(phone_http, phone, token, origin=origin)
    assert response.status_code == 400 and response.get_json()["error"] == reason


def test_a_response_for_another_rp_id_is_refused(person, phone_http, phone, app):
    _, token = _start(person)
    options = phone_http.post(f"/api/v1/m/bind/{token}/options", json={}).get_json()["publicKey"]
    options["rp"]["id"] = "evil.localhost"
    credential = phone.create(options, origin="http://evil.localhost")
    response = phone_http.post(f"/api/v1/m/bind/{token}/complete", json={"credential": credential, "device_name": "x"})
    assert response.status_code == 400 and response.get_json()["error"] in ("rp_id_mismatch", "origin_mismatch")


def test_a_tampered_attestation_is_refused(person, phone_http, phone):
    import base64

    _, token = _start(person)
    options = phone_http.post(f"/api/v1/m/bind/{token}/options", json={}).get_json()["publicKey"]
    credential = phone.create(options, origin=ORIGIN)
    from fido2 import cbor

    attestation = cbor.decode(base64.urlsafe_b64decode(credential["response"]["attestationObject"] + "=="))
    signature = bytearray(attestation["attStmt"]["sig"])
    signature[-1] ^= 0x01
    attestation["attStmt"]["sig"] = bytes(signature)
    credential["response"]["attestationObject"] = base64.urlsafe_b64encode(cbor.encode(attestation)).rstrip(b"=").decode()
    response = phone_http.post(f"/api/v1/m/bind/{token}/complete", json={"credential": credential, "device_name": "x"})
    assert response.status_code == 400
    assert response.get_json()["error"] == "attestation_invalid"


@pytest.mark.parametrize(
    "body",
    [{}, {"credential": "x", "device_name": "n"}, {"credential": {}, "device_name": "n"}, {"credential": {"id": 1}, "device_name": ""}],
)
def test_malformed_completions_are_4xx(person, phone_http, body):
    _, token = _start(person)
    phone_http.post(f"/api/v1/m/bind/{token}/options", json={})
    response = phone_http.post(f"/api/v1/m/bind/{token}/complete", json=body)
    assert 400 <= response.status_code < 500 and response.get_json()["error"]


def test_two_phones_racing_for_one_token_make_one_device(person, app):
    _, token = _start(person)
    phones = [PhoneBrowser(SoftwareAuthenticator(None)) for _ in range(4)]
    http = app.test_client()
    credentials = []
    for phone_browser in phones:
        options = http.post(f"/api/v1/m/bind/{token}/options", json={}).get_json()["publicKey"]
        credentials.append(phone_browser.create(options, origin=ORIGIN))
    # Only the last options' challenge is current: every phone answers it.
    options = http.post(f"/api/v1/m/bind/{token}/options", json={}).get_json()["publicKey"]
    credentials = [p.create(options, origin=ORIGIN) for p in phones]
    statuses = []

    def attempt(credential):
        response = app.test_client().post(
            f"/api/v1/m/bind/{token}/complete", json={"credential": credential, "device_name": "race"}
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=attempt, args=(c,)) for c in credentials]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201, 409, 409, 409]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Device)) == 1


def test_binding_needs_a_confirmed_email(client, pki, app):
    with app.app_context():
        make_account(pki, card_of(pki, "A123456789"))
    card_login(client, pki, card_of(pki, "A123456789"))
    response = client.post("/api/v1/bindings", json={})
    assert response.status_code == 409 and response.get_json()["error"] == "email_not_verified"


def test_the_device_limit_gives_a_clear_error(person, phone_http, app):
    app.config["DEVICE_LIMIT"] = 2
    wiring.install(app)  # the parts are built from the configuration
    for _ in range(2):
        _, token = _start(person)
        assert _bind(phone_http, PhoneBrowser(SoftwareAuthenticator(None)), token).status_code == 201
    response = person.post("/api/v1/bindings", json={})
    assert response.status_code == 409 and response.get_json()["error"] == "device_limit"
    assert response.get_json()["limit"] == 2


def test_a_phone_already_bound_is_excluded(person, phone_http, phone):
    _, token = _start(person)
    assert _bind(phone_http, phone, token).status_code == 201
    _, token = _start(person)
    options = phone_http.post(f"/api/v1/m/bind/{token}/options", json={}).get_json()["publicKey"]
    assert len(options["excludeCredentials"]) == 1
    from webauthn.phone import WebAuthnError as PhoneRefused

    with pytest.raises(PhoneRefused):
        phone.create(options, origin=ORIGIN)


def test_devices_are_listed_renamed_and_unbound_with_audit(person, phone_http, phone, app):
    _, token = _start(person)
    device_id = _bind(phone_http, phone, token).get_json()["device"]["id"]
    [listed] = person.get("/api/v1/devices").get_json()["devices"]
    assert listed["platform"] is None or isinstance(listed["platform"], str)
    assert listed["last_used_at"] is None and listed["expires_at"]
    renamed = person.raw.patch(f"/api/v1/devices/{device_id}", json={"name": "新名字"}, headers={"X-CSRF-Token": person.csrf()})
    assert renamed.get_json()["device"]["name"] == "新名字"
    unbound = person.raw.delete(f"/api/v1/devices/{device_id}", json={"reason": "lost"}, headers={"X-CSRF-Token": person.csrf()})
    assert unbound.get_json()["device"]["status"] == "revoked"
    again = person.raw.delete(f"/api/v1/devices/{device_id}", json={}, headers={"X-CSRF-Token": person.csrf()})
    assert again.status_code == 409
    assert {"device:renamed", "device:unbound"} <= set(_tags(app))


def test_one_cannot_manage_someone_elses_device(person, phone_http, phone, pki, app):
    _, token = _start(person)
    device_id = _bind(phone_http, phone, token).get_json()["device"]["id"]
    other = ApiClient(app.test_client())
    with app.app_context():
        make_account(pki, card_of(pki, "B223456782"))
    card_login(other, pki, card_of(pki, "B223456782"))
    assert other.get(f"/api/v1/devices/{device_id}/certificate").status_code == 404
    assert other.raw.delete(f"/api/v1/devices/{device_id}", json={}, headers={"X-CSRF-Token": other.csrf()}).status_code == 404


def test_an_expired_device_is_renewed_for_another_year_with_a_new_certificate(person, phone_http, phone, app):
    _, token = _start(person)
    device_id = _bind(phone_http, phone, token).get_json()["device"]["id"]
    with app.app_context():
        db.session.execute(update(MobileCertificate).values(not_after=utcnow() - timedelta(days=1)))
        db.session.commit()
    assert person.get("/api/v1/devices").get_json()["devices"][0]["status"] == "expired"
    with app.app_context():  # an expired certificate alone is not a revoked device: it may be renewed
        db.session.execute(update(Device).values(status="active"))
        db.session.commit()
    renewed = person.post(f"/api/v1/devices/{device_id}/renew", json={})
    assert renewed.status_code == 200 and renewed.get_json()["device"]["status"] == "active"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(MobileCertificate)) == 2
    assert "device:renewed" in _tags(app)


@pytest.fixture
def revoked_card(pki):
    """Revoke 王小明's card at the demo CA for one test (the OCSP responder and CRL read the manifest)."""
    import json

    manifest_file = pki.directory / "manifest.json"
    original = manifest_file.read_text()
    manifest = json.loads(original)
    card = card_of(pki, "A123456789")
    manifest["revoked"].append({"serial": card.certificate_serial, "revoked_at": utcnow().isoformat(), "reason": "key_compromise"})
    manifest_file.write_text(json.dumps(manifest))
    yield card
    manifest_file.write_text(original)


def _assert_device_still_works(app, phone, device_id, before_der):
    """Its certificate is the same and current, and the phone's assertion verifies against it."""
    import secrets

    import webauthn

    with app.app_context():
        device = db.session.get(Device, device_id)
        assert device.certificate.der == before_der
        assert device.effective_status(utcnow()) == "active"
        challenge = secrets.token_bytes(32)
        options = webauthn.authentication_options(rp_id="localhost", challenge=challenge)
        assertion = phone.get(options["publicKey"], origin=ORIGIN)
        verified = webauthn.verify_authentication(
            assertion,
            expected_challenge=challenge,
            expected_origin=ORIGIN,
            expected_rp_id="localhost",
            credential_public_key=device.public_key,
            current_sign_count=device.sign_count,
        )
        assert verified.user_verified and verified.credential_id == device.credential_id


def _bound_device(person, phone_http, phone, app):
    _, token = _start(person)
    device_id = _bind(phone_http, phone, token).get_json()["device"]["id"]
    with app.app_context():
        return device_id, db.session.get(Device, device_id).certificate.der


def test_an_expired_card_leaves_the_device_working(person, phone_http, phone, app):
    device_id, der = _bound_device(person, phone_http, phone, app)
    with app.app_context():
        db.session.execute(update(CardCertificate).values(not_after=utcnow() - timedelta(days=1)))
        db.session.commit()
    assert person.get("/api/v1/account").get_json()["cards"][0]["expired"] is True
    assert person.get("/api/v1/devices").get_json()["devices"][0]["status"] == "active"
    _assert_device_still_works(app, phone, device_id, der)


def test_a_revoked_card_leaves_the_device_working(person, phone_http, phone, app, pki, revoked_card):
    device_id, der = _bound_device(person, phone_http, phone, app)
    person.post("/api/v1/logout")
    app.extensions["mocert"].card_logins.verifier._validator.revocation_cache.clear()  # the login's "good" OCSP answer
    refused = card_login(person, pki, revoked_card)
    assert refused.get_json()["error"] == "certificate_revoked"  # the card is done for…
    _assert_device_still_works(app, phone, device_id, der)  # …the phone is not


@pytest.fixture
def replacement_card(pki):
    """A new card for 王小明 from the demo CA, for one test."""
    manifest_file = pki.directory / "manifest.json"
    original = manifest_file.read_text()
    yield pki.issue_card("王小明", "A123456789", "TEST000000000099")
    manifest_file.write_text(original)
    pki.__dict__.pop("manifest", None)
    for leftover in (pki.directory / "cards").glob("TEST000000000099.*"):
        leftover.unlink()


def test_a_replacement_card_leaves_the_device_working(person, phone_http, phone, app, pki, replacement_card):
    device_id, der = _bound_device(person, phone_http, phone, app)
    person.post("/api/v1/logout")
    assert card_login(person, pki, replacement_card).get_json()["status"] == "registration_required"
    linked = person.post("/api/v1/account/register", json={"national_id": "A123456789"})
    assert linked.get_json()["status"] == "card_linked"
    assert len(linked.get_json()["account"]["cards"]) == 2
    _assert_device_still_works(app, phone, device_id, der)
    assert person.get("/api/v1/devices").get_json()["devices"][0]["status"] == "active"


def _assertion(app, phone, challenge):
    import webauthn

    with app.app_context():
        options = webauthn.authentication_options(rp_id="localhost", challenge=challenge)
    return phone.get(options["publicKey"], origin=ORIGIN)


def test_a_sign_counter_going_back_marks_the_device_possibly_cloned(person, phone_http, phone, app):
    import secrets

    device_id, _ = _bound_device(person, phone_http, phone, app)
    first_challenge, second_challenge = secrets.token_bytes(32), secrets.token_bytes(32)
    first = _assertion(app, phone, first_challenge)
    second = _assertion(app, phone, second_challenge)
    with app.test_request_context():
        devices = wiring.parts().devices
        device = db.session.get(Device, device_id)
        devices.verify_assertion(device, second, second_challenge)
        db.session.commit()
        assert device.sign_count >= 1 and device.last_used_at is not None
        # A copy of the key answering with an older counter: refused, flagged, audited.
        with pytest.raises(Refusal) as refused:
            devices.verify_assertion(device, first, first_challenge)
        assert refused.value.code == "sign_count_regression"
    with app.app_context():
        assert db.session.get(Device, device_id).possibly_cloned is True
        assert db.session.get(Device, device_id).possibly_cloned_at is not None
    assert "device:possibly_cloned" in _tags(app)
    # Its person is told, with when and what to do, not shown an active phone that cannot log in.
    [view] = person.get("/api/v1/devices").get_json()["devices"]
    assert view["status"] == "active" and view["notice"]["kind"] == "possibly_cloned" and view["notice"]["at"]


def test_an_assertion_without_user_verification_or_from_an_unbound_device_is_refused(person, phone_http, app):
    import secrets

    authenticator = SoftwareAuthenticator(None)
    device_id, _ = _bound_device(person, phone_http, PhoneBrowser(authenticator), app)
    authenticator.user_verified = False
    challenge = secrets.token_bytes(32)
    no_uv = _assertion(app, PhoneBrowser(authenticator), challenge)
    with app.test_request_context():
        devices = wiring.parts().devices
        device = db.session.get(Device, device_id)
        with pytest.raises(Refusal) as refused:
            devices.verify_assertion(device, no_uv, challenge)
        assert refused.value.code == "user_not_verified"
        device.certificate.not_after = utcnow() - timedelta(seconds=1)
        with pytest.raises(Refusal) as refused:
            devices.verify_assertion(device, no_uv, challenge)
        assert refused.value.code == "device_expired" and "展期" in refusals.message(refused.value)  # told to renew
        device.status = "revoked"
        with pytest.raises(Refusal) as refused:
            devices.verify_assertion(device, no_uv, challenge)
        assert refused.value.code == "device_revoked"


def test_a_trust_policy_requiring_roots_refuses_self_attested_phones(person, phone_http, phone, app, pki):
    app.config["WEBAUTHN_TRUST"] = "roots"
    app.config["WEBAUTHN_ATTESTATION_ROOTS"] = (str(pki.directory / "root.pem"),)
    wiring.install(app)  # the parts are built from the configuration
    _, token = _start(person)
    response = _bind(phone_http, phone, token)
    assert response.status_code == 400 and response.get_json()["error"] == "attestation_untrusted"


@pytest.mark.parametrize("token_binding", [{"status": "bogus"}, "supported"])
def test_a_binding_whose_client_data_has_an_invalid_token_binding_is_refused(
    person, phone_http, phone, app, monkeypatch, token_binding
):
    """WebAuthn L2 §7.1 step 10. The answer to a challenge is checked after its binding token is consumed
    (one winner when phones race), so a refused answer ends the binding, as any refused answer does."""
    binding_id, token = _start(person)
    _client_data_with(monkeypatch, tokenBinding=token_binding)
    response = _bind(phone_http, phone, token)
    assert response.status_code == 400 and response.get_json()["error"] == "token_binding_invalid"
    assert response.get_json()["message"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Device)) == 0
    assert person.get(f"/api/v1/bindings/{binding_id}").get_json() == {
        "status": "failed", "reason": "token_binding_invalid"
    }
    assert "device:binding:failure" in _tags(app)


def test_a_binding_whose_client_data_says_token_binding_is_supported_binds(person, phone_http, phone, monkeypatch):
    _, token = _start(person)
    _client_data_with(monkeypatch, tokenBinding={"status": "supported"})
    assert _bind(phone_http, phone, token).status_code == 201


# -- one live binding per card session ---------------------------------------------------------------------


def _replaced(app):
    with app.app_context():
        return [e.details for e in db.session.scalars(
            select(AuditEvent).where(AuditEvent.tag == "device:binding:replaced").order_by(AuditEvent.id))]


def test_a_new_binding_ends_the_one_before_and_its_token_is_refused(person, phone_http, phone, app):
    old_id, old_token = _start(person)
    assert phone_http.post(f"/api/v1/m/bind/{old_token}/options", json={}).status_code == 200  # scanned
    new_id, new_token = _start(person)  # the bind page reloaded

    refused = phone_http.post(f"/api/v1/m/bind/{old_token}/options", json={})
    assert (refused.status_code, refused.get_json()["error"]) == (410, "binding_replaced")
    assert refused.get_json()["message"]
    answer = phone_http.post(f"/api/v1/m/bind/{old_token}/complete", json={"credential": {}, "device_name": "x"})
    assert (answer.status_code, answer.get_json()["error"]) == (410, "binding_replaced")
    assert person.get(f"/api/v1/bindings/{old_id}").get_json() == {"status": "failed", "reason": "binding_replaced"}
    assert person.get(f"/api/v1/bindings/{new_id}").get_json() == {"status": "pending"}
    assert _replaced(app) == [{"binding": old_id, "replaced_by": new_id}]
    with app.app_context():
        live = db.session.scalars(select(Binding).where(Binding.consumed_at.is_(None))).all()
        assert [b.public_id for b in live] == [new_id]  # one live binding for the session

    # The new one binds; the old one's page (another tab) hears of it.
    assert _bind(phone_http, phone, new_token).status_code == 201
    assert person.get(f"/api/v1/bindings/{old_id}").get_json()["status"] == "completed"
    assert person.get(f"/api/v1/bindings/{new_id}").get_json()["status"] == "completed"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Device)) == 1


def test_a_binding_completed_after_a_reload_is_what_the_reloaded_page_shows(person, phone_http, phone, app, monkeypatch):
    """The phone was answering the old QR code (its ticket taken) when the page reloaded and made a new one:
    the old binding completes, the new one ends, and the new page's status says the phone is bound."""
    from app.services import devices as devices_service

    old_id, old_token = _start(person)
    options = phone_http.post(f"/api/v1/m/bind/{old_token}/options", json={}).get_json()
    credential = phone.create(options["publicKey"], origin=ORIGIN)
    reloaded = {}
    verify = devices_service.webauthn.verify_registration

    def reload_while_verifying(*args, **kwargs):
        # The old ticket is taken (committed) by now: the reload cannot end it, only make another.
        reloaded["id"], reloaded["token"] = _start(person)
        return verify(*args, **kwargs)

    monkeypatch.setattr(devices_service.webauthn, "verify_registration", reload_while_verifying)
    done = phone_http.post(f"/api/v1/m/bind/{old_token}/complete", json={"credential": credential, "device_name": "舊"})
    assert done.status_code == 201, done.get_json()
    device = done.get_json()["device"]

    status = person.get(f"/api/v1/bindings/{reloaded['id']}").get_json()
    assert status["status"] == "completed" and status["device"]["id"] == device["id"]
    refused = phone_http.post(f"/api/v1/m/bind/{reloaded['token']}/options", json={})
    assert (refused.status_code, refused.get_json()["error"]) == (410, "binding_replaced")
    assert _replaced(app) == [{"binding": reloaded["id"], "replaced_by": old_id}]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Binding).where(Binding.consumed_at.is_(None))) == 0


def test_a_binding_does_not_end_another_sessions(person, phone_http, phone, pki, app):
    """One live binding per card session, not per account: a second computer logged in with the card keeps
    its own QR code."""
    first_id, first_token = _start(person)
    other = ApiClient(app.test_client())
    card_login(other, pki, card_of(pki, "A123456789"))
    second_id, _ = _start(other)
    assert person.get(f"/api/v1/bindings/{first_id}").get_json() == {"status": "pending"}
    assert other.get(f"/api/v1/bindings/{second_id}").get_json() == {"status": "pending"}
    assert _replaced(app) == []
    assert _bind(phone_http, phone, first_token).status_code == 201
    assert other.get(f"/api/v1/bindings/{second_id}").get_json() == {"status": "pending"}  # not its session's


def test_bindings_made_at_once_in_one_session_leave_one_live(person, app, monkeypatch):
    """Two tabs making a QR code at the same moment take turns on the session's row: each one's commit is
    held a moment after it has ended the others, and still the next one sees it and ends it."""
    import time

    from app.services import devices as devices_service

    end_live = devices_service._end_live_bindings

    def slowly(*args):
        end_live(*args)
        time.sleep(0.2)  # between ending the others and committing: where a second tab would slip in

    monkeypatch.setattr(devices_service, "_end_live_bindings", slowly)
    statuses = []

    def make():
        statuses.append(person.post("/api/v1/bindings", json={}).status_code)

    threads = [threading.Thread(target=make) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [201] * 4
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Binding).where(Binding.consumed_at.is_(None))) == 1
    assert len(_replaced(app)) == 3


def _view(person) -> dict:
    [view] = person.get("/api/v1/devices").get_json()["devices"]
    return view


def test_a_revocation_by_the_service_is_not_shown_as_the_persons_own_unbinding(person, phone_http, phone, app):
    _, token = _start(person)
    device_id = _bind(phone_http, phone, token).get_json()["device"]["id"]
    assert _view(person)["notice"] is None
    with app.test_request_context():
        wiring.parts().devices.revoke(db.session.get(Device, device_id), actor="account:999", reason="fraud report")
    view = _view(person)
    assert view["status"] == "revoked" and view["notice"]["kind"] == "revoked_by_service"
    with app.app_context():
        device = db.session.get(Device, device_id)
        assert device.revoked_by == "service" and view["notice"]["at"] == device.revoked_at.isoformat()


def test_the_persons_own_unbinding_is_shown_as_theirs(person, phone_http, phone, app):
    _, token = _start(person)
    device_id = _bind(phone_http, phone, token).get_json()["device"]["id"]
    person.raw.delete(f"/api/v1/devices/{device_id}", json={"reason": "replaced"}, headers={"X-CSRF-Token": person.csrf()})
    assert _view(person)["notice"]["kind"] == "unbound"


def test_a_suspension_is_shown_with_its_time_until_the_phone_is_resumed(person, phone_http, phone, app):
    _, token = _start(person)
    device_id = _bind(phone_http, phone, token).get_json()["device"]["id"]
    with app.test_request_context():
        wiring.parts().devices.suspend(db.session.get(Device, device_id), actor="account:999", reason="check")
    view = _view(person)
    assert view["status"] == "suspended" and view["notice"]["kind"] == "suspended" and view["notice"]["at"]
    assert view["renews_until"] is None
    with app.test_request_context():
        wiring.parts().devices.resume(db.session.get(Device, device_id), actor="account:999", reason="fine")
        assert db.session.get(Device, device_id).suspended_at is None
    assert _view(person)["notice"] is None


def test_an_expired_certificate_is_shown_with_its_end(person, phone_http, phone, app):
    _, token = _start(person)
    _bind(phone_http, phone, token)
    with app.app_context():
        db.session.execute(update(MobileCertificate).values(not_after=utcnow() - timedelta(days=1)))
        db.session.commit()
    view = _view(person)
    assert view["notice"]["kind"] == "expired" and view["notice"]["at"] == view["expires_at"]


def test_renewing_a_phone_bound_today_is_not_offered_and_refused_if_asked(person, phone_http, phone, app):
    _, token = _start(person)
    device_id = _bind(phone_http, phone, token).get_json()["device"]["id"]
    assert _view(person)["renews_until"] is None
    refused = person.post(f"/api/v1/devices/{device_id}/renew", json={})
    assert refused.status_code == 409 and refused.get_json()["error"] == "renewal_changes_nothing"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(MobileCertificate)) == 1
    assert "device:renewed" not in _tags(app)

    # Bound a while ago, it is offered, with the end date the confirmation shows, and that is what it gets.
    with app.app_context():
        certificate = db.session.scalars(select(MobileCertificate)).one()
        certificate.not_after -= timedelta(days=30)
        db.session.commit()
    offered = _view(person)["renews_until"]
    assert offered is not None and offered > _view(person)["expires_at"]
    renewed = person.post(f"/api/v1/devices/{device_id}/renew", json={}).get_json()["device"]
    assert renewed["expires_at"][:10] == offered[:10] and renewed["renews_until"] is None

    # A phone that may have been copied is bound anew, never renewed, and is told so.
    with app.app_context():
        for certificate in db.session.scalars(select(MobileCertificate)):
            certificate.not_after -= timedelta(days=60)
        db.session.get(Device, device_id).possibly_cloned = True
        db.session.commit()
    assert _view(person)["renews_until"] is None
    copied = person.post(f"/api/v1/devices/{device_id}/renew", json={}, headers={"Accept-Language": "zh-TW"})
    assert copied.status_code == 409 and "可能遭複製的手機不予展期" in copied.get_json()["message"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("bound", "renewing", "offered"), [
    ("2026-03-09T23:00", "2026-03-10T01:00", False),  # 07:00 and 09:00 on 3/10 in Taipei: the same day there
    ("2026-03-10T15:00", "2026-03-10T23:00", True),  # 23:00 on 3/10, then 07:00 on 3/11 in Taipei: a day more
])
def test_a_renewal_is_offered_when_it_moves_the_end_date_as_taiwan_reads_it(app, bound, renewing, offered):
    from datetime import datetime, timezone

    from app.services.devices import renewal_end
    from app.services.mobile_certificates import one_year_later

    def utc(text):
        return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)

    device = Device(status="active", possibly_cloned=False)
    device.certificates = [MobileCertificate(not_after=one_year_later(utc(bound)))]
    with app.app_context():
        assert app.config["DISPLAY_TIMEZONE"] == "Asia/Taipei"
        assert (renewal_end(device, utc(renewing)) is not None) is offered
        device.possibly_cloned = True  # bound anew, never renewed
        assert renewal_end(device, utc(renewing) + timedelta(days=60)) is None


ZH = {"Accept-Language": "zh-TW"}
PHONE_AGENT = {"User-Agent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/156 Mobile"}
COMPUTER_AGENT = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156"}


def test_a_bind_link_opened_on_a_computer_says_it_is_for_the_phone(person, phone_http):
    _, token = _start(person)
    on_the_phone = phone_http.get(f"/m/bind/{token}", headers={**PHONE_AGENT, **ZH})
    assert on_the_phone.status_code == 200 and 'id="phone-on-computer"' not in on_the_phone.get_data(as_text=True)
    on_a_computer = phone_http.get(f"/m/bind/{token}", headers={**COMPUTER_AGENT, **ZH}).get_data(as_text=True)
    assert 'id="phone-on-computer"' in on_a_computer and "這個連結是給手機用的" in on_a_computer
    hinted = phone_http.get(f"/m/bind/{token}", headers={**COMPUTER_AGENT, "Sec-CH-UA-Mobile": "?1"})
    assert 'id="phone-on-computer"' not in hinted.get_data(as_text=True)


def test_a_bind_link_that_cannot_bind_says_why_instead_of_showing_the_form(person, phone_http, phone, app):
    bogus = phone_http.get("/m/bind/" + "x" * 43, headers=ZH)
    assert bogus.status_code == 404
    assert "此 QR Code 無效" in bogus.get_data(as_text=True) and 'id="phone-bind-form"' not in bogus.get_data(as_text=True)
    _, token = _start(person)
    assert phone_http.get(f"/m/bind/{token}", headers=ZH).status_code == 200
    assert "device:binding:scanned" not in _tags(app)  # showing the page reads only; the phone's first step scans
    assert _bind(phone_http, phone, token).status_code == 201
    used = phone_http.get(f"/m/bind/{token}", headers=ZH)
    assert used.status_code == 409 and 'id="phone-bind-form"' not in used.get_data(as_text=True)
