"""``sp_checksum`` and ``idp_checksum``: AES-256-GCM over the SHA-256 of an operation's fields.

Take the fields the operation lists, in its order, an absent one as ""; concatenate; SHA-256, lowercase
hex; encrypt those 64 ASCII characters with AES-256-GCM under the agency's 32-byte key and a 12-byte IV.
The checksum is hex(IV) ‖ hex(ciphertext ‖ tag). Any IV is accepted (the published sample uses twelve zero
bytes); our answers use a random one. The cipher is ``cryptography``'s; what the contract adds is the
field orders and the text form, which no library knows.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Iterable, Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
IV_BYTES = 12
TAG_BYTES = 16
DIGEST_HEX = 64
CHECKSUM_HEX = 2 * (IV_BYTES + DIGEST_HEX + TAG_BYTES)

# The fields each checksum covers, in order (the contract's; an absent field counts as "").
REQUEST_FIELDS = {
    "getSpTicket": ("transaction_id", "sp_service_id", "id_num", "op_code", "op_mode", "hint", "sign_data"),
    "requestAthOrSignPush": (
        "transaction_id", "sp_service_id", "id_num", "device_user_def_desc", "op_code", "hint", "sign_data",
    ),
    "getAthOrSignResult": ("transaction_id", "sp_service_id", "sp_ticket_id"),
}
ANSWER_FIELDS = {
    "ticket": ("transaction_id", "error_code", "sp_ticket"),
    "result": ("transaction_id", "error_code", "hashed_id_num", "signed_response"),
}


class ChecksumError(ValueError):
    """A checksum that is malformed, or does not match the fields under this key."""


class InvalidAgencyKey(ValueError):
    """An agency key that is not base64 of 32 bytes."""


def agency_key(encoded: str) -> bytes:
    """The agency's AES-256 key from its base64 form (as it is handed to the agency)."""
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidAgencyKey("the agency key is not base64") from exc
    if len(key) != KEY_BYTES:
        raise InvalidAgencyKey(f"the agency key is {len(key)} bytes, not {KEY_BYTES}")
    return key


def fields_of(values: Mapping[str, object], order: Iterable[str]) -> list[str]:
    """The values of ``order`` taken from ``values`` as text, an absent (or null) one as ""."""
    return ["" if values.get(name) is None else str(values.get(name)) for name in order]


def digest(fields: Iterable[str]) -> str:
    """The lowercase hex SHA-256 of the fields concatenated (UTF-8)."""
    return hashlib.sha256("".join(fields).encode("utf-8")).hexdigest()


def seal(key: bytes, fields: Iterable[str], *, iv: bytes | None = None) -> str:
    """The checksum of ``fields`` under ``key``: hex(IV ‖ ciphertext ‖ tag), with a random IV unless given."""
    iv = os.urandom(IV_BYTES) if iv is None else iv
    if len(iv) != IV_BYTES:
        raise ValueError(f"the IV is {IV_BYTES} bytes")
    return (iv + AESGCM(key).encrypt(iv, digest(fields).encode("ascii"), None)).hex()


def verify(key: bytes, fields: Iterable[str], checksum: object) -> None:
    """Raise :class:`ChecksumError` unless ``checksum`` seals exactly ``fields`` under ``key``."""
    if not isinstance(checksum, str) or len(checksum) != CHECKSUM_HEX:
        raise ChecksumError(f"a checksum is {CHECKSUM_HEX} hex digits")
    try:
        raw = bytes.fromhex(checksum)
    except ValueError as exc:
        raise ChecksumError("a checksum is hex digits") from exc
    iv, sealed = raw[:IV_BYTES], raw[IV_BYTES:]
    try:
        plain = AESGCM(key).decrypt(iv, sealed, None)
    except InvalidTag as exc:
        raise ChecksumError("the checksum was not made with this agency's key") from exc
    if not hmac.compare_digest(plain, digest(fields).encode("ascii")):
        raise ChecksumError("the checksum is not of these fields")
