"""The options the browser passes to ``navigator.credentials.create()`` / ``.get()``.

Built with python-fido2's WebAuthn data classes, whose ``dict()`` is the WebAuthn JSON encoding
(base64url strings) that ``PublicKeyCredential.parseCreationOptionsFromJSON`` /
``parseRequestOptionsFromJSON`` take. The challenge is always the caller's: the server keeps it in its
database (single use), never in a cookie, and fido2's ``Fido2Server`` state dict is not used.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fido2.webauthn import (
    AttestationConveyancePreference,
    AuthenticatorAttachment,
    AuthenticatorSelectionCriteria,
    CredentialCreationOptions,
    CredentialRequestOptions,
    PublicKeyCredentialCreationOptions,
    PublicKeyCredentialDescriptor,
    PublicKeyCredentialParameters,
    PublicKeyCredentialRequestOptions,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialType,
    PublicKeyCredentialUserEntity,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from ._encoding import b64url_encode
from .keys import SUPPORTED_ALGORITHMS

MIN_CHALLENGE_BYTES = 16
MAX_USER_ID_BYTES = 64

CredentialRef = tuple[bytes, Sequence[str]]


def registration_options(
    *,
    rp_id: str,
    rp_name: str,
    user_id: bytes,
    user_name: str,
    user_display_name: str,
    challenge: bytes,
    exclude_credentials: Sequence[CredentialRef] = (),
    timeout_ms: int = 300_000,
    authenticator_attachment: str | None = "platform",
    resident_key: str = "required",
    user_verification: str = "required",
    attestation: str = "direct",
) -> dict[str, Any]:
    """Return ``{"publicKey": {...}}`` for ``PublicKeyCredential.parseCreationOptionsFromJSON``.

    ``pubKeyCredParams`` lists ES256 (-7), RS256 (-257) and EdDSA (-8); ``excludeCredentials`` carries
    each credential's id and its transports as stored; ``authenticatorSelection`` carries the attachment
    (omitted when None), resident-key and user-verification requirements. The result is plain JSON types.

    Raises ``ValueError`` for a challenge under 16 bytes, a user id over 64 bytes or an unknown enum
    value, and ``TypeError`` for non-bytes ids (caller errors, not a refused ceremony).
    """
    _check_challenge(challenge)
    if not isinstance(user_id, bytes) or not user_id:
        raise TypeError("user_id must be non-empty bytes")
    if len(user_id) > MAX_USER_ID_BYTES:
        raise ValueError("user_id must be at most 64 bytes")
    exclude = _descriptors(exclude_credentials)
    selection = AuthenticatorSelectionCriteria(
        authenticator_attachment=_enum(AuthenticatorAttachment, authenticator_attachment),
        resident_key=_enum(ResidentKeyRequirement, resident_key),
        user_verification=_enum(UserVerificationRequirement, user_verification),
    )
    options = PublicKeyCredentialCreationOptions(
        rp=PublicKeyCredentialRpEntity(name=rp_name, id=rp_id),
        user=PublicKeyCredentialUserEntity(name=user_name, id=user_id, display_name=user_display_name),
        challenge=challenge,
        pub_key_cred_params=[
            PublicKeyCredentialParameters(type=PublicKeyCredentialType.PUBLIC_KEY, alg=alg)
            for alg in SUPPORTED_ALGORITHMS
        ],
        timeout=_timeout(timeout_ms),
        exclude_credentials=[d for d, _ in exclude] or None,
        authenticator_selection=selection,
        attestation=_enum(AttestationConveyancePreference, attestation),
    )
    result = _plain(dict(CredentialCreationOptions(public_key=options)))
    _put_transports(result["publicKey"].get("excludeCredentials"), exclude)
    return result


def authentication_options(
    *,
    rp_id: str,
    challenge: bytes,
    allow_credentials: Sequence[CredentialRef] = (),
    user_verification: str = "required",
    timeout_ms: int = 120_000,
) -> dict[str, Any]:
    """Return ``{"publicKey": {...}}`` for ``PublicKeyCredential.parseRequestOptionsFromJSON``.

    With no ``allow_credentials`` the list is omitted (a discoverable-credential login). The result is
    plain JSON types.

    Raises ``ValueError`` for a challenge under 16 bytes or an unknown user-verification value, and
    ``TypeError`` for non-bytes ids.
    """
    _check_challenge(challenge)
    allow = _descriptors(allow_credentials)
    options = PublicKeyCredentialRequestOptions(
        challenge=challenge,
        timeout=_timeout(timeout_ms),
        rp_id=rp_id,
        allow_credentials=[d for d, _ in allow] or None,
        user_verification=_enum(UserVerificationRequirement, user_verification),
    )
    result = _plain(dict(CredentialRequestOptions(public_key=options)))
    _put_transports(result["publicKey"].get("allowCredentials"), allow)
    return result


def _check_challenge(challenge: bytes) -> None:
    if not isinstance(challenge, bytes):
        raise TypeError("challenge must be bytes")
    if len(challenge) < MIN_CHALLENGE_BYTES:
        raise ValueError("challenge must be at least 16 bytes")


def _timeout(timeout_ms: int) -> int:
    if not isinstance(timeout_ms, int) or timeout_ms <= 0:
        raise ValueError("timeout_ms must be a positive integer")
    return timeout_ms


def _enum(enum_type, value):
    if value is None:
        return None
    member = enum_type(value)  # fido2's string enums map unknown values to None
    if member is None:
        raise ValueError(f"{value!r} is not a valid {enum_type.__name__}")
    return member


def _descriptors(credentials: Sequence[CredentialRef]) -> list[tuple[PublicKeyCredentialDescriptor, list[str]]]:
    out = []
    for credential_id, transports in credentials:
        if not isinstance(credential_id, bytes) or not credential_id:
            raise TypeError("credential ids must be non-empty bytes")
        names = [t for t in transports if isinstance(t, str) and t]
        out.append((PublicKeyCredentialDescriptor(type=PublicKeyCredentialType.PUBLIC_KEY, id=credential_id), names))
    return out


def _put_transports(json_descriptors: list[dict[str, Any]] | None, descriptors) -> None:
    """Write the transports as stored (fido2 turns names it does not know, e.g. "smart-card", into null)."""
    for entry, (descriptor, transports) in zip(json_descriptors or (), descriptors, strict=True):
        assert entry["id"] == b64url_encode(descriptor.id)  # noqa: S101 - same order by construction
        if transports:
            entry["transports"] = list(transports)


def _plain(value: Any) -> Any:
    """fido2 leaves its str-Enum members in the dict; make it plain JSON types."""
    return json.loads(json.dumps(value))
