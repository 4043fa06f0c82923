"""Check the signature the cross-platform component returns for ``MakeSignature``.

Two shapes, exactly as the component produces them:

* ``PKCS7``: CMS SignedData over the to-be-signed text (attached or detached), signer certificate inside;
* ``PKCS1``: a raw RSA PKCS#1 v1.5 signature over the hash of the text, the certificate in ``certb64``.

``cryptography`` can build CMS but not verify it, and pulling in a whole PDF-signing stack for one
SignedData is heavier than the twenty lines below; ``asn1crypto`` parses, ``cryptography`` verifies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from asn1crypto import cms
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .errors import BadSignature, MalformedInput, TbsMismatch

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
# The component takes "SHA256" and friends; SHA-1 is deliberately not accepted for logins.
SUPPORTED_HASH_NAMES = {"SHA256": "sha256", "SHA384": "sha384", "SHA512": "sha512"}
SIGNATURE_TYPES = ("PKCS7", "PKCS1")


def decode_base64(value: object, what: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise MalformedInput(f"{what} is missing")
    try:
        return base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedInput(f"{what} is not valid base64") from exc


def verify_pkcs1(tbs: bytes, signature: bytes, certificate_der: bytes, hash_name: str) -> x509.Certificate:
    """Verify a raw PKCS#1 v1.5 signature; return the signer's certificate."""
    cert = _load_certificate(certificate_der)
    _verify_rsa(cert, signature, tbs, _hash(hash_name))
    return cert


def verify_pkcs7(tbs: bytes, signature: bytes) -> x509.Certificate:
    """Verify CMS SignedData over ``tbs``; return the signer's certificate (taken from inside it)."""
    try:
        content_info = cms.ContentInfo.load(signature)
        if content_info["content_type"].native != "signed_data":
            raise MalformedInput("CMS content is not SignedData")
        signed_data = content_info["content"]
        signer_infos = signed_data["signer_infos"]
        if len(signer_infos) != 1:
            raise MalformedInput("CMS must carry exactly one signer")
        signer = signer_infos[0]
        encapsulated = signed_data["encap_content_info"]["content"].native
        certificates = [c.chosen for c in signed_data["certificates"] or [] if c.name == "certificate"]
        sid = signer["sid"]
        digest_name = signer["digest_algorithm"]["algorithm"].native
        signed_attrs = signer["signed_attrs"]
        raw_signature = signer["signature"].native
        # Force a full parse now so that malformed DER fails here, as malformed input.
        signed_data.native  # noqa: B018
    except MalformedInput:
        raise
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise MalformedInput("signature is not valid CMS DER") from exc

    if encapsulated is not None and not hmac.compare_digest(encapsulated, tbs):
        raise TbsMismatch("the signed content is not the text this login asked for")

    signer_cert = _find_signer(certificates, sid)
    algorithm = _hash(digest_name)
    if signed_attrs.native is None or len(signed_attrs) == 0:
        _verify_rsa(signer_cert, raw_signature, tbs, algorithm)
        return signer_cert

    attrs = {attr["type"].native: attr["values"] for attr in signed_attrs}
    digests = attrs.get("message_digest")
    content_types = attrs.get("content_type")
    if not digests or len(digests) != 1 or not content_types or content_types[0].native != "data":
        raise MalformedInput("CMS signed attributes lack content type or message digest")
    expected = hashlib.new(digest_name, tbs).digest()
    if not hmac.compare_digest(digests[0].native, expected):
        raise TbsMismatch("the signed digest is not that of the text this login asked for")
    # RFC 5652 §5.4: the signature covers the DER of the attributes as a SET OF, not as [0] IMPLICIT.
    signed_bytes = b"\x31" + signed_attrs.dump()[1:]
    _verify_rsa(signer_cert, raw_signature, signed_bytes, algorithm)
    return signer_cert


def _find_signer(certificates: list, sid: cms.SignerIdentifier) -> x509.Certificate:
    for candidate in certificates:
        if sid.name == "issuer_and_serial_number":
            matches = (
                candidate.issuer == sid.chosen["issuer"]
                and candidate.serial_number == sid.chosen["serial_number"].native
            )
        else:
            matches = candidate.key_identifier == sid.chosen.native
        if matches:
            return _load_certificate(candidate.dump())
    raise MalformedInput("the CMS signature does not include the signer's certificate")


def _load_certificate(der: bytes) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise MalformedInput("certificate is not valid DER") from exc


def _hash(name: str) -> hashes.HashAlgorithm:
    try:
        return _HASHES[name.lower().replace("-", "")]()
    except (KeyError, AttributeError) as exc:
        raise MalformedInput(f"unsupported hash algorithm {name!r}") from exc


def _verify_rsa(cert: x509.Certificate, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm) -> None:
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise BadSignature("citizen certificates carry RSA keys")
    try:
        key.verify(signature, data, padding.PKCS1v15(), algorithm)
    except InvalidSignature as exc:
        raise BadSignature("the signature does not verify with the certificate's key") from exc
