"""A page written for the real component, knowing nothing of MoCert, works with MoCert's agent.

The page below does what MOICA's published samples do: open /popupForm on a click, wait for the popup's
{"func":"getTbs"}, post one JSON request as a string, read the answer string. One request per popup.
"""

import datetime
import functools
import json
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import expect

from iccard.agent import protocol
from tests.support import card_of

ARM_DELAY_MS = 700  # armed.js

from .support import click_closing

PAGE = """<!doctype html><meta charset="utf-8"><title>legacy relying party</title>
<button id="go">sign</button><pre id="out"></pre>
<script>
const componentUrl = new URLSearchParams(location.search).get("component");
document.getElementById("go").onclick = function () {
  const request = JSON.parse(document.getElementById("request").textContent);
  const popup = window.open(componentUrl + "/popupForm", "sign", "height=200,width=200");
  window.addEventListener("message", function handler(e) {
    const data = JSON.parse(e.data);
    if (data.func === "getTbs") { popup.postMessage(JSON.stringify(request), componentUrl); return; }
    document.getElementById("out").textContent = e.data;
    window.removeEventListener("message", handler);
  });
};
</script>
<script type="application/json" id="request">REQUEST</script>
"""


@pytest.fixture
def legacy_site(tmp_path):
    def serve(request: dict) -> str:
        (tmp_path / "index.html").write_text(PAGE.replace("REQUEST", json.dumps(request)))
        handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://localhost:{server.server_address[1]}"

    servers = []
    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("request_", "check"),
    [
        (
            {"func": "MakeSignature", "signatureType": "PKCS7", "tbs": "hello", "tbsEncoding": "NONE",
             "hashAlgorithm": "SHA256", "withCardSN": "true", "pin": "123456", "nonce": "", "slotDescription": ""},
            lambda answer: answer["func"] == "sign" and answer["ret_code"] == 0 and answer["cardSN"] == "TEST000000000002",
        ),
        (
            {"func": "GetUserCert"},
            lambda answer: answer["func"] == "pkcs11info" and answer["slots"][0]["token"]["certs"][0]["certb64"],
        ),
    ],
)
def test_a_page_written_for_the_real_component_works_with_ours(page, legacy_site, start_agent, pki, request_, check):
    agent = start_agent(cards=[card_of(pki, "B223456782")])
    site = legacy_site(request_)
    agent.component.trust.add(site)
    page.goto(f"{site}/index.html?component={agent.url}")
    page.click("#go")
    expect(page.locator("#out")).not_to_be_empty()
    assert check(json.loads(page.locator("#out").text_content()))


def test_a_sandboxed_page_is_answered_not_trusted_and_the_popup_closes(page, legacy_site, start_agent, pki, tmp_path):
    # A sandboxed page's origin is "null": postMessage(answer, "null") would throw, leaving the popup open
    # and the page without an answer. (Its popup escapes the sandbox: one that did not would be sandboxed
    # too, and the page's own postMessage(request, componentUrl) would never reach it.)
    sandbox = "allow-scripts allow-popups allow-popups-to-escape-sandbox"
    agent = start_agent(cards=[card_of(pki, "B223456782")])
    site = legacy_site({"func": "GetUserCert"})
    agent.component.trust.add(site)  # even the site serving it: the sandboxed page is no site
    (tmp_path / "framed.html").write_text(
        f'<!doctype html><iframe sandbox="{sandbox}" src="index.html?component={agent.url}"></iframe>')
    page.goto(f"{site}/framed.html")
    frame = page.frame_locator("iframe")
    with page.expect_popup() as popup:
        frame.locator("#go").click()
    expect(frame.locator("#out")).not_to_be_empty()
    answer = json.loads(frame.locator("#out").text_content())
    assert (answer["func"], answer["ret_code"]) == ("pkcs11info", protocol.SITE_NOT_TRUSTED) and "slots" not in answer
    for _ in range(50):
        if popup.value.is_closed():
            break
        page.wait_for_timeout(100)
    assert popup.value.is_closed()


# A fixed start for the browser's clock: tests that time "Trust" drive it (clock.run_for) instead of waiting.
CLOCK_START = datetime.datetime(2025, 3, 1, 9, 0, tzinfo=datetime.timezone.utc)


def _stop_the_clock(page) -> None:
    """The context's clock (popups opened later included) stands still until the test moves it: no timer of
    ours fires while Playwright is slow, and none fires late after an assertion has passed."""
    page.clock.install(time=CLOCK_START)
    page.clock.pause_at(CLOCK_START + datetime.timedelta(minutes=1))


def _recording_adds(agent) -> list[str]:
    """Every site the agent was asked to add, so a click that took effect late still shows."""
    added = []
    add = agent.component.trust.add
    agent.component.trust.add = lambda site: added.append(site) or add(site)
    return added


def _click_at_once_then_when_armed(window, site, agent, added) -> None:
    """The double-click trick: a click on "Trust" the moment it shows does nothing (and restarts the wait);
    once the window has been in front for ARM_DELAY_MS, a click trusts; losing focus (or regaining it)
    starts the wait afresh."""
    trust = window.locator("#trust-yes")
    expect(trust).to_be_visible()
    assert trust.is_disabled()
    trust.click(force=True)  # a real mouse click on the spot, as the person's second click would be
    window.clock.run_for(ARM_DELAY_MS - 1)
    assert trust.is_disabled() and site not in agent.component.trust
    window.clock.run_for(1)
    expect(trust).to_be_enabled()
    window.evaluate("window.dispatchEvent(new Event('blur'))")
    expect(trust).to_be_disabled()
    window.evaluate("window.dispatchEvent(new Event('focus'))")
    window.clock.run_for(ARM_DELAY_MS - 1)
    assert trust.is_disabled()
    window.clock.run_for(1)
    expect(trust).to_be_enabled()
    assert added == []  # the early click was not merely slow: nothing was asked of the agent
    click_closing(window, "#trust-yes")


def _click_rapidly_then_when_armed(window, site, agent, added) -> None:
    """The game trick: the person clicks fast, again and again, where "Trust" will show. No click of such a
    run trusts, however long it lasts; once the clicks stop for ARM_DELAY_MS, one does."""
    trust = window.locator("#trust-yes")
    expect(trust).to_be_visible()
    for _ in range(8):  # 2.4 s of clicks, each within REPEAT_MS of the one before
        trust.click(force=True)
        assert trust.is_disabled()
        window.clock.run_for(300)
    assert trust.is_disabled() and site not in agent.component.trust
    window.clock.run_for(ARM_DELAY_MS - 300 - 1)
    assert trust.is_disabled()
    window.clock.run_for(1)
    expect(trust).to_be_enabled()
    assert added == []
    click_closing(window, "#trust-yes")


@pytest.mark.parametrize("clicking", [_click_at_once_then_when_armed, _click_rapidly_then_when_armed])
def test_the_popups_trust_button_works_only_after_the_popup_has_been_in_front_a_while(
        page, legacy_site, start_agent, pki, clicking):
    agent = start_agent(cards=[card_of(pki, "B223456782")])
    added = _recording_adds(agent)
    site = legacy_site({"func": "GetUserCert"})
    _stop_the_clock(page)
    page.goto(f"{site}/index.html?component={agent.url}")
    with page.expect_popup() as popup:
        page.click("#go")
    clicking(popup.value, site, agent, added)
    expect(page.locator("#out")).not_to_be_empty()
    assert json.loads(page.locator("#out").text_content())["ret_code"] == 0
    assert site in agent.component.trust and added == [site]


@pytest.mark.parametrize("clicking", [_click_at_once_then_when_armed, _click_rapidly_then_when_armed])
def test_the_add_domain_pages_trust_button_works_only_after_the_page_has_been_in_front_a_while(
        page, legacy_site, start_agent, pki, clicking):
    agent = start_agent(cards=[card_of(pki, "B223456782")])
    added = _recording_adds(agent)
    site = legacy_site({})
    _stop_the_clock(page)
    page.goto(f"{site}/index.html?component={agent.url}")
    page.evaluate("window.received = []; addEventListener('message', (e) => received.push(e.data))")
    with page.expect_popup() as popup:
        page.evaluate("url => window.open(url + '/addDomain?domain=' + location.hostname)", agent.url)
    clicking(popup.value, site, agent, added)
    page.wait_for_function("window.received.length > 0")
    assert site in agent.component.trust and len(added) == 1
    # What real pages read, and nothing more (not the site).
    assert page.evaluate("window.received") == ['{"ret_code": 0}']


def test_the_settings_pages_sha1_button_works_only_after_the_page_has_been_in_front_a_while(page, start_agent, pki):
    site = "https://old.gov.example.tw"
    agent = start_agent(cards=[card_of(pki, "B223456782")], trusted=[site])
    _stop_the_clock(page)
    page.goto(f"{agent.url}/settings")
    row = page.locator(f"li[data-site='{site}']")
    allow = row.locator("button[name=allow]")
    row.locator("input[name=understood]").check()
    allow.click(force=True)  # at once: nothing
    page.clock.run_for(ARM_DELAY_MS - 1)
    assert allow.is_disabled() and not agent.component.trust.allows_sha1(site)
    page.clock.run_for(1)
    expect(allow).to_be_enabled()
    allow.click()
    expect(row).to_contain_text("已允許 SHA-1")
    assert agent.component.trust.allows_sha1(site)


PLAIN_IMAGE_PAGE = """<!doctype html><meta charset="utf-8"><title>another site</title><pre id="out"></pre>
<script>
const img = new Image();  // no crossOrigin: the browser sends no Origin
img.onload = () => { document.getElementById("out").textContent = "loaded"; };
img.onerror = () => { document.getElementById("out").textContent = "blocked"; };
img.src = new URLSearchParams(location.search).get("component") + "/p11Image.bmp?" + Date.now();
</script>
"""


def test_a_plain_image_on_another_site_never_gets_the_card_numbers(page, legacy_site, start_agent, pki, tmp_path):
    agent = start_agent(cards=[card_of(pki, "B223456782")])
    site = legacy_site({})
    (tmp_path / "image.html").write_text(PLAIN_IMAGE_PAGE)
    answered = []  # what the agent drew, as the browser received it
    image_info = agent.component.image_info
    agent.component.image_info = lambda origin: answered.append(image_info(origin)) or answered[-1]
    page.goto(f"{site}/image.html?component={agent.url}")
    # The browser refuses to hand the page the image at all (Cross-Origin-Resource-Policy) ...
    expect(page.locator("#out")).to_have_text("blocked")
    # ... and what it was refused says only "not trusted": no card number reached the page's process.
    assert [answer["ret_code"] for answer in answered] == [protocol.SITE_NOT_TRUSTED]
    assert "TEST000000000002" not in json.dumps(answered)


def test_the_components_self_test_lists_the_card_and_checks_the_pin(page, start_agent, pki):
    agent = start_agent(cards=[card_of(pki, "B223456782")])
    page.goto(f"{agent.url}/selfTest.htm")
    expect(page.locator("#readers")).to_contain_text("TEST000000000002")
    expect(page.locator("#readers")).to_contain_text("cert2: 陳美玲 (keyEncipherment|dataEncipherment)")
    page.fill("#pin", "111111")
    page.click("#sign-test button")
    expect(page.locator("#sign-status")).to_contain_text("剩餘兩次機會")
    page.fill("#pin", "123456")
    page.click("#sign-test button")
    expect(page.locator("#sign-status")).to_contain_text("PIN碼正確，簽章成功（卡號 TEST000000000002）")


def test_a_site_removed_on_the_settings_page_is_no_longer_trusted(page, start_agent, pki):
    agent = start_agent(cards=[card_of(pki, "B223456782")], trusted=["https://gov.example.tw", "http://localhost:5000"])
    page.goto(f"{agent.url}/settings")
    page.locator("li[data-site='https://gov.example.tw'] button[name=remove]").click()
    expect(page.locator("#sites li")).to_have_count(1)
    assert "https://gov.example.tw" not in agent.component.trust and "http://localhost:5000" in agent.component.trust
