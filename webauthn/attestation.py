"""Attestation statements: python-fido2's format verifiers, completed where they stop short.

What python-fido2 (``fido2.attestation``) does, per format: ``packed`` (self and x5c, with the
certificate requirements of §8.2.1), ``fido-u2f``, ``tpm`` (pubArea, certInfo, AIK certificate
requirements), ``android-safetynet`` (JWS signature, nonce, ctsProfileMatch, attest.android.com),
``apple`` (nonce extension) and ``none``.

What it does not do, and this module adds:

* ``android-key`` is ``UnsupportedType`` in fido2: see :mod:`webauthn.android_key`;
* no certificate is ever checked against a time: fido2's ``verify_x509_chain`` checks signatures only.
  Here every statement certificate (and the chain between them) is checked at the caller's ``now``, so a
  recorded response is judged at the time it was made and a live one at the real clock;
* ``apple``: the credential public key must equal the leaf certificate's key (§8.8 step 5);
* ``tpm``: ``ver`` must be "2.0", and an AAGUID extension in the AIK certificate must match (§8.3.1);
* ``fido-u2f``: ``x5c`` must hold exactly one certificate (§8.6 step 2);
* ``android-safetynet``: ``timestampMs`` must be close to ``now`` (the SafetyNet documentation's
  freshness check; fido2 ignores it).

Trust in the chain's root is not decided here but by :class:`webauthn.trust.TrustPolicy`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fido2.attestation import (
    AndroidSafetynetAttestation,
    AppleAttestation,
    Attestation,
    AttestationResult,
    AttestationType,
    FidoU2FAttestation,
    NoneAttestation,
    PackedAttestation,
    TpmAttestation,
    UnsupportedType,
)
from fido2.webauthn import AuthenticatorData

from ._encoding import Malformed, b64url_decode
from .android_key import AndroidKeyAttestation
from .errors import WebAuthnError
from .keys import public_key_from_cose

OID_FIDO_AAGUID = x509.ObjectIdentifier("1.3.6.1.4.1.45724.1.1.4")

# SafetyNet responses must be fresh at ``now``: not from the future (beyond clock skew), not stale.
SAFETYNET_MAX_AGE = timedelta(seconds=60)
SAFETYNET_MAX_SKEW = timedelta(seconds=60)

ATTESTATION_TYPE_NAMES = {
    AttestationType.BASIC: "basic",
    AttestationType.SELF: "self",
    AttestationType.ATT_CA: "attca",
    AttestationType.ANON_CA: "anonca",
    AttestationType.NONE: "none",
}

VERIFIERS: Mapping[str, Attestation] = {
    "packed": PackedAttestation(),
    "fido-u2f": FidoU2FAttestation(),
    "tpm": TpmAttestation(),
    "android-key": AndroidKeyAttestation(),
    "android-safetynet": AndroidSafetynetAttestation(),
    "apple": AppleAttestation(),
    "none": NoneAttestation(),
}
SUPPORTED_FORMATS = tuple(VERIFIERS)


@dataclass(frozen=True)
class VerifiedStatement:
    """A statement that satisfied its format's rules, with its certificates valid at ``now``."""

    fmt: str
    attestation_type: str
    result: AttestationResult  # fido2's, as its MdsAttestationVerifier wants it
    certificates: tuple[x509.Certificate, ...]  # x5c, leaf first; empty for self and none
    der: tuple[bytes, ...]


def invalid(message: str) -> WebAuthnError:
    return WebAuthnError("attestation_invalid", message)


def verify_statement(
    fmt: Any,
    statement: Any,
    auth_data: AuthenticatorData,
    client_data_hash: bytes,
    credential_public_key: bytes,
    *,
    now: datetime,
) -> VerifiedStatement:
    """Verify one attestation statement at ``now``.

    Returns a :class:`VerifiedStatement`. Raises ``WebAuthnError`` with reason
    ``unsupported_attestation_format`` (a format not in ``SUPPORTED_FORMATS``, or ECDAA) or
    ``attestation_invalid`` (anything the statement gets wrong, a certificate not valid at ``now``,
    a chain whose links do not verify).
    """
    verifier = VERIFIERS.get(fmt) if isinstance(fmt, str) else None
    if verifier is None:
        raise WebAuthnError("unsupported_attestation_format", f"attestation format {fmt!r} is not supported")
    if not isinstance(statement, dict):
        raise invalid("attStmt is not a map")
    try:
        result = verifier.verify(statement, auth_data, client_data_hash)
    except (UnsupportedType, NotImplementedError) as exc:  # NotImplementedError: ECDAA
        raise WebAuthnError("unsupported_attestation_format", f"{fmt}: {exc}") from None
    except Exception as exc:  # fido2's InvalidData/InvalidSignature, and whatever malformed input trips
        raise invalid(f"{fmt} statement does not verify: {exc!r}") from None

    der = tuple(result.trust_path)
    try:
        certificates = tuple(x509.load_der_x509_certificate(c) for c in der)
    except (TypeError, ValueError) as exc:
        raise invalid(f"statement certificate does not parse: {exc}") from None

    _EXTRA_CHECKS.get(fmt, _no_extra_check)(statement, auth_data, certificates, credential_public_key, now)
    check_chain(certificates, now=now)
    return VerifiedStatement(
        fmt=fmt,
        attestation_type=ATTESTATION_TYPE_NAMES[result.attestation_type],
        result=result,
        certificates=certificates,
        der=der,
    )


def check_validity(certificate: x509.Certificate, now: datetime, what: str = "certificate") -> None:
    """Raise ``attestation_invalid`` unless ``now`` is within the certificate's validity period."""
    if not (certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc):
        raise invalid(
            f"{what} {certificate.subject.rfc4514_string()!r} is valid "
            f"{certificate.not_valid_before_utc.isoformat()} to {certificate.not_valid_after_utc.isoformat()}, "
            f"not at {now.isoformat()}"
        )


def issued_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer``'s name and key issued ``child`` (signature checked; never raises)."""
    try:
        child.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def is_ca(certificate: x509.Certificate) -> bool:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def check_chain(certificates: tuple[x509.Certificate, ...], *, now: datetime) -> None:
    """Check that every certificate is valid at ``now`` and each one is issued by the next, a CA.

    Raises ``WebAuthnError("attestation_invalid")``. Says nothing about whether the last one is trusted.
    """
    for certificate in certificates:
        check_validity(certificate, now, "statement certificate")
    for child, issuer in zip(certificates, certificates[1:], strict=False):
        if not issued_by(child, issuer):
            raise invalid(f"{child.subject.rfc4514_string()!r} is not issued by the next certificate in x5c")
        if not is_ca(issuer):
            raise invalid(f"{issuer.subject.rfc4514_string()!r} issues certificates but is not a CA")


def _spki(public_key) -> bytes:
    return public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _no_extra_check(statement, auth_data, certificates, credential_public_key, now) -> None:
    return None


def _apple(statement, auth_data, certificates, credential_public_key, now) -> None:
    if not certificates:
        raise invalid("apple statement without x5c")
    if _spki(certificates[0].public_key()) != _spki(public_key_from_cose(credential_public_key)):
        raise invalid("credential public key differs from the apple attestation certificate's")


def _tpm(statement, auth_data, certificates, credential_public_key, now) -> None:
    if statement.get("ver") != "2.0":
        raise invalid("tpm statement ver is not 2.0")
    _check_aaguid_extension(certificates[0], auth_data)


def _fido_u2f(statement, auth_data, certificates, credential_public_key, now) -> None:
    if len(certificates) != 1:
        raise invalid("fido-u2f x5c must hold exactly one certificate")


def _packed(statement, auth_data, certificates, credential_public_key, now) -> None:
    if certificates:  # fido2 checks the AAGUID extension too; kept here so the rule reads in one place
        _check_aaguid_extension(certificates[0], auth_data)


def _safetynet(statement, auth_data, certificates, credential_public_key, now) -> None:
    version = statement.get("ver")
    if not isinstance(version, str) or not version:
        raise invalid("android-safetynet statement has no ver")
    try:
        payload = json.loads(b64url_decode(statement["response"].split(b".")[1].decode("ascii"), "JWS payload"))
        timestamp = datetime.fromtimestamp(payload["timestampMs"] / 1000, tz=timezone.utc)
    except (Malformed, KeyError, IndexError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise invalid(f"android-safetynet response has no usable timestampMs: {exc!r}") from None
    if timestamp > now + SAFETYNET_MAX_SKEW:
        raise invalid(f"android-safetynet response is from the future ({timestamp.isoformat()})")
    if timestamp < now - SAFETYNET_MAX_AGE:
        raise invalid(f"android-safetynet response is stale ({timestamp.isoformat()})")


def _check_aaguid_extension(certificate: x509.Certificate, auth_data: AuthenticatorData) -> None:
    try:
        extension = certificate.extensions.get_extension_for_oid(OID_FIDO_AAGUID)
    except x509.ExtensionNotFound:
        return
    value = extension.value.value  # OCTET STRING wrapping the 16-byte AAGUID
    if extension.critical or len(value) != 18 or value[:2] != b"\x04\x10":
        raise invalid("malformed AAGUID extension in the attestation certificate")
    if auth_data.credential_data is None or value[2:] != auth_data.credential_data.aaguid:
        raise invalid("AAGUID in the attestation certificate differs from the authenticator data's")


_EXTRA_CHECKS = {
    "apple": _apple,
    "tpm": _tpm,
    "fido-u2f": _fido_u2f,
    "packed": _packed,
    "android-safetynet": _safetynet,
}
