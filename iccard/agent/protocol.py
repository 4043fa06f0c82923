"""The component's answers: field names, function names and return codes, as pages expect them.

``ret_code`` 0 is success. The real component's known codes are kept as they are (site not trusted,
card expired); for card and PIN failures we answer with one ret_code of our own and put the PKCS#11
return value (``CKR_*``) that says what happened in ``last_error``, which is where pages look for
"wrong PIN". ``tries_left``, ``pin_blocked`` and ``message`` are our additions: pages written for the
real component ignore them, ours show them.
"""

from __future__ import annotations

import base64
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ..errors import (
    CardError,
    CardInUse,
    CardRemoved,
    NoCard,
    PinBlocked,
    ReaderUnavailable,
    UnsupportedCard,
    WrongPin,
)

VERSION = "MoCert-agent 1.0"

OK = 0
SITE_NOT_TRUSTED = 0x76000031  # the real component's "site not in the trusted list"
CARD_EXPIRED = 1984954370  # the real component's "card expired"
CARD_FAILURE = 0x76100001  # ours: see last_error
BAD_REQUEST = 0x76100002  # ours: the request itself is wrong

# PKCS#11 return values, as last_error.
CKR_ARGUMENTS_BAD = 0x07
CKR_DEVICE_ERROR = 0x30
CKR_DEVICE_REMOVED = 0x32
CKR_FUNCTION_CANCELED = 0x50
CKR_PIN_INCORRECT = 0xA0
CKR_PIN_LEN_RANGE = 0xA2
CKR_PIN_LOCKED = 0xA4
CKR_TOKEN_NOT_PRESENT = 0xE0
CKR_TOKEN_NOT_RECOGNIZED = 0xE1


def failure(func: str, ret_code: int, last_error: int, message: str, **extra: object) -> dict:
    return {"func": func, "ret_code": ret_code, "last_error": last_error, "message": message, "version": VERSION, **extra}


def card_failure(func: str, error: CardError) -> dict:
    """The answer for a card error, with the CKR code a page can act on."""
    if isinstance(error, WrongPin):
        return failure(func, CARD_FAILURE, CKR_PIN_INCORRECT, "wrong PIN", tries_left=error.tries_left)
    if isinstance(error, PinBlocked):
        return failure(func, CARD_FAILURE, CKR_PIN_LOCKED, "PIN blocked", pin_blocked=True, tries_left=0)
    if isinstance(error, NoCard):
        return failure(func, CARD_FAILURE, CKR_TOKEN_NOT_PRESENT, "no card in the reader")
    if isinstance(error, CardRemoved):
        return failure(func, CARD_FAILURE, CKR_DEVICE_REMOVED, "the card was removed")
    if isinstance(error, UnsupportedCard):
        return failure(func, CARD_FAILURE, CKR_TOKEN_NOT_RECOGNIZED, "not a supported card")
    if isinstance(error, ReaderUnavailable):
        return failure(func, CARD_FAILURE, CKR_DEVICE_ERROR, "the card reader service (pcscd) cannot be reached")
    if isinstance(error, CardInUse):
        return failure(func, CARD_FAILURE, CKR_DEVICE_ERROR, "another program is using the card")
    return failure(func, CARD_FAILURE, CKR_DEVICE_ERROR, "the card reported an error")


def sign_response(signature: bytes, certificate: x509.Certificate, card_number: str) -> dict:
    return {
        "func": "sign",
        "ret_code": OK,
        "last_error": 0,
        "signature": base64.b64encode(signature).decode(),
        "certb64": base64.b64encode(certificate.public_bytes(Encoding.DER)).decode(),
        "cardSN": card_number,
        "version": VERSION,
    }


def certificate_entry(label: str, certificate: x509.Certificate) -> dict:
    usage = []
    try:
        key_usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
        if key_usage.digital_signature:
            usage.append("digitalSignature")
        if key_usage.content_commitment:
            usage.append("nonRepudiation")
        if key_usage.key_encipherment:
            usage.append("keyEncipherment")
    except x509.ExtensionNotFound:
        pass
    return {
        "label": label,
        "certb64": base64.b64encode(certificate.public_bytes(Encoding.DER)).decode(),
        "subjectDN": certificate.subject.rfc4514_string(_ATTRIBUTE_NAMES),
        "issuerDN": certificate.issuer.rfc4514_string(_ATTRIBUTE_NAMES),
        "sn": f"{certificate.serial_number:x}",
        "usage": "|".join(usage),
        "notBeforeT": _timestamp(certificate.not_valid_before_utc),
        "notAfterT": _timestamp(certificate.not_valid_after_utc),
    }


# RFC 4514 has no short name for serialNumber; without one it would print as 2.5.4.5.
_ATTRIBUTE_NAMES = {NameOID.SERIAL_NUMBER: "serialNumber"}


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%d%H%M%S")
