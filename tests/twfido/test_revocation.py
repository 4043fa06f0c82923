"""twfido.revocation: a mobile certificate's status, learnt as an agency learns it, from MoCert's own mobile CA.

The phone is bound through the real flow and its certificate is the one the app issued; its status comes from
the app's OCSP responder and CRL over real HTTP (the addresses the certificate names), or from a CRL or OCSP
answer downloaded from them. Answers the CA would never give (another signer, another certificate, stale)
are made here with cryptography, signed with the demo mobile CA's key or a stranger's.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fido2 import cbor
from fido2.cose import ES256
from werkzeug.serving import make_server

from app import wiring
from app.extensions import db
from app.models import Device, utcnow
from app.services.mobile_certificates import MobileCA, MobileCertificates, StatusUrls
from iccard import ca_status
from tests.factories import make_account
from tests.support import card_login, card_of, free_port, missing
from twfido import base64url, challenge
from twfido.revocation import (
    CertificateRevoked,
    RevocationUnknown,
    Sources,
    check_crl,
    check_ocsp_response,
    fetch_url,
    status,
)
from twfido.signed_response import SignedResponse, verify
from webauthn.phone import PhoneBrowser, SoftwareAuthenticator

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.now(timezone.utc).replace(microsecond=0)
ORIGIN, RP_ID = "http://localhost", "localhost"
INPUT = challenge.challenge_input(
    hint="登入臺灣雲市集", op_code="ATH", sign_data=None, sp_service_id="SP0001", sp_ticket_id="tid", transaction_id="t-1"
)


# -- the mobile CA: the app on a real port, and its key for answers it would never give ----------------------


class StatusServer:
    """The app over real HTTP at the PUBLIC_URL its certificates name. ``forged[path]`` answers that path once in
    the app's place (a man in the middle: the status is fetched over plain HTTP); a path in ``down`` is 503."""

    def __init__(self, app) -> None:
        self.forged: dict[str, Callable[[bytes], bytes]] = {}
        self.down: set[str] = set()
        self._app = app
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self.ocsp, self.crl = f"{self.url}/pki/mobile/ocsp", f"{self.url}/pki/mobile/ca.crl"

    def _wsgi(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path in self.down:
            start_response("503 Service Unavailable", [("Content-Length", "0")])
            return [b""]
        forge = self.forged.pop(path, None)
        if forge is not None:
            body = forge(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
            headers = [("Content-Type", "application/ocsp-response"), ("Content-Length", str(len(body)))]
            start_response("200 OK", headers)
            return [body]
        return self._app(environ, start_response)


@pytest.fixture
def served(app):
    server = StatusServer(app)
    app.config.update(PUBLIC_URL=server.url, WEBAUTHN_RP_ID=RP_ID, WEBAUTHN_ORIGINS=(ORIGIN,))
    wiring.install(app)  # the parts are built from the configuration: again, for the URL just chosen
    thread = threading.Thread(target=server._server.serve_forever, daemon=True)
    thread.start()
    yield server
    server._server.shutdown()
    thread.join()


@pytest.fixture(scope="module")
def mobile_ca(pki) -> MobileCA:
    """The demo mobile CA the app issues with (its certificate and key, as the app loads them)."""
    return MobileCA.load(str(pki.directory / "mobile-ca.pem"), str(pki.directory / "mobile-ca.key.pem"))


@dataclass
class Phone:
    """A phone bound to 王小明 through the real flow, holding the key its mobile certificate certifies."""

    browser: PhoneBrowser
    device_id: int
    certificate: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def approve(self, challenge_input: str = INPUT) -> str:
        """The signed_response of this phone's approval of ``challenge_input``."""
        answer = self.browser.get({
            "challenge": base64url.encode(challenge.challenge(challenge_input)), "rpId": RP_ID,
            "userVerification": "required",
        }, origin=ORIGIN)
        parts = answer["response"]
        return SignedResponse(
            challenge_input, base64url.decode(answer["rawId"]), base64url.decode(parts["authenticatorData"]),
            base64url.decode(parts["clientDataJSON"]), base64url.decode(parts["signature"]),
        ).encode()


@pytest.fixture
def phone(served, client, pki, app) -> Phone:
    with app.app_context():
        account = make_account(pki, card_of(pki, "A123456789"))
        account.email_verified_at = utcnow()
        db.session.commit()
    assert card_login(client, pki, card_of(pki, "A123456789")).get_json()["status"] == "logged_in"
    token = client.post("/api/v1/bindings", json={}).get_json()["url"].rsplit("/", 1)[1]
    phone_http = app.test_client()
    options = phone_http.post(f"/api/v1/m/bind/{token}/options", json={}).get_json()["publicKey"]
    browser = PhoneBrowser(SoftwareAuthenticator(None))
    credential = browser.create(options, origin=ORIGIN)
    response = phone_http.post(f"/api/v1/m/bind/{token}/complete", json={"credential": credential, "device_name": "手機"})
    assert response.status_code == 201, response.get_json()
    device_id = response.get_json()["device"]["id"]
    with app.app_context():
        certificate = x509.load_der_x509_certificate(db.session.get(Device, device_id).certificate.der)
    assert StatusUrls.named_by(certificate) == StatusUrls.under(served.url)
    return Phone(browser, device_id, certificate)


def _change(app, phone: Phone, action, *args) -> None:
    """A status change of the phone's certificates (a ``MobileCertificates`` method), committed as its caller does."""
    with app.app_context():
        action(wiring.parts().mobile_certificates, db.session.get(Device, phone.device_id), *args)
        db.session.commit()


def _ocsp_request(certificate, issuer, nonce: bytes | None = None) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA256())
    if nonce:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _impostor(ca: x509.Certificate):
    """A key of a stranger's and a certificate of it under the mobile CA's name, as a forger makes them."""
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder().subject_name(ca.subject).issuer_name(ca.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30)).sign(key, hashes.SHA256())
    )
    return key, certificate


def _responder(issuer: x509.Certificate, issuer_key, *, ocsp_signing=True, valid_until=None):
    """A responder's key and certificate, issued by ``issuer`` (for OCSP signing unless told otherwise)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(timezone.utc)
    builder = (
        x509.CertificateBuilder().subject_name(_name("OCSP responder")).issuer_name(issuer.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=2)).not_valid_after(valid_until or now + timedelta(days=30))
    )
    if ocsp_signing:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
    return key, builder.sign(issuer_key, hashes.SHA256())


def _ocsp_answer(certificate, issuer, signer_key, signer=None, *, sent=True, status=ocsp.OCSPCertStatus.GOOD,
                 serial=None, this_update=None, next_update=None, nonce: bytes | None = None) -> bytes:
    """An OCSP answer about ``certificate`` (or ``serial`` under its issuer) signed with ``signer_key``, whose
    certificate ``signer`` (the issuer's when not given) it names, and carries unless not ``sent``; with the times
    and nonce given."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    this_update = this_update or now
    builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
        issuer_name_hash=ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA1()).build()
        .issuer_name_hash,
        issuer_key_hash=ca_status.issuer_key_hash(issuer, hashes.SHA1()),
        serial_number=serial or certificate.serial_number, algorithm=hashes.SHA1(), cert_status=status,
        this_update=this_update, next_update=next_update or this_update + timedelta(hours=1),
        revocation_time=this_update if status == ocsp.OCSPCertStatus.REVOKED else None,
        revocation_reason=x509.ReasonFlags.key_compromise if status == ocsp.OCSPCertStatus.REVOKED else None,
    ).responder_id(ocsp.OCSPResponderEncoding.HASH, signer or issuer)
    if signer is not None and sent:
        builder = builder.certificates([signer])
    if nonce:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.sign(signer_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _nonce_of(request_der: bytes) -> bytes | None:
    try:
        return ocsp.load_der_ocsp_request(request_der).extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        return None


def _unstored(mobile_ca: MobileCA, status_at: str) -> x509.Certificate:
    """A certificate signed with ``mobile_ca``'s key, naming the status at ``status_at``, that the CA never
    recorded (and so knows nothing of)."""
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return MobileCA(mobile_ca.certificate, mobile_ca.key, StatusUrls.under(status_at)).issue(
        cose_public_key=cbor.encode(dict(ES256.from_cryptography_key(key))), name="無名氏", pseudonym="0123456789ABCDEF",
        credential_id=b"never bound", not_before=NOW - timedelta(days=1),
    )


# -- good and revoked, as the app publishes it -------------------------------------------------------------


def test_a_bound_phones_approval_verifies_with_its_status_from_its_ocsp_responder_or_its_crl(served, phone, mobile_ca):
    approval = verify(phone.approve(), phone.der, ca=mobile_ca.certificate, expected_input=INPUT, rp_id=RP_ID)
    assert approval.revocation.source == f"the OCSP responder {served.ocsp}"
    assert approval.revocation.this_update <= datetime.now(timezone.utc) < approval.revocation.next_update
    assert approval.revocation.caveat is None  # an answer to our nonce: made for this check

    downloaded = fetch_url(served.crl)
    good = status(phone.certificate, mobile_ca.certificate, crl=downloaded, fetch=None)
    assert good.source.startswith("the CRL given (number ")
    assert good.caveat.startswith(f"the status is as of {good.this_update:%Y-%m-%d %H:%M:%S} UTC, the thisUpdate")

    served.down.add("/pki/mobile/ocsp")  # the responder down: the CRL the certificate names tells, and says so
    good = status(phone.certificate, mobile_ca.certificate)
    assert good.source.startswith(f"the CRL {served.crl} (number ")
    assert "a revocation since is not known; not learnt from what was tried first: OCSP " in good.caveat
    assert "503" in good.caveat


def test_a_revoked_phones_certificate_is_refused_naming_the_reason_by_ocsp_and_its_crl(app, served, phone, mobile_ca):
    _change(app, phone, MobileCertificates.revoke_certificates, "keyCompromise")

    with pytest.raises(CertificateRevoked, match=r"revoked \(keyCompromise\) since .* the OCSP responder") as by_ocsp:
        verify(phone.approve(), phone.der, ca=mobile_ca.certificate, rp_id=RP_ID)
    assert by_ocsp.value.reason == x509.ReasonFlags.key_compromise
    with app.app_context():
        revoked_at = db.session.get(Device, phone.device_id).certificate.revoked_at
    assert by_ocsp.value.revoked_at == revoked_at.replace(microsecond=0, tzinfo=timezone.utc)

    with pytest.raises(CertificateRevoked, match=r"revoked \(keyCompromise\) .* the CRL given") as by_crl:
        status(phone.certificate, mobile_ca.certificate, crl=fetch_url(served.crl), fetch=None)
    assert by_crl.value.reason == x509.ReasonFlags.key_compromise


def test_a_suspended_phones_certificate_is_on_hold_until_it_is_resumed(app, served, phone, mobile_ca):
    _change(app, phone, MobileCertificates.hold_certificates)
    for sources in ({}, {"crl": fetch_url(served.crl), "fetch": None}):
        with pytest.raises(CertificateRevoked, match=r"revoked \(certificateHold\)"):
            status(phone.certificate, mobile_ca.certificate, **sources)
    _change(app, phone, MobileCertificates.release_certificates)
    assert status(phone.certificate, mobile_ca.certificate).source == f"the OCSP responder {served.ocsp}"
    status(phone.certificate, mobile_ca.certificate, crl=fetch_url(served.crl), fetch=None)


# -- what is not believed --------------------------------------------------------------------------------------


def test_a_forged_ocsp_answer_is_not_believed_and_the_crl_decides(app, served, phone, mobile_ca):
    _change(app, phone, MobileCertificates.revoke_certificates, "keyCompromise")
    impostor = _impostor(mobile_ca.certificate)

    def forged_good(request: bytes) -> bytes:  # "good", about this certificate, with our nonce: by another key
        return _ocsp_answer(phone.certificate, mobile_ca.certificate, *impostor, sent=False, nonce=_nonce_of(request))

    served.forged["/pki/mobile/ocsp"] = forged_good
    with pytest.raises(CertificateRevoked, match=f"the CRL {served.crl}"):
        status(phone.certificate, mobile_ca.certificate)

    served.forged["/pki/mobile/ocsp"] = forged_good
    served.down.add("/pki/mobile/ca.crl")
    with pytest.raises(RevocationUnknown) as unknown:
        status(phone.certificate, mobile_ca.certificate)
    assert "signed neither by the mobile CA nor by a responder it certified" in str(unknown.value)
    assert "503" in str(unknown.value)


def test_an_earlier_ocsp_answer_replayed_is_not_believed(app, served, phone, mobile_ca):
    earlier = fetch_url(served.ocsp, _ocsp_request(phone.certificate, mobile_ca.certificate, b"an earlier nonce"))
    assert check_ocsp_response(earlier, phone.certificate, mobile_ca.certificate).source  # good then, and signed
    _change(app, phone, MobileCertificates.revoke_certificates, "keyCompromise")

    served.forged["/pki/mobile/ocsp"] = lambda request: earlier
    served.down.add("/pki/mobile/ca.crl")
    with pytest.raises(RevocationUnknown, match="its nonce is not ours"):
        status(phone.certificate, mobile_ca.certificate)


def test_an_earlier_ocsp_answer_without_a_nonce_replayed_is_not_believed_online(app, served, phone, mobile_ca):
    earlier = fetch_url(served.ocsp, _ocsp_request(phone.certificate, mobile_ca.certificate))  # asked with no nonce
    assert check_ocsp_response(earlier, phone.certificate, mobile_ca.certificate).source  # good then, and signed
    _change(app, phone, MobileCertificates.revoke_certificates, "keyCompromise")

    served.forged["/pki/mobile/ocsp"] = lambda request: earlier
    served.down.add("/pki/mobile/ca.crl")
    with pytest.raises(RevocationUnknown, match="does not echo our nonce"):
        status(phone.certificate, mobile_ca.certificate)
    served.down.clear()
    served.forged["/pki/mobile/ocsp"] = lambda request: earlier  # the CRL, republished at the revocation, tells
    with pytest.raises(CertificateRevoked, match=f"the CRL {served.crl}"):
        status(phone.certificate, mobile_ca.certificate)


def test_a_crl_fetched_when_ocsp_is_blocked_is_not_believed_if_older_than_an_hour(app, served, phone, mobile_ca):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    earlier = ca_status.sign_crl(  # the CA's own, from before the revocation, still before its nextUpdate
        mobile_ca.certificate, mobile_ca.key, [], number=1, this_update=now - timedelta(minutes=61),
        next_update=now + timedelta(hours=23),
    )
    _change(app, phone, MobileCertificates.revoke_certificates, "keyCompromise")
    served.down.add("/pki/mobile/ocsp")

    served.forged["/pki/mobile/ca.crl"] = lambda request: earlier
    with pytest.raises(RevocationUnknown) as unknown:
        status(phone.certificate, mobile_ca.certificate)
    assert "more than 60 minutes before the check: fetched, it may be an earlier one replayed" in str(unknown.value)
    assert "503" in str(unknown.value)  # and why OCSP did not tell

    served.forged["/pki/mobile/ca.crl"] = lambda request: earlier
    kept = Sources(fetched_crl_max_age=timedelta(hours=2))  # a verifier that accepts more says so
    assert kept.status(phone.certificate, mobile_ca.certificate).source == f"the CRL {served.crl} (number 1)"
    given = status(phone.certificate, mobile_ca.certificate, crl=earlier, fetch=None)  # given: the giver's choice
    assert f"as of {now - timedelta(minutes=61):%Y-%m-%d %H:%M:%S} UTC" in given.caveat
    with pytest.raises(CertificateRevoked, match=f"the CRL {served.crl}"):  # the current one tells
        status(phone.certificate, mobile_ca.certificate)


def test_ocsp_unknown_is_not_made_good_by_a_crl_that_does_not_list_it(served, phone, mobile_ca):
    certificate = _unstored(mobile_ca, served.url)
    with pytest.raises(RevocationUnknown, match="does not know this certificate"):
        status(certificate, mobile_ca.certificate)
    downloaded = fetch_url(served.crl)
    with pytest.raises(RevocationUnknown, match="does not know this certificate"):  # given, the same
        status(certificate, mobile_ca.certificate, ocsp_response=fetch_url(
            served.ocsp, _ocsp_request(certificate, mobile_ca.certificate)), crl=downloaded, fetch=None)
    assert status(certificate, mobile_ca.certificate, crl=downloaded, fetch=None)  # what the CRL alone would say


def test_a_stale_crl_or_ocsp_answer_is_not_believed(app, served, phone, mobile_ca):
    downloaded = fetch_url(served.crl)
    answer = fetch_url(served.ocsp, _ocsp_request(phone.certificate, mobile_ca.certificate))
    later = datetime.now(timezone.utc) + app.config["MOBILE_CRL_VALIDITY"] + timedelta(minutes=1)
    with pytest.raises(RevocationUnknown, match="the CRL is stale: its nextUpdate"):
        check_crl(downloaded, phone.certificate, mobile_ca.certificate, at=later)
    with pytest.raises(RevocationUnknown, match="the OCSP answer is stale"):
        check_ocsp_response(answer, phone.certificate, mobile_ca.certificate, at=later)
    earlier = datetime.now(timezone.utc) - timedelta(hours=1)  # an answer from after the time asked about
    with pytest.raises(RevocationUnknown, match="after the time of the check"):
        check_crl(downloaded, phone.certificate, mobile_ca.certificate, at=earlier)


def test_an_unreachable_status_is_unknown_not_good(mobile_ca):
    certificate = _unstored(mobile_ca, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    with pytest.raises(RevocationUnknown) as unknown:
        status(certificate, mobile_ca.certificate)
    assert str(unknown.value).count("did not answer") == 2  # OCSP, then the CRL


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        (lambda c, ca: _ocsp_answer(c, ca.certificate, *_impostor(ca.certificate), sent=False), "signed neither"),
        (lambda c, ca: _ocsp_answer(c, ca.certificate, *_impostor(ca.certificate)), "mobile CA did not certify"),
        (lambda c, ca: _ocsp_answer(c, ca.certificate, *_delegated(ca, ocsp_signing=False)), "not certified for OCSP"),
        (lambda c, ca: _ocsp_answer(c, ca.certificate, *_delegated(ca, stranger=True)), "mobile CA did not certify"),
        (lambda c, ca: _ocsp_answer(c, ca.certificate, *_delegated(ca, valid_until=NOW - timedelta(days=1))),
         "not valid at the time"),
        (lambda c, ca: _ocsp_answer(c, ca.certificate, ca.key, serial=c.serial_number + 1), "not about this cert"),
        (lambda c, ca: _ocsp_answer(c, ca.certificate, ca.key, this_update=NOW - timedelta(hours=2)), "stale"),
        (lambda c, ca: _ocsp_answer(c, ca.certificate, ca.key, this_update=NOW + timedelta(hours=1)), "after the time"),
        (lambda c, ca: ca_status.unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER), "answered try later"),
        (lambda c, ca: b"<html>", "not an OCSP response"),
    ],
    ids=["impostor", "impostor-sent", "delegated-without-ocsp-signing", "delegated-by-a-stranger", "delegated-expired",
         "another-serial", "stale", "future", "try-later", "garbage"],
)
def test_an_ocsp_answer_the_ca_did_not_give_is_not_believed(mobile_ca, forge, reason):
    certificate = _unstored(mobile_ca, "http://127.0.0.1:9")
    with pytest.raises(RevocationUnknown, match=reason):
        check_ocsp_response(forge(certificate, mobile_ca), certificate, mobile_ca.certificate)


def _delegated(ca: MobileCA, *, ocsp_signing=True, stranger=False, valid_until=None):
    """The key and certificate of a responder the mobile CA (or, ``stranger``, someone else under its name)
    certified."""
    issuer_key = ec.generate_private_key(ec.SECP256R1()) if stranger else ca.key
    key, certificate = _responder(ca.certificate, issuer_key, ocsp_signing=ocsp_signing, valid_until=valid_until)
    return key, certificate


def test_an_answer_of_a_responder_the_ca_certified_for_ocsp_signing_is_believed(mobile_ca):
    certificate = _unstored(mobile_ca, "http://127.0.0.1:9")
    key, responder = _delegated(mobile_ca)
    for kind, outcome in ((ocsp.OCSPCertStatus.GOOD, None), (ocsp.OCSPCertStatus.REVOKED, CertificateRevoked)):
        answer = _ocsp_answer(certificate, mobile_ca.certificate, key, signer=responder, status=kind)
        if outcome is None:
            assert check_ocsp_response(answer, certificate, mobile_ca.certificate).source == "the OCSP answer given"
        else:
            with pytest.raises(outcome, match=r"keyCompromise"):
                check_ocsp_response(answer, certificate, mobile_ca.certificate)


def _crl_of(issuer_name: x509.Name, key, *, this_update=None, next_update=None, delta=False,
            revoked: x509.Certificate | None = None, point: str | x509.RelativeDistinguishedName | None = None,
            ) -> bytes:
    """A CRL under ``issuer_name`` signed with ``key``, listing ``revoked``; of the distribution point ``point``
    (a URL, or a name relative to the issuer's) when given."""
    this_update = this_update or NOW - timedelta(minutes=1)
    builder = (
        x509.CertificateRevocationListBuilder().issuer_name(issuer_name).last_update(this_update)
        .next_update(next_update or this_update + timedelta(days=1))
    )
    if delta:
        builder = builder.add_extension(x509.DeltaCRLIndicator(1), critical=True)
    if revoked is not None:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(revoked.serial_number).revocation_date(this_update).build()
        )
    if point is not None:
        full_name = [x509.UniformResourceIdentifier(point)] if isinstance(point, str) else None
        relative_name = None if isinstance(point, str) else point
        builder = builder.add_extension(x509.IssuingDistributionPoint(
            full_name, relative_name, only_contains_user_certs=True, only_contains_ca_certs=False,
            only_some_reasons=None, indirect_crl=False, only_contains_attribute_certs=False,
        ), critical=True)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda ca: _crl_of(ca.certificate.subject, ca.key, this_update=NOW - timedelta(days=2)), "stale"),
        (lambda ca: _crl_of(ca.certificate.subject, ec.generate_private_key(ec.SECP256R1())), "not signed by"),
        (lambda ca: _crl_of(_name("Another CA"), ca.key), "not the mobile CA's"),
        (lambda ca: _crl_of(ca.certificate.subject, ca.key, delta=True), "delta CRL"),
        (lambda ca: b"-----BEGIN X509 CRL-----\nnot one\n-----END X509 CRL-----\n", "not a CRL"),
    ],
    ids=["stale", "stranger", "another-issuer", "delta", "garbage"],
)
def test_a_crl_the_ca_did_not_publish_now_is_not_believed(mobile_ca, make, reason):
    certificate = _unstored(mobile_ca, "http://127.0.0.1:9")
    assert check_crl(_crl_of(mobile_ca.certificate.subject, mobile_ca.key), certificate, mobile_ca.certificate)
    with pytest.raises(RevocationUnknown, match=reason):
        check_crl(make(mobile_ca), certificate, mobile_ca.certificate)


def test_a_crl_of_another_distribution_point_than_the_certificates_is_not_believed(mobile_ca):
    certificate = _unstored(mobile_ca, "http://127.0.0.1:9")  # its CRL: http://127.0.0.1:9/pki/mobile/ca.crl
    own = _crl_of(mobile_ca.certificate.subject, mobile_ca.key, revoked=certificate,
                  point=StatusUrls.under("http://127.0.0.1:9").crl)
    with pytest.raises(CertificateRevoked):  # a partition that is the certificate's own: believed
        check_crl(own, certificate, mobile_ca.certificate)

    for point, reason in (
        ("http://127.0.0.1:9/pki/mobile/other.crl", "distribution point http://127.0.0.1:9/pki/mobile/other.crl, "),
        (x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, "CRL1")]), "relative to its issuer"),
    ):  # the CA's partition for other certificates does not list this one: not "good"
        other = _crl_of(mobile_ca.certificate.subject, mobile_ca.key, point=point)
        with pytest.raises(RevocationUnknown, match=reason):
            check_crl(other, certificate, mobile_ca.certificate)


def test_nothing_is_asked_about_a_certificate_the_ca_did_not_issue(mobile_ca, request_recorder):
    key, impostor = _impostor(mobile_ca.certificate)  # under the mobile CA's name, naming the recorder's address
    stranger = _unstored(MobileCA(impostor, key), request_recorder.url)
    with pytest.raises(RevocationUnknown, match="not issued by this CA"):
        status(stranger, mobile_ca.certificate)
    assert request_recorder.requests == []
    with pytest.raises(RevocationUnknown, match="404"):  # asked of its own issuer, it is asked
        status(stranger, impostor)
    assert request_recorder.requests == ["POST /pki/mobile/ocsp", "GET /pki/mobile/ca.crl"]


def test_a_redirect_is_not_followed(request_recorder):
    request_recorder.redirect_to = "http://127.0.0.1:9/elsewhere"
    with pytest.raises(RevocationUnknown, match="302"):
        fetch_url(f"{request_recorder.url}/ca.crl")
    assert request_recorder.requests == ["GET /ca.crl"]


# -- the command line -----------------------------------------------------------------------------------------


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "twfido.verify", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def test_the_command_line_checks_the_status_online_or_from_what_was_downloaded(app, served, phone, mobile_ca, pki,
                                                                                 tmp_path):
    (tmp_path / "response").write_text(phone.approve())
    common = (f"@{tmp_path / 'response'}", "--cert", base64.b64encode(phone.der).decode(),
              "--ca", str(pki.directory / "mobile-ca.pem"), "--rp-id", RP_ID)

    good = _run(*common)
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["revocation"]["source"] == f"the OCSP responder {served.ocsp}"
    assert json.loads(good.stdout)["revocation"]["caveat"] is None and "note:" not in good.stderr
    (tmp_path / "good.der").write_bytes(fetch_url(served.ocsp, _ocsp_request(phone.certificate, mobile_ca.certificate)))
    kept = _run(*common, "--ocsp-response", str(tmp_path / "good.der"))  # no nonce of ours: as of its thisUpdate
    assert kept.returncode == 0, kept.stderr
    this_update = datetime.fromisoformat(json.loads(kept.stdout)["revocation"]["this_update"])
    assert f"note: the status is as of {this_update:%Y-%m-%d %H:%M:%S} UTC, the thisUpdate of an OCSP answer" \
        in kept.stderr
    assert json.loads(kept.stdout)["revocation"]["caveat"] in kept.stderr
    unchecked = _run(*common, "--no-revocation-check")
    assert unchecked.returncode == 0 and "revocation not checked" in unchecked.stderr
    assert json.loads(unchecked.stdout)["revocation"] == {"status": "not checked"}
    assert _run(*common, "--no-revocation-check", "--crl", "x").returncode == 2  # one or the other

    _change(app, phone, MobileCertificates.revoke_certificates, "cessationOfOperation")
    (tmp_path / "ca.crl").write_bytes(fetch_url(served.crl))
    (tmp_path / "ocsp.der").write_bytes(fetch_url(served.ocsp, _ocsp_request(phone.certificate, mobile_ca.certificate)))
    served.down.update({"/pki/mobile/ocsp", "/pki/mobile/ca.crl"})  # offline: nothing is fetched
    for option, source in (("--crl", "the CRL given"), ("--ocsp-response", "the OCSP answer given")):
        revoked = _run(*common, option, str(tmp_path / ("ca.crl" if option == "--crl" else "ocsp.der")))
        assert revoked.returncode == 1, revoked.stderr
        assert "not verified: the certificate is revoked (cessationOfOperation)" in revoked.stderr
        assert source in revoked.stderr

    unknown = _run(*common)  # online, with both down
    assert unknown.returncode == 3 and "status is unknown" in unknown.stderr and "503" in unknown.stderr
    (tmp_path / "stale.crl").write_bytes(ca_status.sign_crl(  # the CA's own, past its nextUpdate
        mobile_ca.certificate, mobile_ca.key, [], number=1, this_update=NOW - timedelta(days=3),
        next_update=NOW - timedelta(days=2),
    ))
    old = _run(*common, "--crl", str(tmp_path / "stale.crl"))
    assert old.returncode == 3 and "the CRL is stale" in old.stderr


def test_an_ocsp_answer_openssl_fetched_is_the_verifiers_offline_input(app, served, phone, pki, tmp_path):
    """The README's way: ``openssl ocsp`` asks the responder the certificate names (a SHA-1 CertID, its own
    nonce) and keeps the answer; ``--ocsp-response`` checks it later, offline."""
    openssl = shutil.which("openssl")
    if openssl is None:
        missing("openssl is not installed")
    shutil.copy(pki.directory / "mobile-ca.pem", tmp_path / "mobile-ca.pem")
    (tmp_path / "phone.pem").write_bytes(phone.certificate.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "response").write_text(phone.approve())
    _change(app, phone, MobileCertificates.hold_certificates)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([openssl, *args], cwd=tmp_path, capture_output=True, text=True, timeout=30)

    url = run("x509", "-in", "phone.pem", "-noout", "-ocsp_uri").stdout.strip()
    assert url == served.ocsp
    asked = run("ocsp", "-issuer", "mobile-ca.pem", "-cert", "phone.pem", "-url", url, "-VAfile", "mobile-ca.pem",
                "-respout", "ocsp.der")
    assert asked.returncode == 0 and "Response verify OK" in asked.stderr, asked.stderr
    assert "phone.pem: revoked" in asked.stdout and "Reason: certificateHold" in asked.stdout

    served.down.update({"/pki/mobile/ocsp", "/pki/mobile/ca.crl"})
    checked = _run(f"@{tmp_path / 'response'}", "--cert", base64.b64encode(phone.der).decode(),
                   "--ca", str(tmp_path / "mobile-ca.pem"), "--ocsp-response", str(tmp_path / "ocsp.der"))
    assert checked.returncode == 1 and "revoked (certificateHold)" in checked.stderr, checked.stderr
