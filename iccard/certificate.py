"""What we read from a citizen certificate (自然人憑證): name, subject serial number, ID hint.

MOICA user certificates carry ``C=TW, CN=<name>, serialNumber=<16 digits>``; the national ID itself is not
in the certificate, only (reportedly) its last four digits in subjectDirectoryAttributes under
``2.16.886.1.100.2.51``.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from datetime import datetime

from asn1crypto import x509 as asn1_x509
from asn1crypto.core import PrintableString
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtensionOID, NameOID

from .errors import CertificateNotAccepted, MalformedInput

NATIONAL_ID_LAST4_OID = "2.16.886.1.100.2.51"


@dataclass(frozen=True)
class CitizenCertificate:
    """The parts of a card's signing certificate that accounts are built on."""

    der: bytes = field(repr=False)
    fingerprint: str  # SHA-256 of the DER, hex: the certificate's identity in our database
    name: str
    subject_serial: str
    id_last4: str | None
    serial_hex: str
    issuer: str
    not_before: datetime
    not_after: datetime

    @classmethod
    def from_der(cls, der: bytes) -> CitizenCertificate:
        return cls.from_certificate(read_certificate(der))

    @classmethod
    def from_certificate(cls, cert: x509.Certificate) -> CitizenCertificate:
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        serials = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
        if len(names) != 1 or len(serials) != 1:
            raise CertificateNotAccepted("subject is not C=TW, CN=<name>, serialNumber=<n>")
        der = cert.public_bytes(Encoding.DER)
        return cls(
            der=der,
            fingerprint=hashlib.sha256(der).hexdigest(),
            name=str(names[0].value),
            subject_serial=str(serials[0].value),
            id_last4=_id_last4(cert),
            serial_hex=f"{cert.serial_number:032x}",
            issuer=cert.issuer.rfc4514_string(),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
        )


def key_identifier(certificate: x509.Certificate) -> bytes:
    """The certificate's subject key identifier, or RFC 5280's method 1 over its key when it states none."""
    try:
        return certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest


@dataclass(frozen=True, eq=False)
class ParsedCertificate:
    """A card's certificate as both parsers read it, once: ``cryptography``'s (signatures, our checks) and
    ``asn1crypto``'s, parsed through (path validation reads this same object: parsing it is most of what
    reading a certificate costs, so it is done once a login, not again by each reader)."""

    certificate: x509.Certificate
    asn1: asn1_x509.Certificate = field(repr=False)


def read_certificate(der: bytes) -> x509.Certificate:
    """A card's certificate parsed completely by :func:`parse_certificate` (and raising as it does), as
    ``cryptography`` reads it."""
    return parse_certificate(der).certificate


def parse_certificate(der: bytes, asn1: asn1_x509.Certificate | None = None) -> ParsedCertificate:
    """Parse a card's certificate completely, now, so that nothing read from it later can fail.

    Both parsers see it: ``cryptography`` (signatures, our checks) and ``asn1crypto`` (path validation);
    ``asn1`` is the certificate already loaded by asn1crypto, from those bytes (as a CMS signature holds it),
    to be parsed through rather than loaded again. Raises :class:`MalformedInput` for what cannot be read
    (bad DER, a repeated or unreadable extension) and :class:`CertificateNotAccepted` for a readable
    certificate whose key is not an RSA key, the only kind citizen cards carry.
    """
    try:
        cert = x509.load_der_x509_certificate(der)
        # Parsed on first use: a repeated or garbled extension fails here, not in some later check.
        _ = cert.extensions, cert.subject, cert.issuer
    except x509.DuplicateExtension as exc:
        raise MalformedInput(f"the certificate repeats an extension ({exc.oid.dotted_string})") from exc
    except (ValueError, x509.UnsupportedGeneralNameType) as exc:
        raise MalformedInput("certificate is not valid DER") from exc
    try:
        key = cert.public_key()
    except (UnsupportedAlgorithm, ValueError) as exc:
        raise CertificateNotAccepted("the certificate's key algorithm is not supported") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise CertificateNotAccepted("citizen certificates carry RSA keys")
    try:
        parsed = asn1 if asn1 is not None else asn1_x509.Certificate.load(der)
        # Every field and extension value parsed (asn1crypto parses on first read, and keeps what it read), unless
        # these very bytes were parsed through before: parsing is the same every time, and most of a login's cost.
        digest = hashlib.sha256(der).digest()
        if not _PARSED_THROUGH.seen(digest):
            parsed.native  # noqa: B018
            _PARSED_THROUGH.add(digest)
    except (ValueError, TypeError, KeyError) as exc:
        raise MalformedInput("certificate is not valid DER") from exc
    return ParsedCertificate(cert, parsed)


class Digests:
    """A bounded, thread-safe set of digests, the oldest going first."""

    def __init__(self, max_entries: int) -> None:
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: dict[bytes, None] = {}

    def seen(self, digest: bytes) -> bool:
        with self._lock:
            return digest in self._entries

    def add(self, digest: bytes) -> None:
        with self._lock:
            self._entries[digest] = None
            while len(self._entries) > self._max_entries:
                del self._entries[next(iter(self._entries))]


# The certificates asn1crypto parsed through without an error, by the SHA-256 of their DER.
_PARSED_THROUGH = Digests(4096)


def _id_last4(cert: x509.Certificate) -> str | None:
    try:
        ext = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_DIRECTORY_ATTRIBUTES)
    except x509.ExtensionNotFound:
        return None
    raw = ext.value.value if isinstance(ext.value, x509.UnrecognizedExtension) else ext.value.public_bytes()
    try:
        attributes = asn1_x509.Attributes.load(raw)
        for attribute in attributes:
            if attribute["type"].dotted == NATIONAL_ID_LAST4_OID:
                value = attribute["values"][0].native
                text = value.decode("ascii") if isinstance(value, bytes) else str(value)
                return text.strip() or None
    except (ValueError, TypeError, IndexError):
        # The attribute is advisory (unconfirmed on real cards): unreadable means "no hint", not "reject".
        return None
    return None


def subject_directory_attributes(last4: str) -> bytes:
    """DER of a subjectDirectoryAttributes value carrying the ID's last four digits (demo cards)."""
    attribute = asn1_x509.Attribute(
        {"type": NATIONAL_ID_LAST4_OID, "values": [PrintableString(last4)]}
    )
    return asn1_x509.Attributes([attribute]).dump()

