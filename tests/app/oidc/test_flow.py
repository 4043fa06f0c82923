"""A relying party on Authlib's client completes login, refresh and logout from our discovery alone."""

from __future__ import annotations

import secrets

import requests
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEvent, AuthSession

from .support import RP, login, rp_session


def test_login_userinfo_refresh_and_logout_with_authlib_client(app, browser, discovery, add_client):
    client = add_client(
        "--name", "Example RP", "--redirect-uri", f"{RP}/cb", "--post-logout-redirect-uri", f"{RP}/bye"
    )
    token, claims, rp = login(browser, discovery, client)

    assert claims["acr"] == "urn:mocert:acr:card" and claims["amr"] == ["sc", "pin"]
    assert claims["name"] == "王小明" and claims["email"] == "person@example.com"
    assert claims["phone_number_verified"] is False
    assert "national_id_masked" not in claims
    assert claims["header"]["alg"] == "RS256" and claims["header"]["kid"]
    with app.app_context():
        auth_session = db.session.scalars(select(AuthSession)).one()
        assert claims["auth_time"] == int(auth_session.created_at.timestamp())

    info = rp.get(discovery["userinfo_endpoint"]).json()
    assert info["sub"] == claims["sub"] and info["name"] == "王小明"

    refreshed = rp.refresh_token(discovery["token_endpoint"], refresh_token=token["refresh_token"])
    assert refreshed["access_token"] != token["access_token"]
    assert refreshed["refresh_token"] != token["refresh_token"]
    assert rp.get(discovery["userinfo_endpoint"]).json()["sub"] == claims["sub"]

    logout = browser.get(
        discovery["end_session_endpoint"],
        params={"id_token_hint": token["id_token"], "post_logout_redirect_uri": f"{RP}/bye", "state": "s1"},
    )
    assert logout.status_code == 302 and logout.headers["Location"] == f"{RP}/bye?state=s1"
    with app.app_context():
        assert db.session.scalars(select(AuthSession)).one().ended_at is not None
        tags = set(db.session.scalars(select(AuditEvent.tag)))
    assert {
        "oidc:consent:granted", "oidc:login:success", "oidc:token:issued", "oidc:logout", "oidc:client:added"
    } <= tags
    # The session is over: the next authorization sends the person to log in.
    again = browser.get(rp_session(client).create_authorization_url(
        discovery["authorization_endpoint"], code_verifier=secrets.token_urlsafe(48))[0])
    assert again.status_code == 302 and again.headers["Location"].startswith("/authorize/login?")


def test_consent_is_remembered_until_more_scopes_are_asked(browser, discovery, add_client):
    client = add_client()
    login(browser, discovery, client, scope="openid profile")
    rp = rp_session(client, scope="openid profile")
    url, _ = rp.create_authorization_url(discovery["authorization_endpoint"], code_verifier=secrets.token_urlsafe(48))
    assert browser.get(url).status_code == 302  # no consent page the second time
    rp = rp_session(client, scope="openid profile email")
    url, _ = rp.create_authorization_url(discovery["authorization_endpoint"], code_verifier=secrets.token_urlsafe(48))
    page = browser.get(url)
    assert page.status_code == 200 and "csrf_token" in page.text


def test_discovery_and_jwks(discovery, issuer):
    assert discovery["issuer"] == issuer
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    assert set(discovery["subject_types_supported"]) == {"pairwise", "public"}
    keys = requests.get(discovery["jwks_uri"], timeout=10).json()["keys"]
    assert {k["alg"] for k in keys} == {"RS256", "ES256"} and all(k.get("kid") for k in keys)
    assert not any("d" in k for k in keys)  # public parts only
