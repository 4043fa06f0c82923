"""The phone's browser: ``navigator.credentials.create()`` / ``get()`` in the WebAuthn JSON encoding.

Options come as ``PublicKeyCredential.parseCreationOptionsFromJSON`` / ``parseRequestOptionsFromJSON``
take them (base64url binary fields); answers have the shape of ``PublicKeyCredential.toJSON()``. What a
browser enforces is enforced here: a secure origin (https, or http on localhost), an RP ID that is the
origin's host or a registrable suffix of it, well-formed options.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from urllib.parse import urlsplit

from fido2.rpid import verify_rp_id

from .authenticator import COSE_ALG_ES256, SoftwareAuthenticator
from .encoding import b64url_decode, b64url_encode
from .errors import NotAllowedError, NotSupportedError, OptionsError, SecurityError

TRANSPORTS = ["internal", "hybrid"]


def origin_of(url: str) -> str:
    """The origin (``scheme://host[:port]``, default port left out) of ``url``.

    Raises ``SecurityError`` unless it is a secure context as browsers define it for WebAuthn:
    https, or http on ``localhost`` / ``*.localhost``.
    """
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise SecurityError(f"not a valid URL: {url!r}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not host:
        raise SecurityError(f"not an http(s) URL: {url!r}")
    if scheme == "http" and not (host == "localhost" or host.endswith(".localhost")):
        raise SecurityError(f"{scheme}://{host} is not a secure origin: WebAuthn needs https (http only on localhost)")
    if ":" in host:  # IPv6 literal; an IP address is never a valid RP ID, but the origin is still written right
        host = f"[{host}]"
    default_port = {"https": 443, "http": 80}[scheme]
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != default_port else "")


class PhoneBrowser:
    """A browser on the phone whose only authenticator is ``authenticator`` (a platform authenticator).

    It does not refuse when the options require user verification and the authenticator cannot do it:
    the answer then has the UV flag off, which is what a server must reject (a real browser would fail
    before sending anything).
    """

    def __init__(self, authenticator: SoftwareAuthenticator) -> None:
        self.authenticator = authenticator

    def create(self, options: Mapping, *, origin: str) -> dict:
        """``navigator.credentials.create({publicKey: options})`` on a page of ``origin``; returns ``toJSON()``.

        Raises ``SecurityError`` (origin, RP ID), ``OptionsError`` (malformed options), ``NotSupportedError``
        (no ES256 offered), ``NotAllowedError`` (cross-platform authenticator required) or
        ``InvalidStateError`` (an excluded credential is on this phone).
        """
        origin = _check_origin(origin)
        options = _mapping(options, "options")
        challenge = _binary(options, "challenge")
        rp = _mapping(options.get("rp"), "rp")
        _string(rp, "name", "rp")
        rp_id = _rp_id(rp.get("id"), origin, "rp.id")
        user = _mapping(options.get("user"), "user")
        user_id = _binary(user, "id", "user")
        if not 1 <= len(user_id) <= 64:
            raise OptionsError("user.id must be 1 to 64 bytes")
        params = options.get("pubKeyCredParams")
        if not isinstance(params, list):
            raise OptionsError("pubKeyCredParams must be a list")
        if params and not any(
            isinstance(p, Mapping) and p.get("type") == "public-key" and p.get("alg") == COSE_ALG_ES256 for p in params
        ):
            raise NotSupportedError("the server offers no algorithm this phone has (it has ES256, alg -7)")
        selection = _mapping(options.get("authenticatorSelection", {}), "authenticatorSelection")
        if selection.get("authenticatorAttachment") == "cross-platform":
            raise NotAllowedError("the server asks for a cross-platform authenticator; this phone is a platform one")
        require_resident_key = bool(selection.get("requireResidentKey")) or selection.get("residentKey") == "required"
        extensions = _mapping(options.get("extensions", {}), "extensions")

        client_data = _client_data("webauthn.create", challenge, origin)
        attestation = self.authenticator.make_credential(
            rp_id,
            hashlib.sha256(client_data).digest(),
            {"id": user_id, "name": _string(user, "name", "user"), "displayName": _string(user, "displayName", "user")},
            exclude_credential_ids=_descriptor_ids(options.get("excludeCredentials", []), "excludeCredentials"),
            require_resident_key=require_resident_key,
            user_verification=selection.get("userVerification", "preferred"),
        )
        credential_id = b64url_encode(attestation.credential_id)
        return {
            "id": credential_id,
            "rawId": credential_id,
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "response": {
                "clientDataJSON": b64url_encode(client_data),
                "attestationObject": b64url_encode(attestation.attestation_object),
                "transports": list(TRANSPORTS),
                "publicKeyAlgorithm": attestation.algorithm,
                "publicKey": b64url_encode(attestation.public_key),
                "authenticatorData": b64url_encode(attestation.authenticator_data),
            },
            "clientExtensionResults": {"credProps": {"rk": True}} if extensions.get("credProps") else {},
        }

    def get(self, options: Mapping, *, origin: str) -> dict:
        """``navigator.credentials.get({publicKey: options})`` on a page of ``origin``; returns ``toJSON()``.

        Raises ``SecurityError`` (origin, RP ID), ``OptionsError`` (malformed options) or
        ``NotAllowedError`` (no credential on this phone matches).
        """
        origin = _check_origin(origin)
        options = _mapping(options, "options")
        challenge = _binary(options, "challenge")
        rp_id = _rp_id(options.get("rpId"), origin, "rpId")
        allowed = _descriptor_ids(options.get("allowCredentials", []), "allowCredentials")

        client_data = _client_data("webauthn.get", challenge, origin)
        assertion = self.authenticator.get_assertion(
            rp_id,
            hashlib.sha256(client_data).digest(),
            allowed,
            user_verification=options.get("userVerification", "preferred"),
        )
        credential_id = b64url_encode(assertion.credential_id)
        return {
            "id": credential_id,
            "rawId": credential_id,
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "response": {
                "clientDataJSON": b64url_encode(client_data),
                "authenticatorData": b64url_encode(assertion.authenticator_data),
                "signature": b64url_encode(assertion.signature),
                "userHandle": b64url_encode(assertion.user_handle) if assertion.user_handle is not None else None,
            },
            "clientExtensionResults": {},
        }


def _client_data(kind: str, challenge: bytes, origin: str) -> bytes:
    """clientDataJSON, serialised as browsers do: these four members in this order, no whitespace."""
    members = {"type": kind, "challenge": b64url_encode(challenge), "origin": origin, "crossOrigin": False}
    return json.dumps(members, separators=(",", ":")).encode("utf-8")


def _check_origin(origin: str) -> str:
    normalised = origin_of(origin)
    if origin.rstrip("/") != normalised:
        raise SecurityError(f"{origin!r} is not an origin (scheme://host[:port]); it would be {normalised!r}")
    return normalised


def _rp_id(value, origin: str, field: str) -> str:
    host = urlsplit(origin).hostname or ""
    if value is None:
        return host
    if not isinstance(value, str) or not value:
        raise OptionsError(f"{field} must be a non-empty string")
    if not verify_rp_id(value, origin):
        raise SecurityError(f"{field} {value!r} is neither {host!r} nor a registrable suffix of it")
    return value


def _mapping(value, field: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise OptionsError(f"{field} must be an object")
    return value


def _string(container: Mapping, key: str, where: str) -> str:
    value = container.get(key)
    if not isinstance(value, str):
        raise OptionsError(f"{where}.{key} is required (a string)")
    return value


def _binary(container: Mapping, key: str, where: str | None = None) -> bytes:
    name = f"{where}.{key}" if where else key
    value = container.get(key)
    if not isinstance(value, str):
        raise OptionsError(f"{name} is required (base64url)")
    try:
        return b64url_decode(value)
    except ValueError as exc:
        raise OptionsError(f"{name} is not base64url") from exc


def _descriptor_ids(descriptors, field: str) -> list[bytes]:
    if not isinstance(descriptors, list):
        raise OptionsError(f"{field} must be a list")
    ids = []
    for index, descriptor in enumerate(descriptors):
        descriptor = _mapping(descriptor, f"{field}[{index}]")
        credential_id = _binary(descriptor, "id", f"{field}[{index}]")
        if descriptor.get("type") == "public-key":  # browsers skip descriptors of other types
            ids.append(credential_id)
    return ids
