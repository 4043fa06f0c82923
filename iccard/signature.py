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
from dataclasses import dataclass, field

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .certificate import ParsedCertificate, parse_certificate
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
    signed = read_pkcs1(signature, certificate_der)
    signed.verify(tbs, hash_name)
    return signed.certificate


def verify_pkcs7(tbs: bytes, signature: bytes) -> x509.Certificate:
    """Verify CMS SignedData over ``tbs``; return the signer's certificate (taken from inside it)."""
    signed = read_pkcs7(signature)
    signed.verify(tbs)
    return signed.certificate


@dataclass(frozen=True)
class Pkcs1Signature:
    """A raw signature and the certificate sent with it, read but not yet checked against any text."""

    signer: ParsedCertificate
    value: bytes = field(repr=False)

    @property
    def certificate(self) -> x509.Certificate:
        return self.signer.certificate

    def verify(self, tbs: bytes, hash_name: str = "sha256") -> None:
        _verify_rsa(self.certificate, self.value, tbs, _hash(hash_name))


@dataclass(frozen=True)
class CmsSignature:
    """CMS SignedData read and its signer's certificate found, not yet checked against any text."""

    signer: ParsedCertificate
    encapsulated: bytes | None = field(repr=False)
    digest_name: str
    signed_attrs: cms.CMSAttributes | None = field(repr=False)
    value: bytes = field(repr=False)

    @property
    def certificate(self) -> x509.Certificate:
        return self.signer.certificate

    def verify(self, tbs: bytes, hash_name: str | None = None) -> None:
        """``hash_name`` is ignored: the SignedData names its own digest algorithm."""
        if self.encapsulated is not None and not hmac.compare_digest(self.encapsulated, tbs):
            raise TbsMismatch("the signed content is not the text this login asked for")
        algorithm = _hash(self.digest_name)
        if self.signed_attrs is None:
            _verify_rsa(self.certificate, self.value, tbs, algorithm)
            return
        attrs = {attr["type"].native: attr["values"] for attr in self.signed_attrs}
        expected = hashlib.new(self.digest_name, tbs).digest()
        if not hmac.compare_digest(attrs["message_digest"][0].native, expected):
            raise TbsMismatch("the signed digest is not that of the text this login asked for")
        # RFC 5652 §5.4: the signature covers the DER of the attributes as a SET OF, not as [0] IMPLICIT.
        _verify_rsa(self.certificate, self.value, b"\x31" + self.signed_attrs.dump()[1:], algorithm)


def read_pkcs1(signature: bytes, certificate_der: bytes) -> Pkcs1Signature:
    """Read the certificate sent with a raw PKCS#1 signature (raises as :func:`~iccard.certificate.parse_certificate`)."""
    return Pkcs1Signature(parse_certificate(certificate_der), signature)


def read_pkcs7(signature: bytes) -> CmsSignature:
    """Read CMS SignedData with one signer and find the signer's certificate inside it.

    Everything that does not depend on the signed text is checked here: the structure, the digest
    algorithm, the signed attributes, and the signer's certificate (as :func:`~iccard.certificate.parse_certificate`).
    """
    try:
        content_info = cms.ContentInfo.load(signature)
        if content_info["content_type"].native != "signed_data":
            raise MalformedInput("CMS content is not SignedData")
        signed_data = content_info["content"]
        signer_infos = signed_data["signer_infos"]
        if len(signer_infos) != 1:
            raise MalformedInput("CMS must carry exactly one signer")
        signer = signer_infos[0]
        # Force a full parse now so that malformed DER fails here, as malformed input. The certificates
        # are left to parse_certificate, which tells an unreadable one from one we do not accept.
        signer.native  # noqa: B018
        signed_data["digest_algorithms"].native  # noqa: B018
        encapsulated = signed_data["encap_content_info"]["content"].native
        candidates = [c.chosen for c in signed_data["certificates"] or [] if c.name == "certificate"]
        sid = signer["sid"]
        digest_name = signer["digest_algorithm"]["algorithm"].native
        signed_attrs = signer["signed_attrs"]
        raw_signature = signer["signature"].native
    except MalformedInput:
        raise
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise MalformedInput("signature is not valid CMS DER") from exc
    if encapsulated is not None and not isinstance(encapsulated, bytes):
        raise MalformedInput("the signed content is not data")
    _hash(digest_name)
    if signed_attrs.native is None or len(signed_attrs) == 0:
        signed_attrs = None
    else:
        attrs = {attr["type"].native: attr["values"] for attr in signed_attrs}
        digests = attrs.get("message_digest")
        content_types = attrs.get("content_type")
        if (
            not digests
            or len(digests) != 1
            or not isinstance(digests[0].native, bytes)
            or not content_types
            or content_types[0].native != "data"
        ):
            raise MalformedInput("CMS signed attributes lack content type or message digest")
    return CmsSignature(_find_signer(candidates, sid), encapsulated, digest_name, signed_attrs, raw_signature)


def _find_signer(candidates: list[asn1_x509.Certificate], sid: cms.SignerIdentifier) -> ParsedCertificate:
    for candidate in candidates:
        try:
            if sid.name == "issuer_and_serial_number":
                matches = (
                    _same_name(candidate.issuer, sid.chosen["issuer"])
                    and candidate.serial_number == sid.chosen["serial_number"].native
                )
            else:
                matches = candidate.key_identifier == sid.chosen.native
        except (ValueError, TypeError, KeyError) as exc:
            raise MalformedInput("a certificate in the CMS signature cannot be read") from exc
        if matches:
            # The certificate as the SignedData holds it, parsed through once: path validation reads it too.
            return parse_certificate(candidate.dump(), candidate)
    raise MalformedInput("the CMS signature does not include the signer's certificate")


def _same_name(name: asn1_x509.Name, other: asn1_x509.Name) -> bool:
    """RFC 5280's comparison of names; the same bytes first, as the signer names its own certificate's issuer
    (comparing prepares every attribute of both names, more work than the rest of reading the signature)."""
    return name.dump() == other.dump() or name == other


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
