"""Fixtures for the software phone: python-fido2's own server as the relying party, and the phone."""

from __future__ import annotations

import pytest

from webauthn.phone import PhoneBrowser, SoftwareAuthenticator

from .phone_api_double import PhoneApiDouble
from .support import RelyingParty


@pytest.fixture
def relying_party() -> RelyingParty:
    return RelyingParty()


@pytest.fixture
def key_file(tmp_path):
    return tmp_path / "phone-keys.json"


@pytest.fixture
def authenticator(key_file) -> SoftwareAuthenticator:
    return SoftwareAuthenticator(key_file)


@pytest.fixture
def browser(authenticator) -> PhoneBrowser:
    return PhoneBrowser(authenticator)


@pytest.fixture
def phone_api():
    """The test double of MoCert's phone-side API (see phone_api_double.py), on a random local port."""
    with PhoneApiDouble() as double:
        yield double
