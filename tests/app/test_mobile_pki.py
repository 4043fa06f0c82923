"""The mobile CA's public status, checked as a relying party would: over real HTTP, with openssl.

Every mobile certificate names its OCSP responder, its CA certificate and its CRL; a held or revoked
certificate is on the CRL and OCSP says so; certificates from before this get reissued by the CLI.
"""

from __future__ import annotations

import base64
import random
import re
import secrets
import shutil
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta

import pytest
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID
from sqlalchemy import func, select, update
from werkzeug.serving import make_server

from app import wiring
from app.extensions import db
from app.models import AuditEvent, Device, MobileCertificate, MobileCrl, utcnow
from app.services.mobile_certificates import MobileCA, MobileCertificates, StatusUrls
from tests.factories import make_account
from tests.support import card_login, card_of, missing
from webauthn.phone import PhoneBrowser, SoftwareAuthenticator

ORIGIN = "http://localhost"


# -- a relying party's view: the app served over HTTP, openssl --------------------------------------------


@pytest.fixture
def served(app):
    """The app on a real port, and its PUBLIC_URL (what certificates name) set to it."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    app.config.update(PUBLIC_URL=url, WEBAUTHN_RP_ID="localhost", WEBAUTHN_ORIGINS=(ORIGIN,))
    wiring.install(app)  # the parts are built from the configuration: again, for the URL just chosen
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield url
    server.shutdown()
    thread.join()


@pytest.fixture
def openssl():
    path = shutil.which("openssl")
    if path is None:
        missing("openssl is not installed")

    def run(*args: str, cwd) -> subprocess.CompletedProcess:
        return subprocess.run([path, *args], cwd=cwd, capture_output=True, text=True, timeout=30)

    return run


@pytest.fixture
def files(tmp_path, pki):
    """A directory with the demo root and the mobile CA as PEM, where certificates under test are written."""
    shutil.copy(pki.directory / "root.pem", tmp_path / "root.pem")
    shutil.copy(pki.directory / "mobile-ca.pem", tmp_path / "mobile-ca.pem")
    return tmp_path


def _get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers["Content-Type"], response.read()


def _post(url: str, body: bytes) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/ocsp-request"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.headers["Content-Type"], response.read()


def _answer(url: str, body: bytes | None = None) -> tuple[int, bytes]:
    """The status and body of a GET (or, with ``body``, a POST), an error status included."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/ocsp-request"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _cert_id(request: ocsp.OCSPRequest) -> dict:
    """The CertID of a one-entry request, for ``_request_der``."""
    return {
        "hash_algorithm": {"algorithm": request.hash_algorithm.name},
        "issuer_name_hash": request.issuer_name_hash,
        "issuer_key_hash": request.issuer_key_hash,
        "serial_number": request.serial_number,
    }


def _request_der(*cert_ids: dict) -> bytes:
    """An OCSP request asking about each of ``cert_ids`` (cryptography's builder makes one-entry requests only)."""
    return asn1_ocsp.OCSPRequest({"tbs_request": {"request_list": [{"req_cert": c} for c in cert_ids]}}).dump()


def _ocsp_status(openssl, files, served, certificate: x509.Certificate) -> str:
    """What ``openssl ocsp`` says of ``certificate``, after verifying the answer up to the demo root."""
    (files / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    result = openssl(
        "ocsp", "-issuer", "mobile-ca.pem", "-cert", "cert.pem", "-url", f"{served}/pki/mobile/ocsp",
        "-CAfile", "root.pem", cwd=files,
    )
    assert result.returncode == 0, result.stderr
    assert "Response verify OK" in result.stderr and "WARNING" not in result.stderr + result.stdout  # nonce echoed
    return result.stdout


def _crl_text(openssl, files, served) -> str:
    """The CRL fetched from the URL the certificates name, checked against the mobile CA and printed."""
    status, content_type, der = _get(f"{served}/pki/mobile/ca.crl")
    assert status == 200 and content_type == "application/pkix-crl"
    (files / "crl.der").write_bytes(der)
    signed = openssl("crl", "-inform", "DER", "-in", "crl.der", "-CAfile", "mobile-ca.pem", "-noout", cwd=files)
    assert signed.returncode == 0 and "verify OK" in signed.stderr, signed.stderr
    text = openssl("crl", "-inform", "DER", "-in", "crl.der", "-text", "-noout", cwd=files)
    assert text.returncode == 0, text.stderr
    return text.stdout


def _listed(crl_text: str) -> dict[int, str]:
    """Serial → reason text ("" when none is stated) of the CRL's entries."""
    entries = {}
    for block in crl_text.split("Serial Number: ")[1:]:
        serial, _, rest = block.partition("\n")
        reason = re.search(r"CRL Reason Code: *\n\s+(.+)", rest)
        entries[int(serial.strip(), 16)] = reason.group(1).strip() if reason else ""
    return entries


def _verify(openssl, files, certificate: x509.Certificate) -> subprocess.CompletedProcess:
    """``openssl verify`` up to the demo root, downloading the CRL from the certificate's distribution point."""
    (files / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return openssl(
        "verify", "-CAfile", "root.pem", "-untrusted", "mobile-ca.pem", "-crl_check", "-crl_download", "cert.pem",
        cwd=files,
    )


# -- devices, bound the way the phone does it ----------------------------------------------------------------


@pytest.fixture
def person(client, pki, app):
    """王小明, with a confirmed email, logged in with his card."""
    with app.app_context():
        account = make_account(pki, card_of(pki, "A123456789"))
        account.email_verified_at = utcnow()
        db.session.commit()
    assert card_login(client, pki, card_of(pki, "A123456789")).get_json()["status"] == "logged_in"
    return client


def _bind(person, app) -> int:
    token = person.post("/api/v1/bindings", json={}).get_json()["url"].rsplit("/", 1)[1]
    phone_http = app.test_client()
    options = phone_http.post(f"/api/v1/m/bind/{token}/options", json={}).get_json()["publicKey"]
    credential = PhoneBrowser(SoftwareAuthenticator(None)).create(options, origin=ORIGIN)
    response = phone_http.post(f"/api/v1/m/bind/{token}/complete", json={"credential": credential, "device_name": "手機"})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["device"]["id"]


def _certificate(app, device_id: int) -> x509.Certificate:
    with app.app_context():
        return x509.load_der_x509_certificate(db.session.get(Device, device_id).certificate.der)


def _change(app, device_id: int, action, *args) -> list[str]:
    """Run a status change (a ``MobileCertificates`` method) on the device's certificates and commit it, as a
    caller does."""
    with app.app_context():
        changed = action(wiring.parts().mobile_certificates, db.session.get(Device, device_id), *args)
        db.session.commit()
        return changed


# -- tests -----------------------------------------------------------------------------------------------


def test_an_issued_certificate_names_its_ocsp_responder_ca_certificate_and_crl(served, person, app, pki):
    certificate = _certificate(app, _bind(person, app))
    aia = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [(d.access_method, d.access_location.value) for d in aia] == [
        (AuthorityInformationAccessOID.OCSP, f"{served}/pki/mobile/ocsp"),
        (AuthorityInformationAccessOID.CA_ISSUERS, f"{served}/pki/mobile/ca.cer"),
    ]
    [point] = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [name.value for name in point.full_name] == [f"{served}/pki/mobile/ca.crl"]

    status, content_type, der = _get(f"{served}/pki/mobile/ca.cer")  # where caIssuers points
    assert status == 200 and content_type == "application/pkix-cert"
    issuer = x509.load_der_x509_certificate(der)
    assert issuer.public_bytes(serialization.Encoding.PEM) == (pki.directory / "mobile-ca.pem").read_bytes()
    certificate.verify_directly_issued_by(issuer)


def test_a_revoked_certificate_is_revoked_on_the_crl_and_in_ocsp(served, person, app, openssl, files):
    device_id = _bind(person, app)
    certificate = _certificate(app, device_id)
    assert "cert.pem: good" in _ocsp_status(openssl, files, served, certificate)
    assert _verify(openssl, files, certificate).stdout.strip() == "cert.pem: OK"
    before = _crl_text(openssl, files, served)
    assert certificate.serial_number not in _listed(before)

    assert _change(app, device_id, MobileCertificates.revoke_certificates, "keyCompromise") == [
        f"{certificate.serial_number:x}"
    ]

    after = _crl_text(openssl, files, served)
    assert _listed(after)[certificate.serial_number] == "Key Compromise"
    number = lambda text: int(re.search(r"CRL Number: *\n\s+(\d+)", text).group(1))  # noqa: E731
    assert number(after) > number(before)
    assert re.search(r"Next Update: \w+", after)
    refused = _verify(openssl, files, certificate)
    assert refused.returncode != 0 and "certificate revoked" in refused.stdout + refused.stderr
    answer = _ocsp_status(openssl, files, served, certificate)
    assert "cert.pem: revoked" in answer and "Reason: keyCompromise" in answer and "Revocation Time:" in answer


def test_a_held_certificate_is_revoked_for_hold_until_released_and_a_revoked_one_is_never_released(
    served, person, app, openssl, files
):
    device_id = _bind(person, app)
    certificate = _certificate(app, device_id)

    _change(app, device_id, MobileCertificates.hold_certificates)
    answer = _ocsp_status(openssl, files, served, certificate)
    assert "cert.pem: revoked" in answer and "Reason: certificateHold" in answer
    assert _listed(_crl_text(openssl, files, served))[certificate.serial_number] == "Certificate Hold"

    _change(app, device_id, MobileCertificates.release_certificates)
    assert "cert.pem: good" in _ocsp_status(openssl, files, served, certificate)
    assert certificate.serial_number not in _listed(_crl_text(openssl, files, served))
    assert _verify(openssl, files, certificate).returncode == 0

    _change(app, device_id, MobileCertificates.hold_certificates)
    with app.app_context():
        held_at = db.session.get(Device, device_id).certificate.revoked_at
    _change(app, device_id, MobileCertificates.revoke_certificates, "cessationOfOperation")
    assert _change(app, device_id, MobileCertificates.release_certificates) == []
    answer = _ocsp_status(openssl, files, served, certificate)
    assert "cert.pem: revoked" in answer and "Reason: cessationOfOperation" in answer
    with app.app_context():  # not trusted since it was held: the hold's time stays the revocation time
        stored = db.session.get(Device, device_id).certificate
        assert stored.revoked and stored.revoked_at == held_at


def test_ocsp_says_unknown_for_a_serial_that_is_not_ours(served, app, openssl, files):
    result = openssl(
        "ocsp", "-issuer", "mobile-ca.pem", "-serial", "0x1234", "-url", f"{served}/pki/mobile/ocsp",
        "-CAfile", "root.pem", cwd=files,
    )
    assert result.returncode == 0 and "Response verify OK" in result.stderr, result.stderr
    assert "0x1234: unknown" in result.stdout


def test_ocsp_for_another_issuer_is_unknown(served, person, app, pki):
    certificate = _certificate(app, _bind(person, app))
    # The right serial, under another CA's name and key: not a certificate of ours.
    request = ocsp.OCSPRequestBuilder().add_certificate(certificate, pki.issuer_certificate, hashes.SHA256()).build()
    _, _, der = _post(f"{served}/pki/mobile/ocsp", request.public_bytes(serialization.Encoding.DER))
    assert ocsp.load_der_ocsp_response(der).certificate_status == ocsp.OCSPCertStatus.UNKNOWN


@pytest.mark.parametrize("body", [b"", b"garbage", b"\x30\x03\x02\x01\x01", b"\x30" * 2000])
def test_a_malformed_ocsp_request_gets_malformed_request(served, app, body):
    status, content_type, der = _post(f"{served}/pki/mobile/ocsp", body)
    assert status == 200 and content_type == "application/ocsp-response"
    assert ocsp.load_der_ocsp_response(der).response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST


@pytest.mark.parametrize("path", ["!!!", "AAAA", "not%20base64", "%FF%FE", "MA=="])
def test_a_malformed_ocsp_get_gets_malformed_request(served, app, path):
    status, _, der = _get(f"{served}/pki/mobile/ocsp/{path}")
    assert status == 200
    assert ocsp.load_der_ocsp_response(der).response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_a_request_for_several_certificates_gets_malformed_request(served, person, app, pki):
    ca = x509.load_pem_x509_certificate((pki.directory / "mobile-ca.pem").read_bytes())
    certificates = [_certificate(app, _bind(person, app)) for _ in range(2)]
    cert_ids = [_cert_id(ocsp.OCSPRequestBuilder().add_certificate(c, ca, hashes.SHA1()).build()) for c in certificates]
    status, one = _answer(f"{served}/pki/mobile/ocsp", _request_der(cert_ids[0]))  # each alone is answered
    assert status == 200 and ocsp.load_der_ocsp_response(one).certificate_status == ocsp.OCSPCertStatus.GOOD

    both = _request_der(*cert_ids)
    for status, der in (
        _answer(f"{served}/pki/mobile/ocsp", both),
        _answer(f"{served}/pki/mobile/ocsp/{urllib.parse.quote(base64.b64encode(both).decode(), safe='')}"),
    ):
        assert status == 200
        assert ocsp.load_der_ocsp_response(der).response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_no_ocsp_request_however_broken_gets_a_server_error(served, app, pki):
    ca = x509.load_pem_x509_certificate((pki.directory / "mobile-ca.pem").read_bytes())
    name_hash = hashes.Hash(hashes.SHA1())
    name_hash.update(ca.subject.public_bytes())
    cert_id = {
        "hash_algorithm": {"algorithm": "sha1"},
        "issuer_name_hash": name_hash.finalize(),
        "issuer_key_hash": x509.SubjectKeyIdentifier.from_public_key(ca.public_key()).digest,  # SHA-1 of the key
        "serial_number": 0x1234,
    }
    valid = _request_der(cert_id)
    assert ocsp.load_der_ocsp_response(_answer(f"{served}/pki/mobile/ocsp", valid)[1]).certificate_status == (
        ocsp.OCSPCertStatus.UNKNOWN
    )
    rng = random.Random(6960)
    malformed = [
        b"",
        *(rng.randbytes(size) for size in (1, 7, 64, 4096)),
        b"\x30\x82\xff\xff" + rng.randbytes(32),  # a SEQUENCE longer than what follows
        *(valid[:cut] for cut in range(1, len(valid))),
        _request_der(),  # no entries
        _request_der(cert_id, cert_id),
        _request_der({**cert_id, "issuer_name_hash": b"\0" * 5}),  # not a SHA-1
        _request_der({**cert_id, "hash_algorithm": {"algorithm": "sha256"}}),  # SHA-1 hashes, said to be SHA-256
        _request_der({**cert_id, "hash_algorithm": {"algorithm": "md5"}, "issuer_name_hash": b"\0" * 16,
                      "issuer_key_hash": b"\0" * 16}),
        _request_der({**cert_id, "serial_number": -0x1234}),
    ]
    flipped = [valid[:at] + bytes([valid[at] ^ 0xFF]) + valid[at + 1:] for at in range(len(valid))]
    for body in malformed + flipped:
        encoded = urllib.parse.quote(base64.b64encode(body).decode(), safe="")
        for status, der in (_answer(f"{served}/pki/mobile/ocsp", body), _answer(f"{served}/pki/mobile/ocsp/{encoded}")):
            assert status == 200, body
            answered = ocsp.load_der_ocsp_response(der).response_status
            if body in malformed:
                assert answered == ocsp.OCSPResponseStatus.MALFORMED_REQUEST, body
            else:  # a flipped byte may still leave a request (of another serial, say)
                assert answered in (ocsp.OCSPResponseStatus.SUCCESSFUL, ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
    for path in (None, "", "=", "A", "AAA", "%00", "%E4%B8%AD", base64.b64encode(valid).decode()[:-3]):
        status, der = _answer(f"{served}/pki/mobile/ocsp" + ("" if path is None else f"/{path}"))  # None: no request
        assert status == 200, path
        assert ocsp.load_der_ocsp_response(der).response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST, path
    assert _answer(f"{served}/pki/mobile/ocsp/A%0AA")[0] == 404  # a path no route matches: not found, not an error


def test_an_overlong_nonce_gets_malformed_request(served, person, app, pki):
    certificate = _certificate(app, _bind(person, app))
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(certificate, x509.load_pem_x509_certificate((pki.directory / "mobile-ca.pem").read_bytes()),
                         hashes.SHA1())
        .add_extension(x509.OCSPNonce(b"n" * 33), critical=False)
        .build()
    )
    _, _, der = _post(f"{served}/pki/mobile/ocsp", request.public_bytes(serialization.Encoding.DER))
    assert ocsp.load_der_ocsp_response(der).response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_ocsp_over_get_answers_with_the_nonce_signed_by_the_ca(served, person, app, pki):
    certificate = _certificate(app, _bind(person, app))
    ca = x509.load_pem_x509_certificate((pki.directory / "mobile-ca.pem").read_bytes())
    # A request whose base64 has "/" (and "//", which must not be merged away) and "+", sent as it is.
    for _ in range(5000):
        nonce = secrets.token_bytes(16)
        request = (
            ocsp.OCSPRequestBuilder()
            .add_certificate(certificate, ca, hashes.SHA1())
            .add_extension(x509.OCSPNonce(nonce), critical=False)
            .build()
        )
        encoded = base64.b64encode(request.public_bytes(serialization.Encoding.DER)).decode()
        if "//" in encoded and "+" in encoded:
            break
    else:
        pytest.fail("no request with // and + in its base64")
    for path in (encoded, urllib.parse.quote(encoded, safe="")):
        status, content_type, der = _get(f"{served}/pki/mobile/ocsp/{path}")
        assert status == 200 and content_type == "application/ocsp-response"
        response = ocsp.load_der_ocsp_response(der)
        assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
        assert response.certificate_status == ocsp.OCSPCertStatus.GOOD
        assert response.serial_number == certificate.serial_number
        assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
        assert response.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(ca.public_key()).digest
        ca.public_key().verify(response.signature, response.tbs_response_bytes, ec.ECDSA(hashes.SHA256()))
        assert response.next_update_utc > response.this_update_utc


def test_the_crl_number_grows_with_every_change_and_a_stale_crl_is_replaced(served, person, app):
    device_id = _bind(person, app)

    def fetch() -> x509.CertificateRevocationList:
        return x509.load_der_x509_crl(_get(f"{served}/pki/mobile/ca.crl")[2])

    def number(crl) -> int:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number

    first = fetch()
    assert fetch().public_bytes(serialization.Encoding.DER) == first.public_bytes(serialization.Encoding.DER)  # stored
    assert first.next_update_utc - first.last_update_utc == app.config["MOBILE_CRL_VALIDITY"]
    numbers = [number(first)]
    for action in (MobileCertificates.hold_certificates, MobileCertificates.release_certificates):
        _change(app, device_id, action)
        numbers.append(number(fetch()))
    assert numbers == sorted(set(numbers)) and len(numbers) == 3

    with app.app_context():  # as if most of its validity had passed
        db.session.execute(update(MobileCrl).values(next_update=utcnow() + timedelta(minutes=5)))
        db.session.commit()
    fresh = fetch()
    assert number(fresh) == numbers[-1] + 1
    assert fresh.next_update_utc - fresh.last_update_utc == app.config["MOBILE_CRL_VALIDITY"]
    with app.app_context():
        assert db.session.scalar(select(MobileCrl.crl_number)) == number(fresh)


def test_fetches_of_a_stale_crl_at_the_same_time_replace_it_once(served, app):
    def number(der: bytes) -> int:
        return x509.load_der_x509_crl(der).extensions.get_extension_for_class(x509.CRLNumber).value.crl_number

    start = number(_get(f"{served}/pki/mobile/ca.crl")[2])
    with app.app_context():  # as if most of its validity had passed
        db.session.execute(update(MobileCrl).values(next_update=utcnow() + timedelta(minutes=5)))
        db.session.commit()
    fetches = 8
    barrier = threading.Barrier(fetches)
    answers = []

    def fetch():
        barrier.wait()
        answers.append(_answer(f"{served}/pki/mobile/ca.crl"))

    threads = [threading.Thread(target=fetch) for _ in range(fetches)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [status for status, _ in answers] == [200] * fetches, answers
    assert {number(der) for _, der in answers} == {start + 1}
    assert len({der for _, der in answers}) == 1  # signed once, by whichever came first
    with app.app_context():
        assert db.session.scalar(select(MobileCrl.crl_number)) == start + 1


def test_revocations_at_the_same_time_each_get_a_crl_number_and_both_are_listed(served, person, app):
    devices = [_bind(person, app), _bind(person, app)]
    serials = {_certificate(app, d).serial_number for d in devices}
    start = x509.load_der_x509_crl(_get(f"{served}/pki/mobile/ca.crl")[2])
    barrier = threading.Barrier(len(devices))
    errors = []

    def revoke(device_id):
        try:
            barrier.wait()
            _change(app, device_id, MobileCertificates.revoke_certificates, "keyCompromise")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=revoke, args=(d,)) for d in devices]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    crl = x509.load_der_x509_crl(_get(f"{served}/pki/mobile/ca.crl")[2])
    assert {entry.serial_number for entry in crl} == serials
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number == start.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number + 2


def test_a_reason_that_is_not_a_revocation_reason_is_refused_and_changes_nothing(person, app):
    device_id = _bind(person, app)
    for reason in ("certificateHold", "removeFromCRL", "key_compromise", "lost"):
        with app.app_context(), pytest.raises(ValueError):
            wiring.parts().mobile_certificates.revoke_certificates(db.session.get(Device, device_id), reason)
    with app.app_context():
        assert db.session.get(Device, device_id).certificate.revoked_at is None
        assert db.session.scalar(select(func.count()).select_from(MobileCrl)) == 0


def test_a_renewed_devices_older_certificate_is_superseded(served, person, app, openssl, files):
    device_id = _bind(person, app)
    old = _certificate(app, device_id)
    with app.app_context():  # bound a month ago: a renewal today moves its end (one bound today is refused)
        certificate = db.session.get(Device, device_id).certificate
        certificate.not_after -= timedelta(days=30)
        db.session.commit()
    assert person.post(f"/api/v1/devices/{device_id}/renew", json={}).status_code == 200
    with app.app_context():
        device = db.session.get(Device, device_id)
        wiring.parts().mobile_certificates.supersede_certificates(device, device.certificate)
        db.session.commit()
    new = _certificate(app, device_id)
    assert new.serial_number != old.serial_number
    assert "Reason: superseded" in _ocsp_status(openssl, files, served, old)
    assert "cert.pem: good" in _ocsp_status(openssl, files, served, new)


def _make_legacy(app, device_id: int) -> x509.Certificate:
    """Replace the device's certificate with one as issued before certificates named their status URLs."""
    with app.app_context():
        ca = wiring.parts().mobile_certificates.ca
        device = db.session.get(Device, device_id)
        stored = device.certificate
        legacy = MobileCA(ca.certificate, ca.key).issue(
            cose_public_key=device.public_key, name="王小明", pseudonym="0123456789ABCDEF",
            credential_id=device.credential_id, not_before=stored.not_before,
        )
        assert StatusUrls.named_by(legacy) is None
        stored.serial_hex = f"{legacy.serial_number:x}"
        stored.der = legacy.public_bytes(serialization.Encoding.DER)
        db.session.commit()
        return legacy


def test_reissue_gives_certificates_from_before_their_status_urls_once(served, person, app, openssl, files):
    live, suspended, revoked = (_bind(person, app) for _ in range(3))
    legacy = {device_id: _make_legacy(app, device_id) for device_id in (live, suspended, revoked)}
    _change(app, suspended, MobileCertificates.hold_certificates)
    _change(app, revoked, MobileCertificates.revoke_certificates, "cessationOfOperation")
    with app.app_context():
        db.session.get(Device, revoked).status = "revoked"
        db.session.commit()

    result = app.test_cli_runner().invoke(args=["mobile-certificates", "reissue"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("2 certificate(s) reissued")

    for device_id in (live, suspended):
        old, new = legacy[device_id], _certificate(app, device_id)
        assert new.serial_number != old.serial_number
        assert new.public_key() == old.public_key()
        assert new.subject == old.subject and new.not_valid_after_utc == old.not_valid_after_utc
        assert StatusUrls.named_by(new) == StatusUrls.under(served)
        assert "Reason: superseded" in _ocsp_status(openssl, files, served, old)
    assert "cert.pem: good" in _ocsp_status(openssl, files, served, _certificate(app, live))
    assert "Reason: certificateHold" in _ocsp_status(openssl, files, served, _certificate(app, suspended))
    assert _certificate(app, revoked).serial_number == legacy[revoked].serial_number  # revoked stays as it was
    listed = _listed(_crl_text(openssl, files, served))
    assert listed[legacy[live].serial_number] == "Superseded"
    assert listed[legacy[suspended].serial_number] == "Superseded"

    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(MobileCertificate))
        events = db.session.scalars(select(AuditEvent).where(AuditEvent.tag == "device:certificate:reissued")).all()
        assert sorted(e.details["device"] for e in events) == sorted([live, suspended])
        assert all(e.actor == "cli" for e in events)
    again = app.test_cli_runner().invoke(args=["mobile-certificates", "reissue"])
    assert again.exit_code == 0 and again.output.strip() == "0 certificate(s) reissued"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(MobileCertificate)) == count


def test_migration_0006_revokes_revoked_devices_certificates_and_holds_suspended_ones(app):
    from flask_migrate import downgrade, upgrade
    from sqlalchemy import text

    with app.app_context():
        downgrade(revision="0005")
        now = utcnow().replace(tzinfo=None) if db.engine.dialect.name == "sqlite" else utcnow()
        with db.engine.begin() as connection:
            account = connection.execute(
                text("INSERT INTO accounts (national_id_hash, national_id_masked, name, email, phone, created_at) "
                     "VALUES ('h', 'A12****789', '王小明', 'a@example.com', '+886912345678', :now) RETURNING id"),
                {"now": now},
            ).scalar_one()
            for index, status in enumerate(("active", "suspended", "revoked")):
                device = connection.execute(
                    text("INSERT INTO devices (account_id, name, credential_id, public_key, sign_count, aaguid, "
                         "attestation_format, attestation_type, transports, backup_eligible, backup_state, bound_at, "
                         "status, revoked_at, possibly_cloned) VALUES (:account, 'p', :credential, :key, 0, 'x', "
                         "'none', 'none', '[]', false, false, :now, :status, :revoked_at, false) RETURNING id"),
                    {"account": account, "credential": bytes([index]), "key": b"k", "now": now, "status": status,
                     "revoked_at": now - timedelta(days=1) if status == "revoked" else None},
                ).scalar_one()
                connection.execute(
                    text("INSERT INTO mobile_certificates (device_id, serial_hex, not_before, not_after, der, "
                         "issued_at) VALUES (:device, :serial, :now, :later, :der, :now)"),
                    {"device": device, "serial": status, "now": now, "later": now + timedelta(days=365), "der": b"d"},
                )
        upgrade()
        stored = {c.serial_hex: c for c in db.session.scalars(select(MobileCertificate))}
        assert (stored["active"].revoked_at, stored["active"].revocation_reason) == (None, None)
        assert stored["suspended"].on_hold and stored["suspended"].revoked_at is not None
        assert stored["revoked"].revoked and stored["revoked"].revocation_reason == "unspecified"
        assert abs(stored["revoked"].revoked_at - (utcnow() - timedelta(days=1))) < timedelta(minutes=1)  # the device's
