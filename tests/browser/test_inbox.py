"""A phone's inbox as a person uses it: the phone (Chromium with its virtual platform authenticator, bound
through the real binding flow) opens /m/inbox with its passkey, sees an agency's pushed request appear while
the page is open, approves it, and the agency's poll (its client written from the contract) answers "0"."""

from __future__ import annotations

import io

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from playwright.sync_api import expect

from app import wiring
from app.wiring import parts
from tests.app.agency_client import AgencyClient
from tests.support import browser_card_login

from .support import verified_account

ID = "A123456789"


def _bound(page, phone, live_server, pki, app) -> None:
    """The phone bound to 王小明 as a person does it: the computer's QR code, scanned on the phone."""
    import zxingcpp
    from PIL import Image

    verified_account(app, pki)
    assert browser_card_login(page, live_server, pki, ID)["status"] == "logged_in"
    page.goto(f"{live_server}/account/devices/bind")
    [barcode] = zxingcpp.read_barcodes(Image.open(io.BytesIO(page.locator("#bind-qr").screenshot())))
    phone.goto(barcode.text)
    phone.fill("#device-name", "我的 Pixel")
    phone.click("#phone-bind-button")
    expect(phone.locator("#phone-done")).to_be_visible()


def _agency(app, live_server) -> AgencyClient:
    with app.app_context():
        agency, api_key = parts().agencies.add(actor="test", name="臺灣雲市集", allowed_ips=[], callback_url=None)
        return AgencyClient(live_server, agency.sp_service_id, api_key)


def test_a_pushed_request_appears_in_the_open_inbox_and_is_approved_there(page, phone, live_server, pki, app):
    _bound(page, phone, live_server, pki, app)
    agency = _agency(app, live_server)

    phone.goto(f"{live_server}/m/inbox")
    phone.get_by_role("button", name="開啟收件匣").click()
    expect(phone.locator("#inbox-area")).to_be_visible()
    expect(phone.locator("#inbox-device")).to_contain_text("我的 Pixel")
    expect(phone.locator("#inbox-empty")).to_be_visible()
    expect(phone.locator("#inbox-push-off")).to_be_visible()  # no VAPID key here: the page says so
    expect(phone.locator("#inbox-notify")).to_be_hidden()

    # The agency pushes while the inbox is open: the request appears by itself.
    call = agency.push(ID, hint="登入臺灣雲市集")
    assert call.code == "0", call.answer
    item = phone.locator(".inbox-item")
    expect(item).to_have_count(1)
    expect(item).to_contain_text("臺灣雲市集")
    expect(item).to_contain_text("登入臺灣雲市集")
    expect(item).to_contain_text("身分確認")
    expect(phone.locator("#inbox-empty")).to_be_hidden()
    assert agency.result(call.result["sp_ticket"]).code == "20002"

    item.click()
    expect(phone.locator("#inbox-detail")).to_be_visible()
    expect(phone.locator("#detail-sp-name")).to_have_text("臺灣雲市集")
    phone.get_by_role("button", name="以指紋或臉部辨識同意").click()
    expect(phone.locator("#inbox-status")).to_have_attribute("data-kind", "success")
    expect(phone.locator("#inbox-status")).to_contain_text("臺灣雲市集")
    expect(phone.locator("#inbox-area")).to_be_visible()
    expect(phone.locator(".inbox-item")).to_have_count(0)

    result = agency.result(call.result["sp_ticket"])
    assert result.code == "0", result.answer
    assert agency.result_answer_holds(result)


def test_declining_in_the_inbox_tells_the_agency_no(page, phone, live_server, pki, app):
    _bound(page, phone, live_server, pki, app)
    agency = _agency(app, live_server)
    call = agency.push(ID, op_code="SIGN", sign_info={"sign_type": "PKCS#7", "sign_data": "我同意第 12 號契約"})
    phone.goto(f"{live_server}/m/inbox")
    phone.click("#inbox-open")
    phone.locator(".inbox-item").click()
    expect(phone.locator("#detail-sign-data")).to_have_text("我同意第 12 號契約")
    phone.get_by_role("button", name="拒絕").click()
    expect(phone.locator(".inbox-item")).to_have_count(0)
    assert agency.result(call.result["sp_ticket"]).code == "SP-API-ATH-02-APP_USER_CANCEL"


def test_with_notices_set_up_the_inbox_offers_them_and_registers_its_service_worker(phone, live_server, pki, app,
                                                                                    page):
    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    app.config.update(VAPID_PRIVATE_KEY=key, VAPID_SUBJECT="mailto:ops@mocert.example.tw")
    wiring.install(app)
    _bound(page, phone, live_server, pki, app)
    phone.context.grant_permissions(["notifications"], origin=live_server)
    phone.goto(f"{live_server}/m/inbox")
    phone.click("#inbox-open")
    notify = phone.get_by_role("button", name="接收通知")
    expect(notify).to_be_visible()
    expect(phone.locator("#inbox-push-off")).to_be_hidden()
    notify.click()
    # The worker is registered for the inbox whatever the browser's push service then says: this machine
    # reaches no vendor's push service, so Chromium's subscription fails, and the page says what to do.
    status = phone.locator("#inbox-push-status")
    expect(status).to_have_attribute("data-kind", "error")
    expect(status).to_contain_text("請保持此頁面開啟")
    scope = phone.evaluate("navigator.serviceWorker.getRegistration('/m/inbox').then((r) => r && r.scope)")
    assert scope == f"{live_server}/m/inbox"
