"""An admin and an auditor (陳美玲's and 林志豪's cards), service tokens, and the phone-login fixtures."""

from __future__ import annotations

import json

import pytest

from app.extensions import db
from app.models import Account
from app.services.staff import TOKEN_SCOPES
from tests.app.oidc.conftest import Browser, add_client, discovery, issuer, person  # noqa: F401 (fixtures)
from tests.app.oidc.test_phone_login import computer, phone, rp_client  # noqa: F401 (fixtures)
from tests.support import card_of, make_account

ADMIN_ID = "B223456782"  # 陳美玲
AUDITOR_ID = "F131313136"  # 林志豪


@pytest.fixture
def staff(app, pki):
    """陳美玲 is an admin and 林志豪 an auditor, granted by the CLI as a deployment would."""
    with app.app_context():
        make_account(pki, card_of(pki, ADMIN_ID))
        make_account(pki, card_of(pki, AUDITOR_ID))
    runner = app.test_cli_runner()
    for national_id, role in ((ADMIN_ID, "admin"), (AUDITOR_ID, "auditor")):
        result = runner.invoke(args=["admin", "grant", national_id, "--role", role])
        assert result.exit_code == 0, result.output
    with app.app_context():
        return {role: db.session.scalar(db.select(Account.id).where(Account.role == role)) for role in ("admin", "auditor")}


class AdminBrowser(Browser):
    """A staff member's browser, logged in with their card, speaking the admin API with the CSRF header."""

    def api(self, method: str, path: str, body: dict | None = None, **kwargs):
        headers = {"X-CSRF-Token": self.csrf()} if method != "GET" else {}
        return self.http.request(method, f"{self.issuer}/api/v1/admin{path}", json=body, headers=headers,
                                 allow_redirects=False, timeout=30, **kwargs)


@pytest.fixture
def admin_browser(issuer, pki, staff) -> AdminBrowser:
    browser = AdminBrowser(issuer, pki)
    browser.card_login(ADMIN_ID)
    return browser


@pytest.fixture
def auditor_browser(issuer, pki, staff) -> AdminBrowser:
    browser = AdminBrowser(issuer, pki)
    browser.card_login(AUDITOR_ID)
    return browser


@pytest.fixture
def service_token(app):
    """``service_token("read", "devices:write")``: a token made by ``flask admin token create``."""

    def create(*scopes: str) -> str:
        args = ["admin", "token", "create", "--name", "automation"]
        for scope in scopes or TOKEN_SCOPES:
            args += ["--scope", scope]
        result = app.test_cli_runner().invoke(args=args)
        assert result.exit_code == 0, result.output
        return json.loads(result.output)["service_token"]

    return create
