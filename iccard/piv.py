"""PIV (NIST SP 800-73-4) over any card connection: objects, certificates, PIN, private-key operations.

The host side of the card. The same constants describe the card side in :mod:`iccard.emulator`, so they
live here, once.
"""

from __future__ import annotations

import zlib
from enum import IntEnum

from cryptography import x509

from . import tlv
from .apdu import SW_FILE_NOT_FOUND, SW_WRONG_DATA, send
from .errors import ApduError, DecryptionFailed, PinBlocked, UnsupportedCard, WrongPin
from .formats import CARD_NUMBER, check_pin
from .transport import CardConnection

# -- PIV constants (SP 800-73-4 part 1 and 2) -----------------------------------------------------------

PIV_AID = bytes.fromhex("A000000308000010000100")
PIV_RID = PIV_AID[:5]  # NIST's registered application provider identifier: A0 00 00 03 08
PIV_PIX = PIV_AID[5:]

INS_VERIFY = 0x20
INS_CHANGE_REFERENCE_DATA = 0x24
INS_GENERAL_AUTHENTICATE = 0x87
INS_GET_DATA = 0xCB

PIN_REFERENCE = 0x80  # the PIV Card Application PIN
PIN_LENGTH = 8  # always sent padded with FF to 8 bytes
PIN_PAD = 0xFF

TAG_OBJECT_DATA = 0x53  # every data object is returned inside 53 ...
TAG_DISCOVERY = 0x7E  # ... except the Discovery Object, which is its own template
TAG_TAG_LIST = 0x5C
TAG_APPLICATION_PROPERTY_TEMPLATE = 0x61
TAG_DYNAMIC_AUTHENTICATION = 0x7C
TAG_CHALLENGE = 0x81
TAG_RESPONSE = 0x82

# Inside a certificate object
TAG_CERTIFICATE = 0x70
TAG_CERT_INFO = 0x71
TAG_ERROR_DETECTION = 0xFE
CERT_INFO_GZIP = 0x01

# Inside the CHUID
TAG_FASC_N = 0x30
TAG_GUID = 0x34
TAG_EXPIRATION = 0x35
TAG_ISSUER_SIGNATURE = 0x3E

# Inside the Key History object
TAG_KEYS_WITH_ON_CARD_CERTS = 0xC1
TAG_KEYS_WITH_OFF_CARD_CERTS = 0xC2


class Slot(IntEnum):
    """Key references of the PIV keys (P2 of GENERAL AUTHENTICATE)."""

    AUTHENTICATION = 0x9A
    SIGNATURE = 0x9C
    KEY_MANAGEMENT = 0x9D
    CARD_AUTHENTICATION = 0x9E


class Algorithm(IntEnum):
    """Algorithm references (P1 of GENERAL AUTHENTICATE)."""

    RSA_2048 = 0x07
    ECC_P256 = 0x11


class ObjectId(IntEnum):
    """BER-TLV tags of the PIV data objects this code reads or the emulator serves."""

    CHUID = 0x5FC102
    CCC = 0x5FC107
    DISCOVERY = 0x7E
    KEY_HISTORY = 0x5FC10C
    CERT_AUTHENTICATION = 0x5FC105
    CERT_SIGNATURE = 0x5FC10A
    CERT_KEY_MANAGEMENT = 0x5FC10B
    CERT_CARD_AUTHENTICATION = 0x5FC101
    CERT_RETIRED_KEY_MANAGEMENT_1 = 0x5FC10D


# The certificates of the 20 retired key-management keys (key references 82..95), in order. The Key History
# object says how many of them, from the first on, the card holds (keysWithOnCardCerts).
RETIRED_CERTIFICATE_OBJECTS = tuple(range(ObjectId.CERT_RETIRED_KEY_MANAGEMENT_1, 0x5FC120 + 1))

CERTIFICATE_OBJECTS = {
    Slot.AUTHENTICATION: ObjectId.CERT_AUTHENTICATION,
    Slot.SIGNATURE: ObjectId.CERT_SIGNATURE,
    Slot.KEY_MANAGEMENT: ObjectId.CERT_KEY_MANAGEMENT,
    Slot.CARD_AUTHENTICATION: ObjectId.CERT_CARD_AUTHENTICATION,
}

RSA_2048_BYTES = 256

# DER prefixes of DigestInfo (RFC 8017 §9.2, note 1); the digest follows.
DIGEST_INFO_PREFIXES = {
    # SHA-1 only for the sites a person has allowed it for (iccard.agent); never for a MoCert login.
    "SHA1": bytes.fromhex("3021300906052b0e03021a05000414"),
    "SHA256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "SHA384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "SHA512": bytes.fromhex("3051300d060960864801650304020305000440"),
}



def digest_info(hash_name: str, digest: bytes) -> bytes:
    """The DER DigestInfo for ``digest`` made with ``hash_name`` (SHA256, SHA384, SHA512; SHA1 too, which
    only the agent asks for, and only for a site the person allowed it: deciding that is the caller's).

    Raises ``ValueError`` for another hash or a digest of the wrong length.
    """
    prefix = DIGEST_INFO_PREFIXES.get(hash_name.upper())
    if prefix is None:
        raise ValueError(f"no DigestInfo for {hash_name}")
    if len(digest) != prefix[-1]:
        raise ValueError(f"a {hash_name} digest is {prefix[-1]} bytes, not {len(digest)}")
    return prefix + digest


def pkcs1v15_block(digest_info_der: bytes, size: int = RSA_2048_BYTES) -> bytes:
    """EMSA-PKCS1-v1_5 encoding (RFC 8017 §9.2): ``00 01 FF..FF 00 || DigestInfo``, ``size`` bytes long.

    Raises ``ValueError`` when the DigestInfo leaves room for fewer than 8 bytes of padding.
    """
    padding = size - 3 - len(digest_info_der)
    if padding < 8:
        raise ValueError("DigestInfo too long for the key")
    return b"\x00\x01" + b"\xff" * padding + b"\x00" + digest_info_der


def encode_pin(pin: str) -> bytearray:
    """The VERIFY data for ``pin``: its ASCII digits padded with FF to 8 bytes.

    Returned as a bytearray so the caller can wipe it. Raises :class:`~iccard.errors.MalformedPin`
    unless the PIN is 6 to 8 digits.
    """
    check_pin(pin)
    block = bytearray(pin.encode("ascii"))
    block.extend([PIN_PAD] * (PIN_LENGTH - len(block)))
    return block


class PivSession:
    """A session with the PIV application of the card behind ``connection``.

    Creating it selects the application; raises :class:`~iccard.errors.UnsupportedCard` when the card has
    none, and :class:`~iccard.errors.NoCard` / :class:`~iccard.errors.CardRemoved` from the connection.
    """

    def __init__(self, connection: CardConnection) -> None:
        self.connection = connection
        self.application_properties = self._select()

    def _select(self) -> bytes:
        """SELECT the PIV application; returns the value of its Application Property Template (61)."""
        response = send(self.connection, 0x00, 0xA4, 0x04, 0x00, PIV_AID, le=256)
        try:
            properties = tlv.unwrap(response, TAG_APPLICATION_PROPERTY_TEMPLATE) if response else b""
            tlv.parse(properties)
        except tlv.TlvError as exc:
            raise UnsupportedCard(f"the PIV SELECT answer is not an application property template: {exc}") from exc
        return properties

    # -- data objects -------------------------------------------------------------------------------

    def get_object(self, object_id: int) -> bytes:
        """The content of a data object: the value inside its ``53`` (or ``7E``) wrapper.

        Raises :class:`~iccard.errors.ApduError` with SW 6A82 when the card does not have it, and
        :class:`~iccard.errors.UnsupportedCard` when the answer is not a PIV object.
        """
        tag_list = tlv.tlv(TAG_TAG_LIST, tlv.encode_tag(object_id))
        response = send(self.connection, 0x00, INS_GET_DATA, 0x3F, 0xFF, tag_list, le=256)
        expected = TAG_DISCOVERY if object_id == ObjectId.DISCOVERY else TAG_OBJECT_DATA
        try:
            return tlv.unwrap(response, expected)
        except tlv.TlvError as exc:
            raise UnsupportedCard(f"object {object_id:X} is not PIV-encoded: {exc}") from exc

    def get_certificate(self, slot: Slot | int) -> x509.Certificate:
        """The X.509 certificate stored for ``slot``.

        Raises :class:`~iccard.errors.UnsupportedCard` when the slot has no certificate or it does not
        parse; ``ValueError`` for a slot PIV does not define.
        """
        slot = Slot(slot)
        certificate = self._certificate_object(CERTIFICATE_OBJECTS[slot], f"slot {slot:02X}")
        if certificate is None:
            raise UnsupportedCard(f"the card has no certificate for slot {slot:02X}")
        return certificate

    def ca_certificates(self) -> list[x509.Certificate]:
        """The CA certificates the card carries (the issuing CA's, on citizen cards), possibly none.

        They sit where SP 800-73-4 leaves room for certificates beyond the four keys': the retired
        key-management certificate objects, as many from the first on as the Key History object counts.
        Only CA certificates are returned, not a retired encryption key's own certificate. A card without
        Key History, or whose counted objects are missing, has none. Raises
        :class:`~iccard.errors.UnsupportedCard` when an object is there but malformed.
        """
        try:
            history = tlv.parse_dict(self.get_object(ObjectId.KEY_HISTORY))
        except ApduError as exc:
            if exc.sw == SW_FILE_NOT_FOUND:
                return []
            raise
        except tlv.TlvError as exc:
            raise UnsupportedCard(f"the Key History object is malformed: {exc}") from exc
        count = history.get(TAG_KEYS_WITH_ON_CARD_CERTS, b"\x00")
        if len(count) != 1:
            raise UnsupportedCard("the Key History object's keysWithOnCardCerts is not one byte")
        found = []
        for index, object_id in enumerate(RETIRED_CERTIFICATE_OBJECTS[: count[0]], start=1):
            certificate = self._certificate_object(object_id, f"retired key-management certificate {index}")
            if certificate is not None and _is_ca(certificate):
                found.append(certificate)
        return found

    def _certificate_object(self, object_id: int, name: str) -> x509.Certificate | None:
        """The certificate in certificate object ``object_id`` (None when the card has no such object).

        Raises :class:`~iccard.errors.UnsupportedCard` when the object is malformed or holds nothing.
        """
        try:
            content = tlv.parse_dict(self.get_object(object_id))
        except ApduError as exc:
            if exc.sw == SW_FILE_NOT_FOUND:
                return None
            raise
        except tlv.TlvError as exc:
            raise UnsupportedCard(f"the certificate object of {name} is malformed: {exc}") from exc
        der = content.get(TAG_CERTIFICATE)
        if not der:
            raise UnsupportedCard(f"the certificate object of {name} holds no certificate")
        info = content.get(TAG_CERT_INFO, b"\x00")
        try:
            if info and info[0] & CERT_INFO_GZIP:
                der = zlib.decompress(der, wbits=31)  # 31: the gzip container
            return x509.load_der_x509_certificate(der)
        except (ValueError, zlib.error) as exc:
            raise UnsupportedCard(f"the certificate of {name} does not parse: {exc}") from exc

    def card_number(self) -> str:
        """The card number (e.g. ``TEST000000000001``): the CHUID's GUID read as 16 ASCII characters.

        Raises :class:`~iccard.errors.UnsupportedCard` when the CHUID is missing or its GUID is not a card
        number (a PIV card from elsewhere, with a random GUID).
        """
        try:
            guid = tlv.parse_dict(self.get_object(ObjectId.CHUID)).get(TAG_GUID, b"")
        except ApduError as exc:
            if exc.sw == SW_FILE_NOT_FOUND:
                raise UnsupportedCard("the card has no CHUID") from exc
            raise
        except tlv.TlvError as exc:
            raise UnsupportedCard(f"the CHUID is malformed: {exc}") from exc
        try:
            number = guid.decode("ascii")
        except UnicodeDecodeError:
            number = ""
        if not CARD_NUMBER.match(number):
            raise UnsupportedCard("the CHUID's GUID is not a card number")
        return number

    # -- PIN ----------------------------------------------------------------------------------------

    def verify_pin(self, pin: str) -> None:
        """Verify the PIV PIN. The PIN is neither kept nor logged.

        Raises :class:`~iccard.errors.MalformedPin` (nothing sent), :class:`~iccard.errors.WrongPin` with
        the tries left, :class:`~iccard.errors.PinBlocked`.
        """
        block = encode_pin(pin)
        try:
            send(self.connection, 0x00, INS_VERIFY, 0x00, PIN_REFERENCE, bytes(block))
        finally:
            block[:] = bytes(len(block))

    def change_pin(self, old_pin: str, new_pin: str) -> None:
        """Replace the PIV PIN ``old_pin`` with ``new_pin`` (CHANGE REFERENCE DATA). Neither is kept.

        A wrong ``old_pin`` spends a try as a wrong VERIFY does. Raises
        :class:`~iccard.errors.MalformedPin` when either is not 6 to 8 digits (nothing sent),
        :class:`~iccard.errors.WrongPin` with the tries left, :class:`~iccard.errors.PinBlocked`.
        """
        blocks = [encode_pin(old_pin)]
        try:
            blocks.append(encode_pin(new_pin))
            send(self.connection, 0x00, INS_CHANGE_REFERENCE_DATA, 0x00, PIN_REFERENCE, bytes(blocks[0] + blocks[1]))
        finally:
            for block in blocks:
                block[:] = bytes(len(block))

    def pin_tries_left(self) -> int | None:
        """How many wrong PINs the card still accepts (0: blocked), without spending one.

        Returns None while the PIN is verified in this session: the card then answers 9000 and does not
        say. Raises :class:`~iccard.errors.ApduError` for any other answer.
        """
        try:
            send(self.connection, 0x00, INS_VERIFY, 0x00, PIN_REFERENCE)
        except WrongPin as exc:
            return exc.tries_left
        except PinBlocked:
            return 0
        return None

    # -- private-key operations ---------------------------------------------------------------------

    def general_authenticate(self, slot: Slot | int, algorithm: Algorithm | int, challenge: bytes) -> bytes:
        """GENERAL AUTHENTICATE asking for a response to ``challenge`` with the key in ``slot``.

        For RSA the challenge is the whole padded block and the response the raw RSA result; for ECC it
        is the hash and the response a DER ECDSA signature. Raises
        :class:`~iccard.errors.PinRequired` without a verified PIN, :class:`~iccard.errors.ApduError` for
        other refusals, :class:`~iccard.errors.UnsupportedCard` when the answer is not a response template.
        """
        template = tlv.tlv(TAG_DYNAMIC_AUTHENTICATION, tlv.tlv(TAG_RESPONSE) + tlv.tlv(TAG_CHALLENGE, challenge))
        answer = send(self.connection, 0x00, INS_GENERAL_AUTHENTICATE, int(algorithm), int(slot), template, le=256)
        try:
            response = tlv.parse_dict(tlv.unwrap(answer, TAG_DYNAMIC_AUTHENTICATION)).get(TAG_RESPONSE)
        except tlv.TlvError as exc:
            raise UnsupportedCard(f"GENERAL AUTHENTICATE answered no response template: {exc}") from exc
        if not response:
            raise UnsupportedCard("GENERAL AUTHENTICATE answered an empty response")
        return response

    def sign_rsa(self, slot: Slot | int, padded_block: bytes) -> bytes:
        """The raw RSA-2048 private operation on ``padded_block`` (256 bytes, already padded).

        Returns the 256-byte signature. Raises ``ValueError`` for a block of another length, and what
        :meth:`general_authenticate` raises.
        """
        if len(padded_block) != RSA_2048_BYTES:
            raise ValueError(f"an RSA-2048 block is {RSA_2048_BYTES} bytes, not {len(padded_block)}")
        signature = self.general_authenticate(slot, Algorithm.RSA_2048, padded_block)
        if len(signature) != RSA_2048_BYTES:
            raise UnsupportedCard(f"the card returned a {len(signature)}-byte RSA-2048 signature")
        return signature

    def sign_pkcs1v15(self, slot: Slot | int, digest_info: bytes) -> bytes:
        """An RSASSA-PKCS1-v1_5 signature (RSA-2048) over ``digest_info``, a DER DigestInfo.

        The PIN must have been verified just before (slot 9C wants it before every signature). Returns
        the 256-byte signature; raises what :meth:`sign_rsa` raises.
        """
        return self.sign_rsa(slot, pkcs1v15_block(digest_info))

    def decrypt(self, ciphertext: bytes) -> bytes:
        """Decrypt an RSAES-PKCS1-v1_5 ``ciphertext`` (RSA-2048) with the key-management key, slot 9D.

        The card does the raw RSA operation, as PIV cards do; the padding is removed here. The PIN must be
        verified in this session (9D asks once, not before every use). Returns the message. Raises
        :class:`~iccard.errors.DecryptionFailed` when the ciphertext is not 256 bytes, not below the
        modulus, or does not decrypt to a padded message; :class:`~iccard.errors.PinRequired` without the
        PIN; what :meth:`general_authenticate` raises otherwise.
        """
        if len(ciphertext) != RSA_2048_BYTES:
            raise DecryptionFailed(DECRYPTION_FAILED)
        try:
            block = self.general_authenticate(Slot.KEY_MANAGEMENT, Algorithm.RSA_2048, bytes(ciphertext))
        except ApduError as exc:
            if exc.sw == SW_WRONG_DATA:  # the card's word for "not below the modulus"
                raise DecryptionFailed(DECRYPTION_FAILED) from None
            raise
        if len(block) != RSA_2048_BYTES:
            raise UnsupportedCard(f"the card returned a {len(block)}-byte RSA-2048 result")
        return eme_pkcs1v15_decode(block)


DECRYPTION_FAILED = "the ciphertext does not decrypt with this card's key"


def eme_pkcs1v15_decode(block: bytes) -> bytes:
    """The message in an EME-PKCS1-v1_5 block (RFC 8017 §7.2.2 step 3): ``00 02 PS 00 M``, PS at least 8
    non-zero bytes. Raises :class:`~iccard.errors.DecryptionFailed`, one error for every fault.

    Written here because the private key is on the card: cryptography removes this padding only inside
    its own decrypt, with the key in hand, and has no API to unpad a raw result. What a page learns from
    a decryption is whether it failed, so this must not tell one fault from another: every byte is looked
    at whatever came before it, with no early return, and there is one error with one message. (Python
    does not promise constant time; this takes away the plain signals, the branches on where the padding
    broke, which is what a Bleichenbacher oracle reads.)
    """
    if len(block) < 2 + 8 + 1:  # the block's length is public: refusing it early tells nothing
        raise DecryptionFailed(DECRYPTION_FAILED)
    looking = 1  # still in PS: no zero byte seen since the header
    separator = 0  # index of the first zero after the header; 0 while none
    for index in range(2, len(block)):
        is_zero = int(block[index] == 0)
        separator |= index * (looking & is_zero)
        looking &= 1 - is_zero
    header_ok = int(block[0] == 0x00) & int(block[1] == 0x02)
    padding_ok = int(separator >= 2 + 8)  # also 0 when no separator was found
    if not header_ok & padding_ok:
        raise DecryptionFailed(DECRYPTION_FAILED)
    return bytes(block[separator + 1 :])


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False
