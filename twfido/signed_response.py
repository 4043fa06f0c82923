"""``signed_response``: a phone's approval of an agency's request, which anyone can verify offline.

MoCert's phones hold WebAuthn keys, so the signature is a WebAuthn assertion whose challenge is the
SHA-256 of ``challenge_input`` (:mod:`twfido.challenge`). ``signed_response`` is base64url of the JSON

    {"format": "mocert-webauthn-v1", "challenge_input": <the text itself>,
     "credential_id", "authenticator_data", "client_data_json", "signature": <base64url>}

and ``cert`` (beside it in the answer) the base64 DER of the approving phone's mobile certificate. To
verify: the certificate was issued by the mobile CA and is within its validity; the client data is a
``webauthn.get`` whose challenge is the SHA-256 of ``challenge_input``; the authenticator says the user was
present and verified (fingerprint or face); the signature over ``authenticator_data ‖
SHA-256(client_data_json)`` verifies with the certificate's key; and, last, the certificate is good: not
revoked nor on hold, in the mobile CA's OCSP answer or CRL (:mod:`twfido.revocation`: fetched from the
places the certificate names, or a CRL or OCSP answer the verifier downloaded; only an OCSP answer fetched with
our nonce is made for this check, anything else is as of its thisUpdate, which the approval's ``revocation``
``caveat`` says). Written with ``cryptography``
alone so that an agency can read and rerun it: a WebAuthn library wants the credential registered with it
first.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from . import base64url
from .challenge import challenge
from .revocation import ONLINE, Good, Sources

FORMAT = "mocert-webauthn-v1"
MAX_LENGTH = 64 * 1024
_BINARY = ("credential_id", "authenticator_data", "client_data_json", "signature")
_USER_PRESENT, _USER_VERIFIED = 0x01, 0x04
_AUTHENTICATOR_DATA_MIN = 37  # rpIdHash (32), flags (1), signCount (4)


class SignedResponseError(ValueError):
    """The signed response is malformed, or does not prove what it must."""


@dataclass(frozen=True)
class SignedResponse:
    challenge_input: str
    credential_id: bytes
    authenticator_data: bytes
    client_data_json: bytes
    signature: bytes

    def encode(self) -> str:
        document = {"format": FORMAT, "challenge_input": self.challenge_input}
        document.update({name: base64url.encode(getattr(self, name)) for name in _BINARY})
        return base64url.encode(json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))

    @classmethod
    def decode(cls, text: object) -> SignedResponse:
        if not isinstance(text, str) or not 0 < len(text) <= MAX_LENGTH:
            raise SignedResponseError("a signed response is base64url text")
        try:
            document = json.loads(base64url.decode(text))
            if not isinstance(document, dict) or document.get("format") != FORMAT:
                raise SignedResponseError(f"not a {FORMAT} signed response")
            if not isinstance(document.get("challenge_input"), str):
                raise SignedResponseError("the signed response carries no challenge_input")
            values = {name: base64url.decode(document[name]) for name in _BINARY}
        except SignedResponseError:
            raise
        except (KeyError, TypeError, ValueError, UnicodeError) as exc:
            raise SignedResponseError("the signed response is not base64url JSON of the format") from exc
        return cls(challenge_input=document["challenge_input"], **values)


@dataclass(frozen=True)
class Approval:
    """What a verified signed response proves: this phone's certificate approved this challenge_input."""

    certificate: x509.Certificate
    challenge_input: str
    credential_id: bytes
    sign_count: int
    revocation: Good | None  # the certificate's status, who said so, as of when; None: not checked (revocation=None)


def verify(
    signed_response: str,
    certificate_der: bytes,
    *,
    ca: x509.Certificate,
    expected_input: str | None = None,
    rp_id: str | None = None,
    at: datetime | None = None,
    revocation: Sources | None = ONLINE,
) -> Approval:
    """Verify ``signed_response`` with the phone's ``certificate_der`` under the mobile CA ``ca``, at ``at`` (now).

    ``expected_input`` (the challenge_input rebuilt from the request) must then equal the one signed;
    ``rp_id`` (the WebAuthn relying-party id, MoCert's host) must then be the one the authenticator
    signed for. ``revocation`` says where the certificate's status is learnt: by default fetched from its
    OCSP responder, then its CRL; ``Sources(crl=...)`` or ``Sources(ocsp_response=...)`` for what was
    downloaded; None not to check it. It is checked last, so nothing is fetched for a response that fails
    the rest.

    Raises :class:`SignedResponseError` saying which check failed; for the status,
    :class:`twfido.revocation.CertificateRevoked` (with the reason) or :class:`twfido.revocation.RevocationUnknown`
    (it could not be learnt: not proof of anything, ask again later).
    """
    at = at or datetime.now(timezone.utc)
    response = SignedResponse.decode(signed_response)
    certificate = _issued_by(certificate_der, ca, at)
    if expected_input is not None and not hmac.compare_digest(
        response.challenge_input.encode("utf-8"), expected_input.encode("utf-8")
    ):
        raise SignedResponseError("the signed challenge_input is not that of this request")
    _check_client_data(response)
    data = response.authenticator_data
    if len(data) < _AUTHENTICATOR_DATA_MIN:
        raise SignedResponseError("the authenticator data is too short")
    if rp_id is not None and not hmac.compare_digest(data[:32], hashlib.sha256(rp_id.encode("idna")).digest()):
        raise SignedResponseError(f"the authenticator signed for another site than {rp_id}")
    flags = data[32]
    if not flags & _USER_PRESENT or not flags & _USER_VERIFIED:
        raise SignedResponseError("the authenticator did not verify the person (no fingerprint or face)")
    signed = data + hashlib.sha256(response.client_data_json).digest()
    _verify_signature(certificate, response.signature, signed)
    good = revocation.status(certificate, ca, at=at) if revocation is not None else None
    return Approval(
        certificate, response.challenge_input, response.credential_id, int.from_bytes(data[33:37], "big"), good
    )


def _issued_by(der: bytes, ca: x509.Certificate, at: datetime) -> x509.Certificate:
    try:
        certificate = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise SignedResponseError("the certificate is not DER X.509") from exc
    try:
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm) as exc:
        raise SignedResponseError("the certificate was not issued by this mobile CA") from exc
    if not certificate.not_valid_before_utc <= at < certificate.not_valid_after_utc:
        raise SignedResponseError("the certificate was not valid at the time of the check")
    return certificate


def _check_client_data(response: SignedResponse) -> None:
    try:
        client_data = json.loads(response.client_data_json)
        kind, signed_challenge = client_data["type"], client_data["challenge"]
    except (ValueError, KeyError, TypeError) as exc:
        raise SignedResponseError("the client data is not WebAuthn's JSON") from exc
    if kind != "webauthn.get":
        raise SignedResponseError("the client data is not an assertion (webauthn.get)")
    expected = base64url.encode(challenge(response.challenge_input))
    if not isinstance(signed_challenge, str) or not hmac.compare_digest(signed_challenge, expected):
        raise SignedResponseError("the signed challenge is not the SHA-256 of the challenge_input")


def _verify_signature(certificate: x509.Certificate, signature: bytes, signed: bytes) -> None:
    key = certificate.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, signed, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, signed)
        else:
            raise SignedResponseError("the certificate's key is of a kind WebAuthn phones do not use")
    except InvalidSignature as exc:
        raise SignedResponseError("the signature does not verify with the certificate's key") from exc

