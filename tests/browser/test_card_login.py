"""/login in Chromium through MoCert's card agent and its popup, exactly as with the real component."""

import re

import pytest
from playwright.sync_api import expect

from tests.factories import make_account
from tests.support import card_of

from .support import click_closing, submit_pin


def test_a_registered_person_logs_in_with_card_and_pin(login_page, start_agent, pki, app, live_server):
    with app.app_context():
        make_account(pki, card_of(pki, "A123456789"))
    agent = start_agent(cards=[card_of(pki, "A123456789")], trusted=[live_server])
    page = login_page(agent.url)
    popup = submit_pin(page, "123456")
    popup.wait_for_event("close")
    page.wait_for_url(f"{live_server}/account")
    expect(page.locator("[data-field=name]")).to_have_text("王小明")


def test_an_unknown_card_goes_on_to_registration(login_page, start_agent, pki, live_server):
    agent = start_agent(cards=[card_of(pki, "B223456782")], trusted=[live_server])
    page = login_page(agent.url)
    submit_pin(page, "123456")
    page.wait_for_url(f"{live_server}/register")


def test_a_wrong_pin_shows_the_tries_left_and_a_blocked_pin_what_to_do(login_page, start_agent, pki, live_server):
    agent = start_agent(cards=[card_of(pki, "A123456789")], trusted=[live_server])
    page = login_page(agent.url)
    submit_pin(page, "111111")
    expect(page.locator("#login-status")).to_contain_text("PIN")
    expect(page.locator("#login-status")).to_contain_text("還可嘗試 2 次")
    submit_pin(page, "111111")
    expect(page.locator("#login-status")).to_contain_text("還可嘗試 1 次")
    submit_pin(page, "111111")
    expect(page.locator("#login-status")).to_contain_text("戶政事務所")  # where to unblock it
    assert agent.readers[0].emulator.pin_tries_left == 0


def test_when_the_component_is_not_running_the_page_says_how_to_start_it(login_page, live_server):
    page = login_page("http://localhost:9")  # nothing listens there
    page.fill("#pin", "123456")
    page.click("#login-button")
    expect(page.locator("#login-status")).to_contain_text("請在這台電腦上啟動跨平台網頁元件", timeout=20_000)
    assert "python -m" not in page.locator("#login-status").text_content()  # an operator's command, not a citizen's


def test_an_untrusted_site_is_trusted_only_after_the_person_agrees(login_page, start_agent, pki, live_server):
    agent = start_agent(cards=[card_of(pki, "B223456782")])
    page = login_page(agent.url)
    popup = submit_pin(page, "123456")
    expect(popup.locator("#site")).to_have_text(live_server)
    expect(popup.locator("#trust")).to_be_visible()
    popup.click("#trust-yes")
    page.wait_for_url(f"{live_server}/register")
    assert live_server in agent.component.trust


def test_refusing_an_untrusted_site_says_so_on_the_page(login_page, start_agent, pki, live_server):
    agent = start_agent(cards=[card_of(pki, "B223456782")])
    page = login_page(agent.url)
    popup = submit_pin(page, "123456")
    click_closing(popup, "#trust-no")
    expect(page.locator("#login-status")).to_contain_text("信任")
    assert live_server not in agent.component.trust


def test_with_several_cards_the_popup_lets_the_person_choose(login_page, start_agent, pki, app, live_server):
    with app.app_context():
        make_account(pki, card_of(pki, "B223456782"))
    agent = start_agent(cards=[card_of(pki, "A123456789"), card_of(pki, "B223456782")], trusted=[live_server])
    page = login_page(agent.url)
    popup = submit_pin(page, "123456")
    popup.click("text=陳美玲")
    page.wait_for_url(f"{live_server}/account")
    expect(page.locator("[data-field=name]")).to_have_text(re.compile("陳美玲"))


def test_a_person_registering_on_the_way_to_a_site_carries_on_there(page, start_agent, pki, live_server, app):
    app.config["COMPONENT_URL"] = start_agent(cards=[card_of(pki, "B223456782")], trusted=[live_server]).url
    page.goto(f"{live_server}/login?next=/help")  # an OpenID Connect request sends people here the same way
    submit_pin(page, "123456")
    page.wait_for_url(f"{live_server}/register?next=%2Fhelp")
    page.fill("#national_id", "B223456782")
    page.fill("#email", "chen@example.com")
    page.fill("#phone", "0987654321")
    page.click("#register-form button[type=submit]")
    page.wait_for_url(f"{live_server}/help")


# The real component (HiPKI) is not on this machine: a stand-in popup answers exactly what its pages test for.
REAL_COMPONENT_POPUP = """<!doctype html><meta charset="utf-8"><title>stand-in component</title><script>
const answer = ANSWER;
window.addEventListener("message", (e) => { window.opener.postMessage(JSON.stringify(answer), e.origin); window.close(); });
window.opener.postMessage(JSON.stringify({func: "getTbs"}), "*");
</script>"""


@pytest.fixture
def real_component():
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    import json
    import threading

    answers = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = REAL_COMPONENT_POPUP.replace("ANSWER", json.dumps(answers["next"])).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def answering(answer: dict) -> str:
        answers["next"] = {"func": "sign", **answer}
        return f"http://localhost:{server.server_address[1]}"

    yield answering
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("answer", "shown"),
    [
        ({"ret_code": 0x76100006, "last_error": -2147483646}, "PIN 碼錯誤。還可嘗試 2 次"),
        ({"ret_code": 0x76100006, "last_error": -2147483647}, "還可嘗試 1 次"),
        ({"ret_code": 0x76100006, "last_error": 160}, "PIN 碼錯誤"),
        ({"ret_code": 0x76100006, "last_error": 164}, "戶政事務所"),
        ({"ret_code": 0x76000006, "last_error": 0}, "讀卡機中沒有卡片"),
        ({"ret_code": 0x76100003, "last_error": 0}, "找不到讀卡機"),
        ({"ret_code": 0x7600000F, "last_error": 0}, "信任"),
        ({"ret_code": 1984954370, "last_error": 0}, "卡片已逾期"),
    ],
    ids=["two-tries", "one-try", "wrong-pin", "pin-locked", "no-card", "no-reader", "not-trusted", "expired"],
)
def test_the_real_components_answers_are_told_in_words(login_page, real_component, answer, shown):
    page = login_page(real_component(answer))
    submit_pin(page, "123456")
    expect(page.locator("#login-status")).to_contain_text(shown)
