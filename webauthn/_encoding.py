"""Strict decoding of the browser's JSON encoding (base64url without padding) for untrusted input."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

# The largest field we accept, decoded. A TPM or SafetyNet attestation object is ~10 KiB; nothing a
# real authenticator sends comes near this, and it bounds the work an attacker can make us do.
MAX_FIELD_BYTES = 64 * 1024

_B64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")


class Malformed(Exception):
    """Internal: the input does not have the shape or encoding we expect (becomes reason ``malformed``)."""


def b64url_encode(data: bytes) -> str:
    """Base64url without padding, as ``PublicKeyCredential.toJSON()`` and the options JSON use."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(value: Any, what: str) -> bytes:
    """Decode one base64url field; raise ``Malformed`` for anything else (wrong type, alphabet, size)."""
    if not isinstance(value, str):
        raise Malformed(f"{what} is not a string")
    if len(value) > MAX_FIELD_BYTES * 4 // 3 + 4:
        raise Malformed(f"{what} is too long")
    if not _B64URL.fullmatch(value):
        raise Malformed(f"{what} is not base64url")
    stripped = value.rstrip("=")
    if len(stripped) % 4 == 1:
        raise Malformed(f"{what} has an impossible base64url length")
    try:
        return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - the regex already rules these out
        raise Malformed(f"{what} is not base64url") from exc


def mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise Malformed(f"{what} is not an object")
    return value


def optional_string(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise Malformed(f"{what} is not a string")
    return value
