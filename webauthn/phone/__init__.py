"""A reference phone in software: binds to MoCert, approves logins and agencies' requests without a real phone.

``SoftwareAuthenticator`` (authenticator.py) holds ES256 credentials in a local key file and answers as a
phone's platform authenticator with biometrics would (flags UP and UV); ``PhoneBrowser`` (browser.py) is
the phone's browser, turning WebAuthn JSON options into ``PublicKeyCredential.toJSON()`` answers;
``PhoneClient`` (client.py) plays MoCert's phone-side pages against the server's HTTP API: binding, login,
and answering an agency's request (its ``sp_ticket``, TW FidO). The command line is ``python -m webauthn.phone``
(bind, login, sp, list). It is a test and demo tool: its AAGUID (``AAGUID``) says so, and a production server
may refuse it.
"""

from .authenticator import AAGUID, Assertion, Attestation, SoftwareAuthenticator, StoredCredential
from .browser import PhoneBrowser, origin_of
from .client import BindingOffer, LoginRequest, PhoneClient, PhoneLink, SpRequest, SpTicket
from .errors import (
    InvalidStateError,
    KeyFileError,
    LinkError,
    NotAllowedError,
    NotSupportedError,
    OptionsError,
    PhoneError,
    QrCodeError,
    SecurityError,
    ServerError,
    SpTicketError,
    WebAuthnError,
)
from .qr import read_qr

__all__ = [
    "AAGUID",
    "Assertion",
    "Attestation",
    "BindingOffer",
    "InvalidStateError",
    "KeyFileError",
    "LinkError",
    "LoginRequest",
    "NotAllowedError",
    "NotSupportedError",
    "OptionsError",
    "PhoneBrowser",
    "PhoneClient",
    "PhoneError",
    "PhoneLink",
    "QrCodeError",
    "SecurityError",
    "ServerError",
    "SoftwareAuthenticator",
    "SpRequest",
    "SpTicket",
    "SpTicketError",
    "StoredCredential",
    "WebAuthnError",
    "origin_of",
    "read_qr",
]
