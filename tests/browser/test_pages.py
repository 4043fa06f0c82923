"""The pages as a person meets them: registration, confirming the email, the account, language."""

import re

from playwright.sync_api import expect

from tests.factories import make_account
from tests.support import browser_card_login, card_of


def test_a_new_person_registers_confirms_the_email_and_sees_the_account(page, live_server, pki, mailbox):
    assert browser_card_login(page, live_server, pki, "A123456789")["status"] == "registration_required"
    page.goto(f"{live_server}/register")
    expect(page.locator("html")).to_have_attribute("lang", re.compile("zh"))
    page.fill("#national_id", "A123456788")  # a typo in the check digit, and two more mistakes
    page.fill("#email", "wang@example")
    page.fill("#phone", "12")
    page.click("#register-form button[type=submit]")
    # Every wrong field at once, each beside its input.
    expect(page.locator("#national_id-error")).to_contain_text("身分證")
    expect(page.locator("#email-error")).to_be_visible()
    expect(page.locator("#phone-error")).to_be_visible()
    page.fill("#email", "wang@example.com")
    page.fill("#phone", "0912345678")
    page.fill("#national_id", "A123456789")
    page.click("#register-form button[type=submit]")

    page.wait_for_url(f"{live_server}/account")
    expect(page.locator("[data-field=name]")).to_have_text("王小明")
    expect(page.locator("#account-details")).to_contain_text("A12****789")
    expect(page.locator("[data-field=phone]")).to_have_text("0912-345-678")
    expect(page.locator("#cards-body tr")).to_have_count(1)
    expect(page.locator("#no-devices")).to_be_visible()

    code = re.search(r"\b(\d{6})\b", mailbox.messages[-1].get_payload(decode=True).decode()).group(1)
    page.fill("#code", "000000" if code != "000000" else "111111")
    page.click("#verify-form button[type=submit]")
    expect(page.locator("#verify-status")).to_contain_text("4")  # attempts left
    page.fill("#code", code)
    page.click("#verify-form button[type=submit]")
    expect(page.locator("#email-badge")).to_have_text(re.compile("已驗證"))


def test_the_account_page_sends_a_logged_out_person_to_login(page, live_server):
    page.goto(f"{live_server}/account")
    page.wait_for_url(f"{live_server}/login")
    expect(page.locator("h1")).to_have_text("以自然人憑證 IC 卡登入")


def test_english_is_one_click_away_and_remembered(page, live_server):
    page.goto(f"{live_server}/help")
    expect(page.locator("h1")).to_have_text("使用說明")
    expect(page.locator("body")).to_contain_text("0800-080-117")
    page.click("text=English")
    expect(page.locator("h1")).to_have_text("Help")
    page.goto(f"{live_server}/")
    expect(page.locator("html")).to_have_attribute("lang", "en")


def test_logout_from_the_page_ends_the_session(page, live_server, pki, app):
    with app.app_context():
        make_account(pki, card_of(pki, "B223456782"))
    assert browser_card_login(page, live_server, pki, "B223456782")["status"] == "logged_in"
    page.goto(f"{live_server}/account")
    expect(page.locator("[data-field=name]")).to_have_text("陳美玲")
    page.click("#logout-button")
    page.wait_for_url(f"{live_server}/")
    assert page.request.get(f"{live_server}/api/v1/account").status == 401
