"""Helpers of the OIDC tests (here and in tests/app/admin): the person's browser, a relying party's requests."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.factories import RP
from tests.support import card_of, make_signature

def query(url: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


class Browser:
    """The person's browser: a requests session holding the MoCert cookie; never follows redirects."""

    def __init__(self, issuer: str, pki) -> None:
        self.issuer, self.pki, self.http = issuer, pki, requests.Session()

    def csrf(self) -> str:
        return self.http.get(f"{self.issuer}/api/v1/csrf", timeout=10).json()["csrf_token"]

    def card_login(self, national_id: str = "A123456789") -> None:
        headers = {"X-CSRF-Token": self.csrf()}
        begin = self.http.post(f"{self.issuer}/api/v1/card-login/begin", headers=headers, timeout=10).json()
        signed = make_signature(self.pki, card_of(self.pki, national_id), begin["tbs"])
        done = self.http.post(
            f"{self.issuer}/api/v1/card-login/complete",
            json={"login_id": begin["login_id"], **signed},
            headers={"X-CSRF-Token": self.csrf()},
            timeout=30,
        )
        assert done.json()["status"] == "logged_in", done.text

    def get(self, url: str, **kwargs) -> requests.Response:
        return self.http.get(url, allow_redirects=False, timeout=30, **kwargs)

    def consent(self, page: requests.Response, decision: str = "approve") -> requests.Response:
        """Answer the consent (or logout confirmation) form on ``page``."""
        assert page.status_code == 200, page.text
        action = html.unescape(re.search(r'<form method="post" action="([^"]+)"', page.text).group(1))
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
        fields = {k: html.unescape(v) for k, v in fields.items()}
        fields["decision"] = decision
        return self.http.post(self.issuer + action, data=fields, allow_redirects=False, timeout=30)

    def back_to_site(self, redirect: str, decision: str = "approve") -> str:
        """Where a completed login's ``redirect`` leads the browser: the site's callback at once (a code issued
        by the completing call), or through /authorize (consenting when asked)."""
        return self.authorize(self.issuer + redirect, decision) if redirect.startswith("/") else redirect

    def authorize(self, url: str, decision: str = "approve") -> str:
        """Follow an authorization request to the redirect back to the RP (consenting when asked)."""
        response = self.get(url)
        if response.status_code == 200:
            response = self.consent(response, decision)
        assert response.status_code == 302, response.text
        return response.headers["Location"]


class Computer(Browser):
    """A browser without a MoCert session that logs in at /authorize with a phone."""

    def login_page(self, authorize_url: str):
        to_login = self.get(authorize_url)
        assert to_login.status_code == 302, to_login.text
        location = to_login.headers["Location"]
        assert location.startswith("/authorize/login?")
        return location, self.get(self.issuer + location)

    def start(self, authorize_url: str) -> dict:
        location, page = self.login_page(authorize_url)
        assert page.status_code == 200
        authorize = html.unescape(re.search(r'data-authorize-query="([^"]*)"', page.text).group(1))
        created = self.post("/api/v1/login-requests", {"authorize": authorize, "qr": True})
        assert created.status_code == 201, created.text
        return created.json()

    def post(self, path: str, body: dict):
        return self.http.post(
            self.issuer + path, json=body, headers={"X-CSRF-Token": self.csrf()}, allow_redirects=False, timeout=30
        )

    def status(self, login_id: str):
        return self.get(f"{self.issuer}/api/v1/login-requests/{login_id}")

    def complete(self, login_id: str):
        return self.post(f"/api/v1/login-requests/{login_id}/complete", {})


def rp_session(client: dict, scope: str = "openid profile email phone offline_access", **kwargs) -> OAuth2Session:
    return OAuth2Session(
        client["client_id"],
        client["client_secret"],
        scope=scope,
        redirect_uri=f"{RP}/cb",
        code_challenge_method="S256",
        **kwargs,
    )


def verify_id_token(discovery: dict, id_token: str, client_id: str, nonce: str | None = None) -> dict:
    keys = KeySet.import_key_set(requests.get(discovery["jwks_uri"], timeout=10).json())
    token = jwt.decode(id_token, keys, algorithms=discovery["id_token_signing_alg_values_supported"])
    checks = {"iss": {"essential": True, "value": discovery["issuer"]}, "aud": {"essential": True, "value": client_id}}
    if nonce:
        checks["nonce"] = {"essential": True, "value": nonce}
    jwt.JWTClaimsRegistry(**checks, exp={"essential": True}).validate(token.claims)
    return {"header": token.header, **token.claims}


def login(browser, discovery, client, scope="openid profile email phone offline_access", **params):
    """The full code flow: returns (token response, verified ID token claims, the RP session)."""
    rp = rp_session(client, scope=scope)
    verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
    url, state = rp.create_authorization_url(
        discovery["authorization_endpoint"], code_verifier=verifier, nonce=nonce, **params
    )
    callback = browser.authorize(url)
    assert query(callback)["state"] == state
    token = rp.fetch_token(discovery["token_endpoint"], authorization_response=callback, code_verifier=verifier)
    return token, verify_id_token(discovery, token["id_token"], client["client_id"], nonce), rp


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_url(discovery, client_id, *, redirect_uri=f"{RP}/cb", scope="openid", challenge=None, **extra):
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "scope": scope,
              "state": "st", **extra}
    if challenge:
        params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    return f"{discovery['authorization_endpoint']}?{urlencode(params)}"


def code_for(browser, discovery, client, scope="openid", **extra):
    verifier, challenge = pkce()
    url = authorize_url(discovery, client["client_id"], scope=scope, challenge=challenge, **extra)
    callback = browser.authorize(url)
    return query(callback)["code"], verifier


def exchange(discovery, client, code, verifier, **extra):
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": f"{RP}/cb", "code_verifier": verifier,
            **extra}
    auth = (client["client_id"], client["client_secret"]) if client["client_secret"] else None
    if auth is None and "client_assertion" not in data:
        data["client_id"] = client["client_id"]
    return requests.post(discovery["token_endpoint"], data=data, auth=auth, timeout=30)


def rp_authorization(discovery, client, **params):
    """An authorization request as the RP starts it: (RP session, URL, state, PKCE verifier, nonce)."""
    rp = rp_session(client)
    verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
    url, state = rp.create_authorization_url(
        discovery["authorization_endpoint"], code_verifier=verifier, nonce=nonce, **params
    )
    return rp, url, state, verifier, nonce
