"""Verify what the cross-platform component returned for a login challenge.

The server side of a card login, free of HTTP and storage: the caller has already looked up (and
consumed) the challenge it issued and hands us its text; we check the signature and the certificate.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime

from .certificate import CitizenCertificate
from .errors import MalformedInput
from .signature import SIGNATURE_TYPES, SUPPORTED_HASH_NAMES, decode_base64, verify_pkcs1, verify_pkcs7
from .validation import CardCertificateValidator

# What the page passes unchanged into MakeSignature. Plain text so the component can show it.
TBS_ENCODING = "NONE"
HASH_ALGORITHM = "SHA256"


def new_tbs(site: str, issued_at: datetime) -> str:
    """A fresh to-be-signed text: unguessable, and saying for whom and when, should anyone read it."""
    return f"MoCert login\nsite: {site}\ntime: {issued_at.isoformat(timespec='seconds')}\nnonce: {secrets.token_urlsafe(32)}"


class CardLoginVerifier:
    """Checks a ``MakeSignature`` result against the text it was asked to sign."""

    def __init__(self, validator: CardCertificateValidator) -> None:
        self._validator = validator

    def verify(self, tbs: str, response: Mapping[str, object], hash_algorithm: str = HASH_ALGORITHM) -> CitizenCertificate:
        """Return the signer's certificate, or raise a :class:`~iccard.errors.CardLoginError`.

        ``response`` holds ``signatureType``, ``signature`` and (for PKCS1) ``certb64``, as the component
        returns them.
        """
        signature_type = response.get("signatureType")
        if signature_type not in SIGNATURE_TYPES:
            raise MalformedInput(f"signatureType must be one of {', '.join(SIGNATURE_TYPES)}")
        if hash_algorithm not in SUPPORTED_HASH_NAMES:
            raise MalformedInput(f"unsupported hash algorithm {hash_algorithm!r}")
        data = tbs.encode("utf-8")
        signature = decode_base64(response.get("signature"), "signature")
        if signature_type == "PKCS7":
            certificate = verify_pkcs7(data, signature)
        else:
            certificate_der = decode_base64(response.get("certb64"), "certb64")
            certificate = verify_pkcs1(data, signature, certificate_der, SUPPORTED_HASH_NAMES[hash_algorithm])
        citizen = CitizenCertificate.from_certificate(certificate)
        self._validator.validate(certificate)
        return citizen
