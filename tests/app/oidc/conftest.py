"""The provider served over real HTTP, relying parties registered by the CLI, a person with a card."""

from __future__ import annotations

import html
import json
import re
import threading
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from werkzeug.serving import make_server

from app.oidc.keys import ensure_keys
from tests.support import card_of, make_account, make_signature

RP = "https://rp.example"


@pytest.fixture
def issuer(app):
    """The app on http://localhost:<port>, with its own signing keys (in the test's directory the app was
    made with, ``app_config``); returns the issuer URL."""
    ensure_keys(app.config["OIDC_KEYS_DIR"])
    server = make_server("localhost", 0, app, threaded=True)
    app.config["PUBLIC_URL"] = f"http://localhost:{server.server_port}"
    from app import wiring

    wiring.install(app)  # the parts are built from the configuration: again, for the port just chosen
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield app.config["PUBLIC_URL"]
    server.shutdown()


@pytest.fixture
def discovery(issuer) -> dict:
    return requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()


@pytest.fixture
def add_client(app):
    """``add_client("--name", "X", ...)``: runs ``flask clients add`` and returns its JSON."""

    def add(*args: str) -> dict:
        args = args or ("--name", "Example RP", "--redirect-uri", f"{RP}/cb")
        result = app.test_cli_runner().invoke(args=["clients", "add", *args])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    return add


@pytest.fixture
def person(app, pki):
    with app.app_context():
        return make_account(pki, card_of(pki, "A123456789")).id


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

    def authorize(self, url: str, decision: str = "approve") -> str:
        """Follow an authorization request to the redirect back to the RP (consenting when asked)."""
        response = self.get(url)
        if response.status_code == 200:
            response = self.consent(response, decision)
        assert response.status_code == 302, response.text
        return response.headers["Location"]


@pytest.fixture
def browser(issuer, pki, person) -> Browser:
    browser = Browser(issuer, pki)
    browser.card_login()
    return browser


def query(url: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
