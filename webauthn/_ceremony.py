"""Checks both ceremonies share: client data (§7.1 steps 5-12, §7.2 steps 10-15) and authenticator data flags.

Everything raises ``WebAuthnError`` (or ``Malformed`` for input that does not parse); the public
functions turn them into ``RegistrationRejected`` / ``AuthenticationRejected``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timezone

from cryptography.hazmat.primitives.constant_time import bytes_eq
from fido2.webauthn import AuthenticatorData, CollectedClientData

from ._encoding import Malformed, b64url_decode
from .errors import WebAuthnError

CREATE = "webauthn.create"
GET = "webauthn.get"


def expected_origins(expected_origin: str | Sequence[str]) -> frozenset[str]:
    """The set of acceptable origins; raises ``TypeError``/``ValueError`` for a caller mistake."""
    origins = (expected_origin,) if isinstance(expected_origin, str) else tuple(expected_origin)
    if not origins or not all(isinstance(o, str) and o for o in origins):
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


def parse_client_data(raw: bytes) -> CollectedClientData:
    try:
        client_data = CollectedClientData(raw)
    except Exception as exc:  # UnicodeDecodeError, JSONDecodeError, KeyError, TypeError, binascii.Error...
        raise Malformed(f"clientDataJSON does not parse: {exc!r}") from None
    if not isinstance(client_data._data, dict):  # pragma: no cover - fido2 would have failed on ["type"]
        raise Malformed("clientDataJSON is not an object")
    if not isinstance(client_data.type, str) or not isinstance(client_data.origin, str):
        raise Malformed("clientData.type and clientData.origin must be strings")
    # fido2 decodes the challenge leniently (any type, any alphabet); insist on base64url text
    b64url_decode(client_data._data["challenge"], "clientData.challenge")
    return client_data


def check_client_data(
    client_data: CollectedClientData,
    *,
    expected_type: str,
    expected_challenge: bytes,
    origins: frozenset[str],
) -> None:
    """Type, challenge, origin, cross-origin and token binding of the client data."""
    if client_data.type != expected_type:
        raise WebAuthnError("wrong_type", f"clientData.type is {client_data.type!r}, not {expected_type!r}")
    if not bytes_eq(client_data.challenge, expected_challenge):
        raise WebAuthnError("challenge_mismatch", "clientData.challenge is not the challenge issued")
    if client_data.origin not in origins:
        raise WebAuthnError("origin_mismatch", f"clientData.origin {client_data.origin!r} is not expected")
    if client_data._data.get("crossOrigin") is True:
        raise WebAuthnError("cross_origin", "the ceremony ran in a cross-origin frame")
    check_token_binding(client_data)


TOKEN_BINDING_STATUSES = ("present", "supported")  # WebAuthn L2 §5.8.1 TokenBindingStatus


def check_token_binding(client_data: CollectedClientData) -> None:
    """§7.1 step 10 / §7.2 step 14. fido2 does not look at tokenBinding. When the member is there it must
    be an object whose status is one of the two the spec defines; "present" means the browser used Token
    Binding on this TLS connection, which our TLS cannot verify, so it is refused too."""
    if "tokenBinding" not in client_data._data:
        return
    token_binding = client_data._data["tokenBinding"]
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


def check_authenticator_data(
    auth_data: AuthenticatorData, *, expected_rp_id: str, require_user_verification: bool
) -> None:
    """RP ID hash, UP, UV (when required) and the backup flags' consistency."""
    if not bytes_eq(auth_data.rp_id_hash, hashlib.sha256(expected_rp_id.encode("utf-8")).digest()):
        raise WebAuthnError("rp_id_mismatch", f"authenticator data is not for RP ID {expected_rp_id!r}")
    if not auth_data.is_user_present():
        raise WebAuthnError("user_not_present", "the User Present flag is not set")
    if require_user_verification and not auth_data.is_user_verified():
        raise WebAuthnError("user_not_verified", "user verification was required and not performed")
    if auth_data.is_backed_up() and not auth_data.is_backup_eligible():
        raise Malformed("Backup State is set without Backup Eligibility")
