"""twfido.signed_response: a WebAuthn approval built here as a phone builds it, verified offline.

The phone's key, its certificate, the mobile CA and its CRL are made in the test with cryptography; the
assertion is laid out as WebAuthn lays it out (rpIdHash ‖ flags ‖ signCount, then the client data's hash).
The status as MoCert's own mobile CA publishes it is tests/twfido/test_revocation.py's.
"""

import base64
import hashlib
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from twfido import base64url, challenge
from twfido.revocation import CertificateRevoked, RevocationUnknown, Sources
from twfido.signed_response import SignedResponse, SignedResponseError, verify

ROOT = Path(__file__).resolve().parents[2]
RP_ID = "mocert.example.tw"
NOW = datetime.now(timezone.utc)
INPUT = challenge.challenge_input(
    hint="登入臺灣雲市集", op_code="ATH", sign_data=None, sp_service_id="SP0001", sp_ticket_id="tid", transaction_id="t-1"
)


def _certificate(subject, issuer, public_key, signing_key, *, ca=False, days=365, status_at=None):
    """A certificate; with ``status_at`` (a URL) naming an OCSP responder and a CRL there, as MoCert's do."""
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
        .serial_number(x509.random_serial_number()).not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if status_at:
        builder = builder.add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(f"{status_at}/ocsp"))]), critical=False)
        builder = builder.add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
            [x509.UniformResourceIdentifier(f"{status_at}/ca.crl")], None, None, None)]), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def _crl(ca, ca_key, *revoked):
    """The CA's current CRL (DER), listing ``revoked`` (certificates) as key compromises."""
    builder = (
        x509.CertificateRevocationListBuilder().issuer_name(ca.subject)
        .last_update(NOW - timedelta(minutes=1)).next_update(NOW + timedelta(days=1))
    )
    for certificate in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(certificate.serial_number).revocation_date(NOW)
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False).build()
        )
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@pytest.fixture(scope="module")
def pki():
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate(_name("Mobile CA"), _name("Mobile CA"), ca_key.public_key(), ca_key, ca=True)
    phone_key = ec.generate_private_key(ec.SECP256R1())
    phone = _certificate(_name("王小明's phone"), ca.subject, phone_key.public_key(), ca_key)
    return ca, ca_key, phone, phone_key


@pytest.fixture(scope="module")
def crl(pki):
    """The CA's CRL, which does not list the phone: its status, learnt offline."""
    return Sources(crl=_crl(pki[0], pki[1]), fetch=None)


def _approval(phone_key, *, challenge_input=INPUT, flags=0x05, rp_id=RP_ID, kind="webauthn.get", tamper=None):
    client_data = json.dumps({
        "type": kind, "challenge": base64url.encode(challenge.challenge(challenge_input)),
        "origin": f"https://{rp_id}", "crossOrigin": False,
    }).encode()
    authenticator_data = hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + (7).to_bytes(4, "big")
    signature = phone_key.sign(authenticator_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
    response = SignedResponse(challenge_input, b"credential-1", authenticator_data, client_data, signature)
    return (tamper(response) if tamper else response).encode()


def _der(certificate):
    return certificate.public_bytes(serialization.Encoding.DER)


def test_an_approval_verifies_and_says_what_was_approved(pki, crl):
    ca, _, phone, phone_key = pki
    approval = verify(_approval(phone_key), _der(phone), ca=ca, expected_input=INPUT, rp_id=RP_ID, revocation=crl)
    assert approval.challenge_input == INPUT and approval.sign_count == 7 and approval.certificate == phone
    assert approval.revocation.source == "the CRL given"


def test_an_approval_by_a_revoked_certificate_is_refused_saying_why(pki):
    ca, ca_key, phone, phone_key = pki
    with pytest.raises(CertificateRevoked, match=r"revoked \(keyCompromise\)") as refused:
        verify(_approval(phone_key), _der(phone), ca=ca, revocation=Sources(crl=_crl(ca, ca_key, phone), fetch=None))
    assert refused.value.reason == x509.ReasonFlags.key_compromise


def test_the_status_is_checked_unless_told_not_to_and_none_to_be_had_is_not_good(pki):
    ca, _, phone, phone_key = pki
    with pytest.raises(RevocationUnknown, match="names no OCSP responder and no CRL"):
        verify(_approval(phone_key), _der(phone), ca=ca)  # by default, fetched from where it names: nowhere
    with pytest.raises(RevocationUnknown, match="none is fetched"):
        verify(_approval(phone_key), _der(phone), ca=ca, revocation=Sources(fetch=None))
    assert verify(_approval(phone_key), _der(phone), ca=ca, revocation=None).revocation is None


def test_nothing_is_fetched_for_an_approval_that_fails_the_other_checks(pki, crl, request_recorder):
    ca, ca_key, _, phone_key = pki
    named = _certificate(_name("王小明's phone"), ca.subject, phone_key.public_key(), ca_key,
                         status_at=request_recorder.url)
    with pytest.raises(SignedResponseError, match="another site"):
        verify(_approval(phone_key), _der(named), ca=ca, rp_id="evil.example")
    assert request_recorder.requests == []
    with pytest.raises(RevocationUnknown, match="404"):  # the same, passing the rest: its status is asked
        verify(_approval(phone_key), _der(named), ca=ca, rp_id=RP_ID)
    assert request_recorder.requests == ["POST /ocsp", "GET /ca.crl"]


def test_the_format_is_base64url_json_with_the_text_and_base64url_parts(pki):
    document = json.loads(base64.urlsafe_b64decode(_approval(pki[3]) + "=="))
    assert document["format"] == "mocert-webauthn-v1" and document["challenge_input"] == INPUT
    assert set(document) == {"format", "challenge_input", "credential_id", "authenticator_data",
                             "client_data_json", "signature"}


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"flags": 0x01}, "did not verify the person"),
        ({"rp_id": "evil.example"}, "another site"),
        ({"kind": "webauthn.create"}, "not an assertion"),
        ({"tamper": lambda r: SignedResponse("{}", r.credential_id, r.authenticator_data, r.client_data_json,
                                             r.signature)}, "not the SHA-256"),
        ({"tamper": lambda r: SignedResponse(r.challenge_input, r.credential_id, r.authenticator_data[:-1] + b"\x08",
                                             r.client_data_json, r.signature)}, "does not verify"),
    ],
    ids=["no-user-verification", "other-site", "registration", "other-input", "altered-data"],
)
def test_an_approval_that_does_not_prove_it_is_refused_saying_why(pki, kwargs, reason):
    ca, _, phone, phone_key = pki
    with pytest.raises(SignedResponseError, match=reason):
        verify(_approval(phone_key, **kwargs), _der(phone), ca=ca, rp_id=RP_ID)


def test_an_approval_of_another_request_is_refused(pki):
    ca, _, phone, phone_key = pki
    other = INPUT.replace("t-1", "t-2")
    with pytest.raises(SignedResponseError, match="not that of this request"):
        verify(_approval(phone_key), _der(phone), ca=ca, expected_input=other)


def test_a_certificate_of_another_ca_or_out_of_its_validity_is_refused(pki):
    ca, ca_key, phone, phone_key = pki
    stranger_key = ec.generate_private_key(ec.SECP256R1())
    stranger = _certificate(_name("Mobile CA"), _name("Mobile CA"), stranger_key.public_key(), stranger_key, ca=True)
    with pytest.raises(SignedResponseError, match="not issued by this mobile CA"):
        verify(_approval(phone_key), _der(phone), ca=stranger)
    with pytest.raises(SignedResponseError, match="not valid at the time"):
        verify(_approval(phone_key), _der(phone), ca=ca, at=NOW + timedelta(days=400))
    other_phone = _certificate(_name("another phone"), ca.subject, ec.generate_private_key(ec.SECP256R1()).public_key(),
                               ca_key)
    with pytest.raises(SignedResponseError, match="does not verify"):
        verify(_approval(phone_key), _der(other_phone), ca=ca)


@pytest.mark.parametrize("text", ["", "!!!", base64url.encode(b"[]"), base64url.encode(b'{"format":"other"}')])
def test_what_is_not_a_signed_response_is_refused(pki, text):
    with pytest.raises(SignedResponseError):
        verify(text, _der(pki[2]), ca=pki[0])


def test_the_command_line_verifier_says_verified_or_why_not(pki, crl, tmp_path):
    ca, _, phone, phone_key = pki
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "ca.crl").write_bytes(crl.crl)
    (tmp_path / "response").write_text(_approval(phone_key))
    cert = base64.b64encode(_der(phone)).decode()

    def run(*args):
        return subprocess.run([sys.executable, "-m", "twfido.verify", f"@{tmp_path / 'response'}", "--cert", cert,
                               "--ca", str(tmp_path / "ca.pem"), *args], cwd=ROOT, capture_output=True, text=True)

    good = run("--rp-id", RP_ID, "--crl", str(tmp_path / "ca.crl"))
    assert good.returncode == 0, good.stderr
    printed = json.loads(good.stdout)
    assert printed["challenge_input"]["hint"] == "登入臺灣雲市集" and printed["revocation"]["status"] == "good"
    bad = run("--rp-id", "evil.example", "--crl", str(tmp_path / "ca.crl"))
    assert bad.returncode == 1 and "another site" in bad.stderr


def test_an_approval_by_the_reference_phone_verifies_with_the_certificate_of_its_key(pki, crl):
    """The reference software phone (webauthn.phone) signs as a real phone's browser would: its toJSON() parts,
    laid into the format, verify with a certificate issued for the credential's own key."""
    from webauthn.phone.authenticator import SoftwareAuthenticator
    from webauthn.phone.browser import PhoneBrowser

    ca, ca_key, _, _ = pki
    phone = PhoneBrowser(SoftwareAuthenticator(None))
    origin = f"https://{RP_ID}"
    created = phone.create({
        "challenge": base64url.encode(b"registration"), "rp": {"id": RP_ID, "name": "MoCert"},
        "user": {"id": base64url.encode(b"user-1"), "name": "wang", "displayName": "王小明"},
        "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
    }, origin=origin)
    spki = base64url.decode(created["response"]["publicKey"])
    certificate = _certificate(_name("王小明's phone"), ca.subject, serialization.load_der_public_key(spki), ca_key)
    answer = phone.get({
        "challenge": base64url.encode(challenge.challenge(INPUT)), "rpId": RP_ID, "userVerification": "required",
    }, origin=origin)["response"]
    signed = SignedResponse(
        INPUT, base64url.decode(created["rawId"]), base64url.decode(answer["authenticatorData"]),
        base64url.decode(answer["clientDataJSON"]), base64url.decode(answer["signature"]),
    ).encode()
    approval = verify(signed, _der(certificate), ca=ca, expected_input=INPUT, rp_id=RP_ID, revocation=crl)
    assert approval.sign_count == 1
