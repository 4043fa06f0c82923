"""An agency's request (TW FidO, issue 13) answered on the phone as a person does it: the agency's page shows
the sp_ticket as a QR code; the phone (bound first through the real binding flow, with Chromium's virtual
authenticator) reads it on /m/scan, sees the agency, its message and what is signed, and approves or
declines; the agency's server polls getAthOrSignResult and checks the signed response. The agency is a tiny
site served here, calling MoCert with the client written from the contract (tests/app/agency_client.py)."""

from __future__ import annotations

import base64
import html
import io
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import qrcode
import requests
from cryptography import x509
from PIL import Image
from playwright.sync_api import expect
from sqlalchemy import update

from app.extensions import db
from app.mobile_pki import PKI_PATH
from app.models import SpRequest, utcnow
from app.wiring import parts
from tests.app.agency_client import AgencyClient, Call, challenge_input, check_signed_response, ticket_fields

from .support import VIRTUAL_PHONE, bind_phone, decode_qr

ID = "A123456789"


@dataclass
class AgencySite:
    """The agency's web site: ``/start?op_code=…&op_mode=…`` asks MoCert for a ticket and shows it (a QR
    code, and for MWEB2APP a link to open it on this phone); ``/back`` is where the phone returns."""

    url: str
    client: AgencyClient | None = None
    calls: list[Call] = field(default_factory=list)
    returns: list[dict] = field(default_factory=list)

    @property
    def call(self) -> Call:
        return self.calls[-1]

    @property
    def sp_ticket(self) -> str:
        return self.call.result["sp_ticket"]


def _qr_png(text: str) -> str:
    buffer = io.BytesIO()
    qrcode.make(text, box_size=6, border=4).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture
def agency_site(app, live_server):
    site = AgencySite(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            target = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(target.query).items()}
            if target.path == "/start":
                body = self.start(query)
            elif target.path == "/back":
                site.returns.append(query)
                body = "<p id=agency-back>回到臺灣雲市集</p>"
            else:
                self.send_error(404)
                return
            data = f"<!doctype html><meta charset=utf-8><title>臺灣雲市集</title>{body}".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def start(self, query: dict) -> str:
            op_code, op_mode = query.get("op_code", "ATH"), query.get("op_mode", "I-SCAN")
            hint = query.get("hint", "登入臺灣雲市集")
            if op_code == "BATSIGN":
                call = site.client.batch(ID, query["items"].split("|"), op_mode=op_mode, hint=hint)
            else:
                sign_info = None
                if op_code == "SIGN":
                    sign_info = {"sign_type": "PKCS#7", "sign_data": query["sign_data"], "tbs_encoding": "NONE",
                                 "hash_algorithm": "SHA256"}
                call = site.client.ticket(ID, op_code=op_code, op_mode=op_mode, hint=hint, sign_info=sign_info)
            assert call.code == "0", call.answer
            site.calls.append(call)
            sp_ticket = call.result["sp_ticket"]
            page = (f'<h1>以行動自然人憑證確認</h1><img id=agency-qr alt="QR Code" '
                    f'src="data:image/png;base64,{_qr_png(sp_ticket)}">')
            if op_mode == "MWEB2APP":  # the agency's mobile page sends the person to MoCert's phone page
                link = (f"{live_server}/m/sp?sp_ticket={quote(sp_ticket)}"
                        f"&rtn_url={quote(query.get('rtn_url', site.url + '/back?order=7'), safe='')}&rtn_val=s-1")
                page += f'<p><a id=agency-open href="{html.escape(link)}">開啟行動自然人憑證</a></p>'
            return page

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    site.url = f"http://127.0.0.1:{server.server_port}"
    with app.app_context():
        agency, api_key = parts().agencies.add(actor="test", name="臺灣雲市集", callback_url=f"{site.url}/fido")
        site.client = AgencyClient(live_server, agency.sp_service_id, api_key)
    yield site
    server.shutdown()


@pytest.fixture
def bound_phone(page, phone, live_server, app, pki):
    """The phone context, bound to 王小明 (A123456789) through the real binding flow."""
    bind_phone(page, phone, live_server, app, pki)
    return phone


def _scan(page, phone, live_server, site: AgencySite, query: str = "") -> str:
    """The agency's page on the computer shows its QR code; the phone reads it on /m/scan. Here the phone
    pastes what the QR code holds (read from the screenshot), as a phone without a usable camera does: the
    camera itself is filmed in a test of its own, which needs a Chromium of its own (``camera_phone``)."""
    page.goto(f"{site.url}/start{query}")
    sp_ticket = decode_qr(page, "#agency-qr")
    assert sp_ticket == site.sp_ticket
    phone.goto(f"{live_server}/m/scan")
    phone.fill("#scan-ticket", sp_ticket)
    phone.click("#scan-open")
    phone.wait_for_url(f"{live_server}/m/sp?sp_ticket=*")
    return sp_ticket


def _check_approved(app, live_server, site: AgencySite, sp_ticket: str) -> None:
    """The agency's poll: the result, its checksum, and a signed response over what the agency asked."""
    result = site.client.result(sp_ticket)
    assert (result.code, result.answer["error_message"]) == ("0", ""), result.answer
    assert site.client.result_answer_holds(result)
    ca = x509.load_der_x509_certificate(requests.get(f"{live_server}{PKI_PATH}/ca.cer", timeout=10).content)
    with app.app_context():
        rp_id = parts().relying_party.id
    expected = challenge_input(site.call.sent, ticket_fields(sp_ticket)["sp_ticket_id"])
    check_signed_response(result.result["signed_response"], result.result["cert"], ca, expected, rp_id)


def _give_passkey(phone, tab) -> None:
    """The phone's passkey in another tab: Chromium's virtual authenticators belong to one tab, so the tab's
    own (made here for a plain tab) gets a copy of the phone's credential, its sign counter as it is now."""
    cdp, authenticator_id = phone.authenticator
    credentials = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})["credentials"]
    if not hasattr(tab, "authenticator"):
        tab_cdp = tab.context.new_cdp_session(tab)
        tab_cdp.send("WebAuthn.enable")
        tab.authenticator = (tab_cdp, tab_cdp.send("WebAuthn.addVirtualAuthenticator",
                                                   {"options": VIRTUAL_PHONE})["authenticatorId"])
    tab_cdp, tab_id = tab.authenticator
    for credential in credentials:
        tab_cdp.send("WebAuthn.addCredential", {"authenticatorId": tab_id, "credential": credential})


def test_the_phone_scans_the_agencys_qr_code_sees_who_asks_and_approves(
    page, bound_phone, live_server, app, agency_site
):
    phone = bound_phone
    sp_ticket = _scan(page, phone, live_server, agency_site)

    expect(phone.locator("html")).to_have_attribute("lang", "zh-Hant-TW")
    expect(phone.locator("#sp-name")).to_have_text("臺灣雲市集")
    expect(phone.locator("#sp-operation")).to_have_text("登入")
    expect(phone.locator("#sp-hint")).to_have_text("登入臺灣雲市集")
    expect(phone.locator("#sp-expires")).not_to_be_empty()
    expect(phone.locator("#sp-sign-data-value")).to_be_hidden()
    assert agency_site.client.result(sp_ticket).code == "20002"  # shown, not answered

    phone.click("#sp-approve")
    expect(phone.locator("#sp-done")).to_be_visible()
    expect(phone.locator("#sp-done-text")).to_contain_text("已同意")
    expect(phone.locator("#sp-return-row")).to_be_hidden()  # scanned from another screen: nowhere to go back
    _check_approved(app, live_server, agency_site, sp_ticket)


def test_the_phones_camera_reads_the_agencys_qr_code(page, bound_phone, camera_phone, live_server, app, agency_site):
    page.goto(f"{agency_site.url}/start")
    qr = Image.open(io.BytesIO(page.locator("#agency-qr").screenshot()))
    qr.thumbnail((460, 460))
    frame = Image.new("RGB", (640, 480), "white")  # the agency's screen, as the phone's camera sees it
    frame.paste(qr, ((640 - qr.width) // 2, (480 - qr.height) // 2))
    phone = camera_phone(frame)
    _give_passkey(bound_phone, phone)

    phone.goto(f"{live_server}/m/scan")
    phone.click("#scan-start")
    phone.wait_for_url(f"{live_server}/m/sp?sp_ticket=*")
    assert parse_qs(urlsplit(phone.url).query)["sp_ticket"] == [agency_site.sp_ticket]
    expect(phone.locator("#sp-name")).to_have_text("臺灣雲市集")
    phone.click("#sp-approve")
    expect(phone.locator("#sp-done")).to_be_visible()
    _check_approved(app, live_server, agency_site, agency_site.sp_ticket)


def test_declining_tells_the_agency_app_user_cancel(page, bound_phone, live_server, agency_site):
    phone = bound_phone
    sp_ticket = _scan(page, phone, live_server, agency_site)
    expect(phone.locator("#sp-name")).to_have_text("臺灣雲市集")

    phone.click("#sp-decline")
    expect(phone.locator("#sp-done-text")).to_contain_text("已拒絕")
    expect(phone.locator("#sp-done-mark")).to_be_hidden()
    assert agency_site.client.result(sp_ticket).code == "SP-API-ATH-02-APP_USER_CANCEL"


def test_an_answered_request_cannot_be_approved_again(page, bound_phone, live_server, app, agency_site):
    phone = bound_phone
    sp_ticket = _scan(page, phone, live_server, agency_site)
    request_url = phone.url
    # A second tab has the same request open when the first approves it.
    second = phone.context.new_page()
    second.goto(request_url)
    expect(second.locator("#sp-name")).to_have_text("臺灣雲市集")

    phone.click("#sp-approve")
    expect(phone.locator("#sp-done")).to_be_visible()
    _give_passkey(phone, second)
    second.bring_to_front()  # WebAuthn answers only the tab in front
    second.click("#sp-approve")
    expect(second.locator("#sp-status")).to_have_text("此請求已經回覆過了。")
    expect(second.locator("#sp-area")).to_be_hidden()
    expect(second.locator("#sp-scan-row")).to_be_visible()

    # Opened again, it says so at once; the API answers the contract's code.
    phone.goto(request_url)
    expect(phone.locator("#sp-status")).to_have_text("此請求已經回覆過了。")
    expect(phone.locator("#sp-area")).to_be_hidden()
    answer = requests.post(f"{live_server}/api/v1/m/sp-requests/options", json={"sp_ticket": sp_ticket}, timeout=10)
    assert (answer.status_code, answer.json()["error"]) == (409, "SPTKTID_SPTKT_RDM")
    _check_approved(app, live_server, agency_site, sp_ticket)  # the first approval stands


def test_an_expired_request_says_to_start_again_at_the_agency(page, bound_phone, live_server, app, agency_site):
    phone = bound_phone
    _scan(page, phone, live_server, agency_site)
    expect(phone.locator("#sp-name")).to_have_text("臺灣雲市集")
    with app.app_context():
        db.session.execute(update(SpRequest).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    phone.click("#sp-approve")
    expect(phone.locator("#sp-status")).to_have_text("此請求已逾期，請回到機關的頁面重新開始。")
    expect(phone.locator("#sp-area")).to_be_hidden()
    phone.reload()
    expect(phone.locator("#sp-status")).to_have_text("此請求已逾期，請回到機關的頁面重新開始。")


def test_sign_shows_the_text_signed_as_text_before_the_fingerprint(page, bound_phone, live_server, app, agency_site):
    phone = bound_phone
    text = '我同意第 12 號契約\n<img src=x id="injected"> & <b>不是粗體</b>'
    sp_ticket = _scan(page, phone, live_server, agency_site, f"?op_code=SIGN&hint=簽署契約&sign_data={quote(text)}")

    expect(phone.locator("#sp-operation")).to_have_text("簽署")
    expect(phone.locator("#sp-hint")).to_have_text("簽署契約")
    expect(phone.locator("#sp-sign-data")).to_be_visible()
    assert phone.locator("#sp-sign-data").text_content() == text
    expect(phone.locator("#injected")).to_have_count(0)  # the agency's text is shown, never run as HTML
    expect(phone.locator("#sp-sign-data b")).to_have_count(0)
    phone.click("#sp-approve")
    expect(phone.locator("#sp-done")).to_be_visible()
    _check_approved(app, live_server, agency_site, sp_ticket)


def test_batsign_lists_every_document(page, bound_phone, live_server, app, agency_site):
    phone = bound_phone
    sp_ticket = _scan(page, phone, live_server, agency_site, "?op_code=BATSIGN&hint=簽署文件&items=第一份|second|第三份")

    expect(phone.locator("#sp-operation")).to_have_text("批次簽署")
    expect(phone.locator("#sp-batch li")).to_have_text(["第一份", "second", "第三份"])
    phone.click("#sp-approve")
    expect(phone.locator("#sp-done")).to_be_visible()
    _check_approved(app, live_server, agency_site, sp_ticket)


def test_a_cancelled_fingerprint_leaves_the_request_open_to_try_again(
    page, bound_phone, live_server, app, agency_site
):
    phone = bound_phone
    sp_ticket = _scan(page, phone, live_server, agency_site)
    cdp, authenticator_id = phone.authenticator
    cdp.send("WebAuthn.setUserVerified", {"authenticatorId": authenticator_id, "isUserVerified": False})
    phone.click("#sp-approve")
    expect(phone.locator("#sp-status")).to_contain_text("請求仍待回覆")
    expect(phone.locator("#sp-approve")).to_be_enabled()
    assert agency_site.client.result(sp_ticket).code == "20002"

    cdp.send("WebAuthn.setUserVerified", {"authenticatorId": authenticator_id, "isUserVerified": True})
    phone.click("#sp-approve")
    expect(phone.locator("#sp-done")).to_be_visible()
    _check_approved(app, live_server, agency_site, sp_ticket)


def test_mweb2app_returns_to_the_agencys_page_with_its_value(bound_phone, live_server, app, agency_site):
    phone = bound_phone
    # The agency's mobile page, on the phone itself, sends the person to MoCert's phone page.
    phone.goto(f"{agency_site.url}/start?op_mode=MWEB2APP")
    phone.click("#agency-open")
    phone.wait_for_url(f"{live_server}/m/sp?*")
    expect(phone.locator("#sp-name")).to_have_text("臺灣雲市集")
    phone.click("#sp-approve")
    expect(phone.locator("#sp-done")).to_be_visible()
    back = phone.locator("#sp-return")
    expect(back).to_have_text("回到臺灣雲市集")
    expect(back).to_have_attribute("href", f"{agency_site.url}/back?order=7&rtn_val=s-1")
    _check_approved(app, live_server, agency_site, agency_site.sp_ticket)

    back.click()
    expect(phone.locator("#agency-back")).to_be_visible()
    assert agency_site.returns == [{"order": "7", "rtn_val": "s-1"}]


def test_mweb2app_offers_no_way_back_to_another_site(bound_phone, live_server, agency_site):
    phone = bound_phone
    phone.goto(f"{agency_site.url}/start?op_mode=MWEB2APP&rtn_url={quote('https://evil.example/steal')}")
    phone.click("#agency-open")
    phone.wait_for_url(f"{live_server}/m/sp?*")
    phone.click("#sp-decline")
    expect(phone.locator("#sp-done-text")).to_contain_text("已拒絕")
    expect(phone.locator("#sp-return-row")).to_be_hidden()
    assert agency_site.client.result(agency_site.sp_ticket).code == "SP-API-ATH-02-APP_USER_CANCEL"


def test_the_scanner_says_when_the_camera_cannot_be_used_and_checks_what_is_pasted(phone, live_server):
    phone.goto(f"{live_server}/m/scan")
    phone.click("#scan-start")
    expect(phone.locator("#scan-status")).to_contain_text("請改在下方貼上請求碼")
    expect(phone.locator("#scan-ticket")).to_be_focused()

    phone.fill("#scan-ticket", "https://evil.example/m/sp?sp_ticket=abc.def")
    phone.click("#scan-open")
    expect(phone.locator("#scan-ticket-error")).to_contain_text("這不是機關的請求碼")
    assert phone.url == f"{live_server}/m/scan"
