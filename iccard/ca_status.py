"""A CA's own word on its certificates: signed CRLs (RFC 5280) and OCSP answers (RFC 6960).

Shared by the demo card PKI and the mobile-certificate CA. The caller decides which certificates are
revoked and why; this module only speaks the formats, signed by the CA itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import keys
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed448, ed25519
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509 import ocsp

NONCE_MAX = 32  # RFC 8954: a longer nonce is refused as malformed


@dataclass(frozen=True)
class Revocation:
    serial: int
    revoked_at: datetime
    reason: x509.ReasonFlags


def sign_crl(
    issuer: x509.Certificate,
    key: CertificateIssuerPrivateKeyTypes,
    revoked: Iterable[Revocation],
    *,
    number: int,
    this_update: datetime,
    next_update: datetime,
) -> bytes:
    """A DER CRL of ``issuer`` listing ``revoked``, numbered ``number``."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    for entry in revoked:
        item = x509.RevokedCertificateBuilder().serial_number(entry.serial).revocation_date(entry.revoked_at)
        if _stated(entry.reason) is not None:
            item = item.add_extension(x509.CRLReason(entry.reason), critical=False)
        builder = builder.add_revoked_certificate(item.build())
    return builder.sign(key, _signature_hash(key)).public_bytes(serialization.Encoding.DER)


def load_ocsp_request(der: bytes) -> ocsp.OCSPRequest | None:
    """The request, or None when it cannot be answered as asked (then answer ``malformed_request()``).

    Whatever it returns, ``answer()`` can answer: anything it could not sign an answer to is refused here.
    """
    try:
        request = ocsp.load_der_ocsp_request(der)
        algorithm = request.hash_algorithm  # one we cannot hash with is as good as malformed
        for extension in request.extensions:
            if isinstance(extension.value, x509.OCSPNonce) and not 1 <= len(extension.value.nonce) <= NONCE_MAX:
                return None
    except (ValueError, UnsupportedAlgorithm):
        return None
    except NotImplementedError:
        # A requestList of several CertIDs (or none). RFC 6960 lets a responder answer each in one response,
        # but cryptography reads only one-entry requests and its OCSPResponseBuilder signs only one answer,
        # so we cannot answer each entry properly; malformedRequest is the honest refusal.
        return None
    if len(request.issuer_name_hash) != algorithm.digest_size or len(request.issuer_key_hash) != algorithm.digest_size:
        return None  # not hashes made with the algorithm it names (and the response builder refuses them)
    if request.serial_number < 0:
        return None  # RFC 5280 4.1.2.2: serial numbers are positive (and the response builder refuses others)
    return request


def malformed_request() -> bytes:
    return unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)


def unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(serialization.Encoding.DER)


def names_issuer(request: ocsp.OCSPRequest, issuer: x509.Certificate) -> bool:
    """Whether the request's CertID names ``issuer`` (its name and key hashes, in the request's algorithm)."""
    name_hash = hashes.Hash(request.hash_algorithm)
    name_hash.update(issuer.subject.public_bytes())
    return (
        request.issuer_name_hash == name_hash.finalize()
        and request.issuer_key_hash == issuer_key_hash(issuer, request.hash_algorithm)
    )


def answer(
    request: ocsp.OCSPRequest,
    issuer: x509.Certificate,
    key: CertificateIssuerPrivateKeyTypes,
    *,
    status: ocsp.OCSPCertStatus,
    revocation: Revocation | None,
    this_update: datetime,
    next_update: datetime,
    certificates: Sequence[x509.Certificate] = (),
) -> bytes:
    """A successful response about the request's certificate, signed by ``issuer`` (the CA is its own
    responder), with the request's CertID and nonce echoed. ``certificates`` travel with it (the CA's
    own, so a client that was not given it can still find the signer)."""
    builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
        issuer_name_hash=request.issuer_name_hash,
        issuer_key_hash=request.issuer_key_hash,
        serial_number=request.serial_number,
        algorithm=request.hash_algorithm,
        cert_status=status,
        this_update=this_update,
        next_update=next_update,
        revocation_time=revocation.revoked_at if revocation else None,
        revocation_reason=_stated(revocation.reason) if revocation else None,
    )
    builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, issuer)
    if certificates:
        builder = builder.certificates(list(certificates))
    for extension in request.extensions:
        if isinstance(extension.value, x509.OCSPNonce):
            builder = builder.add_extension(extension.value, critical=False)
    return builder.sign(key, _signature_hash(key)).public_bytes(serialization.Encoding.DER)


def issuer_key_hash(issuer: x509.Certificate, algorithm: hashes.HashAlgorithm) -> bytes:
    """RFC 6960 issuerKeyHash: the hash of the issuer's subjectPublicKey BIT STRING value."""
    spki = keys.PublicKeyInfo.load(
        issuer.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    digest = hashes.Hash(algorithm)
    digest.update(spki["public_key"].contents[1:])  # without the BIT STRING's unused-bits byte
    return digest.finalize()


def _stated(reason: x509.ReasonFlags) -> x509.ReasonFlags | None:
    # RFC 5280 5.3.1: the reason code unspecified SHOULD be absent rather than stated.
    return None if reason == x509.ReasonFlags.unspecified else reason


def _signature_hash(key: CertificateIssuerPrivateKeyTypes) -> hashes.HashAlgorithm | None:
    return None if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)) else hashes.SHA256()
