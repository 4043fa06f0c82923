"""Random secrets and the digests they are stored and found by, made one way everywhere.

A bearer value (a session cookie, a QR code's token, a service token) is stored only as its SHA-256: a
database read gives no value that logs anyone in. National IDs are stored as a keyed hash (HMAC), since
their space is small enough to search without a key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from iccard import national_id as nid

TOKEN_BYTES = 32


def new_token() -> str:
    """A fresh unguessable value, URL-safe (256 bits)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def digest(value: str) -> str:
    """The SHA-256 of ``value``, hex: how a bearer token is stored and looked up."""
    return hashlib.sha256(value.encode()).hexdigest()


class NationalIdHash:
    """The keyed hash an account's national ID is stored and found by; built once, from the configured key.

    ``NationalIdHash(key)(value)`` normalises ``value`` first and raises ``InvalidNationalId`` when it is not
    a valid ID. ``derive(label, id_hash)`` keys a further value on the same secret (the mobile certificate's
    pseudonymous serial), so nothing derived from an ID can be recomputed without the key.
    """

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __call__(self, national_id: str) -> str:
        return nid.keyed_hash(nid.normalize(national_id), self._key)

    def derive(self, label: str, id_hash: str) -> str:
        return hmac.new(self._key, f"{label}:{id_hash}".encode(), hashlib.sha256).hexdigest()
