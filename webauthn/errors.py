"""Errors of the WebAuthn domain.

Every way a ceremony can fail has its own stable ``reason`` (snake_case), so the audit trail, the API
and the page can say exactly why. python-fido2 raises bare ``ValueError`` (and cbor/json/base64 raise
``KeyError``, ``TypeError``, ``IndexError``...); this package turns all of them into these errors and
lets nothing else escape from a verification.

Reasons used:

``malformed``                       bad JSON shape, base64url, CBOR, authenticator data or client data
``wrong_type``                      clientData.type is not the ceremony's ("webauthn.create" / "webauthn.get")
``challenge_mismatch``              clientData.challenge is not the one the server issued
``origin_mismatch``                 clientData.origin is not an expected origin
``cross_origin``                    the ceremony ran in a cross-origin iframe (clientData.crossOrigin)
``token_binding_invalid``           clientData.tokenBinding is there but not an object whose status is
                                    "present" or "supported"
``token_binding_unsupported``       clientData says Token Binding was used; we cannot check it
``user_handle_mismatch``            an assertion's userHandle is not the user the credential was registered for
``rp_id_mismatch``                  authenticator data is for another RP ID
``user_not_present``                the UP flag is not set
``user_not_verified``               UV was required and the UV flag is not set
``unsupported_algorithm``           the credential key is not ES256 (P-256), RS256 or EdDSA (Ed25519)
``bad_signature``                   the assertion signature does not verify
``credential_mismatch``             id, rawId and the credential in authenticator data disagree
``attestation_invalid``             the attestation statement fails its format's rules (tampered,
                                    wrong key, certificates not valid at the given time, broken chain)
``attestation_untrusted``           the trust policy requires a trusted root and there is none
``unsupported_attestation_format``  a format this package does not verify
``sign_count_regression``           the signature counter did not increase: possibly a cloned authenticator
``mds_blob_invalid``                a FIDO MDS3 blob that does not parse or whose signature/chain fails
``mds_blob_stale``                  a FIDO MDS3 blob whose nextUpdate has passed
"""

from __future__ import annotations


class WebAuthnError(Exception):
    """A WebAuthn ceremony (or its configuration) was refused.

    ``reason`` is stable and machine-readable (see the module docstring); ``str()`` is for logs and
    may include details that are not meant for the person in front of the browser.
    """

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(message or reason)
        self.reason = reason

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r}, {str(self)!r})"


class RegistrationRejected(WebAuthnError):
    """A registration (navigator.credentials.create) response was refused."""


class AuthenticationRejected(WebAuthnError):
    """An authentication (navigator.credentials.get) response was refused."""


class SignCountRegression(AuthenticationRejected):
    """The assertion is valid but its signature counter did not increase (WebAuthn §6.1.1).

    The private key may have been copied: the caller should flag the credential and audit the event.
    """

    possibly_cloned = True

    def __init__(self, message: str | None = None, *, stored: int, received: int) -> None:
        super().__init__("sign_count_regression", message or f"sign count {received} is not above {stored}")
        self.stored = stored
        self.received = received
