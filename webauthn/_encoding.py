"""Strict decoding of the browser's JSON encoding (base64url without padding) for untrusted input."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

# The largest field we accept, decoded. A TPM or SafetyNet attestation object is ~10 KiB; nothing a
# real authenticator sends comes near this, and it bounds the work an attacker can make us do.
MAX_FIELD_BYTES = 64 * 1024

# Base64url to the standard alphabet for binascii, in one bytes.translate: "-" and "_" become "+" and "/";
# "+", "/" and "=" (not base64url, or padding where there should be none) become "!", which binascii's
# strict mode refuses, as it refuses every other character outside the alphabet. The padding that the
# length asks for is added after the translation (None: a length no base64 can have).
_TO_STANDARD = bytes.maketrans(b"-_+/=", b"+/!!!")
_PADDING = (b"", None, b"==", b"=")
_MAX_FIELD_CHARACTERS = MAX_FIELD_BYTES * 4 // 3 + 4


class Malformed(Exception):
    """Internal: the input does not have the shape or encoding we expect (becomes reason ``malformed``)."""


def b64url_encode(data: bytes) -> str:
    """Base64url without padding, as ``PublicKeyCredential.toJSON()`` and the options JSON use."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(value: Any, what: str) -> bytes:
    """Decode one base64url field; raise ``Malformed`` for anything else (wrong type, alphabet, size).

    Up to two "=" of padding are tolerated at the end (browsers send none), as before. No regular
    expression: the hot path decodes six or seven of these per assertion, and one translate and
    binascii's strict decoding cost less than the match alone did (tests/webauthn/test_encoding.py
    checks the two agree)."""
    if not isinstance(value, str):
        raise Malformed(f"{what} is not a string")
    if len(value) > _MAX_FIELD_CHARACTERS:
        raise Malformed(f"{what} is too long")
    if value[-1:] == "=":
        stripped = value.rstrip("=")
        if len(value) - len(stripped) > 2:
            raise Malformed(f"{what} is not base64url")
        value = stripped
    if not value.isascii():
        raise Malformed(f"{what} is not base64url")
    padding = _PADDING[len(value) % 4]
    if padding is None:
        raise Malformed(f"{what} has an impossible base64url length")
    try:
        return binascii.a2b_base64(value.encode("ascii").translate(_TO_STANDARD) + padding, strict_mode=True)
    except binascii.Error:
        raise Malformed(f"{what} is not base64url") from None


def mapping(value: Any, what: str) -> Mapping[str, Any]:
    if type(value) is not dict and not isinstance(value, Mapping):  # a dict (json's) skips the ABC check
        raise Malformed(f"{what} is not an object")
    return value


def optional_string(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise Malformed(f"{what} is not a string")
    return value
