"""The administration console in Chromium, on a computer and on a phone: an admin logs in with the card,
finds a person by national ID, revokes their lost phone with a reason, and finds the revocation in the
audit trail with the reason and the admin as the one who did it; and registers an agency, sees its API key
once, makes it a new one and disables it."""

from __future__ import annotations

import base64
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from tests.app.admin.support import agency_key
from tests.app.oidc.support import Browser
from tests.factories import ADMIN_ID
from tests.support import browser_card_login
from app import wiring
from app.extensions import db
from app.models import Device
from webauthn.phone import PhoneBrowser, PhoneClient, SoftwareAuthenticator

from .support import verified_account as _verified_account

SCREENS = {
    "computer": {"viewport": {"width": 1100, "height": 900}},
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "user_agent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
                      "Chrome/156 Mobile",
        "has_touch": True,
        "is_mobile": True,
    },
}


def _bind_phone(live_server: str, pki) -> None:
    """王小明's phone (the software phone) bound through the real binding flow, as the API tests do it."""
    computer = Browser(live_server, pki)
    computer.card_login("A123456789")
    binding = computer.http.post(f"{live_server}/api/v1/bindings", json={},
                                 headers={"X-CSRF-Token": computer.csrf()}, timeout=10)
    assert binding.status_code == 201, binding.text
    PhoneClient(PhoneBrowser(SoftwareAuthenticator(None))).bind(binding.json()["url"], "王小明的 iPhone")


@pytest.mark.parametrize("screen", sorted(SCREENS))
def test_a_person_sees_that_the_service_revoked_their_phone_when_and_what_to_do(  # noqa: F811
    browser, live_server, pki, app, staff, screen
):
    _verified_account(app, pki)
    _bind_phone(live_server, pki)
    with app.test_request_context():
        device = db.session.query(Device).one()
        wiring.parts().devices.revoke(device, actor=f"account:{staff['admin']}", reason="民眾來電：手機遺失")
        revoked_at = device.revoked_at
    context = browser.new_context(locale="zh-TW", timezone_id="Europe/London", **SCREENS[screen])
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        assert browser_card_login(page, live_server, pki, "A123456789")["status"] == "logged_in"
        page.goto(f"{live_server}/account")
        item = page.locator("#devices-list .device")
        expect(item).to_have_attribute("data-notice", "revoked_by_service")
        expect(item.locator(".device-status")).to_have_text("已由服務廢止")
        notice = item.locator(".device-notice")
        expect(notice).to_be_visible()
        # Taiwan time, whatever zone the browser is in, and said to be so.
        taipei = revoked_at.astimezone(ZoneInfo("Asia/Taipei")).strftime("%Y/%m/%d %H:%M")
        expect(notice).to_contain_text(f"本服務已於 {taipei}（臺灣時間）")
        expect(notice).to_contain_text("廢止這支手機及其行動自然人憑證")
        expect(notice).to_contain_text("並非您自行解除綁定")
        expect(notice).to_contain_text("請與本服務聯絡")
        expect(notice).to_contain_text("重新綁定")
        expect(item.locator(".device-actions")).to_be_hidden()
        assert _fits_the_screen(page)
    finally:
        context.close()


def _fits_the_screen(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


_BROKEN_WORDS = """(selector) => {
  const broken = [];
  for (const cell of document.querySelectorAll(selector)) {
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const match of node.data.matchAll(/[^\\s]+/g)) {
        const range = document.createRange();
        range.setStart(node, match.index);
        range.setEnd(node, match.index + match[0].length);
        // A word on one line has its boxes (one per font or element) on one line: tops within half a box.
        const rects = [...range.getClientRects()].filter(r => r.width > 0);
        const tops = rects.map(r => r.top), height = Math.max(...rects.map(r => r.height));
        if (rects.length > 1 && Math.max(...tops) - Math.min(...tops) > height / 2) broken.push(match[0]);
      }
    }
  }
  return broken;
}"""


def _words_broken(page, selector: str) -> list[str]:
    """The words (runs without a space) of the cells under ``selector`` that wrap onto a second line: a
    column squeezed until a serial number or an event's name breaks in its middle."""
    return page.evaluate(_BROKEN_WORDS, selector)


@pytest.mark.parametrize("screen", sorted(SCREENS))
def test_an_admin_revokes_a_lost_phone_and_finds_it_in_the_audit_trail(  # noqa: F811  (staff: the fixture)
    browser, live_server, pki, app, staff, screen
):
    _verified_account(app, pki)
    _bind_phone(live_server, pki)
    context = browser.new_context(locale="zh-TW", **SCREENS[screen])
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        assert browser_card_login(page, live_server, pki, ADMIN_ID)["status"] == "logged_in"
        page.goto(f"{live_server}/account")
        page.click("#nav-admin")
        expect(page.locator("h1")).to_have_text("尋找民眾")

        # Find the person by national ID and open them.
        page.select_option("#search-by", "national_id")
        page.fill("#search-q", "A123456789")
        page.get_by_role("button", name="搜尋").click()
        result = page.locator("#search-results [data-account-id]")
        expect(result).to_have_count(1)
        expect(result).to_contain_text("A12****789")
        assert _fits_the_screen(page)
        assert _words_broken(page, "#search-results td") == []
        result.get_by_role("link", name="王小明").click()
        expect(page.locator("#account-name")).to_have_text("王小明")

        device = page.locator(".console-device")
        expect(device).to_have_attribute("data-status", "active")
        expect(device.locator(".device-title")).to_have_text("王小明的 iPhone")
        assert _fits_the_screen(page)

        # Revoke it: the form opens in place and says that this is final.
        device.locator("summary", has_text="廢止").click()
        form = device.locator("form.revoke-form")
        expect(form).to_be_visible()
        expect(form).to_contain_text("無法復原")
        form.get_by_label("原因").fill("民眾來電：手機遺失")
        form.get_by_role("button", name="永久廢止").click()

        expect(page.locator(".console-message")).to_contain_text("已永久廢止")
        expect(device).to_have_attribute("data-status", "revoked")
        expect(device.locator(".device-status")).to_have_text("已廢止")
        expect(device.locator(".revocation-reason")).to_have_text("民眾來電：手機遺失")
        expect(device.locator("form")).to_have_count(0)  # nothing more can be done with it

        # The audit trail, filtered to device events, shows who did it and why.
        page.get_by_role("link", name="稽核紀錄").click()
        page.fill("#filter-event", "device:")
        page.get_by_role("button", name="顯示事件").click()
        row = page.locator('tr[data-event="device:revoked"]')
        expect(row).to_have_count(1)
        expect(row.locator(".event-reason")).to_contain_text("民眾來電：手機遺失")
        expect(row.locator(".event-actor")).to_have_attribute("data-actor", f"account:{staff['admin']}")
        expect(row.locator(".event-actor")).to_contain_text("陳美玲")
        expect(page.locator('tr[data-event="device:bound"]')).to_have_count(1)
        assert _fits_the_screen(page)
        # The details (tokens, serials, key identifiers longer than a phone is wide) may wrap anywhere.
        assert (broken := _words_broken(page, "tr[data-event] td:not(:last-child)")) == [], broken
        assert "event=device" in page.locator("#audit-csv").get_attribute("href")
    finally:
        context.close()


@pytest.mark.parametrize("screen", sorted(SCREENS))
def test_an_admin_registers_an_agency_sees_its_key_once_rotates_it_and_disables_it(
    browser, live_server, pki, app, staff, screen
):
    context = browser.new_context(locale="zh-TW", **SCREENS[screen])
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        assert browser_card_login(page, live_server, pki, ADMIN_ID)["status"] == "logged_in"
        page.goto(f"{live_server}/admin")
        page.get_by_role("link", name="需用機關").click()
        expect(page.locator("h1")).to_have_text("需用機關（TW FidO 服務提供者）")
        expect(page.get_by_text("尚未登記任何需用機關。")).to_be_visible()

        # Register it: the key is on the answer, with the warning that this is the only time.
        form = page.locator("#agency-create-form")
        form.get_by_label("機關名稱").fill("臺灣雲市集")
        form.get_by_label("允許的 IP 位址").fill("203.0.113.0/24\n2001:db8::/32")
        form.get_by_label("回呼網址").fill("https://market.example.tw/fido")
        form.get_by_label("原因").fill("112 年度合約")
        form.get_by_role("button", name="登記機關").click()
        expect(page.locator("h1")).to_have_text("「臺灣雲市集」已登記")
        expect(page.locator("#secret-warning")).to_contain_text("只顯示這一次")
        first_key = page.locator("#secret-value").input_value()
        sp_service_id = page.locator("#new-sp-service-id").inner_text()
        assert len(base64.b64decode(first_key, validate=True)) == 32
        assert _fits_the_screen(page)

        # Never again: not on the agency's page, not in the list.
        page.get_by_role("link", name="完成").click()
        expect(page.locator("#agency-id")).to_have_text(sp_service_id)
        assert first_key not in page.content()
        page.get_by_role("link", name="所有需用機關").click()
        row = page.locator(f'tr[data-agency-id="{sp_service_id}"]')
        expect(row).to_contain_text("203.0.113.0/24")
        expect(row.locator("[data-state]")).to_have_attribute("data-state", "active")
        assert first_key not in page.content()
        assert _fits_the_screen(page)

        # A new key: asked for in place, with what it does, then shown once.
        row.get_by_role("link", name="臺灣雲市集").click()
        page.locator("summary", has_text="產生新 API 金鑰").click()
        rotate = page.locator("#agency-rotate-form")
        expect(rotate).to_contain_text("立即失效")
        rotate.get_by_label("原因").fill("金鑰疑似外洩")
        rotate.get_by_role("button", name="產生新的 API 金鑰").click()
        expect(page.locator("h1")).to_have_text("「臺灣雲市集」的新 API 金鑰")
        expect(page.locator("#secret-warning")).to_contain_text("只顯示這一次")
        second_key = page.locator("#secret-value").input_value()
        assert second_key != first_key

        # Disabled, with a reason, after saying what it does.
        page.get_by_role("link", name="完成").click()
        page.locator("summary", has_text="停用").click()
        disable = page.locator("#agency-disable-form")
        expect(disable).to_contain_text("拒絕此機關的所有呼叫")
        disable.get_by_label("原因").fill("合約終止")
        disable.get_by_role("button", name="停用機關").click()
        expect(page.locator(".console-message")).to_contain_text("已停用此機關")
        expect(page.locator("#agency-state")).to_have_attribute("data-state", "disabled")
        expect(page.locator("#agency-rotate-form, #agency-disable-form")).to_have_count(0)
        event = page.locator('tr[data-event="agency:disabled"]')
        expect(event.locator(".event-reason")).to_contain_text("合約終止")
        expect(event.locator(".event-actor")).to_have_attribute("data-actor", f"account:{staff['admin']}")
        assert second_key not in page.content() and _fits_the_screen(page)
    finally:
        context.close()
    assert agency_key(app, sp_service_id) == second_key
