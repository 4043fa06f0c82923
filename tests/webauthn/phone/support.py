"""Helpers of the software phone's tests: python-fido2's own server as the relying party."""

from __future__ import annotations

from fido2.server import Fido2Server
from fido2.webauthn import PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity

from webauthn.phone import PhoneBrowser

ORIGIN = "http://localhost:5000"
USER = PublicKeyCredentialUserEntity(id=b"account-1", name="A12****789", display_name="王*明")


class RelyingParty:
    """Fido2Server for rp.id "localhost" at ``ORIGIN``, remembering the credentials it registered."""

    def __init__(self) -> None:
        self.server = Fido2Server(
            PublicKeyCredentialRpEntity(id="localhost", name="MoCert"), verify_origin=lambda origin: origin == ORIGIN
        )
        self.credentials = []

    def creation_options(self, user=USER, *, exclude=True, user_verification="required", **kwargs):
        """(options in the WebAuthn JSON encoding, state)."""
        options, state = self.server.register_begin(
            user,
            credentials=self.credentials if exclude else None,
            user_verification=user_verification,
            resident_key_requirement="required",
            **kwargs,
        )
        return dict(options)["publicKey"], state

    def register(self, browser: PhoneBrowser, **kwargs):
        """A full registration; returns fido2's AuthenticatorData of the new credential."""
        options, state = self.creation_options(**kwargs)
        auth_data = self.server.register_complete(state, browser.create(options, origin=ORIGIN))
        self.credentials.append(auth_data.credential_data)
        return auth_data

    def request_options(self, *, allow=True, user_verification="required"):
        options, state = self.server.authenticate_begin(
            self.credentials if allow else None, user_verification=user_verification
        )
        return dict(options)["publicKey"], state

    def authenticate(self, browser: PhoneBrowser, **kwargs):
        """A full authentication; returns (the credential used, the phone's answer)."""
        options, state = self.request_options(**kwargs)
        answer = browser.get(options, origin=ORIGIN)
        return self.server.authenticate_complete(state, self.credentials, answer), answer
