"""Trust policies: any root, a list of roots, and a FIDO MDS3 blob (signed here by a test MDS root)."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from tests.webauthn import recorded
from tests.webauthn.recorded import ROOTS, load, verify
from tests.webauthn.softkey import b64url, utc
from webauthn import RegistrationRejected, TrustPolicy, WebAuthnError

PIXEL_AAGUID = "b93fd961-f2e6-462f-b122-82002247de78"
BLOB_TIME = utc(2025, 2, 1)


def apple_root() -> bytes:
    return (ROOTS / "apple-webauthn-root-ca.pem").read_bytes()


def globalsign_root() -> bytes:
    return (ROOTS / "globalsign-root-ca.pem").read_bytes()


def google_root_from_the_pixel_chain() -> bytes:
    return recorded.statement_certificates(load("android-key"))[-1]


def untrusted(recording, trust, **kwargs) -> RegistrationRejected:
    with pytest.raises(RegistrationRejected) as caught:
        verify(recording, trust=trust, **kwargs)
    assert caught.value.reason == "attestation_untrusted", str(caught.value)
    return caught.value


# -- roots ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, root",
    [("apple", apple_root), ("android-safetynet", globalsign_root), ("android-key", google_root_from_the_pixel_chain)],
)
def test_roots_policy_trusts_a_recording_whose_chain_ends_at_a_given_root(name, root):
    result = verify(load(name), trust=TrustPolicy.roots([root()]))
    assert result.attestation_trusted is True


@pytest.mark.parametrize(
    "name, other_root",
    [
        ("apple", globalsign_root),
        ("android-safetynet", apple_root),
        ("android-key", apple_root),
        ("tpm", apple_root),
        ("packed", apple_root),
        ("fido-u2f", globalsign_root),
    ],
)
def test_roots_policy_refuses_a_recording_under_another_root(name, other_root):
    untrusted(load(name), TrustPolicy.roots([other_root()]))


def test_roots_may_be_given_as_der_or_pem_among_several():
    der = x509.load_pem_x509_certificate(apple_root().split(b"\n", 3)[-1]).public_bytes(Encoding.DER)
    assert verify(load("apple"), trust=TrustPolicy.roots([globalsign_root(), der])).attestation_trusted


@pytest.mark.parametrize("name", ["packed-self", "none"])
def test_self_and_none_attestation_are_untrusted_under_a_requiring_policy(name):
    untrusted(load(name), TrustPolicy.roots([apple_root()]))


def test_any_policy_verifies_statements_but_trusts_no_root():
    result = verify(load("apple"), trust=TrustPolicy.any())
    assert result.attestation_trusted is False and result.attestation_type == "anonca"


def test_roots_policy_does_not_rescue_an_invalid_statement():
    recording = load("apple")
    with pytest.raises(RegistrationRejected) as caught:
        verify(recording, trust=TrustPolicy.roots([apple_root()]), now=utc(2021, 9, 10))
    assert caught.value.reason == "attestation_invalid"  # the leaf expired: invalid before trust is asked


def test_empty_roots_policy_is_a_configuration_error():
    with pytest.raises(ValueError):
        TrustPolicy.roots([])


# -- MDS3 -------------------------------------------------------------------------------------------


FAR_FUTURE = utc(2030, 1, 1)


def _certificate(subject: str, key, issuer_name: str, issuer_key, *, ca: bool, not_after=FAR_FUTURE):
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(utc(2020, 1, 1))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )


class TestMDS:
    """A metadata service of our own: its root, its signing certificate, and blobs it signs."""

    __test__ = False

    def __init__(self, *, signer_not_after=FAR_FUTURE) -> None:
        self.root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.root = _certificate("MoCert Test MDS Root", self.root_key, "MoCert Test MDS Root", self.root_key, ca=True)
        self.signer_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.signer = _certificate(
            "MoCert Test MDS Signer",
            self.signer_key,
            "MoCert Test MDS Root",
            self.root_key,
            ca=False,
            not_after=signer_not_after,
        )

    @property
    def root_der(self) -> bytes:
        return self.root.public_bytes(Encoding.DER)

    def blob(self, entries, *, next_update="2025-03-01", no=7) -> bytes:
        signer = base64.b64encode(self.signer.public_bytes(Encoding.DER)).decode()
        header = {"alg": "RS256", "typ": "JWT", "x5c": [signer]}
        payload = {"legalHeader": "MoCert test metadata", "no": no, "nextUpdate": next_update, "entries": entries}
        message = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}".encode()
        signature = self.signer_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        return message + b"." + b64url(signature).encode()


def entry(aaguid: str, root_der: bytes, status: str = "FIDO_CERTIFIED_L1") -> dict:
    return {
        "aaguid": aaguid,
        "statusReports": [{"status": status, "effectiveDate": "2024-01-01"}],
        "timeOfLastStatusChange": "2024-01-01",
        "metadataStatement": {
            "description": "Test entry",
            "aaguid": aaguid,
            "authenticatorVersion": 1,
            "schema": 3,
            "upv": [{"major": 1, "minor": 0}],
            "attestationTypes": ["basic_full"],
            "userVerificationDetails": [[{"userVerificationMethod": "fingerprint_internal"}]],
            "keyProtection": ["hardware", "tee"],
            "matcherProtection": ["tee"],
            "attachmentHint": ["internal"],
            "tcDisplay": [],
            "attestationRootCertificates": [base64.b64encode(root_der).decode()],
        },
    }


@pytest.fixture
def mds() -> TestMDS:
    return TestMDS()


@pytest.fixture
def pixel_blob(tmp_path, mds):
    path = tmp_path / "blob.jwt"
    path.write_bytes(mds.blob([entry(PIXEL_AAGUID, google_root_from_the_pixel_chain())]))
    return path


def test_mds3_policy_trusts_a_recording_whose_aaguid_and_root_are_in_the_blob(pixel_blob, mds):
    policy = TrustPolicy.mds3(pixel_blob, mds.root_der, now=BLOB_TIME)
    result = verify(load("android-key"), trust=policy)
    assert result.attestation_trusted is True
    assert policy.entry_for(result.aaguid).metadata_statement.description == "Test entry"


@pytest.mark.parametrize("name", ["apple", "packed", "tpm"])
def test_mds3_policy_refuses_an_aaguid_not_in_the_blob(pixel_blob, mds, name):
    untrusted(load(name), TrustPolicy.mds3(pixel_blob, mds.root_der, now=BLOB_TIME))


def test_mds3_policy_refuses_a_chain_that_does_not_end_at_the_entrys_root(tmp_path, mds):
    # SafetyNet shares the Pixel's AAGUID, but its chain ends at GlobalSign, not at the entry's root.
    path = tmp_path / "blob.jwt"
    path.write_bytes(mds.blob([entry(PIXEL_AAGUID, google_root_from_the_pixel_chain())]))
    untrusted(load("android-safetynet"), TrustPolicy.mds3(path, mds.root_der, now=BLOB_TIME))


def test_mds3_policy_refuses_a_revoked_authenticator(tmp_path, mds):
    path = tmp_path / "blob.jwt"
    path.write_bytes(mds.blob([entry(PIXEL_AAGUID, google_root_from_the_pixel_chain(), status="REVOKED")]))
    untrusted(load("android-key"), TrustPolicy.mds3(path, mds.root_der, now=BLOB_TIME))


@pytest.mark.parametrize("name", ["packed-self", "none"])
def test_mds3_policy_refuses_self_and_none(pixel_blob, mds, name):
    untrusted(load(name), TrustPolicy.mds3(pixel_blob, mds.root_der, now=BLOB_TIME))


def _load_error(path, root_der, **kwargs) -> str:
    with pytest.raises(WebAuthnError) as caught:
        TrustPolicy.mds3(path, root_der, **kwargs)
    return caught.value.reason


def test_mds3_blob_signed_under_another_root_is_invalid(pixel_blob):
    assert _load_error(pixel_blob, TestMDS().root_der, now=BLOB_TIME) == "mds_blob_invalid"


def test_mds3_blob_with_a_changed_payload_is_invalid(tmp_path, mds, pixel_blob):
    header, payload, signature = pixel_blob.read_bytes().split(b".")
    changed = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
    changed["no"] = 8
    path = tmp_path / "changed.jwt"
    path.write_bytes(b".".join([header, b64url(json.dumps(changed).encode()).encode(), signature]))
    assert _load_error(path, mds.root_der, now=BLOB_TIME) == "mds_blob_invalid"


@pytest.mark.parametrize("content", [b"", b"not a jwt", b"a.b.c", b"...."])
def test_mds3_blob_that_is_not_a_jwt_is_invalid(tmp_path, mds, content):
    path = tmp_path / "junk.jwt"
    path.write_bytes(content)
    assert _load_error(path, mds.root_der, now=BLOB_TIME) == "mds_blob_invalid"


def test_mds3_blob_past_its_next_update_is_stale_unless_allowed(pixel_blob, mds):
    later = utc(2025, 3, 2)
    assert _load_error(pixel_blob, mds.root_der, now=later) == "mds_blob_stale"
    assert TrustPolicy.mds3(pixel_blob, mds.root_der, now=later, allow_stale=True).requires_trusted_root


def test_mds3_signing_certificate_is_checked_at_now(tmp_path):
    mds = TestMDS(signer_not_after=utc(2025, 1, 1))
    path = tmp_path / "blob.jwt"
    path.write_bytes(mds.blob([entry(PIXEL_AAGUID, google_root_from_the_pixel_chain())]))
    assert _load_error(path, mds.root_der, now=BLOB_TIME) == "mds_blob_invalid"
    assert TrustPolicy.mds3(path, mds.root_der, now=utc(2024, 12, 1))


def test_mds3_blob_is_read_from_a_file_only(tmp_path, mds):
    with pytest.raises(OSError):
        TrustPolicy.mds3(tmp_path / "missing.jwt", mds.root_der, now=BLOB_TIME)


def test_mds3_now_must_be_timezone_aware(pixel_blob, mds):
    with pytest.raises(ValueError):
        TrustPolicy.mds3(pixel_blob, mds.root_der, now=dt.datetime(2025, 2, 1))
