"""The APDU layer: encoding, chaining, GET RESPONSE, and status words as typed errors."""

from __future__ import annotations

import pytest

from iccard import apdu
from iccard.apdu import CommandApdu, send
from iccard.errors import ApduError, CardError, PinBlocked, PinRequired, UnsupportedCard, WrongPin
from tests.iccard.scripted import ScriptedCard


# -- encoding ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "encoded"),
    [
        (CommandApdu(0x00, 0xA4, 0x04, 0x00), "00A40400"),
        (CommandApdu(0x00, 0xCB, 0x3F, 0xFF, ne=256), "00CB3FFF00"),
        (CommandApdu(0x00, 0x20, 0x00, 0x80, b"\x31\x32"), "00200080023132"),
        (CommandApdu(0x00, 0xCB, 0x3F, 0xFF, b"\x5c\x01\x7e", ne=256), "00CB3FFF035C017E00"),
        (CommandApdu(0x00, 0xCB, 0x3F, 0xFF, ne=0x1234), "00CB3FFF001234"),
        (CommandApdu(0x00, 0xCB, 0x3F, 0xFF, b"\x5c\x01\x7e", ne=65536), "00CB3FFF000003" + "5C017E" + "0000"),
        (CommandApdu(0x00, 0xCB, 0x3F, 0xFF, b"\x5c\x01\x7e", extended=True), "00CB3FFF000003" + "5C017E"),
    ],
)
def test_commands_encode_in_short_or_extended_form_and_decode_back(command, encoded):
    assert command.encode().hex().upper() == encoded
    assert CommandApdu.decode(command.encode()) == command


def test_data_longer_than_255_bytes_needs_the_extended_form():
    command = CommandApdu(0x00, 0x87, 0x07, 0x9C, bytes(300), ne=256)
    raw = command.encode()
    assert raw[4:7] == b"\x00\x01\x2c" and len(raw) == 4 + 3 + 300 + 2
    assert CommandApdu.decode(raw).data == bytes(300)


@pytest.mark.parametrize("raw", ["00A404", "00A4040005A000", "00A40400000002A0"])
def test_malformed_commands_do_not_decode(raw):
    with pytest.raises(ValueError):
        CommandApdu.decode(bytes.fromhex(raw))


def test_a_response_without_status_word_is_an_error():
    assert apdu.split_response(b"\x01\x02\x90\x00") == (b"\x01\x02", 0x9000)
    with pytest.raises(CardError):
        apdu.split_response(b"\x90")


# -- chaining and GET RESPONSE -------------------------------------------------------------------------


def test_long_data_is_sent_as_a_chain_of_255_byte_commands():
    data = bytes(range(256)) * 2 + b"tail"  # 516 bytes: 255 + 255 + 6
    card = ScriptedCard((b"", 0x9000), (b"", 0x9000), (b"result", 0x9000))
    assert send(card, 0x00, 0x87, 0x07, 0x9C, data, le=256) == b"result"
    first, second, last = (CommandApdu.decode(raw) for raw in card.sent)
    assert (first.cla, second.cla, last.cla) == (0x10, 0x10, 0x00)
    assert (len(first.data), len(second.data), len(last.data)) == (255, 255, 6)
    assert first.data + second.data + last.data == data
    assert first.ne is None and second.ne is None and last.ne == 256
    assert {(c.ins, c.p1, c.p2) for c in (first, second, last)} == {(0x87, 0x07, 0x9C)}


def test_a_refused_link_stops_the_chain():
    card = ScriptedCard((b"", 0x6A80))
    with pytest.raises(ApduError) as refused:
        send(card, 0x00, 0x87, 0x07, 0x9C, bytes(600), le=256)
    assert refused.value.sw == 0x6A80 and len(card.sent) == 1


def test_61xx_fetches_the_rest_with_get_response():
    card = ScriptedCard((b"A" * 256, 0x6100), (b"B" * 256, 0x6110), (b"C" * 16, 0x9000))
    assert send(card, 0x00, 0xCB, 0x3F, 0xFF, b"\x5c\x01\x7e", le=256) == b"A" * 256 + b"B" * 256 + b"C" * 16
    assert card.sent[1] == bytes.fromhex("00C0000000")  # 61 00: 256 or more
    assert card.sent[2] == bytes.fromhex("00C0000010")  # 61 10: 16 more


def test_6cxx_repeats_the_command_with_the_le_the_card_asked_for():
    card = ScriptedCard((b"", 0x6C08), (b"12345678", 0x9000))
    assert send(card, 0x00, 0xCB, 0x3F, 0xFF, b"\x5c\x01\x7e", le=256) == b"12345678"
    assert card.sent[1] == bytes.fromhex("00CB3FFF035C017E08")


def test_a_card_that_never_stops_answering_61xx_is_an_error_not_a_hang():
    class Endless(ScriptedCard):
        def transmit(self, command):
            self.sent.append(command)
            return b"x" * 256, 0x6100

    card = Endless()
    with pytest.raises(CardError):
        send(card, 0x00, 0xCB, 0x3F, 0xFF, b"\x5c\x01\x7e", le=256)
    assert len(card.sent) < 300


# -- status words --------------------------------------------------------------------------------------


@pytest.mark.parametrize("sw, tries", [(0x63C2, 2), (0x63C1, 1), (0x63CF, 15)])
def test_63cx_is_a_wrong_pin_with_the_tries_left(sw, tries):
    with pytest.raises(WrongPin) as wrong:
        send(ScriptedCard((b"", sw)), 0x00, 0x20, 0x00, 0x80, b"12345678")
    assert wrong.value.tries_left == tries
    assert wrong.value.code == "wrong_pin"


@pytest.mark.parametrize("sw", [0x63C0, 0x6983])
def test_no_tries_left_or_6983_is_a_blocked_pin(sw):
    with pytest.raises(PinBlocked):
        send(ScriptedCard((b"", sw)), 0x00, 0x20, 0x00, 0x80, b"12345678")


def test_6982_is_a_missing_pin_verification():
    with pytest.raises(PinRequired) as refused:
        send(ScriptedCard((b"", 0x6982)), 0x00, 0x87, 0x07, 0x9C, b"\x7c\x00")
    assert refused.value.sw == 0x6982 and isinstance(refused.value, ApduError)


@pytest.mark.parametrize("sw", [0x6A82, 0x6D00])
def test_select_of_an_absent_application_is_an_unsupported_card(sw):
    with pytest.raises(UnsupportedCard):
        send(ScriptedCard((b"", sw)), 0x00, 0xA4, 0x04, 0x00, b"\xa0\x00\x00\x03\x08")


def test_6a82_outside_select_stays_an_apdu_error_with_its_status_word():
    with pytest.raises(ApduError) as refused:
        send(ScriptedCard((b"", 0x6A82)), 0x00, 0xCB, 0x3F, 0xFF, b"\x5c\x01\x7e", le=256)
    assert refused.value.sw == 0x6A82 and not isinstance(refused.value, UnsupportedCard)
