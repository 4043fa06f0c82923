"""Logging in to a relying party with the phone, as a person does it: the site sends the browser to
/authorize, MoCert's login page shows a QR code, the phone (bound first through the real binding flow)
scans it, compares the site and code, approves with its platform authenticator, and the computer's page
continues by itself to the site, which exchanges the code (PKCE) for an ID token."""

from __future__ import annotations

import json
import secrets

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from playwright.sync_api import expect

from app.oidc.keys import ensure_keys
from tests.app.oidc.support import verify_id_token

from .support import bind_phone, decode_qr


def test_a_person_logs_in_to_a_site_with_the_phone_by_qr_code(  # noqa: F811  (phone: the fixture)
    page, phone, live_server, pki, app, tmp_path, relying_party
):
    ensure_keys(app.config["OIDC_KEYS_DIR"])
    rp_url, seen = relying_party
    result = app.test_cli_runner().invoke(
        args=["clients", "add", "--name", "好市集 Marketplace", "--redirect-uri", f"{rp_url}/cb"]
    )
    assert result.exit_code == 0, result.output
    client = json.loads(result.output)

    # The phone is bound first, through the real binding flow, in the phone's own context.
    bind_phone(page, phone, live_server, app, pki)

    # The relying party sends the computer's browser to /authorize.
    discovery = requests.get(f"{live_server}/.well-known/openid-configuration", timeout=10).json()
    rp = OAuth2Session(client["client_id"], client["client_secret"], scope="openid profile",
                       redirect_uri=f"{rp_url}/cb", code_challenge_method="S256")
    verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
    url, state = rp.create_authorization_url(discovery["authorization_endpoint"], code_verifier=verifier, nonce=nonce)
    page.goto(url)
    expect(page.locator("h1")).to_contain_text("好市集 Marketplace")
    expect(page.locator("#login-qr")).to_be_visible()
    expect(page.locator("#login-card")).to_be_visible()
    code = page.locator("#login-match-code").text_content().strip()
    assert len(code) == 3
    login_url = decode_qr(page, "#login-qr")
    assert login_url.startswith(f"{live_server}/m/login/")

    # The phone shows the same site and code; the person compares and approves.
    phone.goto(login_url)
    expect(phone.locator("#phone-client-name")).to_have_text("好市集 Marketplace")
    expect(phone.locator("#phone-match-code")).to_have_text(code)
    expect(page.locator("#login-status")).to_have_attribute("data-status", "scanned")
    phone.click("#phone-approve")
    expect(phone.locator("#phone-done")).to_be_visible()

    # The computer continues by itself: consent, then back to the site with a code.
    page.get_by_role("button", name="允許").click()
    page.wait_for_url(f"{rp_url}/cb?*")
    [callback] = seen
    assert callback["state"] == state and "code" in callback
    tokens = rp.fetch_token(discovery["token_endpoint"], code=callback["code"], code_verifier=verifier)
    claims = verify_id_token(discovery, tokens["id_token"], client["client_id"], nonce)
    assert claims["acr"] == "urn:mocert:acr:mobile" and claims["amr"] == ["hwk", "user"]
    assert claims["name"] == "王小明"


SIZES = {"computer": {"width": 1100, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_not_me_on_the_phone_stops_the_login_and_the_computer_says_so(
    page, phone, live_server, pki, app, relying_party, size
):
    """A person who suspects a relayed QR code says "not me" on the phone: the computer's page stops waiting
    and says why, with a new QR code a click away; the phone's link is dead, however it is reopened."""
    ensure_keys(app.config["OIDC_KEYS_DIR"])
    rp_url, seen = relying_party
    result = app.test_cli_runner().invoke(
        args=["clients", "add", "--name", "好市集 Marketplace", "--redirect-uri", f"{rp_url}/cb"]
    )
    client = json.loads(result.output)
    bind_phone(page, phone, live_server, app, pki)
    page.set_viewport_size(size)
    phone.set_viewport_size(size)

    discovery = requests.get(f"{live_server}/.well-known/openid-configuration", timeout=10).json()
    rp = OAuth2Session(client["client_id"], client["client_secret"], scope="openid profile",
                       redirect_uri=f"{rp_url}/cb", code_challenge_method="S256")
    url, _ = rp.create_authorization_url(discovery["authorization_endpoint"], code_verifier=secrets.token_urlsafe(48))
    page.goto(url)
    login_url = decode_qr(page, "#login-qr")
    phone.goto(login_url)
    expect(phone.locator("#phone-client-name")).to_have_text("好市集 Marketplace")
    expect(page.locator("#login-status")).to_have_attribute("data-status", "scanned")

    phone.click("#phone-decline")
    expect(phone.locator("#phone-done-text")).to_contain_text("這次登入已停止")
    expect(phone.locator("#phone-done-mark")).to_be_hidden()  # no ✓: nothing was approved
    expect(phone.locator("#phone-login-area")).to_be_hidden()

    # The computer hears it at once (its next poll) and offers a new QR code.
    status = page.locator("#login-status")
    expect(status).to_have_attribute("data-status", "declined")
    expect(status).to_contain_text("已在您的手機上拒絕")
    expect(page.locator("#login-area")).to_be_hidden()
    again = page.locator("#login-again")
    expect(again).to_be_visible()
    again.scroll_into_view_if_needed()
    expect(again).to_be_in_viewport()

    # Reopening the link says it was declined and offers nothing to approve.
    phone.goto(login_url)
    expect(phone.locator("#phone-status")).to_contain_text("已在這支手機上拒絕")
    expect(phone.locator("#phone-login-area")).to_be_hidden()
    expect(phone.locator("#phone-approve")).to_be_hidden()
    # And an approval sent anyway is refused with a code.
    token = login_url.rsplit("/", 1)[1]
    refused = phone.request.post(f"{live_server}/api/v1/m/login/{token}/complete", data={"credential": {}})
    assert refused.status == 409 and refused.json()["error"] == "login_request_declined"

    # Starting again works: a new QR code, and the person logs in with it.
    again.click()
    expect(status).to_have_attribute("data-status", "pending")
    new_url = decode_qr(page, "#login-qr")
    assert new_url != login_url
    phone.goto(new_url)
    phone.click("#phone-approve")
    expect(phone.locator("#phone-done-text")).to_contain_text("已核准")
    page.get_by_role("button", name="允許").click()
    page.wait_for_url(f"{rp_url}/cb?*")
    assert len(seen) == 1
