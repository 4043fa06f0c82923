"""The emulated PIV card, APDU by APDU: what a PIV driver (ours or OpenSC's) sees."""

from __future__ import annotations

import json
from functools import reduce

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from iccard import tlv
from iccard.apdu import CommandApdu, split_response
from iccard.emulator import ATR, EmulatedConnection, InProcessReader, PivCardEmulator
from iccard.errors import CardError, CardRemoved, NoCard
from iccard.piv import PIV_AID, PIV_PIX, PIV_RID, pkcs1v15_block

SELECT_PIV = bytes.fromhex("00A404000BA00000030800001000010000")
VERIFY_123456 = bytes.fromhex("0020008008313233343536FFFF")
VERIFY_24681357 = bytes.fromhex("00200080083234363831333537")
# A SHA-256 DigestInfo (of zeros) padded for RSA-2048
BLOCK = pkcs1v15_block(bytes.fromhex("3031300d060960864801650304020105000420") + bytes(32))


def ask(emulator: PivCardEmulator, command: bytes | str) -> tuple[bytes, int]:
    raw = bytes.fromhex(command) if isinstance(command, str) else command
    return split_response(emulator.process(raw))


def get_data(emulator: PivCardEmulator, tag: int, ne: int = 65536) -> tuple[bytes, int]:
    return ask(emulator, CommandApdu(0x00, 0xCB, 0x3F, 0xFF, tlv.tlv(0x5C, tlv.encode_tag(tag)), ne=ne).encode())


def sign_command(slot: int, block: bytes, algorithm: int = 0x07) -> bytes:
    template = tlv.tlv(0x7C, tlv.tlv(0x82) + tlv.tlv(0x81, block))
    return CommandApdu(0x00, 0x87, algorithm, slot, template, ne=65536).encode()


@pytest.fixture
def card(emulator) -> PivCardEmulator:
    emulator.power_on()
    assert ask(emulator, SELECT_PIV)[1] == 0x9000
    return emulator


# -- answer to reset and SELECT -------------------------------------------------------------------------


def test_the_atr_is_well_formed_and_names_the_piv_application():
    assert ATR[0] == 0x3B and len(ATR) == 4 + (ATR[1] & 0x0F) + 1
    assert reduce(lambda a, b: a ^ b, ATR[1:]) == 0  # TCK makes the XOR of T0..TCK zero
    assert PIV_AID in ATR


def test_select_answers_the_application_property_template(emulator):
    emulator.power_on()
    data, sw = ask(emulator, SELECT_PIV)
    template = tlv.parse_dict(tlv.unwrap(data, 0x61))
    assert sw == 0x9000
    assert template[0x4F] == PIV_PIX
    assert tlv.unwrap(template[0x79], 0x4F) == PIV_RID  # coexisting tag allocation authority: NIST
    assert tlv.parse_dict(template[0xAC])[0x80] == b"\x07"  # RSA-2048


@pytest.mark.parametrize("aid", [PIV_RID, PIV_AID[:9], PIV_AID])
def test_the_application_can_be_selected_by_a_truncated_aid(emulator, aid):
    emulator.power_on()
    assert ask(emulator, CommandApdu(0x00, 0xA4, 0x04, 0x00, aid, ne=256).encode())[1] == 0x9000


def test_other_applications_are_not_found_and_nothing_works_before_select(emulator):
    emulator.power_on()
    assert ask(emulator, "00A4040007A0000000041010")[1] == 0x6A82
    assert get_data(emulator, 0x5FC102)[1] == 0x6D00
    assert ask(emulator, "80CA9F7F00")[1] == 0x6E00  # proprietary class: not this card's


# -- data objects --------------------------------------------------------------------------------------


def test_the_chuid_holds_the_card_number_as_guid_and_a_fasc_n(card, demo_card):
    data, sw = get_data(card, 0x5FC102)
    chuid = tlv.parse_dict(tlv.unwrap(data, 0x53))
    assert sw == 0x9000
    assert chuid[0x34] == demo_card.card_number.encode("ascii") and len(chuid[0x34]) == 16
    assert len(chuid[0x30]) == 25 and len(chuid[0x35]) == 8 and 0xFE in chuid


def test_the_discovery_object_says_the_piv_pin_is_the_pin(card):
    data, sw = get_data(card, 0x7E)
    discovery = tlv.parse_dict(tlv.unwrap(data, 0x7E))
    assert sw == 0x9000 and discovery[0x4F] == PIV_AID and discovery[0x5F2F] == b"\x40\x00"


def test_ccc_and_key_history_are_present(card):
    ccc = tlv.parse_dict(tlv.unwrap(get_data(card, 0x5FC107)[0], 0x53))
    history = tlv.parse_dict(tlv.unwrap(get_data(card, 0x5FC10C)[0], 0x53))
    assert len(ccc[0xF0]) == 21 and ccc[0xF5] == b"\x10"
    # one retired key with its certificate on the card (the CA's, in 5FC10D), none elsewhere
    assert history[0xC1] == b"\x01" and history[0xC2] == b"\x00"


def test_the_same_certificate_sits_in_9a_and_9c(card, pki, demo_card):
    der = pki.card_certificate(demo_card).public_bytes(serialization.Encoding.DER)
    for tag in (0x5FC105, 0x5FC10A):
        data, sw = get_data(card, tag)
        stored = tlv.parse_dict(tlv.unwrap(data, 0x53))
        assert sw == 0x9000 and stored[0x70] == der and stored[0x71] == b"\x00"


def test_the_encryption_certificate_sits_in_9d_and_the_ca_certificate_in_retired_object_1(card, pki, demo_card):
    expected = {0x5FC10B: pki.card_encryption_certificate(demo_card), 0x5FC10D: pki.issuer_certificate}
    for tag, certificate in expected.items():
        data, sw = get_data(card, tag)
        stored = tlv.parse_dict(tlv.unwrap(data, 0x53))
        assert sw == 0x9000 and stored[0x70] == certificate.public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize("tag", [0x5FC101, 0x5FC10E, 0x5FC103, 0x7F61, 0x5FC122])
def test_objects_the_card_does_not_have_are_not_found(card, tag):
    assert get_data(card, tag) == (b"", 0x6A82)


def test_a_long_object_comes_in_pieces_through_get_response(card):
    whole, _ = get_data(card, 0x5FC10A)
    data, sw = get_data(card, 0x5FC10A, ne=256)
    collected = bytearray(data)
    while sw >> 8 == 0x61:
        data, sw = ask(card, CommandApdu(0x00, 0xC0, 0x00, 0x00, ne=(sw & 0xFF) or 256).encode())
        collected += data
    assert sw == 0x9000 and bytes(collected) == whole and len(whole) > 1000


def test_get_response_without_anything_pending_is_refused(card):
    assert ask(card, "00C0000000")[1] == 0x6985


# -- PIN and security status ---------------------------------------------------------------------------


def test_the_pin_status_query_says_tries_or_verified(card):
    assert ask(card, "00200080")[1] == 0x63C3
    assert ask(card, VERIFY_123456)[1] == 0x9000
    assert ask(card, "00200080")[1] == 0x9000
    assert ask(card, "00200080")[1] == 0x9000  # asking spends nothing
    assert ask(card, "0020FF80")[1] == 0x9000  # P1=FF: log out
    assert ask(card, "00200080")[1] == 0x63C3


def test_the_retry_counter_is_kept_in_the_state_directory(card, card_state_dir, demo_card):
    assert ask(card, "0020008008313131313131FFFF")[1] == 0x63C2
    state = json.loads((card_state_dir / f"{demo_card.card_number}.json").read_text())
    assert state == {"pin_tries_left": 2}


def test_a_blocked_card_stays_blocked_after_a_restart_until_reset(card, pki, demo_card, card_state_dir):
    assert [ask(card, "0020008008393939393939FFFF")[1] for _ in range(3)] == [0x63C2, 0x63C1, 0x63C0]
    assert ask(card, VERIFY_123456)[1] == 0x6983
    restarted = PivCardEmulator.from_demo(pki, demo_card, card_state_dir)
    restarted.power_on()
    ask(restarted, SELECT_PIV)
    assert ask(restarted, VERIFY_123456)[1] == 0x6983
    assert ask(restarted, "00200080")[1] == 0x6983
    restarted.reset_pin_counter()
    assert restarted.pin_tries_left == 3
    assert ask(restarted, VERIFY_123456)[1] == 0x9000


def test_a_corrupt_state_file_is_an_error_not_a_fresh_counter(pki, demo_card, card_state_dir):
    card_state_dir.mkdir(parents=True)
    (card_state_dir / f"{demo_card.card_number}.json").write_text('{"pin_tries_left": 7}')
    with pytest.raises(ValueError):
        PivCardEmulator.from_demo(pki, demo_card, card_state_dir)


@pytest.mark.parametrize("command, sw", [("00200081083132333435363738", 0x6A88), ("002000800431323334", 0x6A80)])
def test_verify_refuses_other_references_and_unpadded_pins_without_spending_a_try(card, command, sw):
    assert ask(card, command)[1] == sw
    assert card.pin_tries_left == 3


# -- GENERAL AUTHENTICATE ------------------------------------------------------------------------------


def test_signing_needs_a_verified_pin(card):
    assert ask(card, sign_command(0x9C, BLOCK))[1] == 0x6982
    assert ask(card, sign_command(0x9A, BLOCK))[1] == 0x6982


def test_the_raw_rsa_result_is_the_private_key_operation(card, pki, demo_card):
    ask(card, VERIFY_123456)
    block = BLOCK
    data, sw = ask(card, sign_command(0x9C, block))
    signature = tlv.parse_dict(tlv.unwrap(data, 0x7C))[0x82]
    public = pki.card_certificate(demo_card).public_key().public_numbers()
    assert sw == 0x9000 and pow(int.from_bytes(signature, "big"), public.e, public.n) == int.from_bytes(block, "big")


def test_9c_wants_the_pin_before_each_signature_9a_once_per_session(card):
    ask(card, VERIFY_123456)
    assert ask(card, sign_command(0x9C, BLOCK))[1] == 0x9000
    assert ask(card, sign_command(0x9C, BLOCK))[1] == 0x6982
    assert ask(card, sign_command(0x9A, BLOCK))[1] == 0x9000
    assert ask(card, sign_command(0x9A, BLOCK))[1] == 0x9000


def test_a_chained_command_is_put_together_before_it_runs(card):
    ask(card, VERIFY_123456)
    command = CommandApdu.decode(sign_command(0x9C, BLOCK))
    first = CommandApdu(0x10, 0x87, 0x07, 0x9C, command.data[:200]).encode()
    last = CommandApdu(0x00, 0x87, 0x07, 0x9C, command.data[200:], ne=256).encode()
    assert ask(card, first) == (b"", 0x9000)
    data, sw = ask(card, last)
    assert sw == 0x6108 and len(data) == 256  # 7C 82 01 04 82 82 01 00 + 256 bytes: 8 more to fetch


def test_a_chain_broken_by_another_command_is_refused(card):
    ask(card, VERIFY_123456)
    command = CommandApdu.decode(sign_command(0x9C, BLOCK))
    ask(card, CommandApdu(0x10, 0x87, 0x07, 0x9C, command.data[:200]).encode())
    assert ask(card, CommandApdu(0x00, 0x87, 0x07, 0x9A, command.data[200:], ne=256).encode())[1] == 0x6883


def test_an_endless_chain_is_cut_off(card):
    link = CommandApdu(0x10, 0x87, 0x07, 0x9C, bytes(255)).encode()
    answers = [ask(card, link)[1] for _ in range(258)]
    assert answers[:257] == [0x9000] * 257 and answers[257] == 0x6700


@pytest.mark.parametrize(
    "command, sw",
    [
        (sign_command(0x9C, BLOCK, algorithm=0x11), 0x6A86),  # no ECC key here
        (sign_command(0x82, BLOCK), 0x6A88),  # retired key 1 holds the CA certificate, and no key
        (sign_command(0x9E, BLOCK), 0x6A88),  # no card authentication key
        (sign_command(0x9A, b"\xff" * 256), 0x6A80),  # not below the modulus
        (sign_command(0x9A, BLOCK[:255]), 0x6A80),
        (CommandApdu(0x00, 0x87, 0x07, 0x9A, b"\x7c\x03\x81\x01\x00", ne=256).encode(), 0x6A80),  # no 82
    ],
)
def test_malformed_or_impossible_requests_are_refused(card, command, sw):
    ask(card, VERIFY_123456)
    assert ask(card, command)[1] == sw


@pytest.mark.parametrize("event", ["power_off", "reset"])
def test_power_off_and_reset_forget_the_verified_pin(card, event):
    ask(card, VERIFY_123456)
    getattr(card, event)()
    card.power_on()
    ask(card, SELECT_PIV)
    assert ask(card, sign_command(0x9A, BLOCK))[1] == 0x6982


# -- the key-management key: decryption -----------------------------------------------------------------


def test_9d_answers_the_raw_rsa_decryption_of_a_ciphertext(card, pki, demo_card):
    ciphertext = pki.card_encryption_certificate(demo_card).public_key().encrypt(b"secret", padding.PKCS1v15())
    ask(card, VERIFY_123456)
    data, sw = ask(card, sign_command(0x9D, ciphertext))
    block = tlv.parse_dict(tlv.unwrap(data, 0x7C))[0x82]
    # the padding is left for the host to remove, as real PIV cards do
    assert sw == 0x9000 and len(block) == 256
    assert block[:2] == b"\x00\x02" and block.endswith(b"\x00secret") and 0 not in block[2:-7]


def test_9d_wants_the_pin_once_a_session(card, pki, demo_card):
    ciphertext = pki.card_encryption_certificate(demo_card).public_key().encrypt(b"secret", padding.PKCS1v15())
    assert ask(card, sign_command(0x9D, ciphertext))[1] == 0x6982
    ask(card, VERIFY_123456)
    assert [ask(card, sign_command(0x9D, ciphertext))[1] for _ in range(3)] == [0x9000] * 3


def test_the_signing_and_the_encryption_keys_are_different_keys(card, pki, demo_card):
    ask(card, VERIFY_123456)
    results = {}
    for slot in (0x9A, 0x9D):
        data, _ = ask(card, sign_command(slot, BLOCK))
        results[slot] = tlv.parse_dict(tlv.unwrap(data, 0x7C))[0x82]
    public = pki.card_encryption_certificate(demo_card).public_key().public_numbers()
    assert results[0x9A] != results[0x9D]
    assert pow(int.from_bytes(results[0x9D], "big"), public.e, public.n) == int.from_bytes(BLOCK, "big")


def test_a_card_without_encryption_key_or_ca_certificate_has_neither(pki, demo_card, card_state_dir):
    bare = PivCardEmulator(
        card_number=demo_card.card_number, key=pki.card_key(demo_card), certificate=pki.card_certificate(demo_card),
        pin=demo_card.pin, state_dir=card_state_dir,
    )  # fmt: skip
    bare.power_on()
    ask(bare, SELECT_PIV)
    ask(bare, VERIFY_123456)
    assert ask(bare, sign_command(0x9D, BLOCK))[1] == 0x6A88
    assert get_data(bare, 0x5FC10B)[1] == 0x6A82 and get_data(bare, 0x5FC10D)[1] == 0x6A82
    assert tlv.parse_dict(tlv.unwrap(get_data(bare, 0x5FC10C)[0], 0x53))[0xC1] == b"\x00"


def test_keys_and_certificates_must_belong_together(pki, demo_card, card_state_dir):
    common = dict(
        card_number=demo_card.card_number, key=pki.card_key(demo_card), certificate=pki.card_certificate(demo_card),
        pin=demo_card.pin, state_dir=card_state_dir,
    )  # fmt: skip
    with pytest.raises(ValueError):
        PivCardEmulator(**common, encryption_key=pki.card_encryption_key(demo_card))
    with pytest.raises(ValueError):  # the signing certificate does not go with the encryption key
        PivCardEmulator(
            **common, encryption_key=pki.card_encryption_key(demo_card), encryption_certificate=common["certificate"]
        )
    with pytest.raises(ValueError):
        PivCardEmulator(**{**common, "key": rsa.generate_private_key(65537, 1024)})
    with pytest.raises(ValueError):
        PivCardEmulator(**common, ca_certificates=[pki.issuer_certificate] * 21)


# -- changing the PIN (CHANGE REFERENCE DATA) ------------------------------------------------------------


def change_pin_command(old: bytes, new: bytes, p2: int = 0x80) -> bytes:
    data = old.ljust(8, b"\xff") + new.ljust(8, b"\xff")
    return CommandApdu(0x00, 0x24, 0x00, p2, data).encode()


def test_a_changed_pin_replaces_the_old_one(card):
    assert ask(card, change_pin_command(b"123456", b"24681357")) == (b"", 0x9000)
    assert ask(card, VERIFY_123456)[1] == 0x63C2
    assert ask(card, VERIFY_24681357)[1] == 0x9000
    assert card.pin_tries_left == 3


def test_a_wrong_old_pin_counts_a_try_and_changes_nothing(card):
    assert ask(card, change_pin_command(b"999999", b"24681357"))[1] == 0x63C2
    assert ask(card, change_pin_command(b"999999", b"24681357"))[1] == 0x63C1
    assert card.pin_tries_left == 1
    assert ask(card, VERIFY_123456)[1] == 0x9000 and card.pin_tries_left == 3


def test_a_wrong_old_pin_forgets_a_verified_pin(card):
    ask(card, VERIFY_123456)
    ask(card, change_pin_command(b"999999", b"24681357"))
    assert ask(card, sign_command(0x9A, BLOCK))[1] == 0x6982


def test_the_pin_cannot_be_changed_once_blocked(card):
    assert [ask(card, change_pin_command(b"999999", b"24681357"))[1] for _ in range(3)] == [0x63C2, 0x63C1, 0x63C0]
    assert ask(card, change_pin_command(b"123456", b"24681357"))[1] == 0x6983
    card.reset_pin_counter()
    assert ask(card, VERIFY_123456)[1] == 0x9000  # unblocking keeps the PIN it had


@pytest.mark.parametrize(
    "command",
    [
        change_pin_command(b"123456", b"12345"),  # too short
        change_pin_command(b"123456", b"12a456"),
        change_pin_command(b"123456", b"123\xff456"),  # padding inside the PIN
        change_pin_command(b"123456", b""),
        CommandApdu(0x00, 0x24, 0x00, 0x80, b"123456\xff\xff" + b"246813").encode(),  # not 16 bytes
    ],
)
def test_a_malformed_new_pin_is_refused_without_spending_a_try(card, command):
    assert ask(card, command)[1] == 0x6A80
    assert card.pin_tries_left == 3
    assert ask(card, VERIFY_123456)[1] == 0x9000


def test_only_the_piv_pin_can_be_changed(card):
    assert ask(card, change_pin_command(b"12345678", b"24681357", p2=0x81))[1] == 0x6A88  # the PUK
    assert ask(card, CommandApdu(0x00, 0x24, 0x01, 0x80, b"123456\xff\xff").encode())[1] == 0x6A86
    assert card.pin_tries_left == 3


def test_a_changed_pin_survives_a_restart(card, pki, demo_card, card_state_dir):
    ask(card, change_pin_command(b"123456", b"24681357"))
    restarted = PivCardEmulator.from_demo(pki, demo_card, card_state_dir)
    restarted.power_on()
    ask(restarted, SELECT_PIV)
    assert ask(restarted, VERIFY_123456)[1] == 0x63C2
    assert ask(restarted, VERIFY_24681357)[1] == 0x9000


def test_the_state_file_keeps_the_changed_pin_only_salted_and_hashed(card, card_state_dir, demo_card):
    ask(card, change_pin_command(b"123456", b"24681357"))
    state_file = card_state_dir / f"{demo_card.card_number}.json"
    text = state_file.read_text()
    state = json.loads(text)
    assert state["pin_tries_left"] == 3 and set(state["pin"]) == {"salt", "sha256"}
    assert "24681357" not in text and b"24681357".hex() not in text
    assert state_file.stat().st_mode & 0o777 == 0o600


def test_a_state_file_from_before_pin_changes_is_read_with_the_cards_own_pin(pki, demo_card, card_state_dir):
    card_state_dir.mkdir(parents=True)
    (card_state_dir / f"{demo_card.card_number}.json").write_text('{"pin_tries_left": 2}\n')
    emulator = PivCardEmulator.from_demo(pki, demo_card, card_state_dir)
    emulator.power_on()
    ask(emulator, SELECT_PIV)
    assert emulator.pin_tries_left == 2
    assert ask(emulator, VERIFY_123456)[1] == 0x9000


@pytest.mark.parametrize("pin", ['"123456"', '{"salt": "00", "sha256": "00"}', '{"salt": "zz"}'])
def test_a_state_file_with_a_broken_pin_is_an_error(pki, demo_card, card_state_dir, pin):
    card_state_dir.mkdir(parents=True)
    (card_state_dir / f"{demo_card.card_number}.json").write_text(f'{{"pin_tries_left": 3, "pin": {pin}}}')
    with pytest.raises(ValueError):
        PivCardEmulator.from_demo(pki, demo_card, card_state_dir)


# -- the in-process reader -----------------------------------------------------------------------------


def test_removing_the_card_breaks_its_connections(reader, emulator):
    connection = reader.connect()
    assert isinstance(connection, EmulatedConnection) and reader.has_card()
    assert connection.transmit(SELECT_PIV)[1] == 0x9000
    assert reader.remove() is emulator and not reader.has_card()
    with pytest.raises(CardRemoved):
        connection.transmit(SELECT_PIV)
    with pytest.raises(NoCard):
        reader.connect()
    reader.insert(emulator)
    with pytest.raises(CardRemoved):  # the old connection belongs to the card's last stay
        connection.transmit(SELECT_PIV)
    assert reader.connect().transmit(SELECT_PIV)[1] == 0x9000


def test_closing_a_connection_resets_the_card(reader):
    connection = reader.connect()
    connection.transmit(SELECT_PIV)
    connection.transmit(VERIFY_123456)
    connection.close()
    with pytest.raises(CardError):
        connection.transmit(SELECT_PIV)
    fresh = reader.connect()
    fresh.transmit(SELECT_PIV)
    assert fresh.transmit(bytes.fromhex("00200080"))[1] == 0x63C3


def test_a_reader_holds_one_card(emulator):
    reader = InProcessReader(emulator)
    with pytest.raises(CardError):
        reader.insert(emulator)
