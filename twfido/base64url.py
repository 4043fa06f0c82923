"""base64url without padding, as the contract writes tickets and signed responses (RFC 4648 §5)."""

from __future__ import annotations

import base64
import binascii

_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decode(text: object) -> bytes:
    """Raises ``ValueError`` for anything but base64url text (padding may be left out)."""
    # Python's decoder skips characters outside the alphabet; the contract's values have none.
    if not isinstance(text, str) or not _ALPHABET.issuperset(text):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc
