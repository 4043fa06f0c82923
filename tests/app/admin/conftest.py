"""An admin and an auditor (陳美玲's and 林志豪's cards) and service tokens; the provider, the person and
their phone come from tests/app/conftest.py."""

from __future__ import annotations

import json

import pytest

from app.services.staff import TOKEN_SCOPES
from tests.factories import make_staff

from .support import ADMIN_ID, AUDITOR_ID, AdminBrowser


@pytest.fixture
def staff(app, pki):
    """陳美玲 is an admin and 林志豪 an auditor, granted by the CLI as a deployment would: their account ids."""
    return make_staff(app, pki)


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
