"""/login in Chromium with the agent reading cards through PKCS#11, started as a person starts it:
`python -m iccard.agent --pkcs11 MODULE`, a process of its own. Once over SoftHSM2 holding the demo cards,
once over OpenSC's module reading the emulated PIV card through pcscd and vpcd."""

from playwright.sync_api import expect

from tests.factories import make_account
from tests.support import card_of

from .support import submit_pin


def test_a_registered_person_logs_in_with_a_card_in_softhsm(login_page, pkcs11_agent, softhsm_tokens, pki, app,
                                                             live_server):
    card = card_of(pki, "A123456789")
    with app.app_context():
        make_account(pki, card)
    config = softhsm_tokens.tokens([card])
    agent = pkcs11_agent(softhsm_tokens.module, env=softhsm_tokens.env(config), trusted=[live_server])
    page = login_page(agent.url)
    popup = submit_pin(page, card.pin)
    popup.wait_for_event("close")
    page.wait_for_url(f"{live_server}/account")
    expect(page.locator("[data-field=name]")).to_have_text("王小明")


def test_a_wrong_pin_on_softhsm_says_so_and_warns_of_blocking(login_page, pkcs11_agent, softhsm_tokens, pki,
                                                               live_server):
    config = softhsm_tokens.tokens([card_of(pki, "B223456782")])
    agent = pkcs11_agent(softhsm_tokens.module, env=softhsm_tokens.env(config), trusted=[live_server])
    page = login_page(agent.url)
    submit_pin(page, "111111")
    expect(page.locator("#login-status")).to_contain_text("PIN 碼錯誤")
    # SoftHSM does not count: no number of tries, the warning instead.
    expect(page.locator("#login-status")).to_contain_text("戶政事務所")
    expect(page.locator("#login-status")).not_to_contain_text("還可嘗試")


def test_a_registered_person_logs_in_through_opensc_with_the_emulated_card(login_page, pkcs11_agent, opensc,
                                                                           virtual_card, pki, demo_card, app,
                                                                           live_server):
    with app.app_context():
        make_account(pki, demo_card)
    agent = pkcs11_agent(opensc, trusted=[live_server])
    page = login_page(agent.url)
    popup = submit_pin(page, demo_card.pin)
    popup.wait_for_event("close")
    page.wait_for_url(f"{live_server}/account")
    expect(page.locator("[data-field=name]")).to_have_text("王小明")


def test_wrong_pins_through_opensc_show_the_final_try_and_the_blocked_pin(login_page, pkcs11_agent, opensc,
                                                                          virtual_card, emulator, live_server):
    agent = pkcs11_agent(opensc, trusted=[live_server])
    page = login_page(agent.url)
    submit_pin(page, "111111")
    expect(page.locator("#login-status")).to_contain_text("PIN 碼錯誤")  # 2 left, which OpenSC does not tell
    submit_pin(page, "111111")
    expect(page.locator("#login-status")).to_contain_text("還可嘗試 1 次")  # CKF_USER_PIN_FINAL_TRY
    submit_pin(page, "111111")
    expect(page.locator("#login-status")).to_contain_text("已鎖定")
    assert emulator.pin_tries_left == 0
