"""The local card agent over HTTP, as pages and programs use it (emulated demo cards)."""

import base64
import json
import logging
import re
import socket
import subprocess
import threading
from urllib.parse import quote

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import pkcs7

from iccard.agent import protocol
from iccard.signature import verify_pkcs7
from tests.iccard.agent.test_protocol import decode_like_a_page
from tests.support import card_of

SITE = "http://localhost:5000"


def _sign(agent, request: dict, origin: str | None = None, relayed_for: str | None = None) -> dict:
    headers = {"Origin": origin} if origin else {}
    form = {"tbsPackage": json.dumps({"func": "MakeSignature", **request})}
    if relayed_for:
        headers["Origin"] = agent.url  # the popup, relaying for the site that opened it
        form["origin"] = relayed_for
    return requests.post(f"{agent.url}/sign", data=form, headers=headers, timeout=10).json()


SIGN = {"tbs": "MoCert login\nnonce: abc", "tbsEncoding": "NONE", "hashAlgorithm": "SHA256", "pin": "123456"}


def test_pkcs11info_lists_one_slot_per_card_with_certificates_on_request(start_agent, pki):
    agent = start_agent()
    info = requests.get(f"{agent.url}/pkcs11info", timeout=10).json()
    assert info["func"] == "pkcs11info" and info["ret_code"] == 0
    assert info["serverVersion"].startswith("1.3.4.")
    assert [slot["token"]["serialNumber"] for slot in info["slots"]] == [c.card_number for c in pki.cards]
    assert "certs" not in info["slots"][0]["token"]
    detailed = requests.get(f"{agent.url}/pkcs11info?withcert=true", timeout=10).json()
    signing, encryption, *cas = detailed["slots"][0]["token"]["certs"]
    card = pki.cards[0]
    assert base64.b64decode(signing["certb64"]) == pki.card_certificate(card).public_bytes(serialization.Encoding.DER)
    assert base64.b64decode(encryption["certb64"]) == pki.card_encryption_certificate(card).public_bytes(
        serialization.Encoding.DER
    )
    # As pages read them: one usage word per certificate, the DN in the certificate's order without spaces
    # (split on "," with serialNumber last), validity in Unix seconds, the holder's name and ID hint.
    assert (signing["label"], signing["usage"]) == ("cert1", "digitalSignature")
    assert (encryption["label"], encryption["usage"]) == ("cert2", "keyEncipherment|dataEncipherment")
    assert signing["subjectDN"] == "C=TW,CN=王小明,serialNumber=0000000000000001"
    assert signing["issuerDN"] == "C=TW,O=MoCert Demo,CN=MoCert Demo MOICA"
    assert signing["subjectCN"] == "王小明" and signing["subjectID"] == "6789"
    certificate = pki.card_certificate(card)
    assert signing["notAfterT"] == int(certificate.not_valid_after_utc.timestamp())
    assert signing["notBeforeT"] == int(certificate.not_valid_before_utc.timestamp())
    assert signing["sn"] == f"{certificate.serial_number:x}"
    assert [ca["label"] for ca in cas] == ["CA Cert"]
    assert base64.b64decode(cas[0]["certb64"]) == pki.issuer_certificate.public_bytes(serialization.Encoding.DER)
    assert cas[0]["usage"] == "keyCertSign|cRLSign"  # never a word a page looks for


def test_an_empty_reader_is_a_slot_without_token_and_no_reader_an_empty_list(start_agent, pki):
    agent = start_agent(cards=[card_of(pki, "A123456789")])
    agent.readers[0].remove()
    info = requests.get(f"{agent.url}/pkcs11info", timeout=10).json()
    assert info["slots"] == [{"slotDescription": "Test Reader 1", "token": None}]
    answer = _sign(agent, SIGN)
    assert answer["ret_code"] == protocol.NO_CARD == 0x76000006
    assert answer["last_error"] == protocol.CKR_TOKEN_NOT_PRESENT
    no_reader = start_agent(cards=[])
    assert requests.get(f"{no_reader.url}/pkcs11info", timeout=10).json()["slots"] == []
    assert _sign(no_reader, SIGN)["ret_code"] == protocol.NO_READER == 0x76100003


def test_pkcs7_signature_verifies_with_our_verifier_and_openssl(start_agent, pki, tmp_path):
    agent = start_agent(cards=[card_of(pki, "A123456789")])
    answer = _sign(agent, {**SIGN, "signatureType": "PKCS7", "withCardSN": "true", "nonce": "n-1"})
    assert answer["ret_code"] == 0 and answer["cardSN"] == "TEST000000000001"
    signature = base64.b64decode(answer["signature"])
    signer = verify_pkcs7(SIGN["tbs"].encode(), signature)
    assert signer == pki.card_certificate(card_of(pki, "A123456789"))
    # A tool we did not write agrees: OpenSSL verifies the SignedData and its chain.
    (tmp_path / "sig.der").write_bytes(signature)
    chain = pki.root_certificate.public_bytes(serialization.Encoding.PEM) + pki.issuer_certificate.public_bytes(
        serialization.Encoding.PEM
    )
    (tmp_path / "ca.pem").write_bytes(chain)
    result = subprocess.run(
        ["openssl", "cms", "-verify", "-inform", "DER", "-in", tmp_path / "sig.der", "-CAfile", tmp_path / "ca.pem",
         "-purpose", "any", "-binary"],
        capture_output=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == SIGN["tbs"].encode()


def test_pkcs1_signature_is_raw_rsa_over_the_hash(start_agent, pki):
    agent = start_agent(cards=[card_of(pki, "B223456782")])
    answer = _sign(agent, {**SIGN, "signatureType": "PKCS1", "hashAlgorithm": "SHA512"})
    certificate = x509.load_der_x509_certificate(base64.b64decode(answer["certb64"]))
    certificate.public_key().verify(
        base64.b64decode(answer["signature"]), SIGN["tbs"].encode(), padding.PKCS1v15(), hashes.SHA512()
    )


def test_base64_tbs_is_decoded_before_signing(start_agent, pki):
    agent = start_agent(cards=[card_of(pki, "A123456789")])
    data = bytes(range(256))
    answer = _sign(agent, {**SIGN, "tbs": base64.b64encode(data).decode(), "tbsEncoding": "base64", "signatureType": "PKCS7"})
    verify_pkcs7(data, base64.b64decode(answer["signature"]))


def test_wrong_pins_count_down_then_block_and_the_block_survives_a_restart(start_agent, pki, tmp_path):
    card = card_of(pki, "A123456789")
    agent = start_agent(cards=[card], state_dir=tmp_path / "state")
    answers = [_sign(agent, {**SIGN, "pin": "654321"}) for _ in range(3)]
    # The real component's codes: login failed, then "two tries left", "one try left", "locked" (164).
    assert {a["ret_code"] for a in answers} == {protocol.LOGIN_FAILED} == {0x76100006}
    assert [a["last_error"] for a in answers] == [-2147483646, -2147483647, 164]
    assert answers[0]["message2"].startswith("PIN碼錯誤，剩餘兩次機會")
    assert [a["tries_left"] for a in answers] == [2, 1, 0]
    assert answers[-1]["pin_blocked"] is True
    assert _sign(agent, SIGN)["pin_blocked"] is True  # even the right PIN
    restarted = start_agent(cards=[card], state_dir=tmp_path / "state")
    blocked = _sign(restarted, SIGN)
    assert blocked["pin_blocked"] is True and blocked["last_error"] == protocol.CKR_PIN_LOCKED


def test_the_right_pin_resets_the_count(start_agent, pki):
    agent = start_agent(cards=[card_of(pki, "A123456789")])
    assert _sign(agent, {**SIGN, "pin": "654321"})["tries_left"] == 2
    assert _sign(agent, SIGN)["ret_code"] == 0
    assert _sign(agent, {**SIGN, "pin": "654321"})["tries_left"] == 2


@pytest.mark.parametrize(("pin", "ret_code"), [
    ("", protocol.NO_PIN), (None, protocol.NO_PIN),
    ("12345", protocol.LOGIN_FAILED), ("123456789", protocol.LOGIN_FAILED), ("12a456", protocol.LOGIN_FAILED),
])
def test_a_malformed_pin_never_reaches_the_card(start_agent, pki, pin, ret_code):
    agent = start_agent(cards=[card_of(pki, "A123456789")])
    answer = _sign(agent, {**SIGN, "pin": pin})
    assert answer["ret_code"] == ret_code
    if ret_code == protocol.LOGIN_FAILED:
        assert answer["last_error"] == protocol.CKR_PIN_LEN_RANGE
    assert agent.readers[0].emulator.pin_tries_left == 3


def test_an_url_encoded_pin_is_decoded_once(start_agent, pki):
    agent = start_agent(cards=[card_of(pki, "A123456789")])
    assert _sign(agent, {**SIGN, "pin": "%31%32%33%34%35%36"})["ret_code"] == 0


def test_an_expired_card_is_reported_as_the_real_component_does(start_agent, pki):
    agent = start_agent(cards=[card_of(pki, "F131313136", "expired")])
    assert _sign(agent, SIGN)["ret_code"] == protocol.CARD_EXPIRED == 1984954370


def test_slot_description_picks_the_card(start_agent, pki):
    agent = start_agent()
    answer = _sign(agent, {**SIGN, "signatureType": "PKCS7", "slotDescription": "Test Reader 2"})
    assert answer["cardSN"] == "TEST000000000002"
    missing = _sign(agent, {**SIGN, "slotDescription": "No Such Reader"})
    assert missing["ret_code"] == protocol.NO_CARD
    # Some pages send the number 0: the first card.
    assert _sign(agent, {**SIGN, "signatureType": "PKCS7", "slotDescription": 0})["cardSN"] == "TEST000000000001"


def test_sites_must_be_trusted_and_the_origin_comes_from_the_browser(start_agent, pki):
    agent = start_agent(cards=[card_of(pki, "A123456789")], trusted=[SITE])
    assert _sign(agent, SIGN, origin=SITE)["ret_code"] == 0
    refused = _sign(agent, SIGN, origin="https://evil.example")
    assert refused["ret_code"] == protocol.SITE_NOT_TRUSTED and refused["site"] == "https://evil.example"
    # Relayed by the popup: the site that opened it is what counts, not the popup's own origin.
    assert _sign(agent, SIGN, relayed_for=SITE)["ret_code"] == 0
    assert _sign(agent, SIGN, relayed_for="https://evil.example")["ret_code"] == protocol.SITE_NOT_TRUSTED
    info = requests.post(f"{agent.url}/sign", data={"tbsPackage": json.dumps({"func": "GetUserCert"})},
                         headers={"Origin": "https://evil.example"}, timeout=10).json()
    assert info["ret_code"] == protocol.SITE_NOT_TRUSTED and "slots" not in info


def test_the_add_domain_pages_buttons_wait_for_its_scripts(start_agent, pki):
    # Both do nothing before the scripts run: a click on either then would leave the asking page waiting.
    agent = start_agent(cards=[card_of(pki, "A123456789")])
    page = requests.get(f"{agent.url}/addDomain", params={"domain": "https://gov.example.tw"}, timeout=10).text
    assert re.search(r'<button[^>]*id="trust-yes"[^>]*disabled', page)
    assert re.search(r'<button[^>]*id="trust-no"[^>]*disabled', page)


def test_add_domain_needs_the_persons_click_on_our_own_page(start_agent, pki):
    agent = start_agent(cards=[card_of(pki, "A123456789")])
    page = requests.get(f"{agent.url}/addDomain", params={"domain": "https://gov.example.tw/<script>"}, timeout=10)
    assert page.status_code == 200 and "https://gov.example.tw" in page.text and "<script>" not in page.text
    assert page.headers["X-Frame-Options"] == "DENY"
    forged = requests.post(f"{agent.url}/addDomain", data={"domain": "https://evil.example"},
                           headers={"Origin": "https://evil.example"}, timeout=10)
    assert forged.status_code == 403
    assert "https://evil.example" not in agent.component.trust
    clicked = requests.post(f"{agent.url}/addDomain", data={"domain": "https://gov.example.tw/path"},
                            headers={"Origin": agent.url, "Accept": "application/json"}, timeout=10)
    assert clicked.json() == {"ret_code": 0, "site": "https://gov.example.tw"}
    assert _sign(agent, SIGN, origin="https://gov.example.tw")["ret_code"] == 0


def test_requests_for_other_host_names_are_refused(start_agent, pki):
    # DNS rebinding: a page on rebound.evil.example, its name pointed at 127.0.0.1, is same-origin with us
    # to the browser; only the Host header tells.
    agent = start_agent(cards=[card_of(pki, "A123456789")])
    port = agent.server_address[1]
    base, rebound = f"http://127.0.0.1:{port}", {"Host": f"rebound.evil.example:{port}"}
    for path in ("/pkcs11info", "/p11Image.bmp", "/popupForm"):
        response = requests.get(f"{base}{path}", headers=rebound, timeout=10)
        assert response.status_code == 403 and "TEST000000000001" not in response.content.decode("latin-1"), path
    preflight = requests.options(f"{base}/sign", headers={
        **rebound, "Origin": "http://rebound.evil.example", "Access-Control-Request-Method": "POST"}, timeout=10)
    assert preflight.status_code == 403 and "Access-Control-Allow-Origin" not in preflight.headers
    posted = requests.post(f"{base}/sign", data={"tbsPackage": json.dumps({"func": "GetUserCert"})}, headers=rebound,
                           timeout=10)
    assert posted.status_code == 403
    # Our own names, with the port, are ours.
    assert requests.get(f"{base}/p11Image.bmp", timeout=10).status_code == 200


def test_the_popup_page_and_its_script_are_served_unframeable(start_agent):
    agent = start_agent()
    page = requests.get(f"{agent.url}/popupForm", timeout=10)
    assert page.status_code == 200 and "/popup.js" in page.text
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert '{ func: "getTbs" }' in requests.get(f"{agent.url}/popup.js", timeout=10).text


def test_bad_requests_get_a_clear_answer(start_agent):
    agent = start_agent()
    answer = requests.post(f"{agent.url}/sign", data={"tbsPackage": "not json"}, timeout=10).json()
    assert answer["ret_code"] == protocol.JSON_ERROR
    answer = _sign(agent, {**SIGN, "hashAlgorithm": "SHA1"})
    assert answer["ret_code"] == protocol.BAD_PARAMETER and "SHA1" in answer["message"] and "/settings" in answer["message"]
    answer = _sign(agent, {**SIGN, "hashAlgorithm": "MD5"})
    assert answer["ret_code"] == protocol.BAD_PARAMETER
    answer = requests.post(f"{agent.url}/sign", data={"tbsPackage": json.dumps({"func": "Format"})}, timeout=10).json()
    assert answer["ret_code"] == protocol.UNSUPPORTED_FUNC == 0x7600000E


def _raw_post(
    agent, content_length: str | None, body: bytes = b"", *, headers: str = "", method: str = "POST"
) -> bytes:
    """A request as no well-behaved client sends it (requests and browsers compute Content-Length themselves);
    the whole answer, read until the agent closes the connection."""
    length = "" if content_length is None else f"Content-Length: {content_length}\r\n"
    with socket.create_connection(("127.0.0.1", agent.server_address[1]), timeout=10) as connection:
        connection.sendall(
            f"{method} /sign HTTP/1.1\r\nHost: localhost:{agent.server_address[1]}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\n{length}{headers}\r\n".encode()
            + body
        )
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize(("content_length", "status"), [
    ("-1", b"400"), ("--5", b"400"), ("+5", b"400"), ("1_0", b"400"), ("5, 5", b"400"), ("ten", b"400"),
    ("1e3", b"400"), ("65537", b"413"), ("9" * 5000, b"413"), ("0" * 5000 + "65537", b"413"),
])
def test_a_bad_content_length_is_refused_and_the_connection_closed(start_agent, content_length, status):
    agent = start_agent(cards=[])
    # The body is never read: without the close, the client would be kept waiting (a negative length
    # read until the client gave up), and a socket timeout fails the test.
    answer = _raw_post(agent, content_length, b"tbsPackage=%7B%7D")
    assert answer.split(b" ", 2)[1] == status, answer[:200]
    assert answer.count(b"HTTP/1.1 ") == 1  # the unread body was not taken for a second request


def test_a_second_content_length_is_refused_and_the_connection_closed(start_agent):
    answer = _raw_post(start_agent(cards=[]), "5", b"tbsPackage=%7B%7D", headers="Content-Length: 17\r\n")
    assert answer.split(b" ", 2)[1] == b"400" and answer.count(b"HTTP/1.1 ") == 1, answer[:200]


@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize("coding", ["chunked", "gzip, chunked"])
def test_a_body_in_chunks_is_refused_and_the_connection_closed(start_agent, method, coding):
    # The chunk, unread, would be the next request: here a GET of the popup, whose answer would be a second.
    smuggled = b"GET /popupForm HTTP/1.1\r\nHost: localhost\r\n\r\n"
    body = f"{len(smuggled):x}\r\n".encode() + smuggled + b"\r\n0\r\n\r\n"
    answer = _raw_post(start_agent(cards=[]), None, body, headers=f"Transfer-Encoding: {coding}\r\n", method=method)
    assert answer.split(b" ", 2)[1] == b"411", answer[:200]
    assert answer.count(b"HTTP/1.1 ") == 1


def test_every_answer_names_the_function_of_the_path_even_a_bug_or_bad_json(tmp_path):
    from iccard.agent.component import LocalComponent
    from iccard.agent.server import AgentServer
    from iccard.agent.trust import TrustList

    def broken():
        raise RuntimeError("a bug, not a card error")

    agent = AgentServer(("127.0.0.1", 0), LocalComponent(broken, TrustList(None)))
    threading.Thread(target=agent.serve_forever, daemon=True).start()
    try:
        # Pages dispatch on the answer's func: a failure must still be the answer to what they asked.
        failed = requests.get(f"{agent.url}/pkcs11info", timeout=10)
        assert failed.status_code == 500
        assert (failed.json()["func"], failed.json()["ret_code"]) == ("pkcs11info", protocol.TIMEOUT)
        for path, func in [("/sign", "sign"), ("/decrypt", "decrypt"),
                           ("/CardManagement/sendCardCommand", "changeUserPINCode")]:
            answer = requests.post(f"{agent.url}{path}", data={"tbsPackage": "not json"}, timeout=10).json()
            assert (answer["func"], answer["ret_code"]) == (func, protocol.JSON_ERROR)
    finally:
        agent.shutdown()
        agent.server_close()


def test_the_pin_is_never_logged(start_agent, pki, caplog):
    agent = start_agent(cards=[card_of(pki, "A123456789")])
    with caplog.at_level(logging.DEBUG):
        _sign(agent, {**SIGN, "pin": "135791"})
        _sign(agent, SIGN)
    assert caplog.records and not any("135791" in r.getMessage() or "123456" in r.getMessage() for r in caplog.records)


def test_without_a_card_reader_service_the_answer_says_so(tmp_path):
    from iccard.agent.component import LocalComponent
    from iccard.agent.trust import TrustList
    from iccard.errors import ReaderUnavailable

    def no_service():
        raise ReaderUnavailable("pcscd is not running")

    component = LocalComponent(no_service, TrustList(None))
    for answer in (component.pkcs11info(with_cert=False), component.make_signature(SIGN)):
        assert answer["ret_code"] == protocol.NO_READER and "pcscd" in answer["message"]
    assert component.pkcs11info(with_cert=False)["slots"] == []


# -- /p11Image.bmp ---------------------------------------------------------------------------------------


def test_the_image_carries_pkcs11info_for_a_trusted_site_and_not_trusted_for_others(start_agent, pki):
    agent = start_agent(cards=[card_of(pki, "A123456789")], trusted=[SITE])
    trusted = requests.get(f"{agent.url}/p11Image.bmp?1700000000000", headers={"Origin": SITE}, timeout=10)
    assert trusted.headers["Content-Type"] == "image/bmp"
    assert trusted.headers["Access-Control-Allow-Origin"] == SITE  # so the page may read its canvas
    info = json.loads(decode_like_a_page(trusted.content))
    assert info["ret_code"] == 0 and info["serverVersion"].startswith("1.3.4.")
    assert info["slots"] == [{"slotDescription": "Test Reader 1", "token": {"serialNumber": "TEST000000000001"}}]
    # An untrusted site reads that it is not trusted (and offers addDomain), not the person's card number.
    other = requests.get(f"{agent.url}/p11Image.bmp", headers={"Origin": "https://evil.example"}, timeout=10)
    assert other.headers["Access-Control-Allow-Origin"] == "https://evil.example"
    refused = json.loads(decode_like_a_page(other.content))
    assert refused["ret_code"] == protocol.SITE_NOT_TRUSTED and "slots" not in refused
    assert "TEST000000000001" not in other.content.decode("latin-1")


@pytest.mark.parametrize("fetch_site", ["cross-site", "same-site"])
def test_a_browser_request_from_another_site_without_origin_reads_not_trusted(start_agent, pki, fetch_site):
    # A plain <img src=".../p11Image.bmp"> (no crossorigin) sends no Origin: only Sec-Fetch-Site says
    # another site made the request. Even for a trusted site: it could not read a plain image anyway.
    agent = start_agent(cards=[card_of(pki, "A123456789")], trusted=[SITE])
    headers = {"Sec-Fetch-Site": fetch_site, "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"}
    image = requests.get(f"{agent.url}/p11Image.bmp", headers=headers, timeout=10)
    assert json.loads(decode_like_a_page(image.content))["ret_code"] == protocol.SITE_NOT_TRUSTED
    assert "TEST000000000001" not in image.content.decode("latin-1")
    # ... and the browser may not even hand it to the page (no-cors, so Cross-Origin-Resource-Policy holds).
    assert image.headers["Cross-Origin-Resource-Policy"] == "same-origin"
    assert "Access-Control-Allow-Origin" not in image.headers
    for path in ("/pkcs11info", "/pkcs11info?withcert=true"):
        info = requests.get(f"{agent.url}{path}", headers={**headers, "Sec-Fetch-Dest": "script"}, timeout=10)
        assert info.json()["ret_code"] == protocol.SITE_NOT_TRUSTED and "slots" not in info.json()
        assert "TEST000000000001" not in info.text
        assert info.headers["Cross-Origin-Resource-Policy"] == "same-origin"


@pytest.mark.parametrize("fetch_site", [None, "none", "same-origin"])
def test_a_request_no_other_site_made_reads_the_cards(start_agent, pki, fetch_site):
    # A program (no Sec-Fetch-* at all), the person at the address bar ("none"), our own popup ("same-origin").
    agent = start_agent(cards=[card_of(pki, "A123456789")])
    headers = {"Sec-Fetch-Site": fetch_site} if fetch_site else {}
    image = requests.get(f"{agent.url}/p11Image.bmp", headers=headers, timeout=10)
    assert json.loads(decode_like_a_page(image.content))["slots"][0]["token"]["serialNumber"] == "TEST000000000001"
    info = requests.get(f"{agent.url}/pkcs11info?withcert=true", headers=headers, timeout=10).json()
    assert info["ret_code"] == 0 and info["slots"][0]["token"]["certs"]


def test_only_cors_answers_may_be_loaded_by_other_sites(start_agent, pki):
    agent = start_agent(cards=[card_of(pki, "A123456789")], trusted=[SITE])
    # The answers pages read across origins name the origin, and carry no Cross-Origin-Resource-Policy
    # (a CORS load is not subject to it; leaving it off keeps any browser from blocking the image trick).
    for response in (
        requests.get(f"{agent.url}/p11Image.bmp", headers={"Origin": SITE}, timeout=10),
        requests.get(f"{agent.url}/pkcs11info", headers={"Origin": SITE}, timeout=10),
        requests.post(f"{agent.url}/sign", data={"tbsPackage": "{}"}, headers={"Origin": SITE}, timeout=10),
    ):
        assert response.headers["Access-Control-Allow-Origin"] == SITE
        assert "Cross-Origin-Resource-Policy" not in response.headers
    # Everything else is same-origin only: pages, scripts, the trust check, redirects, refusals.
    for response in (
        requests.get(f"{agent.url}/popupForm", timeout=10),
        requests.get(f"{agent.url}/popup.js", timeout=10),
        requests.get(f"{agent.url}/waiting.gif", timeout=10),
        requests.get(f"{agent.url}/trust", params={"origin": SITE}, timeout=10),
        requests.get(f"{agent.url}/settings", timeout=10),
        requests.get(f"{agent.url}/no-such-page", timeout=10),
        requests.post(f"{agent.url}/settings", data={"site": SITE, "action": "sha1_forbid"},
                      headers={"Origin": agent.url}, timeout=10, allow_redirects=False),
        requests.get(f"http://127.0.0.1:{agent.server_address[1]}/p11Image.bmp", headers={"Host": "evil.example"},
                     timeout=10),
    ):
        assert response.headers["Cross-Origin-Resource-Policy"] == "same-origin", response.url


def test_direct_requests_are_answered_for_the_origin_that_sends_them(start_agent, pki):
    agent = start_agent(cards=[card_of(pki, "A123456789")], trusted=[SITE])
    mine = requests.get(f"{agent.url}/pkcs11info?withcert=true", headers={"Origin": SITE}, timeout=10)
    assert mine.headers["Access-Control-Allow-Origin"] == SITE and mine.json()["slots"][0]["token"]["certs"]
    theirs = requests.get(f"{agent.url}/pkcs11info?withcert=true", headers={"Origin": "https://evil.example"}, timeout=10)
    assert theirs.json()["ret_code"] == protocol.SITE_NOT_TRUSTED and "slots" not in theirs.json()
    # The popup's own requests need no CORS: same origin.
    assert "Access-Control-Allow-Origin" not in requests.get(f"{agent.url}/pkcs11info", timeout=10).headers
    preflight = requests.options(f"{agent.url}/sign", headers={
        "Origin": SITE, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"},
        timeout=10)
    assert preflight.status_code == 204 and preflight.headers["Access-Control-Allow-Headers"] == "content-type"


def test_a_preflight_from_an_untrusted_site_lets_the_request_through_only_to_read_not_trusted(start_agent, pki):
    agent = start_agent(cards=[card_of(pki, "A123456789")], trusted=[SITE])
    evil = "https://evil.example"
    # Saying yes to the preflight only lets the browser send the request (and read its answer) ...
    preflight = requests.options(f"{agent.url}/sign", headers={
        "Origin": evil, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"},
        timeout=10)
    assert preflight.status_code == 204 and preflight.headers["Access-Control-Allow-Origin"] == evil
    # ... which is then answered for that origin: not trusted, no card touched, nothing about the card.
    for path, request in [("/sign", {**SIGN, "func": "MakeSignature", "pin": "654321"}),
                          ("/pkcs11info", {"func": "GetUserCert"}),
                          ("/decrypt", {"func": "DecryptData", "cipher": "AAAA", "pin": "654321"})]:
        answer = requests.post(f"{agent.url}{path}", json=request, headers={"Origin": evil}, timeout=10)
        assert answer.headers["Access-Control-Allow-Origin"] == evil
        assert answer.json()["ret_code"] == protocol.SITE_NOT_TRUSTED, path
        assert "TEST000000000001" not in answer.text and "signature" not in answer.json()
    assert agent.readers[0].emulator.pin_tries_left == 3  # the (wrong) PIN was never tried


# -- SHA-1, settings -------------------------------------------------------------------------------------


def test_sha1_is_refused_until_the_person_allows_it_for_the_site_on_the_settings_page(start_agent, pki):
    agent = start_agent(cards=[card_of(pki, "A123456789")], trusted=[SITE])
    sha1 = {**SIGN, "hashAlgorithm": "SHA1", "signatureType": "PKCS1"}
    assert _sign(agent, sha1, origin=SITE)["ret_code"] == protocol.BAD_PARAMETER
    # A site cannot grant itself the permission: only the component's own page may post the setting.
    forged = requests.post(f"{agent.url}/settings", data={"site": SITE, "action": "sha1_allow", "understood": "yes"},
                           headers={"Origin": SITE}, timeout=10)
    assert forged.status_code == 403 and not agent.component.trust.allows_sha1(SITE)
    page = requests.get(f"{agent.url}/settings", timeout=10)
    assert SITE in page.text and "SHA-1 簽章可被偽造" in page.text and "can be forged" in page.text
    assert page.headers["X-Frame-Options"] == "DENY"
    # Without ticking "I understand", nothing changes.
    requests.post(f"{agent.url}/settings", data={"site": SITE, "action": "sha1_allow"}, headers={"Origin": agent.url},
                  timeout=10)
    assert not agent.component.trust.allows_sha1(SITE)
    allowed = requests.post(f"{agent.url}/settings", data={"site": SITE, "action": "sha1_allow", "understood": "yes"},
                            headers={"Origin": agent.url}, timeout=10, allow_redirects=False)
    assert allowed.status_code == 303 and agent.component.trust.allows_sha1(SITE)
    answer = _sign(agent, sha1, origin=SITE)
    assert answer["ret_code"] == 0
    x509.load_der_x509_certificate(base64.b64decode(answer["certb64"])).public_key().verify(
        base64.b64decode(answer["signature"]), SIGN["tbs"].encode(), padding.PKCS1v15(), hashes.SHA1()
    )
    # Only that site: another trusted one still is refused, and so is a program on this computer.
    agent.component.trust.add("http://localhost:5001")
    assert _sign(agent, sha1, origin="http://localhost:5001")["ret_code"] == protocol.BAD_PARAMETER
    assert _sign(agent, sha1)["ret_code"] == protocol.BAD_PARAMETER
    requests.post(f"{agent.url}/settings", data={"site": SITE, "action": "remove"}, headers={"Origin": agent.url},
                  timeout=10)
    assert SITE not in agent.component.trust and not agent.component.trust.allows_sha1(SITE)


# -- addDomain, the component's pages --------------------------------------------------------------------


def test_add_domain_for_a_bare_host_trusts_the_exact_origin_of_the_page_that_asked(start_agent):
    agent = start_agent()
    page = requests.get(f"{agent.url}/addDomain", params={"domain": "localhost"},
                        headers={"Referer": "http://localhost:5000/login"}, timeout=10)
    assert 'value="http://localhost:5000"' in page.text  # not every port and scheme of localhost
    unrelated = requests.get(f"{agent.url}/addDomain", params={"domain": "gov.example.tw"},
                             headers={"Referer": "http://localhost:5000/login"}, timeout=10)
    assert 'value="gov.example.tw"' in unrelated.text
    added = requests.post(f"{agent.url}/addDomain", data={"domain": "http://localhost:5000"},
                          headers={"Origin": agent.url}, timeout=10)
    # The page that posts {"ret_code":0} back to the opener (addDomain.js), as the real one does.
    assert "/addDomain.js" in added.text
    # Only that: not which site, since a bare host's answer goes to whoever the opener is by now ("*").
    assert 'data-answer="{&quot;ret_code&quot;: 0}"' in added.text


def test_the_components_other_pages_are_served(start_agent):
    agent = start_agent()
    for path in ("/popupForm", "/ChtPopupForm"):
        assert "/popup.js" in requests.get(f"{agent.url}{path}", timeout=10).text
    gif = requests.get(f"{agent.url}/waiting.gif", timeout=10)
    assert gif.headers["Content-Type"] == "image/gif" and gif.content.startswith(b"GIF89a")
    selftest = requests.get(f"{agent.url}/selfTest.htm", timeout=10)
    assert "/selfTest.js" in selftest.text and "frame-ancestors 'none'" in selftest.headers["Content-Security-Policy"]


# -- DecryptData, changeUserPINCode ----------------------------------------------------------------------


def _call(agent, path: str, request: dict, origin: str | None = None) -> dict:
    headers = {"Origin": origin} if origin else {}
    return requests.post(f"{agent.url}{path}", data={"tbsPackage": json.dumps(request)}, headers=headers,
                         timeout=10).json()


def test_decrypt_data_pkcs1_and_pkcs7_with_the_cards_encryption_key(start_agent, pki):
    card = card_of(pki, "A123456789")
    agent = start_agent(cards=[card], trusted=[SITE])
    certificate = pki.card_encryption_certificate(card)
    secret = "給王小明的秘密 secret".encode()
    pkcs1 = certificate.public_key().encrypt(secret, padding.PKCS1v15())
    answer = _call(agent, "/decrypt", {"func": "DecryptData", "cipher": quote(base64.b64encode(pkcs1).decode()),
                                       "cipherType": "PKCS1", "plainEncoding": "none", "pin": "123456"}, SITE)
    assert (answer["func"], answer["ret_code"], answer["plain"]) == ("decrypt", 0, secret.decode())
    envelope = pkcs7.PKCS7EnvelopeBuilder().set_data(secret).add_recipient(certificate).encrypt(
        serialization.Encoding.DER, [])
    answer = _call(agent, "/decrypt", {"cipher": base64.b64encode(envelope).decode(), "cipherType": "PKCS7",
                                       "plainEncoding": "base64", "pin": "123456"}, SITE)
    assert answer["ret_code"] == 0 and base64.b64decode(answer["plain"]) == secret
    # Made for another card's certificate: not this card's to open.
    other = pkcs7.PKCS7EnvelopeBuilder().set_data(secret).add_recipient(
        pki.card_encryption_certificate(card_of(pki, "B223456782"))).encrypt(serialization.Encoding.DER, [])
    answer = _call(agent, "/decrypt", {"cipher": base64.b64encode(other).decode(), "cipherType": "PKCS7",
                                       "pin": "123456"}, SITE)
    assert answer["ret_code"] == protocol.DECRYPT_FAILED
    assert _call(agent, "/decrypt", {"cipher": "", "pin": "123456"}, SITE)["ret_code"] == protocol.NO_CIPHER
    assert _call(agent, "/decrypt", {"cipher": "AAAA", "cipherType": "PKCS7", "pin": "123456"}, SITE)["ret_code"] == (
        protocol.DECRYPT_DER_ERROR)
    wrong = _call(agent, "/decrypt", {"cipher": base64.b64encode(pkcs1).decode(), "cipherType": "PKCS1",
                                      "pin": "000000"}, SITE)
    assert (wrong["ret_code"], wrong["last_error"]) == (protocol.LOGIN_FAILED, -2147483646)
    assert _call(agent, "/decrypt", {"cipher": "AAAA", "pin": "123456"}, "https://evil.example")["ret_code"] == (
        protocol.SITE_NOT_TRUSTED)


def test_change_user_pin_code_replaces_the_pin(start_agent, pki):
    agent = start_agent(cards=[card_of(pki, "B223456782")], trusted=[SITE])
    change = {"func": "changeUserPINCode", "currentPIN": "123456", "newpin": "24681357"}
    answer = _call(agent, "/CardManagement/sendCardCommand", change, SITE)
    assert (answer["func"], answer["ret_code"]) == ("changeUserPINCode", 0)
    assert _sign(agent, SIGN, origin=SITE)["last_error"] == -2147483646  # the old PIN is wrong now
    assert _sign(agent, {**SIGN, "pin": "24681357"}, origin=SITE)["ret_code"] == 0
    wrong = _call(agent, "/CardManagement/sendCardCommand", change, SITE)  # currentPIN no longer right
    assert (wrong["ret_code"], wrong["last_error"]) == (protocol.LOGIN_FAILED, -2147483646)
    short = _call(agent, "/CardManagement/sendCardCommand", {**change, "currentPIN": "24681357", "newpin": "123"}, SITE)
    assert (short["ret_code"], short["last_error"]) == (protocol.LOGIN_FAILED, protocol.CKR_PIN_LEN_RANGE)
    assert _call(agent, "/CardManagement/sendCardCommand", change, "https://evil.example")["ret_code"] == (
        protocol.SITE_NOT_TRUSTED)
