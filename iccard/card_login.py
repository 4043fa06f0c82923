"""Verify what the cross-platform component returned for a login challenge.

The server side of a card login, free of HTTP and storage, in two steps so that the caller can spend
the challenge in between: :meth:`CardLoginVerifier.read` checks all that does not depend on the
challenge (the answer's shape, the certificate, its issuer) and needs no network; after the caller has
consumed the challenge, :meth:`CardLoginVerifier.verify` checks the signature over its text and then
the certificate's path and revocation.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from .certificate import CitizenCertificate
from .errors import MalformedInput
from .signature import (
    SIGNATURE_TYPES,
    SUPPORTED_HASH_NAMES,
    CmsSignature,
    Pkcs1Signature,
    decode_base64,
    read_pkcs1,
    read_pkcs7,
)
from .validation import CardCertificateValidator

# What the page passes unchanged into MakeSignature. Plain text so the component can show it.
TBS_ENCODING = "NONE"
HASH_ALGORITHM = "SHA256"


def new_tbs(site: str, issued_at: datetime) -> str:
    """A fresh to-be-signed text: unguessable, and saying for whom and when, should anyone read it."""
    return f"MoCert login\nsite: {site}\ntime: {issued_at.isoformat(timespec='seconds')}\nnonce: {secrets.token_urlsafe(32)}"


@dataclass(frozen=True)
class CardAnswer:
    """A ``MakeSignature`` result read, its certificate a citizen's from a configured CA; the signature
    is not checked yet."""

    signature: Pkcs1Signature | CmsSignature
    citizen: CitizenCertificate


class CardLoginVerifier:
    """Checks a ``MakeSignature`` result against the text it was asked to sign."""

    def __init__(self, validator: CardCertificateValidator) -> None:
        self._validator = validator

    def read(self, response: Mapping[str, object]) -> CardAnswer:
        """Read the answer; raise a :class:`~iccard.errors.CardLoginError` for what no challenge can make right.

        ``response`` holds ``signatureType``, ``signature`` and (for PKCS1) ``certb64``, as the component
        returns them. Nothing is fetched: an issuer that is not configured is refused here.
        """
        signature_type = response.get("signatureType")
        if signature_type not in SIGNATURE_TYPES:
            raise MalformedInput(f"signatureType must be one of {', '.join(SIGNATURE_TYPES)}")
        signature = decode_base64(response.get("signature"), "signature")
        if signature_type == "PKCS7":
            signed: Pkcs1Signature | CmsSignature = read_pkcs7(signature)
        else:
            signed = read_pkcs1(signature, decode_base64(response.get("certb64"), "certb64"))
        self._validator.check_offline(signed.certificate)
        return CardAnswer(signed, CitizenCertificate.from_certificate(signed.certificate))

    def verify(self, tbs: str, answer: CardAnswer, hash_algorithm: str = HASH_ALGORITHM) -> CitizenCertificate:
        """Check the signature over ``tbs``, then the certificate (path, validity, revocation); return the
        signer, or raise a :class:`~iccard.errors.CardLoginError`."""
        if hash_algorithm not in SUPPORTED_HASH_NAMES:
            raise MalformedInput(f"unsupported hash algorithm {hash_algorithm!r}")
        answer.signature.verify(tbs.encode("utf-8"), SUPPORTED_HASH_NAMES[hash_algorithm])
        self._validator.validate(answer.signature.signer)  # as read: parsed once
        return answer.citizen
