"""Verifying a registration response (WebAuthn §7.1, "Registering a New Credential")."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.constant_time import bytes_eq
from fido2 import cbor
from fido2.webauthn import AuthenticatorData

from . import _ceremony
from ._encoding import Malformed, b64url_decode, mapping, optional_string
from .attestation import verify_statement
from .errors import RegistrationRejected, WebAuthnError
from .keys import public_key_from_cose
from .trust import TrustPolicy

logger = logging.getLogger(__name__)

MAX_CREDENTIAL_ID_BYTES = 1023
MAX_TRANSPORTS = 16
MAX_TRANSPORT_LENGTH = 32

_DEFAULT_POLICY = TrustPolicy.any()


@dataclass(frozen=True)
class VerifiedRegistration:
    """A credential whose registration passed every check; store it with its user.

    ``public_key`` is the COSE_Key exactly as the authenticator sent it (feed it to
    ``verify_authentication`` and ``public_key_from_cose``). ``transports`` are as the browser reported
    them. ``attestation_trusted`` is True only when the trust policy verified the chain to a root it
    trusts; ``attestation_certificates`` are DER, leaf first (empty for self and none attestation).
    """

    credential_id: bytes
    public_key: bytes
    sign_count: int
    fmt: str
    aaguid: str
    user_present: bool
    user_verified: bool
    backup_eligible: bool
    backup_state: bool
    transports: tuple[str, ...]
    attestation_type: str
    attestation_trusted: bool
    attestation_certificates: tuple[bytes, ...]
    authenticator_attachment: str | None = None
    attestation_object: bytes = b""


def verify_registration(
    credential: Mapping[str, Any],
    *,
    expected_challenge: bytes,
    expected_origin: str | Sequence[str],
    expected_rp_id: str,
    require_user_verification: bool = True,
    now: datetime | None = None,
    trust: TrustPolicy | None = None,
) -> VerifiedRegistration:
    """Verify the browser's ``PublicKeyCredential.toJSON()`` of a ``navigator.credentials.create()``.

    ``expected_challenge`` is the challenge this server issued and stored for this ceremony (consume it
    before calling). ``now`` (timezone-aware; default the real clock) is the time at which attestation
    certificates must be valid. ``trust`` decides whether the attestation chain must end at a trusted
    root (default :meth:`TrustPolicy.any`: statements verified, roots not required).

    Returns a :class:`VerifiedRegistration`.

    Raises ``RegistrationRejected`` with ``.reason`` one of ``malformed``, ``wrong_type``,
    ``challenge_mismatch``, ``origin_mismatch``, ``cross_origin``, ``token_binding_invalid``, ``token_binding_unsupported``,
    ``rp_id_mismatch``, ``user_not_present``, ``user_not_verified``, ``credential_mismatch``,
    ``unsupported_algorithm``, ``unsupported_attestation_format``, ``attestation_invalid``,
    ``attestation_untrusted``; nothing else escapes for any ``credential`` value. Raises ``TypeError`` or
    ``ValueError`` only for wrong arguments from the caller (not bytes challenge, naive ``now``...).
    """
    _ceremony.check_arguments(expected_challenge, expected_rp_id)
    origins = _ceremony.expected_origins(expected_origin)
    now = _ceremony.aware(now)
    policy = trust if trust is not None else _DEFAULT_POLICY
    try:
        return _verify(
            credential,
            expected_challenge=expected_challenge,
            origins=origins,
            expected_rp_id=expected_rp_id,
            require_user_verification=require_user_verification,
            now=now,
            policy=policy,
        )
    except WebAuthnError as exc:
        raise RegistrationRejected(exc.reason, str(exc)) from exc
    except Malformed as exc:
        raise RegistrationRejected("malformed", str(exc)) from exc
    except Exception as exc:  # a path we did not foresee: refuse, and leave a trace for the developers
        logger.warning("registration refused on an unexpected error", exc_info=True)
        raise RegistrationRejected("malformed", f"unexpected {exc!r}") from exc


def _verify(
    credential: Any,
    *,
    expected_challenge: bytes,
    origins: frozenset[str],
    expected_rp_id: str,
    require_user_verification: bool,
    now: datetime,
    policy: TrustPolicy,
) -> VerifiedRegistration:
    credential = mapping(credential, "credential")
    if credential.get("type") != "public-key":
        raise Malformed("credential.type is not public-key")
    credential_id = b64url_decode(credential.get("id"), "id")
    raw_id = b64url_decode(credential.get("rawId"), "rawId")
    if not raw_id or not credential_id:
        raise Malformed("id or rawId is empty")
    response = mapping(credential.get("response"), "response")
    client_data_json = b64url_decode(response.get("clientDataJSON"), "clientDataJSON")
    attestation_object = b64url_decode(response.get("attestationObject"), "attestationObject")
    transports = _transports(response.get("transports"))
    attachment = optional_string(credential.get("authenticatorAttachment"), "authenticatorAttachment")

    client_data = _ceremony.parse_client_data(client_data_json)
    fmt, statement, auth_data = _parse_attestation_object(attestation_object)

    _ceremony.check_client_data(
        client_data, expected_type=_ceremony.CREATE, expected_challenge=expected_challenge, origins=origins
    )
    _ceremony.check_authenticator_data(
        auth_data.rp_id_hash,
        int(auth_data.flags),
        expected_rp_id=expected_rp_id,
        require_user_verification=require_user_verification,
    )
    attested = auth_data.credential_data
    if attested is None:
        raise Malformed("authenticator data carries no attested credential data")
    if not (bytes_eq(credential_id, raw_id) and bytes_eq(raw_id, attested.credential_id)):
        raise WebAuthnError("credential_mismatch", "id, rawId and the attested credential id differ")
    if len(attested.credential_id) > MAX_CREDENTIAL_ID_BYTES:
        raise Malformed("credential id is longer than 1023 bytes")

    public_key = _raw_credential_public_key(auth_data)
    public_key_from_cose(public_key)  # ES256/RS256/EdDSA only; also warms the cache for the first login

    client_data_hash = hashlib.sha256(client_data_json).digest()
    statement_result = verify_statement(fmt, statement, auth_data, client_data_hash, public_key, now=now)
    trusted = policy.evaluate(statement_result, auth_data, now=now)

    return VerifiedRegistration(
        credential_id=bytes(attested.credential_id),
        public_key=public_key,
        sign_count=auth_data.counter,
        fmt=fmt,
        aaguid=str(attested.aaguid),
        user_present=auth_data.is_user_present(),
        user_verified=auth_data.is_user_verified(),
        backup_eligible=auth_data.is_backup_eligible(),
        backup_state=auth_data.is_backed_up(),
        transports=transports,
        attestation_type=statement_result.attestation_type,
        attestation_trusted=trusted,
        attestation_certificates=statement_result.der,
        authenticator_attachment=attachment,
        attestation_object=attestation_object,
    )


def _parse_attestation_object(raw: bytes) -> tuple[str, dict, AuthenticatorData]:
    try:
        data = cbor.decode(raw)
    except Exception as exc:
        raise Malformed(f"attestationObject is not CBOR: {exc!r}") from None
    if not isinstance(data, dict):
        raise Malformed("attestationObject is not a CBOR map")
    fmt, statement, auth_data_raw = data.get("fmt"), data.get("attStmt"), data.get("authData")
    if not isinstance(fmt, str) or not isinstance(statement, dict) or not isinstance(auth_data_raw, bytes):
        raise Malformed("attestationObject lacks fmt, attStmt or authData")
    return fmt, statement, _ceremony.parse_authenticator_data(auth_data_raw)


def _raw_credential_public_key(auth_data: AuthenticatorData) -> bytes:
    """The COSE_Key bytes as sent (fido2 keeps only a re-encoded, parsed copy)."""
    attested = auth_data.credential_data
    assert attested is not None  # noqa: S101
    start = 32 + 1 + 4 + 16 + 2 + len(attested.credential_id)
    rest = bytes(auth_data)[start:]
    try:
        _key, after = cbor.decode_from(rest)
    except Exception as exc:  # pragma: no cover - AuthenticatorData already decoded the same bytes
        raise Malformed(f"credential public key is not CBOR: {exc!r}") from None
    return rest[: len(rest) - len(after)]


def _transports(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_TRANSPORTS:
        raise Malformed("transports is not a short list")
    if not all(isinstance(t, str) and 0 < len(t) <= MAX_TRANSPORT_LENGTH for t in value):
        raise Malformed("transports holds something other than short strings")
    return tuple(value)
