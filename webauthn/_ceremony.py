"""Checks both ceremonies share: client data (§7.1 steps 5-12, §7.2 steps 10-15) and authenticator data flags.

Everything raises ``WebAuthnError`` (or ``Malformed`` for input that does not parse); the public
functions turn them into ``RegistrationRejected`` / ``AuthenticationRejected``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import struct
from collections.abc import Sequence
from datetime import datetime, timezone
from hmac import compare_digest
from typing import Any, NamedTuple

from fido2.webauthn import AuthenticatorData

from ._encoding import Malformed, b64url_decode
from .errors import WebAuthnError

CREATE = "webauthn.create"
GET = "webauthn.get"


def expected_origins(expected_origin: str | Sequence[str]) -> frozenset[str]:
    """The set of acceptable origins; raises ``TypeError``/``ValueError`` for a caller mistake."""
    origins = (expected_origin,) if isinstance(expected_origin, str) else tuple(expected_origin)
    if not origins:
        raise ValueError("expected_origin must be a non-empty origin string or a sequence of them")
    for origin in origins:  # a loop, not all() over a generator: this runs on every login
        if not isinstance(origin, str) or not origin:
            raise ValueError("expected_origin must be a non-empty origin string or a sequence of them")
    return frozenset(origins)


def check_arguments(expected_challenge: bytes, expected_rp_id: str) -> None:
    if not isinstance(expected_challenge, bytes) or not expected_challenge:
        raise TypeError("expected_challenge must be the non-empty bytes the server issued")
    if not isinstance(expected_rp_id, str) or not expected_rp_id:
        raise TypeError("expected_rp_id must be a non-empty string")


def aware(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(timezone.utc)
    if not isinstance(now, datetime) or now.tzinfo is None:
        raise ValueError("now must be a timezone-aware datetime")
    return now.astimezone(timezone.utc)


_JSON = json.JSONDecoder()
_JSON_WHITESPACE = " \t\n\r"  # RFC 8259's, which json.loads skips around the value


class ClientData(NamedTuple):
    """The client data, parsed once: the three members every check reads, and the whole object."""

    type: str
    challenge: bytes  # decoded from its base64url
    origin: str
    members: dict[str, Any]


def parse_client_data(raw: bytes) -> ClientData:
    """Parse ``clientDataJSON`` (UTF-8 JSON, as the spec says; never UTF-16 or -32, which ``json.loads`` of
    bytes would guess). Parsed here rather than by fido2's ``CollectedClientData``, which decodes the
    challenge a second time, leniently (any alphabet), where ours is strict."""
    try:
        # json.loads less its two regular-expression matches for whitespace (they cost more than the
        # parse of a client data): the same whitespace stripped here, the one value must fill the rest.
        text = raw.decode("utf-8").strip(_JSON_WHITESPACE)
        members, end = _JSON.raw_decode(text)
    except Exception as exc:  # UnicodeDecodeError, JSONDecodeError, RecursionError (deep nesting)...
        raise Malformed(f"clientDataJSON does not parse: {exc!r}") from None
    if end != len(text):
        raise Malformed("clientDataJSON has data after its object")
    if type(members) is not dict:
        raise Malformed("clientDataJSON is not an object")
    kind, origin = members.get("type"), members.get("origin")
    if not isinstance(kind, str) or not isinstance(origin, str):
        raise Malformed("clientData.type and clientData.origin must be strings")
    return ClientData(kind, b64url_decode(members.get("challenge"), "clientData.challenge"), origin, members)


def check_client_data(
    client_data: ClientData,
    *,
    expected_type: str,
    expected_challenge: bytes,
    origins: frozenset[str],
) -> None:
    """Type, challenge, origin, cross-origin and token binding of the client data."""
    if client_data.type != expected_type:
        raise WebAuthnError("wrong_type", f"clientData.type is {client_data.type!r}, not {expected_type!r}")
    if not compare_digest(client_data.challenge, expected_challenge):
        raise WebAuthnError("challenge_mismatch", "clientData.challenge is not the challenge issued")
    if client_data.origin not in origins:
        raise WebAuthnError("origin_mismatch", f"clientData.origin {client_data.origin!r} is not expected")
    members = client_data.members
    if members.get("crossOrigin") is True:
        raise WebAuthnError("cross_origin", "the ceremony ran in a cross-origin frame")
    if "tokenBinding" in members:
        check_token_binding(members["tokenBinding"])


TOKEN_BINDING_STATUSES = ("present", "supported")  # WebAuthn L2 §5.8.1 TokenBindingStatus


def check_token_binding(token_binding: Any) -> None:
    """§7.1 step 10 / §7.2 step 14, for a client data that has the member. fido2 does not look at
    tokenBinding. It must be an object whose status is one of the two the spec defines; "present" means the
    browser used Token Binding on this TLS connection, which our TLS cannot verify, so it is refused too."""
    status = token_binding.get("status") if isinstance(token_binding, dict) else None
    if status not in TOKEN_BINDING_STATUSES:
        raise WebAuthnError("token_binding_invalid", f"clientData.tokenBinding {token_binding!r:.80} is not valid")
    if status == "present":
        raise WebAuthnError("token_binding_unsupported", "Token Binding was used; this server cannot check it")


def parse_authenticator_data(raw: bytes) -> AuthenticatorData:
    try:
        return AuthenticatorData(raw)
    except Exception as exc:  # struct.error, ValueError ("Wrong length"), cbor errors...
        raise Malformed(f"authenticator data does not parse: {exc!r}") from None


# Authenticator data flags (WebAuthn §6.1), as plain integers: fido2's IntFlag costs an enum operation
# per test, more than the rest of a flag check.
UP, UV, BE, BS, AT, ED = 0x01, 0x04, 0x08, 0x10, 0x40, 0x80

# rpIdHash, flags, signCount: the whole of an assertion's authenticator data when it carries no extensions.
_HEAD = struct.Struct(">32sBI")


def authenticator_data_head(raw: bytes) -> tuple[bytes, int, int]:
    """``(rp_id_hash, flags, counter)`` of authenticator data; raise ``Malformed`` if it does not parse.

    An assertion's is 37 bytes with neither AT nor ED set, read with one unpack; anything else (extensions,
    attested data, a wrong length) goes through fido2's ``AuthenticatorData``, which accepts and refuses
    exactly as before."""
    if len(raw) == _HEAD.size and not raw[32] & (AT | ED):
        return _HEAD.unpack(raw)
    parsed = parse_authenticator_data(raw)
    return parsed.rp_id_hash, int(parsed.flags), parsed.counter


@functools.lru_cache(maxsize=64)
def rp_id_hash(rp_id: str) -> bytes:
    """SHA-256 of the RP ID (a deployment has one or two: cached)."""
    return hashlib.sha256(rp_id.encode("utf-8")).digest()


def check_authenticator_data(
    rp_id_hash_received: bytes, flags: int, *, expected_rp_id: str, require_user_verification: bool
) -> None:
    """RP ID hash, UP, UV (when required) and the backup flags' consistency."""
    if not compare_digest(rp_id_hash_received, rp_id_hash(expected_rp_id)):
        raise WebAuthnError("rp_id_mismatch", f"authenticator data is not for RP ID {expected_rp_id!r}")
    if not flags & UP:
        raise WebAuthnError("user_not_present", "the User Present flag is not set")
    if require_user_verification and not flags & UV:
        raise WebAuthnError("user_not_verified", "user verification was required and not performed")
    if flags & BS and not flags & BE:
        raise Malformed("Backup State is set without Backup Eligibility")
