"""Odd authorization and token requests get an OAuth error, never a 500."""

from __future__ import annotations

import pytest
import requests

from .support import RP, authorize_url, pkce, query

# Authlib quotes some parameters in its error descriptions and then refuses what RFC 6749 §4.1.2.1 forbids
# there (", \ and anything outside printable ASCII) with a ValueError.
FORBIDDEN = ['"', "\\", "é", "\x7f", "\n"]
AUTHORIZE_PARAMETERS = ("response_type", "scope", "redirect_uri", "state", "nonce", "prompt", "max_age",
                        "code_challenge", "code_challenge_method", "response_mode", "display", "ui_locales",
                        "acr_values", "login_hint", "id_token_hint", "claims", "request", "request_uri")
TOKEN_PARAMETERS = ("grant_type", "code", "redirect_uri", "code_verifier", "scope", "refresh_token",
                    "client_assertion_type", "client_assertion", "client_id")


@pytest.mark.parametrize("logged_in", [False, True])
def test_authorize_parameters_with_forbidden_characters_get_an_oauth_error(
        request, issuer, discovery, add_client, pki, person, logged_in):
    """``/authorize?response_type=%22`` was a ValueError in Authlib (500)."""
    from .support import Browser

    client = add_client()
    browser = Browser(issuer, pki)
    if logged_in:
        browser.card_login()
    _, challenge = pkce()
    for name in AUTHORIZE_PARAMETERS:
        for bad in FORBIDDEN:
            response = browser.get(authorize_url(discovery, client["client_id"], challenge=challenge, **{name: bad}))
            assert response.status_code in (200, 302, 400), (name, bad, response.status_code, response.text[:200])
            if response.status_code == 302 and response.headers["Location"].startswith(RP):
                assert "error" in query(response.headers["Location"]) or "code" in query(response.headers["Location"])
    unknown = browser.get(f"{issuer}/authorize?response_type=%22")
    assert unknown.status_code == 400 and unknown.headers["Content-Type"].startswith("text/html")
    redirected = browser.get(authorize_url(discovery, client["client_id"], challenge=challenge, response_type='"'))
    assert redirected.status_code == 302
    assert query(redirected.headers["Location"])["error"] == "unsupported_response_type"


def test_token_parameters_with_forbidden_characters_get_an_oauth_error(discovery, add_client):
    client = add_client()
    base = {"grant_type": "authorization_code", "code": "x", "redirect_uri": f"{RP}/cb", "code_verifier": "v" * 43}
    for name in TOKEN_PARAMETERS:
        for bad in FORBIDDEN:
            for auth in ((client["client_id"], client["client_secret"]), None):
                response = requests.post(discovery["token_endpoint"], data={**base, name: bad}, auth=auth, timeout=30)
                assert 400 <= response.status_code < 500, (name, bad, response.status_code, response.text[:200])
                assert response.json()["error"], (name, bad)
    for bad in FORBIDDEN:
        response = requests.post(discovery["revocation_endpoint"], data={"token": bad, "token_type_hint": bad},
                                 auth=(client["client_id"], client["client_secret"]), timeout=30)
        assert response.status_code < 500, (bad, response.text[:200])


@pytest.mark.parametrize("max_age", ["²", "١٢", "9" * 5000, "-1", "1.5", " 5"])
def test_a_max_age_that_is_not_ascii_digits_is_invalid_request(browser, discovery, add_client, max_age):
    """``max_age=²`` passed str.isdigit() and int() refused it: a 500 for a logged-in person."""
    client = add_client()
    _, challenge = pkce()
    response = browser.get(authorize_url(discovery, client["client_id"], challenge=challenge, max_age=max_age))
    assert response.status_code == 302, response.text[:200]
    assert query(response.headers["Location"])["error"] == "invalid_request"


def test_a_max_age_in_ascii_digits_still_works(browser, discovery, add_client):
    client = add_client()
    _, challenge = pkce()
    response = browser.get(authorize_url(discovery, client["client_id"], challenge=challenge, max_age="3600"))
    assert response.status_code in (200, 302) and "error" not in query(response.headers.get("Location", "?"))
