"""android-key attestation (WebAuthn §8.4), which python-fido2 leaves unsupported, on statements made here."""

from __future__ import annotations

import hashlib
import os

import pytest
from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from fido2 import cbor
from fido2.attestation import Attestation, InvalidData, InvalidSignature
from fido2.webauthn import AuthenticatorData

from tests.webauthn.softkey import SoftAuthenticator, TestCA, b64url, make_key, sign, utc
from webauthn import AndroidKeyAttestation, RegistrationRejected, TrustPolicy, verify_registration
from webauthn.android_key import OID_KEY_DESCRIPTION, AuthorizationList, KeyDescription, SecurityLevel

ORIGIN, RP_ID = "https://mocert.example", "mocert.example"
NOW = utc(2026, 6, 1)
SIGN, VERIFY_PURPOSE, GENERATED, IMPORTED = 2, 3, 0, 2


class _IntegerSet(core.SetOf):
    _child_spec = core.Integer


def authorization_list(*, purpose=None, origin=None, all_applications=False, extra=()) -> AuthorizationList:
    parts = []
    if purpose is not None:
        parts.append((1, _IntegerSet(purpose, explicit=1).dump()))
    if all_applications:
        parts.append((600, core.Null(explicit=600).dump()))
    for tag in extra:  # fields we do not read, as newer KeyMint versions add them
        parts.append((tag, core.OctetString(b"\x01\x02", explicit=tag).dump()))
    if origin is not None:
        parts.append((702, core.Integer(origin, explicit=702).dump()))
    return AuthorizationList(contents=b"".join(der for _, der in sorted(parts)))


def key_description(challenge: bytes, software: AuthorizationList, hardware: AuthorizationList) -> bytes:
    return KeyDescription(
        {
            "attestation_version": 300,
            "attestation_security_level": SecurityLevel("trusted_environment"),
            "keymint_version": 300,
            "keymint_security_level": SecurityLevel("trusted_environment"),
            "attestation_challenge": challenge,
            "unique_id": b"",
            "software_enforced": software,
            "hardware_enforced": hardware,
        }
    ).dump()


class AndroidPhone:
    """A credential whose attestation certificate carries a KeyDescription, as Android Keystore makes it."""

    def __init__(self, ca: TestCA | None = None) -> None:
        self.ca = ca or TestCA(name="MoCert Test Android Root")
        self.authenticator = SoftAuthenticator(aaguid=bytes.fromhex("b93fd961f2e6462fb12282002247de78"))

    def certificate(self, public_key, extension: bytes | None) -> bytes:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Android Keystore Key")]))
            .issuer_name(self.ca.certificate.subject)
            .public_key(public_key)
            .serial_number(1)
            .not_valid_before(utc(1970, 1, 1))
            .not_valid_after(utc(2048, 1, 1))
        )
        if extension is not None:
            builder = builder.add_extension(x509.UnrecognizedExtension(OID_KEY_DESCRIPTION, extension), critical=False)
        return builder.sign(self.ca.key, hashes.SHA256()).public_bytes(Encoding.DER)

    def create(
        self,
        challenge: bytes,
        *,
        software=None,
        hardware=None,
        attestation_challenge: bytes | None = None,
        certificate_key=None,
        with_extension: bool = True,
        alg: int = -7,
    ):
        authenticator = self.authenticator
        client_data = authenticator.client_data("webauthn.create", challenge, ORIGIN)
        client_data_hash = hashlib.sha256(client_data).digest()
        auth_data = authenticator.auth_data(RP_ID, attested=True)
        software = software if software is not None else authorization_list()
        hardware = hardware if hardware is not None else authorization_list(purpose=[SIGN], origin=GENERATED)
        extension = key_description(attestation_challenge or client_data_hash, software, hardware)
        signing_key = certificate_key or authenticator.key
        statement = {
            "alg": alg,
            "sig": sign(signing_key, auth_data + client_data_hash),
            "x5c": [self.certificate(signing_key.public_key(), extension if with_extension else None), self.ca.der],
        }
        self.last = (statement, AuthenticatorData(auth_data), client_data_hash)
        attestation_object = cbor.encode({"fmt": "android-key", "attStmt": statement, "authData": auth_data})
        return {
            "id": b64url(authenticator.credential_id),
            "rawId": b64url(authenticator.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation_object),
                "transports": ["internal", "hybrid"],
            },
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
        }


@pytest.fixture
def challenge() -> bytes:
    return os.urandom(32)


def register(credential, challenge, **kwargs):
    return verify_registration(
        credential, expected_challenge=challenge, expected_origin=ORIGIN, expected_rp_id=RP_ID, now=NOW, **kwargs
    )


def refused(credential, challenge) -> RegistrationRejected:
    with pytest.raises(RegistrationRejected) as caught:
        register(credential, challenge)
    assert caught.value.reason == "attestation_invalid", str(caught.value)
    return caught.value


def test_importing_the_package_registers_android_key_with_fido2():
    from fido2.attestation import UnsupportedAttestation

    assert not issubclass(Attestation.for_type("android-key"), UnsupportedAttestation)  # ours, once imported
    assert Attestation.for_type("android-key") is AndroidKeyAttestation


def test_android_key_statement_following_the_rules_is_basic_attestation(challenge):
    phone = AndroidPhone()
    result = register(phone.create(challenge), challenge, trust=TrustPolicy.roots([phone.ca.der]))
    assert (result.fmt, result.attestation_type, result.attestation_trusted) == ("android-key", "basic", True)
    assert result.aaguid == "b93fd961-f2e6-462f-b122-82002247de78"
    assert len(result.attestation_certificates) == 2


def test_fields_newer_keymint_versions_add_are_ignored(challenge):
    hardware = authorization_list(purpose=[SIGN, VERIFY_PURPOSE], origin=GENERATED, extra=(5, 10, 504, 704, 718, 719))
    assert register(AndroidPhone().create(challenge, hardware=hardware), challenge).fmt == "android-key"


def test_attestation_challenge_other_than_the_client_data_hash_is_invalid(challenge):
    error = refused(AndroidPhone().create(challenge, attestation_challenge=os.urandom(32)), challenge)
    assert "attestationChallenge" in str(error)


@pytest.mark.parametrize("where", ["software", "hardware"])
def test_key_usable_by_all_applications_is_invalid(where, challenge):
    lists = {
        "software": authorization_list(all_applications=where == "software"),
        "hardware": authorization_list(purpose=[SIGN], origin=GENERATED, all_applications=where == "hardware"),
    }
    error = refused(AndroidPhone().create(challenge, **lists), challenge)
    assert "all applications" in str(error)


@pytest.mark.parametrize(
    "software, hardware",
    [
        (authorization_list(), authorization_list(purpose=[SIGN], origin=IMPORTED)),
        (authorization_list(), authorization_list(purpose=[SIGN])),
        (authorization_list(origin=IMPORTED), authorization_list(purpose=[SIGN], origin=GENERATED)),
    ],
)
def test_key_not_generated_in_the_keystore_is_invalid(software, hardware, challenge):
    refused(AndroidPhone().create(challenge, software=software, hardware=hardware), challenge)


def test_key_without_the_sign_purpose_is_invalid(challenge):
    hardware = authorization_list(purpose=[0, 1, VERIFY_PURPOSE], origin=GENERATED)
    error = refused(AndroidPhone().create(challenge, hardware=hardware), challenge)
    assert "sign" in str(error)


def test_origin_and_purpose_may_come_from_the_software_list_unless_hardware_is_required(challenge):
    phone = AndroidPhone()
    software = authorization_list(purpose=[SIGN], origin=GENERATED)
    credential = phone.create(challenge, software=software, hardware=authorization_list())
    assert register(credential, challenge).fmt == "android-key"
    statement, auth_data, client_data_hash = phone.last
    with pytest.raises(InvalidData):
        AndroidKeyAttestation(require_hardware=True).verify(statement, auth_data, client_data_hash)


def test_certificate_key_other_than_the_credential_key_is_invalid(challenge):
    error = refused(AndroidPhone().create(challenge, certificate_key=make_key(-7)), challenge)
    assert "differs" in str(error)


def test_certificate_without_key_description_is_invalid(challenge):
    refused(AndroidPhone().create(challenge, with_extension=False), challenge)


def test_signature_under_the_wrong_algorithm_is_invalid(challenge):
    refused(AndroidPhone().create(challenge, alg=-257), challenge)


def test_flipped_signature_raises_fido2s_invalid_signature(challenge):
    phone = AndroidPhone()
    phone.create(challenge)
    statement, auth_data, client_data_hash = phone.last
    statement = dict(statement, sig=statement["sig"][:-1] + bytes([statement["sig"][-1] ^ 1]))
    with pytest.raises(InvalidSignature):
        AndroidKeyAttestation().verify(statement, auth_data, client_data_hash)


@pytest.mark.parametrize(
    "statement", [{}, {"alg": -7}, {"alg": -7, "sig": b"", "x5c": []}, {"alg": "ES256", "sig": b"", "x5c": [b"x"]}]
)
def test_statement_of_the_wrong_shape_is_invalid_data(statement, challenge):
    phone = AndroidPhone()
    phone.create(challenge)
    _, auth_data, client_data_hash = phone.last
    with pytest.raises(InvalidData):
        AndroidKeyAttestation().verify(statement, auth_data, client_data_hash)
