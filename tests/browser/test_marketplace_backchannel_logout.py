"""Back-Channel Logout end to end in Chromium, at a computer's and a phone's viewport: a person logs in at the
example marketplace through MoCert (their bound phone approving the QR code), an administrator revokes the
phone, MoCert's courier posts the logout token to the marketplace, which verifies it and ends that session —
the next page load shows the person logged out."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from app.extensions import db
from app.logout_courier import Courier
from app.models import BackchannelLogout, Device
from app.oidc.keys import ensure_keys
from tests.app.admin.support import ADMIN_ID, AdminBrowser
from tests.examples.support import bind_software_phone, flask_cli, serve_marketplace
from tests.factories import make_account, make_staff
from tests.support import card_of

from .support import decode_qr

VIEWPORTS = {"computer": {"width": 1100, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.fixture
def marketplace(app, live_server, tmp_path):
    ensure_keys(app.config["OIDC_KEYS_DIR"])
    served = serve_marketplace(live_server, flask_cli(app), tmp_path / "marketplace-instance")
    yield served
    served.stop()


@pytest.fixture
def courier(app, live_server):
    """The logout courier a server runs (the tests' configuration runs none)."""
    courier = Courier(app, interval=60)  # a round only when woken: the revocation's commit must wake it
    app.extensions["logout_courier"] = courier
    yield courier
    courier.stop()
    app.extensions.pop("logout_courier", None)


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_revoking_the_phone_logs_the_person_out_of_the_marketplace(
    browser, app, pki, live_server, marketplace, courier, viewport
):
    with app.app_context():
        person = make_account(pki, card_of(pki, "A123456789")).id
    software_phone = bind_software_phone(app, live_server, pki, person)
    make_staff(app, pki)
    context = browser.new_context(locale="zh-TW", viewport=VIEWPORTS[viewport])
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        # The marketplace sends the browser to MoCert; the phone approves the QR code; consent; back, logged in.
        page.goto(marketplace.url)
        page.click("#login-card")
        expect(page.locator("#login-qr")).to_be_visible()
        software_phone.login(decode_qr(page, "#login-qr"))
        page.get_by_role("button", name="允許").click()
        page.wait_for_url(f"{marketplace.url}/join")
        expect(page.locator("#person")).to_have_text("王小明")
        expect(page.locator("#login-method")).to_have_attribute("data-method", "oidc")

        # An administrator revokes the phone (the admin API, as the console calls it).
        admin = AdminBrowser(live_server, pki)
        admin.card_login(ADMIN_ID)
        with app.app_context():
            device_id = db.session.scalars(select(Device.id).where(Device.account_id == person)).one()
        revoked = admin.api("POST", f"/devices/{device_id}/revoke", {"reason": "手機遺失 phone lost"})
        assert revoked.status_code == 200, revoked.text

        # The courier, woken by that commit, posts the logout token; the marketplace takes it (200).
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with app.app_context():
                delivery = db.session.scalars(select(BackchannelLogout)).one()
                if delivery.sent_at is not None or delivery.failed_at is not None:
                    break
            time.sleep(0.1)
        assert delivery.sent_at is not None, delivery.last_error

        # The next page load: logged out, with the words saying why.
        page.goto(marketplace.url)
        expect(page.locator("body")).to_contain_text("您在 MoCert 的登入已結束")
        expect(page.locator("#person")).to_have_count(0)
        expect(page.locator("#login-card")).to_be_visible()
        page.goto(f"{marketplace.url}/company")  # the company page asks for a login again
        page.wait_for_url(f"{marketplace.url}/")
        expect(page.locator("body")).to_contain_text("請先登入")
        expect(page.locator("#login-card")).to_be_visible()
    finally:
        context.close()
