"""Logging in to a relying party with a passkey on this device, as a person does it: the device was bound
as a phone through the real binding flow (its credential lives in this browser's platform authenticator,
Chromium's virtual one), the person logs out, a site sends the browser to /authorize, and the login page's
passkey button asks navigator.credentials.get for a discoverable credential, then goes on to the site."""

from __future__ import annotations

import json
import secrets

import requests
from authlib.integrations.requests_client import OAuth2Session
from playwright.sync_api import expect
from sqlalchemy import func, select

from app.oidc.keys import ensure_keys
from tests.app.oidc.support import verify_id_token


def _site_sends_the_browser_to_authorize(page, app, tmp_path, live_server, rp_url):
    ensure_keys(app.config["OIDC_KEYS_DIR"])
    result = app.test_cli_runner().invoke(
        args=["clients", "add", "--name", "好市集 Marketplace", "--redirect-uri", f"{rp_url}/cb"]
    )
    assert result.exit_code == 0, result.output
    client = json.loads(result.output)
    discovery = requests.get(f"{live_server}/.well-known/openid-configuration", timeout=10).json()
    rp = OAuth2Session(client["client_id"], client["client_secret"], scope="openid profile",
                       redirect_uri=f"{rp_url}/cb", code_challenge_method="S256")
    verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
    url, state = rp.create_authorization_url(discovery["authorization_endpoint"], code_verifier=verifier, nonce=nonce)
    page.goto(url)
    expect(page.locator("h1")).to_contain_text("好市集 Marketplace")
    expect(page.locator("#login-status")).to_have_attribute("data-status", "pending")  # the QR code is up
    expect(page.get_by_role("button", name="使用本裝置上的通行金鑰")).to_be_visible()
    return client, discovery, rp, verifier, nonce, state


def _live_sessions(app) -> int:
    from app.extensions import db
    from app.models import AuthSession

    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(AuthSession).where(AuthSession.ended_at.is_(None)))


def test_a_person_logs_in_to_a_site_with_a_passkey_on_this_device(  # noqa: F811  (relying_party: the fixture)
    page, device, live_server, app, tmp_path, relying_party
):
    rp_url, seen = relying_party
    client, discovery, rp, verifier, nonce, state = _site_sends_the_browser_to_authorize(
        page, app, tmp_path, live_server, rp_url
    )
    assert _live_sessions(app) == 0

    page.get_by_role("button", name="使用本裝置上的通行金鑰").click()
    page.get_by_role("button", name="允許").click()  # consent, on MoCert
    page.wait_for_url(f"{rp_url}/cb?*")
    [callback] = seen
    assert callback["state"] == state and "code" in callback
    tokens = rp.fetch_token(discovery["token_endpoint"], code=callback["code"], code_verifier=verifier)
    claims = verify_id_token(discovery, tokens["id_token"], client["client_id"], nonce)
    assert claims["acr"] == "urn:mocert:acr:mobile" and claims["amr"] == ["hwk", "user"]
    assert claims["name"] == "王小明"
    assert _live_sessions(app) == 1


def test_without_the_passkey_the_page_says_so_and_no_one_is_logged_in(  # noqa: F811
    page, device, live_server, app, tmp_path, relying_party
):
    rp_url, seen = relying_party
    _site_sends_the_browser_to_authorize(page, app, tmp_path, live_server, rp_url)
    cdp, authenticator_id = device
    cdp.send("WebAuthn.clearCredentials", {"authenticatorId": authenticator_id})

    button = page.get_by_role("button", name="使用本裝置上的通行金鑰")
    button.click()
    expect(page.locator("#login-status")).to_have_text("已取消。請再試一次，或用手機掃描 QR Code。")
    expect(page.locator("#login-status")).to_have_attribute("data-kind", "error")
    expect(button).to_be_enabled()  # the person may try again, or scan the QR code
    assert page.url.startswith(f"{live_server}/authorize/login?")  # still on the login page
    assert seen == [] and _live_sessions(app) == 0
