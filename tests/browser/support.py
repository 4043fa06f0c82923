"""Helpers of the browser tests."""

from __future__ import annotations

import io

from tests.factories import make_account
from tests.support import browser_card_login, card_of

VIRTUAL_PHONE = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
    "automaticPresenceSimulation": True,
}


def submit_pin(page, pin: str):
    """Type the PIN on /login and submit: returns the component's popup the page opens."""
    page.fill("#pin", pin)
    with page.expect_popup() as popup:
        page.click("#login-button")
    return popup.value


def click_closing(popup, selector: str) -> None:
    """Click a button on which the popup answers and closes itself: the window may be gone before Playwright
    hears the click end, which is the behaviour under test, not a failure."""
    from playwright.sync_api import Error

    try:
        popup.click(selector, no_wait_after=True)
    except Error:
        if not popup.is_closed():
            raise


def verified_account(app, pki, national_id="A123456789"):
    """The card holder's account, registered with a confirmed email (binding a phone needs one)."""
    from app.models import utcnow

    with app.app_context():
        make_account(pki, card_of(pki, national_id), email_verified_at=utcnow())


def decode_qr(page, selector: str) -> str:
    """What the QR code the page shows at ``selector`` holds, read from a screenshot as a camera would."""
    import zxingcpp
    from PIL import Image

    png = page.locator(selector).screenshot()
    [barcode] = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    return barcode.text


def bind_phone(page, phone, live_server: str, app, pki, national_id="A123456789", name="我的 Pixel") -> None:
    """Bind the phone context to the card holder's account through the real flow: the computer (``page``)
    logs in with the card and shows the binding QR code, the phone opens it and confirms with its virtual
    authenticator. The computer is logged out afterwards."""
    from playwright.sync_api import expect

    verified_account(app, pki, national_id)
    assert browser_card_login(page, live_server, pki, national_id)["status"] == "logged_in"
    page.goto(f"{live_server}/account/devices/bind")
    phone.goto(decode_qr(page, "#bind-qr"))
    phone.fill("#device-name", name)
    phone.click("#phone-bind-button")
    expect(phone.locator("#phone-done")).to_be_visible()
    expect(page.locator("#bind-status")).to_have_attribute("data-status", "completed")
    page.context.clear_cookies()
