"""MakeSignature with a card: what the cross-platform component does between the page and the card.

Given a card (:class:`iccard.cards.Card`: PIV, emulated, PKCS#11), sign a to-be-signed text the way the component's
``MakeSignature`` does: hash it, then either a raw PKCS#1 v1.5 signature (``PKCS1``) or CMS SignedData
with the signer's certificate (``PKCS7``). The private key never leaves the card, so ``cryptography``'s
CMS builder (which wants the key object) cannot be used: the SignedData is assembled with asn1crypto
around the card's signature over the signed attributes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone

from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from .cards import Card
from .piv import digest_info

# Hash names as MakeSignature takes them. SHA-1 (which old pages still ask for) is refused unless the
# caller says the person allowed it for the asking site: collisions in SHA-1 can be made, so a signature
# over it can be moved onto another document; a login or a document signed so proves too little today.
HASHES = {"SHA256": "sha256", "SHA384": "sha384", "SHA512": "sha512"}
SHA1 = {"SHA1": "sha1"}
# Signed attributes MOICA's middleware adds to CMS signatures.
CARD_NUMBER_ATTRIBUTE = "2.16.886.1.100.2.204"
NONCE_ATTRIBUTE = "1.2.840.113549.1.9.25.3"


class SignRequestError(ValueError):
    """The sign request itself is wrong (unknown hash, bad base64, empty text): no card was touched."""


class Sha1NotAllowed(SignRequestError):
    """SHA-1 was asked for, and the person has not allowed it for the asking site."""


@dataclass(frozen=True)
class SignRequest:
    tbs: bytes
    hash_name: str  # hashlib name
    signature_type: str  # PKCS1 | PKCS7
    with_card_number: bool = False
    nonce: str = ""

    @classmethod
    def from_make_signature(cls, request: dict, *, allow_sha1: bool = False) -> SignRequest:
        """Read the fields of a ``MakeSignature`` request (the PIN is the caller's to handle).

        ``allow_sha1``: the person allowed SHA-1 for the asking site; otherwise it raises
        :class:`Sha1NotAllowed`.
        """
        tbs = request.get("tbs")
        if not isinstance(tbs, str) or not tbs:
            raise SignRequestError("tbs is missing")
        encoding = str(request.get("tbsEncoding") or "NONE").upper()
        if encoding == "NONE":
            data = tbs.encode("utf-8")
        elif encoding == "BASE64":
            try:
                # A "+" posted in a form without escaping arrives as a space, which base64 never holds.
                data = base64.b64decode(tbs.replace(" ", "+"), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise SignRequestError("tbs is not valid base64") from exc
        else:
            raise SignRequestError(f"unknown tbsEncoding {encoding!r}")
        asked = str(request.get("hashAlgorithm") or "SHA256").upper()
        if asked in SHA1 and not allow_sha1:
            raise Sha1NotAllowed("SHA1 is not allowed for this site (SHA-1 signatures can be forged)")
        hash_name = {**HASHES, **SHA1}.get(asked) if allow_sha1 else HASHES.get(asked)
        if hash_name is None:
            raise SignRequestError(f"unsupported hashAlgorithm {request.get('hashAlgorithm')!r}")
        signature_type = str(request.get("signatureType") or "PKCS7").upper()
        if signature_type not in ("PKCS1", "PKCS7"):
            raise SignRequestError(f"unsupported signatureType {signature_type!r}")
        return cls(
            tbs=data,
            hash_name=hash_name,
            signature_type=signature_type,
            with_card_number=str(request.get("withCardSN", "")).lower() == "true",
            nonce=str(request.get("nonce") or ""),
        )


@dataclass(frozen=True)
class Signature:
    signature: bytes
    certificate: x509.Certificate
    card_number: str


def sign(card: Card, pin: str, request: SignRequest, *, now: datetime | None = None) -> Signature:
    """Verify the PIN, then sign ``request`` with the card's signing key.

    Raises the card's errors (:class:`~iccard.errors.WrongPin`, :class:`~iccard.errors.PinBlocked`,
    :class:`~iccard.errors.CardRemoved`, ...) unchanged.
    """
    certificate = card.signing_certificate()
    card_number = card.card_number()
    card.verify_pin(pin)
    if request.signature_type == "PKCS1":
        digest = hashlib.new(request.hash_name, request.tbs).digest()
        signature = card.sign(digest_info(request.hash_name, digest))
    else:
        signature = _signed_data(card, certificate, card_number, request, now or datetime.now(timezone.utc))
    return Signature(signature, certificate, card_number)


def _signed_data(
    card: Card, certificate: x509.Certificate, card_number: str, request: SignRequest, now: datetime
) -> bytes:
    cert = asn1_x509.Certificate.load(certificate.public_bytes(Encoding.DER))
    attributes = [
        cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
        cms.CMSAttribute({"type": "signing_time", "values": [cms.Time({"utc_time": now})]}),
        cms.CMSAttribute(
            {"type": "message_digest", "values": [hashlib.new(request.hash_name, request.tbs).digest()]}
        ),
    ]
    if request.with_card_number and card_number:
        attributes.append(cms.CMSAttribute({"type": CARD_NUMBER_ATTRIBUTE, "values": [core.PrintableString(card_number)]}))
    if request.nonce:
        attributes.append(cms.CMSAttribute({"type": NONCE_ATTRIBUTE, "values": [core.OctetString(request.nonce.encode())]}))
    signed_attrs = cms.CMSAttributes(attributes)
    # The signature covers the attributes' DER as a SET OF (RFC 5652 §5.4); asn1crypto sorts them.
    to_sign = signed_attrs.dump()
    digest = hashlib.new(request.hash_name, to_sign).digest()
    raw = card.sign(digest_info(request.hash_name, digest))
    signer = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                {
                    "issuer_and_serial_number": cms.IssuerAndSerialNumber(
                        {"issuer": cert.issuer, "serial_number": cert.serial_number}
                    )
                }
            ),
            "digest_algorithm": {"algorithm": request.hash_name},
            "signed_attrs": signed_attrs,
            "signature_algorithm": {"algorithm": "rsassa_pkcs1v15"},
            "signature": raw,
        }
    )
    signed_data = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [{"algorithm": request.hash_name}],
            "encap_content_info": {"content_type": "data", "content": request.tbs},
            "certificates": [cert],
            "signer_infos": [signer],
        }
    )
    return cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()

