"""Helpers of the browser tests."""

from __future__ import annotations

from tests.factories import make_account
from tests.support import card_of

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
