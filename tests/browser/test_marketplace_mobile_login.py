"""The example marketplace's login with 行動自然人憑證 in Chromium: the person types their national ID, the page
shows the QR code of MoCert's sp_ticket and the hint, the phone (the reference software phone, bound through
the real flow) scans it, shows the same hint and approves, and the page, polling the marketplace, follows by
itself into the logged-in marketplace."""

from __future__ import annotations

import io

import pytest
from playwright.sync_api import expect

from app.oidc.keys import ensure_keys
from tests.examples.support import bind_software_phone, flask_cli, serve_marketplace
from tests.factories import make_account
from tests.support import card_of


VALID_TAX_ID = "04595257"
# Whether an element's text sits on one line: its boxes' tops within half a box of each other.
_ON_ONE_LINE = """el => {
  const range = document.createRange();
  range.selectNodeContents(el);
  const rects = [...range.getClientRects()].filter(r => r.width > 0);
  const tops = rects.map(r => r.top), height = Math.max(...rects.map(r => r.height));
  return Math.max(...tops) - Math.min(...tops) <= height / 2;
}"""


def _decode_qr(page, selector: str) -> str:
    import zxingcpp
    from PIL import Image

    png = page.locator(selector).screenshot()
    [barcode] = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    return barcode.text


@pytest.fixture
def marketplace(app, live_server, tmp_path):
    ensure_keys(app.config["OIDC_KEYS_DIR"])
    served = serve_marketplace(live_server, flask_cli(app), tmp_path / "marketplace-instance")
    yield served
    served.stop()


def test_the_marketplace_shows_the_qr_code_and_logs_the_person_in_once_the_phone_approves(
    page, app, pki, live_server, marketplace
):
    with app.app_context():
        person = make_account(pki, card_of(pki, "A123456789")).id
    software_phone = bind_software_phone(app, live_server, pki, person)

    page.goto(marketplace.url)
    page.click("#login-mobile")
    page.fill("#national-id", "a123456789")
    page.click("#mobile-qr")
    expect(page.locator("#mobile-qr-code svg")).to_be_visible()
    hint = page.locator("#mobile-hint").text_content().strip()
    expect(page.locator("#mobile-status")).to_have_attribute("data-status", "pending")

    sp_ticket = _decode_qr(page, "#mobile-qr-code")
    request = software_phone.sp_request(live_server, sp_ticket)
    assert (request.sp_name, request.hint) == ("臺灣雲市集（示範）", hint)
    software_phone.approve_sp(request)

    page.wait_for_url(f"{marketplace.url}/join")
    expect(page.locator("#login-method")).to_have_attribute("data-method", "mobile")
    expect(page.locator("#login-method")).to_contain_text("A12****789")
    expect(page.locator("#person")).to_have_text("王小明")

    # Joined, on a phone's width: each Buy stays on one line, and buying asks first, with what it costs.
    page.fill("input[name=name]", "小明雲端商行")
    page.fill("input[name=tax_id]", VALID_TAX_ID)
    page.get_by_role("button", name="加入").click()
    page.wait_for_url(f"{marketplace.url}/company")
    page.set_viewport_size({"width": 360, "height": 780})
    page.goto(marketplace.url)
    buys = page.locator("a.button", has_text="購買")
    assert buys.count() >= 2
    for buy in buys.all():
        assert buy.evaluate(_ON_ONE_LINE), buy.text_content()
    page.locator("a.button", has_text="購買").first.click()
    expect(page.locator("#confirm-purchase")).to_be_visible()
    expect(page.locator("h2")).to_contain_text("確認購買")
