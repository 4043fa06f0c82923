"""`python -m iccard.agent --pkcs11 MODULE` as a process of its own: SoftHSM2 holding demo cards, and OpenSC's
module reading the emulated PIV card in vpcd's reader."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

from cryptography.hazmat.primitives.serialization import Encoding

from iccard.agent import protocol
from iccard.errors import ModuleUnavailable
from iccard.signature import verify_pkcs7
from tests.agent_process import ROOT, run_agent
from tests.support import card_of


def test_the_agent_over_softhsm_lists_the_cards_and_signs(pkcs11_agent, softhsm, pki):
    cards = [card_of(pki, "A123456789"), card_of(pki, "B223456782")]
    agent = pkcs11_agent(softhsm.module, env=softhsm.env(softhsm.tokens(cards)))
    info = agent.pkcs11info()
    assert info["ret_code"] == 0
    tokens = {slot["token"]["serialNumber"]: slot for slot in info["slots"]}
    assert set(tokens) == {card.card_number for card in cards}
    slot = tokens["TEST000000000002"]
    certificate = base64.b64decode(slot["token"]["certs"][0]["certb64"])
    assert certificate == pki.card_certificate(cards[1]).public_bytes(Encoding.DER)
    answer = agent.sign(tbs="over SoftHSM", signatureType="PKCS7", pin="123456",
                        slotDescription=slot["slotDescription"])
    assert answer["ret_code"] == 0, answer
    assert answer["cardSN"] == "TEST000000000002"
    assert verify_pkcs7(b"over SoftHSM", base64.b64decode(answer["signature"])) == pki.card_certificate(cards[1])


def test_a_wrong_pin_over_softhsm_answers_pin_incorrect_without_a_count(pkcs11_agent, softhsm, pki):
    agent = pkcs11_agent(softhsm.module, env=softhsm.env(softhsm.tokens([card_of(pki, "A123456789")])))
    answer = agent.sign(tbs="over SoftHSM", signatureType="PKCS1", pin="000000")
    assert answer["last_error"] == protocol.CKR_PIN_INCORRECT
    assert answer["tries_left"] is None  # the page then says the PIN may block, without a number


def test_softhsm_without_a_card_token_has_no_slot_and_the_agent_says_no_reader(pkcs11_agent, softhsm):
    agent = pkcs11_agent(softhsm.module, env=softhsm.env(softhsm.tokens([])))
    assert agent.pkcs11info()["slots"] == []  # SoftHSM's one empty token holds no card, and is no reader
    answer = agent.sign(tbs="no card", signatureType="PKCS7", pin="123456")
    assert answer["ret_code"] == protocol.NO_READER, answer


def test_sigterm_stops_the_agent_cleanly_and_closes_the_module(pkcs11_agent, softhsm, pki):
    agent = pkcs11_agent(softhsm.module, env=softhsm.env(softhsm.tokens([card_of(pki, "A123456789")])))
    assert agent.pkcs11info()["ret_code"] == 0
    agent.stop()  # SIGTERM
    assert agent._process.returncode == 0, agent.log()  # not killed by the signal (-15)
    assert "MoCert card agent stopped, PKCS#11 module closed" in agent.log()


def test_the_help_names_the_modules_without_inventing_a_file_name():
    result = run_agent(["--help"])
    assert result.returncode == 0
    help_text = " ".join(result.stdout.split())
    assert "the HiCOS module MOICA's component installs" in help_text
    assert "opensc-pkcs11.so" in help_text and "libsofthsm2.so" in help_text
    assert "libHicos" not in help_text  # no public record of the Linux module's file name


def test_a_module_that_cannot_be_used_is_answered_as_no_reader():
    answer = protocol.card_failure("sign", ModuleUnavailable("cannot load the PKCS#11 module /x.so: gone"))
    assert (answer["ret_code"], answer["last_error"]) == (protocol.NO_READER, protocol.CKR_DEVICE_ERROR)
    assert "PKCS#11" in answer["message"]


def test_a_module_that_cannot_be_loaded_stops_the_agent_with_its_path(tmp_path):
    result = run_agent(["--pkcs11", str(tmp_path / "libnothere.so"), "--state-dir", str(tmp_path)])
    assert result.returncode == 2
    assert f"cannot load the PKCS#11 module {tmp_path / 'libnothere.so'}" in result.stderr


def test_without_python_pkcs11_the_agent_says_what_to_install(tmp_path):
    # The binding made unimportable for this one process, as on a computer without the agent extra; the
    # module named is any file that exists, as the binding is missed before any module is loaded.
    module = tmp_path / "libsomevendor.so"
    module.write_bytes(b"")
    code = ("import sys; sys.modules['pkcs11'] = None; from iccard.agent.__main__ import main; "
            f"sys.exit(main(['--pkcs11', {str(module)!r}, '--state-dir', {str(tmp_path)!r}]))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert "cannot read cards through PKCS#11" in result.stderr and "python-pkcs11" in result.stderr


def test_the_agent_over_opensc_reads_and_signs_with_the_emulated_card(pkcs11_agent, opensc, pcsc_stack,
                                                                        virtual_card, pki, demo_card):
    agent = pkcs11_agent(opensc)
    info = agent.pkcs11info()
    [slot] = [s for s in info["slots"] if s["slotDescription"] == pcsc_stack.reader_name]
    assert slot["token"]["serialNumber"] == demo_card.card_number
    answer = agent.sign(tbs="over OpenSC", signatureType="PKCS7", pin=demo_card.pin,
                        slotDescription=pcsc_stack.reader_name)
    assert answer["ret_code"] == 0, answer
    assert verify_pkcs7(b"over OpenSC", base64.b64decode(answer["signature"])) == pki.card_certificate(demo_card)


def test_the_agent_over_opensc_counts_wrong_pins_as_far_as_opensc_says(pkcs11_agent, opensc, pcsc_stack,
                                                                         virtual_card, emulator):
    agent = pkcs11_agent(opensc)
    request = {"tbs": "over OpenSC", "signatureType": "PKCS1", "pin": "000000",
               "slotDescription": pcsc_stack.reader_name}
    answers = [agent.sign(**request) for _ in range(3)]
    # 2 tries left, which OpenSC does not say; the final try (CKF_USER_PIN_FINAL_TRY); locked
    assert [a["last_error"] for a in answers] == [protocol.CKR_PIN_INCORRECT, protocol.PIN_ONE_TRY_LEFT,
                                                  protocol.CKR_PIN_LOCKED]
    assert [a["tries_left"] for a in answers] == [None, 1, 0]
    assert answers[2]["pin_blocked"] is True
    assert emulator.pin_tries_left == 0


def test_the_agent_over_opensc_says_no_card_once_it_is_taken_out(pkcs11_agent, opensc, pcsc_stack, virtual_card):
    agent = pkcs11_agent(opensc)
    [slot] = [s for s in agent.pkcs11info()["slots"] if s["slotDescription"] == pcsc_stack.reader_name]
    assert slot["token"] is not None
    virtual_card.remove()
    pcsc_stack.wait_for_card(present=False)
    answer = agent.sign(tbs="gone", signatureType="PKCS7", pin="123456", slotDescription=pcsc_stack.reader_name)
    assert answer["last_error"] == protocol.CKR_TOKEN_NOT_PRESENT, answer
