"""The phone's browser: the toJSON() shapes, clientDataJSON, and the rules a browser enforces."""

from __future__ import annotations

import json

import pytest

from webauthn.phone import (
    NotAllowedError,
    NotSupportedError,
    OptionsError,
    PhoneBrowser,
    SecurityError,
    SoftwareAuthenticator,
    origin_of,
)
from webauthn.phone.encoding import b64url_decode, b64url_encode

from .support import ORIGIN


def _options(rp_id: str | None = "example.com", **changes) -> dict:
    """Hand-written creation options in the WebAuthn JSON encoding."""
    options = {
        "rp": {"name": "MoCert", **({"id": rp_id} if rp_id is not None else {})},
        "user": {"id": b64url_encode(b"account-1"), "name": "A12****789", "displayName": "王*明"},
        "challenge": b64url_encode(b"c" * 32),
        "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
    }
    options.update(changes)
    return options


@pytest.fixture
def memory_browser() -> PhoneBrowser:
    return PhoneBrowser(SoftwareAuthenticator(None))


def test_create_answers_in_the_shape_of_public_key_credential_to_json(relying_party, browser):
    options, _ = relying_party.creation_options()
    answer = browser.create(options, origin=ORIGIN)

    assert set(answer) == {"id", "rawId", "type", "authenticatorAttachment", "response", "clientExtensionResults"}
    assert answer["id"] == answer["rawId"] and len(b64url_decode(answer["id"])) == 32
    assert (answer["type"], answer["authenticatorAttachment"]) == ("public-key", "platform")
    assert answer["clientExtensionResults"] == {}
    response = answer["response"]
    assert set(response) == {
        "clientDataJSON",
        "attestationObject",
        "transports",
        "publicKeyAlgorithm",
        "publicKey",
        "authenticatorData",
    }
    assert response["transports"] == ["internal", "hybrid"]
    assert response["publicKeyAlgorithm"] == -7
    assert all("=" not in response[k] for k in ("clientDataJSON", "attestationObject", "publicKey"))


def test_get_answers_in_the_shape_of_public_key_credential_to_json(relying_party, browser):
    relying_party.register(browser)
    options, _ = relying_party.request_options()
    answer = browser.get(options, origin=ORIGIN)

    assert set(answer) == {"id", "rawId", "type", "authenticatorAttachment", "response", "clientExtensionResults"}
    assert (answer["type"], answer["authenticatorAttachment"]) == ("public-key", "platform")
    assert set(answer["response"]) == {"clientDataJSON", "authenticatorData", "signature", "userHandle"}
    assert answer["id"] == b64url_encode(relying_party.credentials[0].credential_id)


@pytest.mark.parametrize("ceremony", ["create", "get"])
def test_client_data_json_is_written_as_browsers_write_it(relying_party, browser, ceremony):
    relying_party.register(browser)
    if ceremony == "create":
        options, _ = relying_party.creation_options(exclude=False)
        answer = browser.create(options, origin=ORIGIN)
    else:
        options, _ = relying_party.request_options()
        answer = browser.get(options, origin=ORIGIN)

    raw = b64url_decode(answer["response"]["clientDataJSON"])
    client_data = json.loads(raw)
    assert list(client_data) == ["type", "challenge", "origin", "crossOrigin"]
    assert client_data == {
        "type": f"webauthn.{ceremony}",
        "challenge": options["challenge"],
        "origin": ORIGIN,
        "crossOrigin": False,
    }
    assert b" " not in raw


def test_an_rp_id_that_is_not_the_origins_host_is_refused(relying_party, browser, authenticator):
    options, _ = relying_party.creation_options()
    options["rp"]["id"] = "example.com"
    with pytest.raises(SecurityError, match="example.com"):
        browser.create(options, origin=ORIGIN)
    assert authenticator.credentials() == []

    relying_party.register(browser)
    request, _ = relying_party.request_options()
    request["rpId"] = "example.com"
    with pytest.raises(SecurityError):
        browser.get(request, origin=ORIGIN)
    assert authenticator.credentials()[0].sign_count == 0


@pytest.mark.parametrize(
    "origin, rp_id, allowed",
    [
        ("https://example.com", "example.com", True),
        ("https://login.example.com", "example.com", True),  # a registrable suffix of the host
        ("https://login.example.com:8443", "login.example.com", True),
        ("https://badexample.com", "example.com", False),
        ("https://example.com", "login.example.com", False),
        ("https://example.com", "com", False),  # a public suffix
        ("https://someone.github.io", "github.io", False),  # a public suffix too
        ("http://localhost:5000", "localhost", True),
    ],
)
def test_the_rp_id_must_be_the_host_or_a_registrable_suffix_of_it(memory_browser, origin, rp_id, allowed):
    if allowed:
        memory_browser.create(_options(rp_id), origin=origin)
        assert memory_browser.authenticator.credentials()[0].rp_id == rp_id
    else:
        with pytest.raises(SecurityError):
            memory_browser.create(_options(rp_id), origin=origin)
        assert memory_browser.authenticator.credentials() == []


@pytest.mark.parametrize(
    "origin", ["http://example.com", "http://127.0.0.1:5000", "ftp://localhost", "https://localhost:5000/m/bind/x"]
)
def test_insecure_origins_and_non_origins_are_refused(memory_browser, origin):
    with pytest.raises(SecurityError):
        memory_browser.create(_options(None), origin=origin)


def test_origin_of_leaves_out_default_ports_and_the_path():
    assert origin_of("https://Login.Example.com:443/m/bind/abc") == "https://login.example.com"
    assert origin_of("https://example.com:8443/x") == "https://example.com:8443"
    assert origin_of("http://localhost:5000/m/bind/abc") == "http://localhost:5000"
    assert origin_of("http://app.localhost/x") == "http://app.localhost"


def test_without_an_rp_id_the_origins_host_is_used(relying_party, browser):
    options, state = relying_party.creation_options()
    del options["rp"]["id"]
    auth_data = relying_party.server.register_complete(state, browser.create(options, origin=ORIGIN))
    assert auth_data.is_user_verified()
    assert browser.authenticator.credentials()[0].rp_id == "localhost"


def test_options_without_es256_are_not_supported_and_an_empty_list_means_the_defaults(memory_browser):
    rsa_only = _options(pubKeyCredParams=[{"type": "public-key", "alg": -257}])
    with pytest.raises(NotSupportedError):
        memory_browser.create(rsa_only, origin="https://example.com")
    memory_browser.create(_options(pubKeyCredParams=[]), origin="https://example.com")
    assert len(memory_browser.authenticator.credentials()) == 1


def test_a_cross_platform_authenticator_requirement_is_not_allowed(memory_browser):
    options = _options(authenticatorSelection={"authenticatorAttachment": "cross-platform"})
    with pytest.raises(NotAllowedError):
        memory_browser.create(options, origin="https://example.com")


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"challenge": None}, "challenge is required"),
        ({"challenge": "YWJj+/"}, "challenge is not base64url"),
        ({"user": {"id": b64url_encode(b"x" * 65), "name": "n", "displayName": "d"}}, "1 to 64 bytes"),
        ({"user": {"id": b64url_encode(b"x"), "name": "n"}}, "user.displayName is required"),
        ({"rp": {"id": "example.com"}}, "rp.name is required"),
        ({"excludeCredentials": [{"type": "public-key"}]}, r"excludeCredentials\[0\].id is required"),
        ({"pubKeyCredParams": None}, "pubKeyCredParams must be a list"),
    ],
)
def test_malformed_creation_options_are_refused(memory_browser, changes, message):
    options = {key: value for key, value in _options(**changes).items() if value is not None}
    with pytest.raises(OptionsError, match=message):
        memory_browser.create(options, origin="https://example.com")


def test_the_cred_props_extension_reports_a_discoverable_credential(memory_browser):
    answer = memory_browser.create(_options(extensions={"credProps": True}), origin="https://example.com")
    assert answer["clientExtensionResults"] == {"credProps": {"rk": True}}
