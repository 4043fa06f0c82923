"""DecryptData with a card: what the cross-platform component does between the page and the card.

A page sends a ciphertext made for the card holder's encryption certificate (``cert2``) and the PIN:
``PKCS1`` is one RSAES-PKCS1-v1_5 block, decrypted by the card; ``PKCS7`` is CMS EnvelopedData whose
content key is wrapped that way for the card (key transport), and whose content is then decrypted here
with that key. The private key never leaves the card, so ``cryptography``'s CMS decryption (which wants
the key object) cannot be used: asn1crypto reads the EnvelopedData, the card unwraps the content key,
``cryptography`` decrypts the content. The padding of the key transport (PKCS#1 v1.5) is what the
public samples' server-side encryptor is taken to use; the notes could not confirm it.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import unquote

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import padding as symmetric_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .cards import Card
from .certificate import key_identifier
from .errors import DecryptionFailed, NoEncryptionKey
from .piv import DECRYPTION_FAILED


class DecryptRequestError(ValueError):
    """The request itself is wrong (no ciphertext, bad base64, unknown type): no card was touched.

    ``kind`` says which: ``missing``, ``base64``, ``type``.
    """

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class EnvelopeError(ValueError):
    """The PKCS7 ciphertext is not EnvelopedData we can open (``kind``: ``der``, ``type``, ``recipient``)."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


CIPHER_TYPES = ("PKCS7", "PKCS1")
PLAIN_ENCODINGS = ("NONE", "BASE64")


def _base64(value: str, what: str) -> bytes:
    # Pages encodeURIComponent the ciphertext; some post it as a form without escaping "+", which then
    # arrives as a space. Neither "%" nor " " is base64, so undoing both cannot change a good value.
    text = unquote(value).replace(" ", "+").replace("\r", "").replace("\n", "")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DecryptRequestError(f"{what} is not valid base64", "base64") from exc


@dataclass(frozen=True)
class DecryptRequest:
    ciphertext: bytes
    cipher_type: str  # PKCS7 | PKCS1
    plain_encoding: str  # NONE | BASE64

    @classmethod
    def from_decrypt_data(cls, request: dict) -> DecryptRequest:
        """Read the fields of a ``DecryptData`` request (the PIN is the caller's to handle)."""
        cipher = request.get("cipher")
        if not isinstance(cipher, str) or not cipher.strip():
            raise DecryptRequestError("cipher is missing", "missing")
        cipher_type = str(request.get("cipherType") or "PKCS7").upper()
        if cipher_type not in CIPHER_TYPES:
            raise DecryptRequestError(f"unsupported cipherType {cipher_type!r}", "type")
        plain_encoding = str(request.get("plainEncoding") or "NONE").upper()
        if plain_encoding not in PLAIN_ENCODINGS:
            raise DecryptRequestError(f"unsupported plainEncoding {plain_encoding!r}", "type")
        return cls(_base64(cipher, "cipher"), cipher_type, plain_encoding)

    def plain_text(self, plain: bytes) -> str:
        """The ``plain`` field: base64, or the text itself (UTF-8) for ``none``.

        Raises :class:`DecryptRequestError` (``type``) when the plaintext is not text and ``none`` was asked.
        """
        if self.plain_encoding == "BASE64":
            return base64.b64encode(plain).decode()
        try:
            return plain.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecryptRequestError("the plaintext is not UTF-8 text: ask for plainEncoding base64", "type") from exc


def decrypt(card: Card, pin: str, request: DecryptRequest) -> bytes:
    """Verify the PIN, then decrypt ``request`` with the card's encryption key; returns the plaintext.

    Raises the card's errors unchanged (:class:`~iccard.errors.WrongPin`, :class:`~iccard.errors.PinBlocked`,
    :class:`~iccard.errors.DecryptionFailed`, ...), :class:`EnvelopeError` for a PKCS7 ciphertext that is
    not EnvelopedData for this card, and :class:`~iccard.errors.NoEncryptionKey` for a card without an
    encryption key.
    """
    certificate = card.encryption_certificate()
    if certificate is None:
        raise NoEncryptionKey("the card has no encryption certificate")
    if request.cipher_type == "PKCS1":
        card.verify_pin(pin)
        return card.decrypt(request.ciphertext)
    envelope = _EnvelopedData.read(request.ciphertext, certificate)
    card.verify_pin(pin)
    return envelope.open(card.decrypt(envelope.wrapped_key))


_CONTENT_CIPHERS = {
    "aes128_cbc": (algorithms.AES, 16),
    "aes192_cbc": (algorithms.AES, 24),
    "aes256_cbc": (algorithms.AES, 32),
    # Older encryptors (the samples' server-side Java bean among them, by its age) wrap content in 3DES.
    "tripledes_3key": (TripleDES, 24),
}


@dataclass(frozen=True)
class _EnvelopedData:
    wrapped_key: bytes
    algorithm: str
    iv: bytes
    content: bytes

    @classmethod
    def read(cls, der: bytes, certificate: x509.Certificate) -> _EnvelopedData:
        try:
            info = cms.ContentInfo.load(der)
            if info["content_type"].native != "enveloped_data":
                raise EnvelopeError("the PKCS7 ciphertext is not EnvelopedData", "type")
            envelope = info["content"]
            wrapped = None
            for recipient in envelope["recipient_infos"]:
                if recipient.name == "ktri" and _names(recipient.chosen["rid"], certificate):
                    if recipient.chosen["key_encryption_algorithm"]["algorithm"].native != "rsaes_pkcs1v15":
                        raise EnvelopeError("the content key is not wrapped with RSA PKCS#1 v1.5", "type")
                    wrapped = recipient.chosen["encrypted_key"].native
            if wrapped is None:
                raise EnvelopeError("the ciphertext is not for this card's encryption certificate", "recipient")
            content = envelope["encrypted_content_info"]
            algorithm = content["content_encryption_algorithm"]
            name = algorithm["algorithm"].native
            if name not in _CONTENT_CIPHERS:
                raise EnvelopeError(f"unsupported content encryption {name}", "type")
            iv = algorithm["parameters"].native
            encrypted = content["encrypted_content"].native
            if not isinstance(iv, bytes) or not isinstance(encrypted, bytes):
                raise EnvelopeError("the EnvelopedData has no IV or no (attached) content", "der")
        except (ValueError, TypeError, KeyError) as exc:
            if isinstance(exc, EnvelopeError):
                raise
            raise EnvelopeError("the PKCS7 ciphertext is not valid DER", "der") from exc
        return cls(wrapped, name, iv, encrypted)

    def open(self, content_key: bytes) -> bytes:
        # Every failure says the same as the card's own (piv): which step failed (a key unwrapped to the
        # wrong length, the content's CBC padding) is the answer a padding-oracle attack asks for.
        cipher, key_size = _CONTENT_CIPHERS[self.algorithm]
        if len(content_key) != key_size:
            raise DecryptionFailed(DECRYPTION_FAILED)
        try:
            decryptor = Cipher(cipher(content_key), modes.CBC(self.iv)).decryptor()
            padded = decryptor.update(self.content) + decryptor.finalize()
            unpadder = symmetric_padding.PKCS7(cipher.block_size).unpadder()
            return unpadder.update(padded) + unpadder.finalize()
        except ValueError:
            raise DecryptionFailed(DECRYPTION_FAILED) from None


def _names(rid: cms.RecipientIdentifier, certificate: x509.Certificate) -> bool:
    """Whether the recipient identifier is ``certificate``: its issuer and serial, or its key identifier.

    The issuer is compared as names are (RFC 5280: string types, case and spaces aside), not as bytes: an
    encryptor that re-encoded the name (PrintableString for UTF8String, say) still means this certificate.
    The key identifier is the certificate's, or, when it states none, the one computed from its key, as
    an encryptor given such a certificate computes it.
    """
    if rid.name == "issuer_and_serial_number":
        chosen = rid.chosen
        return (
            chosen["serial_number"].native == certificate.serial_number
            and chosen["issuer"] == asn1_x509.Name.load(certificate.issuer.public_bytes())
        )
    return rid.chosen.native == key_identifier(certificate)
