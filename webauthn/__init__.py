"""WebAuthn ceremonies over python-fido2, hardened (binding and phone login; see the binding issue).

Imports nothing from Flask. A thin layer over python-fido2 2.x, in the shape of pypi/warehouse's
``warehouse/utils/webauthn.py``: the library's errors become ours (:class:`WebAuthnError` with a stable
``reason``), security parameters are keyword-only, and every function says what it returns and raises.

* :func:`registration_options` / :func:`authentication_options` — the options JSON for the browser; the
  challenge is always the caller's (kept server-side, single use).
* :func:`verify_registration` — a ``create()`` response: client data, authenticator data, the attestation
  statement of every common format (android-key verified here, fido2 does not), certificates checked at
  a given time, and a :class:`TrustPolicy` (any root, given roots, or a FIDO MDS3 blob from a file).
* :func:`verify_authentication` — a ``get()`` assertion, with the sign-counter rule and
  :class:`SignCountRegression` for a possibly cloned authenticator.
* :func:`public_key_from_cose` — a stored COSE key as a ``cryptography`` key (cached).
"""

from .android_key import AndroidKeyAttestation
from .attestation import SUPPORTED_FORMATS
from .authentication import VerifiedAuthentication, verify_authentication
from .errors import AuthenticationRejected, RegistrationRejected, SignCountRegression, WebAuthnError
from .keys import SUPPORTED_ALGORITHMS, public_key_from_cose
from .options import authentication_options, registration_options
from .registration import VerifiedRegistration, verify_registration
from .trust import TrustPolicy

__all__ = [
    "SUPPORTED_ALGORITHMS",
    "SUPPORTED_FORMATS",
    "AndroidKeyAttestation",
    "AuthenticationRejected",
    "RegistrationRejected",
    "SignCountRegression",
    "TrustPolicy",
    "VerifiedAuthentication",
    "VerifiedRegistration",
    "WebAuthnError",
    "authentication_options",
    "public_key_from_cose",
    "registration_options",
    "verify_authentication",
    "verify_registration",
]
