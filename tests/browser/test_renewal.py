"""Renewing a phone's mobile certificate on the account page, in Chromium at computer and phone sizes: not
offered for a phone bound today (it would change nothing), and once it would move the end date, asked first
with the new end date, cancelled without a change, then done."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from app.extensions import db
from app.models import MobileCertificate
from tests.app.oidc.support import Browser
from tests.support import browser_card_login
from webauthn.phone import PhoneBrowser, PhoneClient, SoftwareAuthenticator

from .support import verified_account

SCREENS = {
    "computer": {"viewport": {"width": 1100, "height": 900}},
    "phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True},
}


def _bind_phone(live_server: str, pki) -> None:
    computer = Browser(live_server, pki)
    computer.card_login("A123456789")
    binding = computer.http.post(f"{live_server}/api/v1/bindings", json={},
                                 headers={"X-CSRF-Token": computer.csrf()}, timeout=10)
    assert binding.status_code == 201, binding.text
    PhoneClient(PhoneBrowser(SoftwareAuthenticator(None))).bind(binding.json()["url"], "我的 Pixel")


def _certificates(app) -> list[MobileCertificate]:
    with app.app_context():
        rows = list(db.session.scalars(select(MobileCertificate).order_by(MobileCertificate.id)))
        db.session.expunge_all()
        return rows


@pytest.mark.parametrize("screen", sorted(SCREENS))
def test_a_renewal_is_offered_only_when_it_changes_the_end_date_and_asked_first(browser, live_server, pki, app,
                                                                               screen):
    verified_account(app, pki)
    _bind_phone(live_server, pki)
    context = browser.new_context(locale="zh-TW", timezone_id="Asia/Taipei", **SCREENS[screen])
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        assert browser_card_login(page, live_server, pki, "A123456789")["status"] == "logged_in"
        page.goto(f"{live_server}/account")
        device = page.locator(".device", has_text="我的 Pixel")
        expect(device).to_be_visible()
        expect(device.locator(".device-renew")).to_be_hidden()  # bound today: a renewal would change nothing

        with app.app_context():  # bound a while ago
            for certificate in db.session.scalars(select(MobileCertificate)):
                certificate.not_after -= timedelta(days=30)
            db.session.commit()
        page.reload()
        renew = device.locator(".device-renew")
        expect(renew).to_be_visible()
        renew.click()
        question = device.locator(".renew-question")
        expect(question).to_contain_text("我的 Pixel")
        offered = question.text_content()
        device.locator(".device-renew-form .device-cancel").click()  # cancelled: nothing issued
        expect(device.locator(".device-renew-form")).to_be_hidden()
        assert len(_certificates(app)) == 1

        renew.click()
        device.locator(".device-renew-confirm").click()
        expect(page.locator("#devices-status")).to_contain_text("我的 Pixel")
        certificates = _certificates(app)
        assert len(certificates) == 2
        # The date asked about is the date given, as Taiwan reads it.
        given = (certificates[-1].not_after + timedelta(hours=8)).strftime("%Y/%m/%d")
        assert given in offered, (given, offered)
        expect(page.locator("#devices-status")).to_contain_text(given)
        expect(device.locator(".device-renew")).to_be_hidden()
    finally:
        context.close()
