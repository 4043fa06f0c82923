"""Verifying an authentication assertion (WebAuthn §7.2, "Verifying an Authentication Assertion").

This is the hot path (every phone login): ``bench/verify_path.py`` measures it against the bare ECDSA
verify underneath (issue 14 asks at least 80 % of its rate). So each base64url field is decoded once
(``id`` and ``rawId``, the same text, once between them), the client data JSON is parsed once, an
assertion's 37 bytes of authenticator data are read with one ``struct`` unpack and its flags tested as
integers (fido2's ``AuthenticatorData`` only when it carries extensions), and the stored public key is
parsed once per process (``keys`` caches it on its bytes). Neither fido2's ``from_dict`` data-class
parsing (whose ``typing.get_type_hints`` calls cost more than the signature) nor its ``IntFlag`` is used.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from hmac import compare_digest
from typing import Any

from . import _ceremony
from ._encoding import Malformed, b64url_decode, mapping
from .errors import AuthenticationRejected, SignCountRegression, WebAuthnError
from .keys import verify_cose_signature

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifiedAuthentication:
    """An assertion that passed every check. Store ``new_sign_count`` on the credential.

    The signed bytes are kept too, as they came, so the assertion can be handed on for anyone to check
    again with the credential's public key (an agency's signed_response, ``twfido.signed_response``)."""

    credential_id: bytes
    new_sign_count: int
    user_present: bool
    user_verified: bool
    backup_eligible: bool
    backup_state: bool
    user_handle: bytes | None
    authenticator_data: bytes
    client_data_json: bytes
    signature: bytes

    @classmethod
    def _of(cls, **fields: Any) -> VerifiedAuthentication:
        """The same frozen instance as ``cls(**fields)``, its ``__dict__`` filled at once: a frozen
        dataclass's ``__init__`` sets each field through ``object.__setattr__``, which cost a fifth of
        the verify path's own time (tests/webauthn/test_authentication.py checks that every field is set)."""
        instance = object.__new__(cls)
        instance.__dict__.update(fields)
        return instance


def verify_authentication(
    credential: Mapping[str, Any],
    *,
    expected_challenge: bytes,
    expected_origin: str | Sequence[str],
    expected_rp_id: str,
    credential_public_key: bytes,
    current_sign_count: int,
    require_user_verification: bool = True,
    credential_id: bytes | None = None,
    user_handle: bytes | None = None,
) -> VerifiedAuthentication:
    """Verify the browser's ``PublicKeyCredential.toJSON()`` of a ``navigator.credentials.get()``.

    The caller looks the credential up by its ``rawId`` and passes its stored COSE public key and
    signature counter; giving that id as ``credential_id`` as well makes the function check that the
    response is for it (``credential_mismatch`` otherwise). ``user_handle``: the user id the credential
    was registered with (``user.id`` of the creation options); a response whose ``userHandle`` names
    anyone else is refused (§7.2 step 6, ``user_handle_mismatch``). A response may leave it out (or
    empty): then there is nothing to compare, the credential id alone names the owner.

    Sign counter (§6.1.1): when either the stored or the received counter is non-zero, the received one
    must be strictly greater; both zero (what most phones send) is accepted. The signature is checked
    first, so only a genuine assertion can report a regression.

    Returns a :class:`VerifiedAuthentication`.

    Raises ``SignCountRegression`` (an ``AuthenticationRejected`` with ``possibly_cloned`` True) when the
    counter did not increase, and ``AuthenticationRejected`` with ``.reason`` one of ``malformed``,
    ``credential_mismatch``, ``wrong_type``, ``challenge_mismatch``, ``origin_mismatch``,
    ``cross_origin``, ``token_binding_invalid``, ``token_binding_unsupported``, ``user_handle_mismatch``,
    ``rp_id_mismatch``, ``user_not_present``, ``user_not_verified``, ``unsupported_algorithm``,
    ``bad_signature``; nothing else escapes for any
    ``credential`` value. Raises ``TypeError``/``ValueError`` only for wrong arguments from the caller.
    """
    _ceremony.check_arguments(expected_challenge, expected_rp_id)
    origins = _ceremony.expected_origins(expected_origin)
    if not isinstance(current_sign_count, int) or current_sign_count < 0:
        raise ValueError("current_sign_count must be a non-negative integer")
    if not isinstance(credential_public_key, (bytes, bytearray, memoryview)):
        raise TypeError("credential_public_key must be the stored COSE_Key bytes")
    if user_handle is not None and (not isinstance(user_handle, bytes) or not user_handle):
        raise TypeError("user_handle must be the non-empty user id bytes the credential was registered with")
    try:
        return _verify(
            credential,
            expected_challenge,
            origins,
            expected_rp_id,
            bytes(credential_public_key),
            current_sign_count,
            require_user_verification,
            credential_id,
            user_handle,
        )
    except SignCountRegression:
        raise
    except WebAuthnError as exc:
        raise AuthenticationRejected(exc.reason, str(exc)) from exc
    except Malformed as exc:
        raise AuthenticationRejected("malformed", str(exc)) from exc
    except Exception as exc:  # a path we did not foresee: refuse, and leave a trace for the developers
        logger.warning("authentication refused on an unexpected error", exc_info=True)
        raise AuthenticationRejected("malformed", f"unexpected {exc!r}") from exc


def _verify(  # positional only: nine keywords matched by name cost half a microsecond a login
    credential: Any,
    expected_challenge: bytes,
    origins: frozenset[str],
    expected_rp_id: str,
    credential_public_key: bytes,
    current_sign_count: int,
    require_user_verification: bool,
    expected_credential_id: bytes | None,
    expected_user_handle: bytes | None,
    /,
) -> VerifiedAuthentication:
    credential = mapping(credential, "credential")
    if credential.get("type") != "public-key":
        raise Malformed("credential.type is not public-key")
    id_field, raw_id_field = credential.get("id"), credential.get("rawId")
    raw_id = b64url_decode(raw_id_field, "rawId")
    # id and rawId are the same text from every browser: decoded once then. Texts that differ are both
    # decoded and must still name the same bytes.
    credential_id = raw_id if id_field == raw_id_field else b64url_decode(id_field, "id")
    if not raw_id or not credential_id:
        raise Malformed("id or rawId is empty")
    response = mapping(credential.get("response"), "response")
    client_data_json = b64url_decode(response.get("clientDataJSON"), "clientDataJSON")
    authenticator_data = b64url_decode(response.get("authenticatorData"), "authenticatorData")
    signature = b64url_decode(response.get("signature"), "signature")
    user_handle_field = response.get("userHandle")
    user_handle = b64url_decode(user_handle_field, "userHandle") if user_handle_field is not None else None

    if credential_id is not raw_id and not compare_digest(credential_id, raw_id):
        raise WebAuthnError("credential_mismatch", "id and rawId differ")
    if expected_credential_id is not None and not compare_digest(raw_id, bytes(expected_credential_id)):
        raise WebAuthnError("credential_mismatch", "the response is for another credential")
    if expected_user_handle is not None and user_handle and not compare_digest(user_handle, expected_user_handle):
        raise WebAuthnError("user_handle_mismatch", "userHandle is not the user the credential was registered for")

    client_data = _ceremony.parse_client_data(client_data_json)
    rp_id_hash, flags, received = _ceremony.authenticator_data_head(authenticator_data)
    _ceremony.check_client_data(
        client_data, expected_type=_ceremony.GET, expected_challenge=expected_challenge, origins=origins
    )
    _ceremony.check_authenticator_data(
        rp_id_hash, flags, expected_rp_id=expected_rp_id, require_user_verification=require_user_verification
    )

    signed = authenticator_data + hashlib.sha256(client_data_json).digest()
    if not verify_cose_signature(credential_public_key, signature, signed):
        raise WebAuthnError("bad_signature", "the assertion signature does not verify with the stored key")

    if (received != 0 or current_sign_count != 0) and received <= current_sign_count:
        raise SignCountRegression(stored=current_sign_count, received=received)

    return VerifiedAuthentication._of(
        credential_id=raw_id,
        new_sign_count=received,
        user_present=bool(flags & _ceremony.UP),
        user_verified=bool(flags & _ceremony.UV),
        backup_eligible=bool(flags & _ceremony.BE),
        backup_state=bool(flags & _ceremony.BS),
        user_handle=user_handle or None,
        authenticator_data=authenticator_data,
        client_data_json=client_data_json,
        signature=signature,
    )
