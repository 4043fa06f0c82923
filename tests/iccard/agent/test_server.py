"""The local card agent over HTTP, as pages and programs use it (emulated demo cards)."""

import base64
import json
import logging
import subprocess

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from iccard.agent import protocol
from iccard.signature import verify_pkcs7
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
    assert [slot["token"]["serialNumber"] for slot in info["slots"]] == [c.card_number for c in pki.cards]
    assert "certs" not in info["slots"][0]["token"]
    detailed = requests.get(f"{agent.url}/pkcs11info?withcert=true", timeout=10).json()
    [cert] = detailed["slots"][0]["token"]["certs"]
    assert base64.b64decode(cert["certb64"]) == pki.card_certificate(pki.cards[0]).public_bytes(serialization.Encoding.DER)
    assert cert["subjectDN"] == "serialNumber=0000000000000001,CN=王小明,C=TW"
    assert cert["usage"] == "digitalSignature"  # the real profile: no nonRepudiation
    assert len(cert["notAfterT"]) == 14


def test_an_empty_reader_is_a_slot_without_token(start_agent, pki):
    agent = start_agent(cards=[card_of(pki, "A123456789")])
    agent.readers[0].remove()
    info = requests.get(f"{agent.url}/pkcs11info", timeout=10).json()
    assert info["slots"] == [{"slotDescription": "Test Reader 1", "token": None}]
    answer = _sign(agent, SIGN)
    assert answer["ret_code"] == protocol.CARD_FAILURE and answer["last_error"] == protocol.CKR_TOKEN_NOT_PRESENT


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
    assert [a["last_error"] for a in answers] == [protocol.CKR_PIN_INCORRECT] * 2 + [protocol.CKR_PIN_LOCKED]
    assert [a["tries_left"] for a in answers] == [2, 1, 0]
    assert answers[-1]["pin_blocked"] is True
    assert _sign(agent, SIGN)["pin_blocked"] is True  # even the right PIN
    restarted = start_agent(cards=[card], state_dir=tmp_path / "state")
    assert _sign(restarted, SIGN)["pin_blocked"] is True


def test_the_right_pin_resets_the_count(start_agent, pki):
    agent = start_agent(cards=[card_of(pki, "A123456789")])
    assert _sign(agent, {**SIGN, "pin": "654321"})["tries_left"] == 2
    assert _sign(agent, SIGN)["ret_code"] == 0
    assert _sign(agent, {**SIGN, "pin": "654321"})["tries_left"] == 2


@pytest.mark.parametrize("pin", ["", "12345", "123456789", "12a456", None])
def test_a_malformed_pin_never_reaches_the_card(start_agent, pki, pin):
    agent = start_agent(cards=[card_of(pki, "A123456789")])
    answer = _sign(agent, {**SIGN, "pin": pin})
    assert answer["ret_code"] == protocol.BAD_REQUEST and answer["last_error"] == protocol.CKR_PIN_LEN_RANGE
    assert agent.readers[0].emulator.pin_tries_left == 3


def test_an_expired_card_is_reported_as_the_real_component_does(start_agent, pki):
    agent = start_agent(cards=[card_of(pki, "F131313136", "expired")])
    assert _sign(agent, SIGN)["ret_code"] == protocol.CARD_EXPIRED == 1984954370


def test_slot_description_picks_the_card(start_agent, pki):
    agent = start_agent()
    answer = _sign(agent, {**SIGN, "signatureType": "PKCS7", "slotDescription": "Test Reader 2"})
    assert answer["cardSN"] == "TEST000000000002"
    missing = _sign(agent, {**SIGN, "slotDescription": "No Such Reader"})
    assert missing["last_error"] == protocol.CKR_TOKEN_NOT_PRESENT


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


def test_requests_for_other_host_names_are_refused(start_agent):
    agent = start_agent()
    response = requests.get(f"http://127.0.0.1:{agent.server_address[1]}/pkcs11info",
                            headers={"Host": "rebound.evil.example"}, timeout=10)
    assert response.status_code == 403


def test_the_popup_page_and_its_script_are_served_unframeable(start_agent):
    agent = start_agent()
    page = requests.get(f"{agent.url}/popupForm", timeout=10)
    assert page.status_code == 200 and "/popup.js" in page.text
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert '{ func: "getTbs" }' in requests.get(f"{agent.url}/popup.js", timeout=10).text


def test_bad_requests_get_a_clear_answer(start_agent):
    agent = start_agent()
    answer = requests.post(f"{agent.url}/sign", data={"tbsPackage": "not json"}, timeout=10).json()
    assert answer["ret_code"] == protocol.BAD_REQUEST
    answer = _sign(agent, {**SIGN, "hashAlgorithm": "SHA1"})
    assert answer["ret_code"] == protocol.BAD_REQUEST and "SHA1" in answer["message"]
    answer = requests.post(f"{agent.url}/sign", data={"tbsPackage": json.dumps({"func": "Format"})}, timeout=10).json()
    assert answer["ret_code"] == protocol.BAD_REQUEST


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
        assert answer["ret_code"] == protocol.CARD_FAILURE and "pcscd" in answer["message"]
