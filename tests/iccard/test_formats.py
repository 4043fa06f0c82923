"""The one PIN rule and the one card-number rule, as each way of reading a card applies them."""

from __future__ import annotations

import pytest

from iccard.agent.component import PIN_FORMAT
from iccard.emulator import InProcessReader, PivCardEmulator
from iccard.errors import MalformedPin
from iccard.formats import CARD_NUMBER, check_pin
from iccard.piv import PivSession, encode_pin


@pytest.mark.parametrize("number", ["TP07240513100000", "TEST000000000001"])
def test_a_moica_card_number_and_a_demo_one_are_card_numbers(number):
    assert CARD_NUMBER.match(number)


@pytest.mark.parametrize("number", ["TEST00000000001", "TEST0000000000011", "tp07240513100000", "TP0724051310000X",
                                    "TEST000000000001\n"])
def test_what_is_not_16_characters_two_letters_first_is_no_card_number(number):
    assert not CARD_NUMBER.match(number)


def test_a_piv_card_whose_chuid_holds_a_moica_card_number_gives_it(pki, demo_card, card_state_dir):
    card = PivCardEmulator(card_number="TP07240513100000", key=pki.card_key(demo_card),
                           certificate=pki.card_certificate(demo_card), pin=demo_card.pin, state_dir=card_state_dir)
    reader = InProcessReader(card)
    assert PivSession(reader.connect()).card_number() == "TP07240513100000"


@pytest.mark.parametrize("pin", ["12345", "123456789", "12345a", "123456\n", "１２３４５６"])
def test_every_path_refuses_the_same_pins(pin):
    with pytest.raises(MalformedPin):
        check_pin(pin)
    with pytest.raises(MalformedPin):
        encode_pin(pin)
    assert not PIN_FORMAT.match(pin)  # the agent, before any card is touched


@pytest.mark.parametrize("pin", ["123456", "1234567", "12345678"])
def test_every_path_takes_6_to_8_digits(pin):
    check_pin(pin)
    assert encode_pin(pin)
    assert PIN_FORMAT.match(pin)
