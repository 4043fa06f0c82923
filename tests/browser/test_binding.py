"""Binding a phone as a person does it: the computer shows a QR code, the phone scans it and confirms
with its platform authenticator (Chromium's virtual one), and the computer's page follows by itself."""

import pytest
from playwright.sync_api import expect

from tests.support import browser_card_login

from .support import decode_qr
from .support import verified_account as _verified_account


def test_the_phone_scans_the_qr_code_and_the_computer_sees_it_completed(page, phone, live_server, pki, app):
    _verified_account(app, pki)
    assert browser_card_login(page, live_server, pki, "A123456789")["status"] == "logged_in"
    page.goto(f"{live_server}/account/devices/bind")
    expect(page.locator("#bind-qr")).to_be_visible()
    url = decode_qr(page, "#bind-qr")
    assert url.startswith(f"{live_server}/m/bind/")
    assert page.locator("#bind-link").text_content().strip() == url

    phone.goto(url)
    expect(phone.locator("#phone-account")).to_contain_text("A12****789")
    expect(page.locator("#bind-status")).to_have_attribute("data-status", "scanned")
    phone.fill("#device-name", "我的 Pixel")
    phone.click("#phone-bind-button")
    expect(phone.locator("#phone-done")).to_be_visible()

    # The computer's page continues by itself.
    expect(page.locator("#bind-status")).to_have_attribute("data-status", "completed")
    expect(page.locator("#bind-status")).to_contain_text("我的 Pixel")
    cdp, authenticator_id = phone.authenticator
    [credential] = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})["credentials"]
    assert credential["isResidentCredential"] is True

    page.goto(f"{live_server}/account")
    row = page.locator("#devices-list [data-device-id]")
    expect(row).to_have_count(1)
    expect(row.locator(".device-name")).to_have_text("我的 Pixel")
    expect(row.locator(".device-status")).to_have_attribute("data-status", "active")


def test_a_phone_without_biometrics_is_told_what_it_needs(page, phone, live_server, pki, app):
    _verified_account(app, pki)
    browser_card_login(page, live_server, pki, "A123456789")
    page.goto(f"{live_server}/account/devices/bind")
    url = decode_qr(page, "#bind-qr")
    cdp, authenticator_id = phone.authenticator
    cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": authenticator_id})
    phone.goto(url)
    expect(phone.locator("#phone-unsupported")).to_be_visible()
    expect(phone.locator("#phone-unsupported")).to_contain_text("Android 7")


SIZES = {"computer": {"width": 1100, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_reloading_the_bind_page_ends_the_old_qr_code(page, phone, live_server, pki, app, size):
    _verified_account(app, pki)
    assert browser_card_login(page, live_server, pki, "A123456789")["status"] == "logged_in"
    page.set_viewport_size(size)
    phone.set_viewport_size(size)
    page.goto(f"{live_server}/account/devices/bind")
    old_url = decode_qr(page, "#bind-qr")
    page.reload()
    expect(page.locator("#bind-status")).to_have_attribute("data-status", "pending")
    new_url = decode_qr(page, "#bind-qr")
    assert new_url != old_url

    # The old QR code is dead: the phone is told to scan the one the computer shows now.
    phone.goto(old_url)  # said by the page itself, before any form
    expect(phone.locator(".error-page")).to_contain_text("此連結已失效")
    expect(phone.locator(".error-page")).to_contain_text("這個 QR Code 已失效")
    expect(phone.locator("#phone-form-area")).to_have_count(0)

    phone.goto(new_url)
    phone.fill("#device-name", "我的 Pixel")
    phone.click("#phone-bind-button")
    expect(phone.locator("#phone-done")).to_be_visible()
    status = page.locator("#bind-status")
    expect(status).to_have_attribute("data-status", "completed")
    expect(status).to_contain_text("我的 Pixel")
    status.scroll_into_view_if_needed()
    expect(status).to_be_in_viewport()


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_a_page_whose_qr_code_another_tab_replaced_says_so_and_hears_the_phone_bound(
    page, phone, live_server, pki, app, size
):
    _verified_account(app, pki)
    assert browser_card_login(page, live_server, pki, "A123456789")["status"] == "logged_in"
    page.set_viewport_size(size)
    phone.set_viewport_size(size)
    page.goto(f"{live_server}/account/devices/bind")
    expect(page.locator("#bind-qr")).to_be_visible()
    second = page.context.new_page()  # the same card session, in a second tab
    second.set_viewport_size(size)
    second.goto(f"{live_server}/account/devices/bind")
    url = decode_qr(second, "#bind-qr")

    # The first tab's QR code is gone, and it says where the live one is.
    status = page.locator("#bind-status")
    expect(status).to_have_attribute("data-status", "replaced")
    expect(status).to_contain_text("另一個視窗或分頁")
    expect(page.locator("#bind-area")).to_be_hidden()
    again = page.locator("#bind-again")
    expect(again).to_be_visible()
    again.scroll_into_view_if_needed()
    expect(again).to_be_in_viewport()

    # The phone binds with the second tab's QR code: both tabs show it done.
    phone.goto(url)
    phone.fill("#device-name", "我的 Pixel")
    phone.click("#phone-bind-button")
    expect(phone.locator("#phone-done")).to_be_visible()
    expect(second.locator("#bind-status")).to_have_attribute("data-status", "completed")
    expect(status).to_have_attribute("data-status", "completed")
    expect(status).to_contain_text("我的 Pixel")
    expect(again).to_be_hidden()
