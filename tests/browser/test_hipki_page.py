"""examples/hipki-test-page, a page written the way public pages for the real component are, in Chromium
against MoCert's agent: the image trick, GetUserCert, MakeSignature PKCS1 and PKCS7, DecryptData,
changeUserPINCode, an untrusted site adding itself, SHA-1 refused then allowed by the person.

The agent comes from ``hipki_agent``, parametrized by backend: the same page must work whichever way the
agent reads the card: in process over the emulated PIV card, and as ``python -m iccard.agent --pkcs11
libsofthsm2.so`` over a SoftHSM token. A backend is a factory ``start(trusted=[...])`` returning a running
agent (``.url``, ``.trust``) with 王小明's card and the demo PIN.
"""

from __future__ import annotations

import base64
import functools
import json
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import pkcs7
from playwright.sync_api import expect

from iccard.agent import protocol
from iccard.demo_pki import DEMO_PIN
from iccard.signature import verify_pkcs1, verify_pkcs7
from tests.support import card_of

from .support import click_closing

PAGE_DIR = Path(__file__).resolve().parents[2] / "examples" / "hipki-test-page"
HOLDER = "A123456789"  # 王小明, card TEST000000000001


def _emulated(request, pki):
    start_agent = request.getfixturevalue("start_agent")
    return lambda trusted=(): start_agent(cards=[card_of(pki, HOLDER)], trusted=trusted)


def _softhsm(request, pki):
    tokens, start_process = request.getfixturevalue("softhsm_tokens"), request.getfixturevalue("pkcs11_agent")
    return lambda trusted=(): start_process(
        tokens.module, env=tokens.env(tokens.tokens([card_of(pki, HOLDER)])), trusted=trusted
    )


AGENT_BACKENDS = {"emulated": _emulated, "softhsm": _softhsm}
# What a wrong PIN answers: the emulated card counts its tries (two left), SoftHSM never says (nor locks).
WRONG_PIN_LAST_ERROR = {"emulated": -2147483646, "softhsm": protocol.CKR_PIN_INCORRECT}


@pytest.fixture(params=sorted(AGENT_BACKENDS))
def hipki_agent(request, pki):
    """``start(trusted=[...])``: the agent over one demo card (王小明's) on the backend of this run."""
    start = AGENT_BACKENDS[request.param](request, pki)
    start.backend = request.param
    return start


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def hipki_site():
    """The test page, served as any web site would serve it, on http://localhost:<port>."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(PAGE_DIR)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://localhost:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _open(page, site, agent):
    page.goto(f"{site}/index.html?component={agent.url}")
    expect(page.locator("#env-result")).not_to_be_empty()
    return page


def _answer(page, selector: str) -> dict:
    expect(page.locator(selector)).not_to_be_empty()
    return json.loads(page.locator(selector).text_content())


def _run(page, button: str, result: str) -> dict:
    """Click, let the component's popup answer and close, return the answer the page shows."""
    page.locator(result).evaluate("element => element.textContent = ''")
    with page.expect_popup() as popup:
        page.click(button)
    answer = _answer(page, result)
    # It closes itself once it has answered (possibly already: waiting for "close" could miss it).
    for _ in range(50):
        if popup.value.is_closed():
            return answer
        page.wait_for_timeout(100)
    raise AssertionError("the component's popup did not close after answering")


def _certificates(page) -> list[dict]:
    info = _run(page, "#get-cert", "#cert-result")
    assert info["ret_code"] == 0
    [slot] = [slot for slot in info["slots"] if slot["token"]]
    return slot["token"]["certs"]


def test_the_image_trick_reads_the_component_across_origins(page, hipki_site, hipki_agent):
    agent = hipki_agent(trusted=[hipki_site])
    _open(page, hipki_site, agent)
    info = _answer(page, "#env-result")
    assert info["ret_code"] == 0 and info["serverVersion"] >= "1.3.4.3"
    [slot] = [slot for slot in info["slots"] if slot["token"]]
    expect(page.locator("#slots option")).to_have_text(f"{slot['slotDescription']} 卡號:[{slot['token']['serialNumber']}]")
    expect(page.locator("#env-status")).to_contain_text("1 張卡片")


def test_an_untrusted_site_reads_not_trusted_then_adds_itself_through_add_domain(page, hipki_site, hipki_agent):
    agent = hipki_agent()
    _open(page, hipki_site, agent)
    assert _answer(page, "#env-result")["ret_code"] == protocol.SITE_NOT_TRUSTED
    assert "slots" not in _answer(page, "#env-result")
    expect(page.locator("#env-status")).to_have_text("localhost非信任網站，請先加入信任網站")
    with page.expect_popup() as popup:
        page.click("#add-domain")
    confirm = popup.value
    expect(confirm.locator("#site")).to_have_text(hipki_site)  # the page's own origin, not all of localhost
    with page.expect_navigation():  # the popup posts {"ret_code":0} back; the page reloads, as the samples do
        confirm.click("#trust-yes")
    assert _answer(page, "#env-result")["ret_code"] == 0
    expect(page.locator("#env-status")).to_contain_text("1 張卡片")
    assert hipki_site in agent.trust and "http://localhost:1" not in agent.trust


def test_refusing_add_domain_answers_the_page_not_trusted(page, hipki_site, hipki_agent):
    agent = hipki_agent()
    _open(page, hipki_site, agent)
    with page.expect_popup() as popup:
        page.click("#add-domain")
    click_closing(popup.value, "#trust-no")
    expect(page.locator("#env-status")).to_have_text("加入信任網站失敗, 錯誤代碼 0x76000031")
    assert hipki_site not in agent.trust


def test_get_user_cert_lists_signing_encryption_and_ca_certificates_as_pages_read_them(page, hipki_site, hipki_agent):
    agent = hipki_agent(trusted=[hipki_site])
    _open(page, hipki_site, agent)
    certs = _certificates(page)
    assert [c["usage"] for c in certs[:2]] == ["digitalSignature", "keyEncipherment|dataEncipherment"]
    signing = x509.load_der_x509_certificate(base64.b64decode(certs[0]["certb64"]))
    expect(page.locator("#certs tr[data-usage=digitalSignature] td").nth(2)).to_have_text("王小明")
    # The page's own date arithmetic: new Date(notAfterT*1000).
    after = signing.not_valid_after_utc
    shown = page.locator("#certs tr[data-usage=digitalSignature] td").nth(3).text_content()
    assert shown.split("/")[0] == str(after.year)
    assert any(c["label"] == "CA Cert" for c in certs[2:])


@pytest.mark.parametrize("signature_type", ["PKCS7", "PKCS1"])
def test_make_signature_signs_the_text_with_the_signing_certificate(page, hipki_site, hipki_agent, signature_type):
    agent = hipki_agent(trusted=[hipki_site])
    _open(page, hipki_site, agent)
    text = "核准公文 No. 42 + 附件"
    page.fill("#tbs", text)
    page.select_option("#signature-type", signature_type)
    page.fill("#sign-pin", DEMO_PIN)
    answer = _run(page, "#sign", "#sign-result")
    assert answer["func"] == "sign" and answer["ret_code"] == 0, answer
    signature = base64.b64decode(answer["signature"])
    if signature_type == "PKCS7":
        signer = verify_pkcs7(text.encode(), signature)
    else:
        signer = verify_pkcs1(text.encode(), signature, base64.b64decode(answer["certb64"]), "sha256")
    assert signer.public_bytes(serialization.Encoding.DER) == base64.b64decode(answer["certb64"])
    assert answer["cardSN"] == _answer(page, "#env-result")["slots"][0]["token"]["serialNumber"]
    expect(page.locator("#sign-status")).to_contain_text("簽章成功")


@pytest.mark.parametrize("cipher_type", ["PKCS7", "PKCS1"])
def test_decrypt_data_opens_what_was_encrypted_to_the_encryption_certificate(page, hipki_site, hipki_agent, cipher_type):
    agent = hipki_agent(trusted=[hipki_site])
    _open(page, hipki_site, agent)
    [encryption] = [c for c in _certificates(page) if c["usage"] == "keyEncipherment|dataEncipherment"]
    certificate = x509.load_der_x509_certificate(base64.b64decode(encryption["certb64"]))
    secret = "給王小明：會議改到三點 The meeting moves to 3pm"
    if cipher_type == "PKCS7":
        cipher = pkcs7.PKCS7EnvelopeBuilder().set_data(secret.encode()).add_recipient(certificate).encrypt(
            serialization.Encoding.DER, [])
    else:
        cipher = certificate.public_key().encrypt(secret.encode(), padding.PKCS1v15())
    # Base64 in lines of 64, as encryptors print it: the page strips the line breaks.
    text = base64.encodebytes(cipher).decode()
    page.fill("#cipher", text)
    page.select_option("#cipher-type", cipher_type)
    page.fill("#decrypt-pin", DEMO_PIN)
    answer = _run(page, "#decrypt", "#decrypt-result")
    assert (answer["func"], answer["ret_code"]) == ("decrypt", 0), answer
    expect(page.locator("#plain")).to_have_value(secret)


def test_change_user_pin_code_then_only_the_new_pin_signs(page, hipki_site, hipki_agent):
    agent = hipki_agent(trusted=[hipki_site])
    _open(page, hipki_site, agent)
    page.fill("#old-pin", DEMO_PIN)
    page.fill("#new-pin", "97531864")
    answer = _run(page, "#change-pin", "#pin-result")
    assert (answer["func"], answer["ret_code"]) == ("changeUserPINCode", 0), answer
    expect(page.locator("#pin-status")).to_have_text("PIN碼已變更 PIN changed")
    page.fill("#sign-pin", DEMO_PIN)
    wrong = _run(page, "#sign", "#sign-result")
    assert (wrong["ret_code"], wrong["last_error"]) == (protocol.LOGIN_FAILED, WRONG_PIN_LAST_ERROR[hipki_agent.backend])
    expect(page.locator("#sign-status")).to_contain_text("次原因:PIN碼錯誤")
    page.fill("#sign-pin", "97531864")
    assert _run(page, "#sign", "#sign-result")["ret_code"] == 0


def test_sha1_is_refused_until_the_person_allows_it_on_the_components_page(page, hipki_site, hipki_agent):
    agent = hipki_agent(trusted=[hipki_site])
    _open(page, hipki_site, agent)
    page.fill("#tbs", "舊系統的公文")
    page.select_option("#hash", "SHA1")
    page.select_option("#signature-type", "PKCS1")
    page.fill("#sign-pin", DEMO_PIN)
    refused = _run(page, "#sign", "#sign-result")
    assert refused["ret_code"] == protocol.BAD_PARAMETER and "SHA1" in refused["message"]

    settings = page.context.new_page()
    settings.goto(f"{agent.url}/settings")
    site = settings.locator(f"li[data-site='{hipki_site}']")
    expect(settings.locator("#sha1-warning")).to_contain_text("可被偽造")
    site.locator("button[name=allow]").click()  # the "I understand" box is required: nothing happens
    assert not agent.trust.allows_sha1(hipki_site)
    site.locator("input[name=understood]").check()
    settings.wait_for_timeout(600)  # a press within 500 ms of the one before is ignored (armed.js)
    site.locator("button[name=allow]").click()
    expect(site).to_contain_text("已允許 SHA-1")
    settings.close()

    answer = _run(page, "#sign", "#sign-result")
    assert answer["ret_code"] == 0, answer
    certificate = x509.load_der_x509_certificate(base64.b64decode(answer["certb64"]))
    certificate.public_key().verify(
        base64.b64decode(answer["signature"]), "舊系統的公文".encode(), padding.PKCS1v15(), hashes.SHA1()
    )
