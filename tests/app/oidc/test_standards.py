"""The letter of the standards: request objects (OIDC Core §6) and bearer tokens at /userinfo (RFC 6750)."""

from __future__ import annotations

import pytest
import requests

from .support import RP, authorize_url, code_for, exchange, pkce, query


@pytest.fixture
def anonymous(issuer, pki):
    from .support import Browser

    return Browser(issuer, pki)  # no MoCert session: the refusal comes before any login


@pytest.mark.parametrize(
    ("parameter", "error"),
    [("request", "request_not_supported"), ("request_uri", "request_uri_not_supported")],
)
def test_a_request_object_is_refused_at_the_redirect_uri_with_the_state(anonymous, discovery, add_client, parameter,
                                                                         error):
    client = add_client()
    _, challenge = pkce()
    value = "eyJhbGciOiJub25lIn0.eyJzY29wZSI6Im9wZW5pZCJ9." if parameter == "request" else f"{RP}/request.jwt"
    response = anonymous.get(authorize_url(discovery, client["client_id"], challenge=challenge, **{parameter: value}))
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(f"{RP}/cb?")
    assert {"error": error, "state": "st"}.items() <= query(location).items()


@pytest.mark.parametrize("parameter", ["request", "request_uri"])
def test_a_request_object_for_an_unknown_client_or_redirect_uri_gets_the_error_page(anonymous, discovery, add_client,
                                                                                     parameter):
    client = add_client()
    _, challenge = pkce()
    extra = {parameter: f"{RP}/request.jwt"}
    unknown = anonymous.get(authorize_url(discovery, "no-such-client", challenge=challenge, **extra))
    elsewhere = anonymous.get(authorize_url(discovery, client["client_id"], challenge=challenge,
                                            redirect_uri="https://evil.example/cb", **extra))
    # Authlib refuses its own error when it quotes a URI holding " or \ (that was a 500)
    quoting = [anonymous.get(authorize_url(discovery, client["client_id"], challenge=challenge,
                                           redirect_uri=f"https://evil.example/{bad}x", **extra)) for bad in '"\\']
    for page in (unknown, elsewhere, *quoting):
        assert page.status_code == 400 and "Location" not in page.headers


def test_a_request_object_is_refused_for_a_logged_in_person_too(browser, discovery, add_client):
    client = add_client()
    _, challenge = pkce()
    response = browser.get(authorize_url(discovery, client["client_id"], challenge=challenge, request="x.y.z"))
    assert response.status_code == 302
    assert query(response.headers["Location"])["error"] == "request_not_supported"
    assert "code" not in query(response.headers["Location"])


def test_discovery_says_request_objects_are_not_supported(discovery):
    assert discovery["request_parameter_supported"] is False
    assert discovery["request_uri_parameter_supported"] is False


# -- /userinfo and RFC 6750 ------------------------------------------------------------------------------


@pytest.fixture
def access_token(browser, discovery, add_client) -> str:
    client = add_client()
    code, verifier = code_for(browser, discovery, client, scope="openid profile")
    return exchange(discovery, client, code, verifier).json()["access_token"]


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_userinfo_without_credentials_is_401_with_a_bare_bearer_challenge(discovery, method):
    response = requests.request(method, discovery["userinfo_endpoint"], timeout=10)
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.split()[0] == "Bearer" and "error" not in challenge  # RFC 6750 §3.1: no error code
    assert response.headers["Content-Type"].startswith("application/json")


def test_userinfo_with_another_authentication_scheme_is_401_with_a_bare_bearer_challenge(discovery):
    response = requests.get(discovery["userinfo_endpoint"], auth=("user", "password"), timeout=10)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].split()[0] == "Bearer"
    assert "error" not in response.headers["WWW-Authenticate"]


def test_userinfo_with_an_invalid_token_says_invalid_token(discovery):
    response = requests.get(discovery["userinfo_endpoint"], headers={"Authorization": "Bearer not-a-token"},
                            timeout=10)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert response.json()["error"] == "invalid_token"


def test_userinfo_accepts_the_token_in_a_form_encoded_body(discovery, access_token):
    response = requests.post(discovery["userinfo_endpoint"], data={"access_token": access_token}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "王小明"
    wrong = requests.post(discovery["userinfo_endpoint"], data={"access_token": "not-a-token"}, timeout=10)
    assert wrong.status_code == 401 and 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]


def test_userinfo_takes_a_body_token_only_from_a_form_encoded_post(discovery, access_token):
    """RFC 6750 §2.2: form-encoded, single-part, not GET. The query string (§2.3) is not read at all."""
    url = discovery["userinfo_endpoint"]
    in_query = requests.get(url, params={"access_token": access_token}, timeout=10)
    multipart = requests.post(url, files={"access_token": (None, access_token)}, timeout=10)
    as_json = requests.post(url, json={"access_token": access_token}, timeout=10)
    post_query = requests.post(url, params={"access_token": access_token}, timeout=10)
    for response in (in_query, multipart, as_json, post_query):
        assert response.status_code == 401, response.text
        assert "error" not in response.headers["WWW-Authenticate"]  # to us, these carry no token at all


def test_userinfo_refuses_a_token_sent_two_ways(discovery, access_token):
    response = requests.post(discovery["userinfo_endpoint"], data={"access_token": access_token},
                             headers={"Authorization": f"Bearer {access_token}"}, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert 'error="invalid_request"' in response.headers["WWW-Authenticate"]
