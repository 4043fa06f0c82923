"""The software phone's exceptions: one base class, WebAuthn failures named as a browser names them."""

from __future__ import annotations


class PhoneError(Exception):
    """Anything the software phone refuses or fails to do; ``str()`` is a sentence for a person."""


class WebAuthnError(PhoneError):
    """A WebAuthn ceremony failed as it would in a browser; ``name`` is the DOMException's name."""

    name = "UnknownError"


class InvalidStateError(WebAuthnError):
    """The phone already holds a credential the options exclude (the account is already bound to it)."""

    name = "InvalidStateError"


class NotAllowedError(WebAuthnError):
    """No usable credential, or the phone cannot do what the options require."""

    name = "NotAllowedError"


class SecurityError(WebAuthnError):
    """The origin is not a secure context, or the RP ID is not the origin's host nor a registrable suffix of it."""

    name = "SecurityError"


class NotSupportedError(WebAuthnError):
    """The options ask for nothing the phone can do (no ES256 in ``pubKeyCredParams``)."""

    name = "NotSupportedError"


class OptionsError(WebAuthnError):
    """The options are malformed (what ``parseCreationOptionsFromJSON`` rejects with a TypeError)."""

    name = "TypeError"


class KeyFileError(PhoneError):
    """The key file cannot be read, is not ours, or is readable by other users."""


class LinkError(PhoneError):
    """The text is not a MoCert binding or login URL, nor an agency's request (sp_ticket or its link)."""


class SpTicketError(LinkError):
    """The sp_ticket is not well formed: cut, mistyped or altered (its digest does not match). Nothing was sent."""


class QrCodeError(PhoneError):
    """The QR image cannot be read (or the optional QR reading packages are not installed)."""


class ServerError(PhoneError):
    """The server answered with an error (``{"error": code, "message": text}``) or not at all.

    ``status`` is the HTTP status (None when the server could not be reached, or when a successful answer lacks
    a field the contract promises); ``code`` is the server's
    error code, or one of ours: ``unreachable``, ``unexpected_status``, ``bad_response``, or
    ``challenge_mismatch`` (an agency's request whose challenge is not over what the phone would show).
    """

    def __init__(self, message: str, *, status: int | None, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
