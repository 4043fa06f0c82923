"""PivSession against the emulated demo card (in-process), and against scripted answers for odd cards."""

from __future__ import annotations

import gzip
import hashlib

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from iccard import tlv
from iccard.emulator import PivCardEmulator
from iccard.errors import (
    CardRemoved,
    DecryptionFailed,
    MalformedPin,
    NoCard,
    PinBlocked,
    PinRequired,
    UnsupportedCard,
    WrongPin,
)
from iccard.piv import PIV_PIX, PivSession, Slot, digest_info, eme_pkcs1v15_decode, pkcs1v15_block
from tests.iccard.scripted import ScriptedCard

MESSAGE = "王小明 signs in to MoCert".encode()
HASHES = {"SHA256": hashes.SHA256, "SHA384": hashes.SHA384, "SHA512": hashes.SHA512}


@pytest.fixture
def session(reader) -> PivSession:
    return PivSession(reader.connect())


def _digest_info(hash_name: str = "SHA256", message: bytes = MESSAGE) -> bytes:
    return digest_info(hash_name, hashlib.new(hash_name.lower(), message).digest())


# -- reading the card ----------------------------------------------------------------------------------


def test_selecting_the_application_returns_its_property_template(session):
    assert tlv.parse_dict(session.application_properties)[0x4F] == PIV_PIX


@pytest.mark.parametrize("slot", [Slot.SIGNATURE, Slot.AUTHENTICATION])
def test_the_certificate_read_from_the_card_is_the_demo_cards(session, pki, demo_card, slot):
    assert session.get_certificate(slot) == pki.card_certificate(demo_card)


def test_the_encryption_certificate_is_read_from_the_key_management_slot(session, pki, demo_card):
    assert session.get_certificate(Slot.KEY_MANAGEMENT) == pki.card_encryption_certificate(demo_card)


def test_a_slot_without_certificate_is_an_unsupported_card(session):
    with pytest.raises(UnsupportedCard):
        session.get_certificate(Slot.CARD_AUTHENTICATION)


def test_the_cards_ca_certificate_is_the_issuing_cas(session, pki):
    assert session.ca_certificates() == [pki.issuer_certificate]


def test_the_card_number_is_read_from_the_chuid(session, demo_card):
    assert session.card_number() == demo_card.card_number == "TEST000000000001"


# -- the PIN -------------------------------------------------------------------------------------------


def test_wrong_pins_count_down_then_block_the_card(session):
    for tries_left in (2, 1):
        with pytest.raises(WrongPin) as wrong:
            session.verify_pin("654321")
        assert wrong.value.tries_left == tries_left
    with pytest.raises(PinBlocked):
        session.verify_pin("654321")
    with pytest.raises(PinBlocked):
        session.verify_pin("123456")  # the right PIN no longer helps
    assert session.pin_tries_left() == 0


def test_a_blocked_pin_stays_blocked_in_a_new_emulator_of_the_same_state(pki, demo_card, card_state_dir, reader):
    session = PivSession(reader.connect())
    for _ in range(3):
        with pytest.raises((WrongPin, PinBlocked)):
            session.verify_pin("000000")
    restarted = PivCardEmulator.from_demo(pki, demo_card, card_state_dir)
    reader.remove()
    reader.insert(restarted)
    session = PivSession(reader.connect())
    with pytest.raises(PinBlocked):
        session.verify_pin("123456")
    restarted.reset_pin_counter()  # the demo tooling's unblock
    session.verify_pin("123456")


def test_the_right_pin_gives_all_tries_back(reader):
    session = PivSession(reader.connect())
    with pytest.raises(WrongPin):
        session.verify_pin("111111")
    assert session.pin_tries_left() == 2
    session.verify_pin("123456")
    assert session.pin_tries_left() is None  # verified: the card says 9000, not a count
    session.connection.close()  # resets the card
    assert PivSession(reader.connect()).pin_tries_left() == 3


@pytest.mark.parametrize("pin", ["12345", "123456789", "12a456", "", " 123456", "123456\n", "１２３４５６"])
def test_malformed_pins_never_reach_the_card(pin):
    card = ScriptedCard((b"", 0x9000))  # answers the SELECT, and nothing after it
    session = PivSession(card)
    with pytest.raises(MalformedPin):
        session.verify_pin(pin)
    assert len(card.sent) == 1


def test_the_pin_is_sent_padded_with_ff_to_eight_bytes():
    card = ScriptedCard((b"", 0x9000), (b"", 0x9000))
    PivSession(card).verify_pin("123456")
    assert card.sent[1] == bytes.fromhex("0020008008") + b"123456\xff\xff"


# -- signing -------------------------------------------------------------------------------------------


def test_signing_without_the_pin_is_refused_with_6982(session):
    with pytest.raises(PinRequired) as refused:
        session.sign_pkcs1v15(Slot.SIGNATURE, _digest_info())
    assert refused.value.sw == 0x6982


@pytest.mark.parametrize("hash_name", ["SHA256", "SHA384", "SHA512"])
@pytest.mark.parametrize("slot", [Slot.SIGNATURE, Slot.AUTHENTICATION])
def test_a_pkcs1v15_signature_verifies_with_the_certificates_key(session, slot, hash_name):
    session.verify_pin("123456")
    signature = session.sign_pkcs1v15(slot, _digest_info(hash_name))
    public_key = session.get_certificate(slot).public_key()
    public_key.verify(signature, MESSAGE, padding.PKCS1v15(), HASHES[hash_name]())


def test_the_signature_key_wants_the_pin_before_every_signature(session):
    session.verify_pin("123456")
    session.sign_pkcs1v15(Slot.SIGNATURE, _digest_info())
    with pytest.raises(PinRequired):
        session.sign_pkcs1v15(Slot.SIGNATURE, _digest_info())
    session.verify_pin("123456")
    session.sign_pkcs1v15(Slot.SIGNATURE, _digest_info())


def test_the_authentication_key_signs_as_long_as_the_session_lasts(session):
    session.verify_pin("123456")
    first = session.sign_pkcs1v15(Slot.AUTHENTICATION, _digest_info(message=b"one"))
    second = session.sign_pkcs1v15(Slot.AUTHENTICATION, _digest_info(message=b"two"))
    assert first != second


def test_the_pkcs1v15_block_is_00_01_ff_00_digest_info():
    info = _digest_info()
    block = pkcs1v15_block(info)
    assert len(block) == 256 and block.startswith(b"\x00\x01\xff\xff") and block.endswith(b"\x00" + info)
    assert set(block[2 : 256 - len(info) - 1]) == {0xFF}


def test_the_raw_rsa_operation_takes_exactly_one_key_sized_block(session):
    session.verify_pin("123456")
    with pytest.raises(ValueError):
        session.sign_rsa(Slot.SIGNATURE, b"\x00\x01" + b"\xff" * 100)
    with pytest.raises(ValueError):
        digest_info("SHA256", b"too short")
    with pytest.raises(ValueError):
        digest_info("MD5", hashlib.md5(b"").digest())


# -- decryption ----------------------------------------------------------------------------------------


def _encrypt_to_card(pki, card, message: bytes) -> bytes:
    return pki.card_encryption_certificate(card).public_key().encrypt(message, padding.PKCS1v15())


def _raw_encrypt(pki, card, block: bytes) -> bytes:
    """``block`` (256 bytes) RSA-encrypted to the card's encryption key without padding: what a ciphertext of a
    badly padded message looks like."""
    public = pki.card_encryption_certificate(card).public_key().public_numbers()
    return pow(int.from_bytes(block, "big"), public.e, public.n).to_bytes(256, "big")


@pytest.mark.parametrize(
    "message", [b"", "機密的 session key".encode(), bytes(range(256))[:245]], ids=["empty", "text", "longest"]
)
def test_a_ciphertext_to_the_encryption_certificate_decrypts_to_its_message(session, pki, demo_card, message):
    session.verify_pin("123456")
    assert session.decrypt(_encrypt_to_card(pki, demo_card, message)) == message


def test_decryption_wants_the_pin(session, pki, demo_card):
    with pytest.raises(PinRequired):
        session.decrypt(_encrypt_to_card(pki, demo_card, b"secret"))


def test_the_pin_verified_once_decrypts_for_the_whole_session(session, pki, demo_card):
    session.verify_pin("123456")
    for message in (b"one", b"two", b"three"):
        assert session.decrypt(_encrypt_to_card(pki, demo_card, message)) == message


BAD_BLOCKS = {
    "type 1 (a signature block)": b"\x00\x01" + b"\xff" * 200 + b"\x00" + b"m" * 53,
    "no zero separator": b"\x00\x02" + b"\x11" * 254,
    "padding of 7 bytes": b"\x00\x02" + b"\x11" * 7 + b"\x00" + b"m" * 246,
    "separator right after the header": b"\x00\x02\x00" + b"m" * 253,
    "leading byte not zero": b"\x01\x02" + b"\x11" * 200 + b"\x00" + b"m" * 53,
}


@pytest.mark.parametrize("block", BAD_BLOCKS.values(), ids=BAD_BLOCKS.keys())
def test_a_badly_padded_ciphertext_is_refused_all_alike(session, pki, demo_card, block):
    if block[0] != 0:  # beyond any RSA-2048 modulus' top byte: only the decoder can be shown it
        with pytest.raises(DecryptionFailed) as refused:
            eme_pkcs1v15_decode(block)
    else:
        session.verify_pin("123456")
        with pytest.raises(DecryptionFailed) as refused:
            session.decrypt(_raw_encrypt(pki, demo_card, block))
    assert str(refused.value) == "the ciphertext does not decrypt with this card's key"


def test_the_shortest_padding_and_the_longest_message_decode():
    assert eme_pkcs1v15_decode(b"\x00\x02" + b"\x11" * 8 + b"\x00" + b"m" * 245) == b"m" * 245
    assert eme_pkcs1v15_decode(b"\x00\x02" + b"\x11" * 253 + b"\x00") == b""
    assert eme_pkcs1v15_decode(b"\x00\x02" + b"\x11" * 9 + b"\x00" + b"\x00m") == b"\x00m"  # the first zero ends PS


@pytest.mark.parametrize(
    "ciphertext", [b"\x01" * 255, b"\x01" * 257, b"", b"\xff" * 256], ids=["255", "257", "0", "above n"]
)
def test_a_ciphertext_of_the_wrong_size_or_beyond_the_modulus_is_refused(session, ciphertext):
    session.verify_pin("123456")
    with pytest.raises(DecryptionFailed):
        session.decrypt(ciphertext)


# -- changing the PIN ----------------------------------------------------------------------------------


def test_a_changed_pin_is_the_pin_from_then_on(session):
    session.change_pin("123456", "24681357")
    with pytest.raises(WrongPin) as wrong:
        session.verify_pin("123456")
    assert wrong.value.tries_left == 2
    session.verify_pin("24681357")
    session.sign_pkcs1v15(Slot.SIGNATURE, _digest_info())


def test_changing_the_pin_with_a_wrong_one_counts_down_then_blocks(session):
    for tries_left in (2, 1):
        with pytest.raises(WrongPin) as wrong:
            session.change_pin("654321", "24681357")
        assert wrong.value.tries_left == tries_left
    with pytest.raises(PinBlocked):
        session.change_pin("654321", "24681357")
    with pytest.raises(PinBlocked):
        session.change_pin("123456", "24681357")
    with pytest.raises(PinBlocked):
        session.verify_pin("123456")


def test_a_changed_pin_survives_a_new_emulator_of_the_same_state(pki, demo_card, card_state_dir, reader):
    PivSession(reader.connect()).change_pin("123456", "24681357")
    reader.remove()
    reader.insert(PivCardEmulator.from_demo(pki, demo_card, card_state_dir))
    session = PivSession(reader.connect())
    with pytest.raises(WrongPin):
        session.verify_pin("123456")
    session.verify_pin("24681357")


@pytest.mark.parametrize(
    "old, new", [("12345", "24681357"), ("123456", "2468"), ("123456", "24681357x"), ("123456", "")]
)
def test_a_malformed_old_or_new_pin_never_reaches_the_card(old, new):
    card = ScriptedCard((b"", 0x9000))
    with pytest.raises(MalformedPin):
        PivSession(card).change_pin(old, new)
    assert len(card.sent) == 1


def test_the_pin_change_sends_both_pins_padded_with_ff():
    card = ScriptedCard((b"", 0x9000), (b"", 0x9000))
    PivSession(card).change_pin("123456", "24681357")
    assert card.sent[1] == bytes.fromhex("0024008010") + b"123456\xff\xff" + b"24681357"


# -- the card goes away --------------------------------------------------------------------------------


def test_a_removed_card_raises_card_removed_then_no_card(reader, session, emulator):
    session.verify_pin("123456")
    reader.remove()
    with pytest.raises(CardRemoved):
        session.sign_pkcs1v15(Slot.SIGNATURE, _digest_info())
    with pytest.raises(NoCard):
        reader.connect()
    reader.insert(emulator)
    session = PivSession(reader.connect())
    with pytest.raises(PinRequired):  # a card put back starts a new session: the PIN again
        session.sign_pkcs1v15(Slot.SIGNATURE, _digest_info())


# -- cards that are not ours ---------------------------------------------------------------------------


def test_a_card_without_the_piv_application_is_unsupported():
    with pytest.raises(UnsupportedCard):
        PivSession(ScriptedCard((b"", 0x6A82)))


def test_a_gzip_compressed_certificate_is_read(pki, demo_card):
    der = pki.card_certificate(demo_card).public_bytes(serialization.Encoding.DER)
    stored = tlv.tlv(0x53, tlv.tlv(0x70, gzip.compress(der)) + tlv.tlv(0x71, b"\x01") + tlv.tlv(0xFE))
    card = ScriptedCard((b"", 0x9000), (stored, 0x9000))
    assert PivSession(card).get_certificate(Slot.SIGNATURE) == pki.card_certificate(demo_card)
    assert card.sent[1] == bytes.fromhex("00CB3FFF055C035FC10A00")


def test_a_random_guid_is_not_taken_for_a_card_number():
    chuid = tlv.tlv(0x53, tlv.tlv(0x34, bytes(range(16))) + tlv.tlv(0xFE))
    with pytest.raises(UnsupportedCard):
        PivSession(ScriptedCard((b"", 0x9000), (chuid, 0x9000))).card_number()


def test_an_answer_that_is_not_a_piv_object_is_unsupported():
    with pytest.raises(UnsupportedCard):
        PivSession(ScriptedCard((b"", 0x9000), (b"\x70\x05abc", 0x9000))).get_certificate(Slot.SIGNATURE)


def test_a_card_without_key_history_has_no_ca_certificates():
    assert PivSession(ScriptedCard((b"", 0x9000), (b"", 0x6A82))).ca_certificates() == []


def test_a_key_history_counting_none_means_no_ca_certificates():
    history = tlv.tlv(0x53, tlv.tlv(0xC1, b"\x00") + tlv.tlv(0xC2, b"\x00") + tlv.tlv(0xFE))
    card = ScriptedCard((b"", 0x9000), (history, 0x9000))
    assert PivSession(card).ca_certificates() == [] and len(card.sent) == 2


def test_a_retired_encryption_certificate_is_not_taken_for_a_ca_certificate(pki, demo_card):
    history = tlv.tlv(0x53, tlv.tlv(0xC1, b"\x02") + tlv.tlv(0xC2, b"\x00") + tlv.tlv(0xFE))

    def stored(certificate):
        der = certificate.public_bytes(serialization.Encoding.DER)
        return tlv.tlv(0x53, tlv.tlv(0x70, der) + tlv.tlv(0x71, b"\x00") + tlv.tlv(0xFE))

    card = ScriptedCard(
        (b"", 0x9000),
        (history, 0x9000),
        (stored(pki.card_encryption_certificate(demo_card)), 0x9000),  # 5FC10D: an old encryption key's
        (stored(pki.issuer_certificate), 0x9000),  # 5FC10E
    )
    assert PivSession(card).ca_certificates() == [pki.issuer_certificate]
    assert card.sent[2:] == [bytes.fromhex("00CB3FFF055C035FC10D00"), bytes.fromhex("00CB3FFF055C035FC10E00")]
