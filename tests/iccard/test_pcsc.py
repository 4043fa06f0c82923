"""Through the real PC/SC stack: iccard.pcsc over pyscard over pcscd over vpcd, to the emulated card.

Every step that could block on the stack runs under a deadline (:func:`within`), so a broken stack
fails the test instead of hanging the run.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from iccard.emulator import ATR
from iccard.errors import (
    CardError,
    CardInUse,
    CardRemoved,
    NoCard,
    PinBlocked,
    PinRequired,
    ReaderUnavailable,
    WrongPin,
)
from iccard.piv import PivSession, Slot, digest_info

ROOT = Path(__file__).resolve().parents[2]
MESSAGE = b"MoCert card login challenge"
DEADLINE = 15.0


def within(seconds: float, function, *args):
    """``function(*args)`` run in a daemon thread: its result, or its exception; fails the test if it
    has not returned after ``seconds`` (the thread is abandoned, never joined)."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["value"] = function(*args)
        except BaseException as exc:  # handed to the test thread below
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"{getattr(function, '__name__', function)} did not return within {seconds} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def _digest_info() -> bytes:
    return digest_info("SHA256", hashlib.sha256(MESSAGE).digest())


def _reader(pcsc_stack):
    from iccard.pcsc import PcscReader

    return PcscReader(pcsc_stack.reader_name)


@pytest.fixture
def connection(pcsc_stack, virtual_card):
    connection = within(DEADLINE, _reader(pcsc_stack).connect)
    yield connection
    within(DEADLINE, connection.close)


# -- without the stack ---------------------------------------------------------------------------------


def test_importing_iccard_pcsc_without_pyscard_says_how_to_install_it():
    hide_pyscard = "import sys; sys.modules['smartcard'] = None; import iccard.pcsc"
    result = subprocess.run([sys.executable, "-c", hide_pyscard], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "ImportError" in result.stderr and "pip install .[agent]" in result.stderr
    assert "libpcsclite-dev" in result.stderr and "swig" in result.stderr


def test_pyscard_failures_become_our_errors(pcsc_stack):
    from smartcard import scard
    from smartcard.Exceptions import CardConnectionException, NoCardException

    from iccard.pcsc import PcscConnection

    class Failing:
        def __init__(self, exc):
            self.exc = exc

        def transmit(self, command, protocol=None):
            raise self.exc

    cases = [
        (CardConnectionException("removed", hresult=scard.SCARD_W_REMOVED_CARD), CardRemoved),
        (CardConnectionException("reset", hresult=scard.SCARD_W_RESET_CARD), CardRemoved),
        (NoCardException("gone", hresult=scard.SCARD_E_NO_SMARTCARD), CardRemoved),
        (CardConnectionException("no pcscd", hresult=scard.SCARD_E_NO_SERVICE), ReaderUnavailable),
    ]
    for exc, expected in cases:
        with pytest.raises(expected):
            PcscConnection(pcsc_stack.reader_name, Failing(exc)).transmit(b"\x00\xa4\x04\x00")


# -- reading and signing -------------------------------------------------------------------------------


def test_pcsc_lists_the_virtual_reader_with_the_card_in_it(pcsc_stack, virtual_card):
    from iccard import pcsc

    readers = {reader.name: reader for reader in within(DEADLINE, pcsc.list_readers)}
    assert readers[pcsc_stack.reader_name].has_card()


def test_certificate_card_number_and_signature_through_pcsc(connection, pki, demo_card):
    assert connection.atr == ATR
    session = within(DEADLINE, PivSession, connection)
    certificate = within(DEADLINE, session.get_certificate, Slot.SIGNATURE)
    assert certificate == pki.card_certificate(demo_card)
    assert within(DEADLINE, session.card_number) == demo_card.card_number
    within(DEADLINE, session.verify_pin, "123456")
    signature = within(DEADLINE, session.sign_pkcs1v15, Slot.SIGNATURE, _digest_info())
    certificate.public_key().verify(signature, MESSAGE, padding.PKCS1v15(), hashes.SHA256())


def test_the_encryption_certificate_decrypts_and_the_ca_certificate_is_read_through_pcsc(connection, pki, demo_card):
    session = within(DEADLINE, PivSession, connection)
    encryption_certificate = within(DEADLINE, session.get_certificate, Slot.KEY_MANAGEMENT)
    assert encryption_certificate == pki.card_encryption_certificate(demo_card)
    assert within(DEADLINE, session.ca_certificates) == [pki.issuer_certificate]
    ciphertext = encryption_certificate.public_key().encrypt(MESSAGE, padding.PKCS1v15())
    within(DEADLINE, session.verify_pin, "123456")
    assert within(DEADLINE, session.decrypt, ciphertext) == MESSAGE


def test_a_pin_changed_through_pcsc_is_the_pin_from_then_on(pcsc_stack, connection, emulator):
    session = within(DEADLINE, PivSession, connection)
    with pytest.raises(WrongPin):
        within(DEADLINE, session.change_pin, "999999", "24681357")
    assert emulator.pin_tries_left == 2
    within(DEADLINE, session.change_pin, "123456", "24681357")
    within(DEADLINE, connection.close)
    again = within(DEADLINE, _reader(pcsc_stack).connect)
    try:
        session = within(DEADLINE, PivSession, again)
        with pytest.raises(WrongPin):
            within(DEADLINE, session.verify_pin, "123456")
        within(DEADLINE, session.verify_pin, "24681357")
        within(DEADLINE, session.sign_pkcs1v15, Slot.SIGNATURE, _digest_info())
    finally:
        within(DEADLINE, again.close)


def test_a_pin_blocked_through_pcsc_stays_blocked(pcsc_stack, connection, emulator):
    session = within(DEADLINE, PivSession, connection)
    for tries_left in (2, 1):
        with pytest.raises(WrongPin) as wrong:
            within(DEADLINE, session.verify_pin, "999999")
        assert wrong.value.tries_left == tries_left
    with pytest.raises(PinBlocked):
        within(DEADLINE, session.verify_pin, "999999")
    within(DEADLINE, connection.close)
    again = within(DEADLINE, _reader(pcsc_stack).connect)
    try:
        session = within(DEADLINE, PivSession, again)
        with pytest.raises(PinBlocked):
            within(DEADLINE, session.verify_pin, "123456")
        assert within(DEADLINE, session.pin_tries_left) == 0 == emulator.pin_tries_left
    finally:
        within(DEADLINE, again.close)


def test_nobody_else_gets_the_card_while_we_hold_it(pcsc_stack, connection):
    with pytest.raises(CardInUse):
        within(DEADLINE, _reader(pcsc_stack).connect)
    within(DEADLINE, connection.close)
    within(DEADLINE, within(DEADLINE, _reader(pcsc_stack).connect).close)


def test_letting_go_of_the_card_resets_it_so_the_pin_does_not_stay_verified(pcsc_stack, connection):
    session = within(DEADLINE, PivSession, connection)
    within(DEADLINE, session.verify_pin, "123456")
    within(DEADLINE, connection.close)
    again = within(DEADLINE, _reader(pcsc_stack).connect)
    try:
        session = within(DEADLINE, PivSession, again)
        with pytest.raises(PinRequired):
            within(DEADLINE, session.sign_pkcs1v15, Slot.AUTHENTICATION, _digest_info())
    finally:
        within(DEADLINE, again.close)


# -- the card leaves ------------------------------------------------------------------------------------


def test_removal_between_verify_and_sign_raises_card_removed(pcsc_stack, virtual_card, connection):
    session = within(DEADLINE, PivSession, connection)
    within(DEADLINE, session.verify_pin, "123456")
    virtual_card.remove()
    with pytest.raises((CardRemoved, NoCard)):
        within(DEADLINE, session.sign_pkcs1v15, Slot.SIGNATURE, _digest_info())
    within(DEADLINE, connection.close)  # closing what is left of it is quiet
    pcsc_stack.wait_for_card(present=False)
    assert not _reader(pcsc_stack).has_card()
    with pytest.raises(NoCard):
        within(DEADLINE, _reader(pcsc_stack).connect)


def test_removal_while_a_signature_is_in_flight_raises_card_removed(virtual_card, emulator, connection, monkeypatch):
    reached, release = threading.Event(), threading.Event()
    answer = emulator.process

    def slow_card(command: bytes) -> bytes:
        if command[1] == 0x87 and not command[0] & 0x10:  # the last link of GENERAL AUTHENTICATE
            reached.set()
            release.wait(DEADLINE)
        return answer(command)

    monkeypatch.setattr(emulator, "process", slow_card)
    session = within(DEADLINE, PivSession, connection)
    within(DEADLINE, session.verify_pin, "123456")
    outcome: dict = {}

    def sign() -> None:
        try:
            outcome["signature"] = session.sign_pkcs1v15(Slot.SIGNATURE, _digest_info())
        except CardError as exc:
            outcome["error"] = exc

    signer = threading.Thread(target=sign, daemon=True)
    signer.start()
    assert reached.wait(DEADLINE), "the signature request never reached the card"
    threading.Timer(0.2, release.set).start()  # lets the card's thread see its connection is gone
    virtual_card.remove()
    signer.join(DEADLINE)
    assert not signer.is_alive(), "the request in flight hung after the card left"
    assert isinstance(outcome.get("error"), (CardRemoved, NoCard)), outcome


def test_a_card_that_comes_back_works_again(pcsc_stack, virtual_card, connection, pki, demo_card):
    session = within(DEADLINE, PivSession, connection)
    within(DEADLINE, session.verify_pin, "123456")
    virtual_card.remove()
    with pytest.raises((CardRemoved, NoCard)):
        within(DEADLINE, session.sign_pkcs1v15, Slot.SIGNATURE, _digest_info())
    within(DEADLINE, connection.close)
    pcsc_stack.wait_for_card(present=False)

    virtual_card.insert()
    pcsc_stack.wait_for_card(present=True)
    again = within(DEADLINE, _reader(pcsc_stack).connect)
    try:
        session = within(DEADLINE, PivSession, again)
        within(DEADLINE, session.verify_pin, "123456")
        signature = within(DEADLINE, session.sign_pkcs1v15, Slot.SIGNATURE, _digest_info())
    finally:
        within(DEADLINE, again.close)
    pki.card_certificate(demo_card).public_key().verify(signature, MESSAGE, padding.PKCS1v15(), hashes.SHA256())
