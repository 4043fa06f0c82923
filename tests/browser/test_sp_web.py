"""SP-API-WEB-01 in Chromium, as a person meets it: the agency's own site (another site, 127.0.0.1) has the
browser form-POST to MoCert, MoCert's page shows the agency's request, the passkey on this device (bound as
a phone through the real flow, Chromium's virtual authenticator) approves, the person types their national
ID, and the page posts the signed answer to the agency's callback, which checks it as an agency does."""

from __future__ import annotations

import json

import pytest
import requests
from cryptography import x509
from playwright.sync_api import expect

from app.mobile_pki import PKI_PATH
from app.wiring import parts
from tests.app.agency_client import AgencyClient, AgencySite, challenge_input, check_signed_response
from tests.support import browser_card_login
from twfido.signed_response import SignedResponse

from .support import verified_account

ID = "A123456789"


@pytest.fixture
def site():
    site = AgencySite()
    yield site
    site.close()


@pytest.fixture
def agency(app, live_server, site) -> AgencyClient:
    with app.app_context():
        agency, api_key = parts().agencies.add(actor="test", name="臺灣雲市集", callback_url=site.callback_url)
        return AgencyClient(live_server, agency.sp_service_id, api_key)


def _agency_sends_the_browser(page, live_server, site, form) -> None:
    """The agency's page, and its button that form-POSTs the request to MoCert."""
    site.form = (f"{live_server}/moise/sp/fidoRedirect/web", form)
    page.goto(f"{site.url}/start")
    page.click("#go")
    page.wait_for_url(f"{live_server}/moise/sp/fidoRedirect/web")


def test_a_person_signs_for_an_agency_with_a_passkey_on_this_device_and_the_agency_gets_the_signed_form(
    page, device, live_server, app, site, agency
):
    form = agency.web_form(op_code="SIGN", hint="簽署契約", sign_data="我同意第 12 號契約")
    _agency_sends_the_browser(page, live_server, site, form)
    expect(page.locator("h1")).to_have_text("臺灣雲市集 請您簽署")
    expect(page.locator("#sp-web-hint")).to_have_text("簽署契約")
    expect(page.locator("#sp-web-sign-data")).to_have_text("我同意第 12 號契約")
    expect(page.locator("#sp-web-callback")).to_have_text(site.url)
    expect(page.locator("#sp-web-qr")).to_be_visible()
    expect(page.locator("#sp-web-status")).to_have_attribute("data-status", "pending")

    page.get_by_role("button", name="使用本裝置上的通行金鑰").click()
    id_input = page.get_by_label("身分證統一編號")
    expect(id_input).to_be_visible()  # approved: the person gives their ID
    expect(page.locator("#sp-web-area")).to_be_hidden()
    assert site.received == []

    id_input.fill("B223456782")  # someone else's
    page.get_by_role("button", name="送交 臺灣雲市集").click()
    expect(page.locator("#sp-web-id-error")).to_have_text("這不是您帳號的身分證統一編號。")
    assert site.received == []

    id_input.fill(ID)
    page.get_by_role("button", name="送交 臺灣雲市集").click()
    page.wait_for_url(f"{site.callback_url}")
    expect(page.locator("#agency")).to_have_text("已收到 MoCert 的回覆")

    [posted] = site.received
    assert (posted["transaction_id"], posted["error_code"], posted["id_num"]) == (form["transaction_id"], "0", ID)
    assert agency.web_answer_holds(posted)
    signed = SignedResponse.decode(posted["signed_response"])
    ca = x509.load_der_x509_certificate(requests.get(f"{live_server}{PKI_PATH}/ca.cer", timeout=10).content)
    with app.app_context():
        rp_id = parts().relying_party.id
    expected = challenge_input(form, json.loads(signed.challenge_input)["sp_ticket_id"])
    check_signed_response(posted["signed_response"], posted["cert"], ca, expected, rp_id)


def test_a_logged_in_person_who_cancels_goes_back_to_the_agency_still_logged_in(page, live_server, app, pki, site,
                                                                                agency):
    verified_account(app, pki)
    assert browser_card_login(page, live_server, pki, ID)["status"] == "logged_in"
    form = agency.web_form()
    _agency_sends_the_browser(page, live_server, site, form)
    expect(page.locator("h1")).to_have_text("臺灣雲市集 請您確認身分")
    page.get_by_role("button", name="取消並返回 臺灣雲市集").click()
    page.wait_for_url(site.callback_url)
    [posted] = site.received
    assert (posted["transaction_id"], posted["error_code"]) == (form["transaction_id"], "SP-API-WEB-01-APP_USER_CANCEL")
    assert agency.web_answer_holds(posted)
    # MoCert's pages set no cookie in answer to the cross-site form: the person's session is the one it was.
    page.goto(f"{live_server}/account")
    expect(page).to_have_url(f"{live_server}/account")


def test_a_malformed_form_of_the_agency_goes_straight_back_to_its_callback(page, live_server, site, agency):
    form = agency.web_form(time_limit="9999")
    _agency_sends_the_browser(page, live_server, site, form)
    page.wait_for_url(site.callback_url)  # the page posts itself
    [posted] = site.received
    assert posted["error_code"] == "SP-API-WEB-01-SPTKT_TIME_ORV" and agency.web_answer_holds(posted)


def test_a_form_not_the_agencys_stops_at_an_error_page(page, live_server, site, agency):
    form = {**agency.web_form(), "hint": "轉帳十萬元"}  # changed after the agency signed it
    site.form = (f"{live_server}/moise/sp/fidoRedirect/web", form)
    page.goto(f"{site.url}/start")
    page.click("#go")
    expect(page.locator("h1")).to_have_text("這項請求無法開始")
    expect(page.locator("#sp-web-error-code")).to_have_text("SP-API-WEB-01-INV_SP_CHECKSUM")
    assert site.received == []
