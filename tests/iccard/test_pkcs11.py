"""Cards through PKCS#11 modules we did not write: SoftHSM2 holding the demo cards, and OpenSC's module
reading the emulated PIV card through pcscd and vpcd.

Both modules are loaded in this process, once each (SoftHSM with the session's token directory, see the
``softhsm`` fixture). What each module reports, and so what these tests pin:

- SoftHSM: the token label is what it was initialized with (the card number); the serial number is its own
  hex; a wrong PIN sets CKF_USER_PIN_COUNT_LOW and nothing else, and SoftHSM never locks a PIN.
- OpenSC's PIV emulation: label the holder's name, serial the hex of the card number's last 8 characters,
  the card number in the CHUID data object; a wrong PIN shows no flag until the final try
  (CKF_USER_PIN_FINAL_TRY), then CKF_USER_PIN_LOCKED; a private key for every certificate, the CA's too.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from iccard import signer
from iccard.errors import (
    CardRemoved,
    DecryptionFailed,
    MalformedPin,
    ModuleUnavailable,
    NoCard,
    PinBlocked,
    PinRequired,
    UnsupportedCard,
    WrongPin,
)
from iccard.piv import DECRYPTION_FAILED
from iccard.signature import verify_pkcs1, verify_pkcs7
from tests.pkcs11_tokens import ENCRYPTION_ID, open_sessions
from tests.support import card_of

TBS = "登入 MoCert 的挑戰 through PKCS#11"


def _request(signature_type: str) -> signer.SignRequest:
    return signer.SignRequest.from_make_signature(
        {"tbs": TBS, "tbsEncoding": "NONE", "hashAlgorithm": "SHA256", "signatureType": signature_type}
    )


def _verifies(signature_type: str, result: signer.Signature) -> object:
    if signature_type == "PKCS1":
        der = result.certificate.public_bytes(Encoding.DER)
        return verify_pkcs1(TBS.encode(), result.signature, der, "sha256")
    return verify_pkcs7(TBS.encode(), result.signature)


# -- SoftHSM2 ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def softhsm_module(softhsm):
    from iccard.pkcs11 import Pkcs11Module

    return Pkcs11Module(softhsm.module)


@pytest.fixture
def token_of(softhsm_module):
    """The slot holding a demo card's token, by national ID."""

    def find(pki, national_id: str, status: str = "valid"):
        card = card_of(pki, national_id, status)
        for slot in softhsm_module():
            with slot.open() as token:
                if token.card_number() == card.card_number:
                    return slot, card
        raise AssertionError(f"no SoftHSM token holds {card.card_number}")

    return find


def test_every_softhsm_token_holding_a_card_is_a_slot_and_the_free_slot_is_not(softhsm_module, pki):
    slots = softhsm_module()
    numbers = []
    for slot in slots:
        assert slot.name.startswith("SoftHSM slot ID 0x") and slot.has_card()
        with slot.open() as card:
            numbers.append(card.card_number())
    assert sorted(numbers) == sorted(card.card_number for card in pki.cards)  # SoftHSM's empty token is left out


def test_the_module_is_loaded_once_per_process_by_whatever_name(softhsm, softhsm_module, tmp_path):
    from iccard.pkcs11 import Pkcs11Module

    (tmp_path / "libsofthsm2.so").symlink_to(softhsm.module)
    for again in (Pkcs11Module(softhsm.module), Pkcs11Module(tmp_path / "libsofthsm2.so")):
        # one C_Initialize: a second would answer CKR_CRYPTOKI_ALREADY_INITIALIZED
        assert again._lib is softhsm_module._lib
        assert len(again()) == len(softhsm_module())


def test_a_softhsm_token_gives_the_cards_certificates(token_of, pki, softhsm):
    slot, demo = token_of(pki, "A123456789")
    with slot.open() as card:
        assert card.card_number() == demo.card_number  # from the label: SoftHSM's serial is its own hex
        assert card.signing_certificate() == pki.card_certificate(demo)
        assert card.encryption_certificate() == pki.card_encryption_certificate(demo)
        assert card.ca_certificates() == [pki.issuer_certificate]


@pytest.mark.parametrize("signature_type", ["PKCS1", "PKCS7"])
def test_a_softhsm_token_signs_and_the_signature_verifies(token_of, pki, signature_type):
    slot, demo = token_of(pki, "B223456782")
    with slot.open() as card:
        result = signer.sign(card, demo.pin, _request(signature_type))
    assert result.card_number == demo.card_number
    assert _verifies(signature_type, result) == pki.card_certificate(demo)


def test_a_softhsm_token_decrypts_what_was_encrypted_to_its_encryption_certificate(token_of, pki, softhsm):
    slot, demo = token_of(pki, "A123456789")
    secret = b"a session key for DecryptData"
    ciphertext = pki.card_encryption_certificate(demo).public_key().encrypt(secret, padding.PKCS1v15())
    with slot.open() as card:
        card.verify_pin(demo.pin)
        assert card.decrypt(ciphertext) == secret


@pytest.mark.parametrize("ciphertext", [
    bytes(255) + b"\x02",  # 256 bytes, no PKCS#1 v1.5 padding inside: SoftHSM answers CKR_GENERAL_ERROR
    b"\x01" * 100,  # not the modulus' length: CKR_ENCRYPTED_DATA_LEN_RANGE
    b"\xff" * 256,  # above the modulus
], ids=["no-padding", "short", "above-the-modulus"])
def test_every_decryption_the_token_refuses_is_the_one_decryption_failure_piv_gives(token_of, pki, ciphertext):
    slot, demo = token_of(pki, "A123456789")
    with slot.open() as card:
        card.verify_pin(demo.pin)
        with pytest.raises(DecryptionFailed) as refused:
            card.decrypt(ciphertext)
    assert str(refused.value) == DECRYPTION_FAILED and refused.value.__cause__ is None  # never which refusal


def _big(number: int) -> bytes:
    return number.to_bytes((number.bit_length() + 7) // 8, "big")


def _put_private_key(slot, pin: str, key, key_id: bytes, *, always_authenticate: bool) -> None:
    """``key`` as the token's private key of ``key_id``, in place of the one there (SoftHSM keeps
    CKA_ALWAYS_AUTHENTICATE read-only, so the key is written anew rather than changed)."""
    from pkcs11 import Attribute, KeyType, ObjectClass

    numbers = key.private_numbers()
    with slot._slot.get_token().open(rw=True, user_pin=pin) as session:
        for old in session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.ID: key_id}):
            old.destroy()
        session.create_object({
            Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.KEY_TYPE: KeyType.RSA, Attribute.ID: key_id,
            Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
            Attribute.DECRYPT: True, Attribute.SIGN: True, Attribute.ALWAYS_AUTHENTICATE: always_authenticate,
            Attribute.MODULUS: _big(numbers.public_numbers.n),
            Attribute.PUBLIC_EXPONENT: _big(numbers.public_numbers.e),
            Attribute.PRIVATE_EXPONENT: _big(numbers.d), Attribute.PRIME_1: _big(numbers.p),
            Attribute.PRIME_2: _big(numbers.q), Attribute.EXPONENT_1: _big(numbers.dmp1),
            Attribute.EXPONENT_2: _big(numbers.dmq1), Attribute.COEFFICIENT: _big(numbers.iqmp),
        })


@pytest.fixture
def encryption_key_wanting_the_pin_each_time(token_of, pki):
    """The expired card's token (no other test here uses its keys), its encryption key (CKA_ID 02) made one
    with CKA_ALWAYS_AUTHENTICATE and its signing key not: then put back as it was."""
    slot, demo = token_of(pki, "F131313136", "expired")
    key = pki.card_encryption_key(demo)
    _put_private_key(slot, demo.pin, key, bytes.fromhex(ENCRYPTION_ID), always_authenticate=True)
    yield slot, demo
    _put_private_key(slot, demo.pin, key, bytes.fromhex(ENCRYPTION_ID), always_authenticate=False)


def test_the_pin_is_kept_for_an_encryption_key_that_wants_it_each_time(encryption_key_wanting_the_pin_each_time,
                                                                         pki):
    slot, demo = encryption_key_wanting_the_pin_each_time
    secret = b"a session key for DecryptData"
    ciphertext = pki.card_encryption_certificate(demo).public_key().encrypt(secret, padding.PKCS1v15())
    with slot.open() as card:
        card.verify_pin(demo.pin)
        assert card.decrypt(ciphertext) == secret  # C_Login as CKU_CONTEXT_SPECIFIC with the kept PIN
        with pytest.raises(PinRequired):  # and used once: the next use wants the PIN verified again
            card.decrypt(ciphertext)
        card.verify_pin(demo.pin)
        assert card.decrypt(ciphertext) == secret


def _certificate(key, *, digital_signature: bool, key_encipherment: bool) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "another certificate on the token")])
    now = datetime.now(timezone.utc)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.KeyUsage(digital_signature=digital_signature, content_commitment=False,
                                         key_encipherment=key_encipherment, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))


@pytest.fixture
def extra_certificate(token_of, pki):
    """``extra_certificate(digital_signature=, key_encipherment=, private_key=)``: a certificate of CKA_ID 00
    (before the card's 01) and its key on the revoked card's token (no other test here uses its keys);
    removed afterwards."""
    from pkcs11 import Attribute, CertificateType, KeyType, ObjectClass

    slot, demo = token_of(pki, "K120000006", "revoked")
    key_id = b"\x00"

    def put(*, digital_signature: bool, key_encipherment: bool, private_key: bool):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        certificate = _certificate(key, digital_signature=digital_signature, key_encipherment=key_encipherment)
        numbers = key.public_key().public_numbers()
        with slot._slot.get_token().open(rw=True, user_pin=demo.pin) as session:
            session.create_object({
                Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
                Attribute.TOKEN: True, Attribute.ID: key_id, Attribute.VALUE: certificate.public_bytes(Encoding.DER),
                Attribute.SUBJECT: certificate.subject.public_bytes(),
            })
            session.create_object({
                Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.KEY_TYPE: KeyType.RSA, Attribute.TOKEN: True,
                Attribute.ID: key_id, Attribute.MODULUS: _big(numbers.n), Attribute.PUBLIC_EXPONENT: _big(numbers.e),
            })
        if private_key:
            _put_private_key(slot, demo.pin, key, key_id, always_authenticate=False)
        return slot, demo, certificate

    yield put
    with slot._slot.get_token().open(rw=True, user_pin=demo.pin) as session:
        for obj in list(session.get_objects({Attribute.ID: key_id})):
            obj.destroy()


def test_a_certificate_for_signing_alone_is_chosen_over_one_that_also_encrypts(extra_certificate, pki):
    slot, demo, both = extra_certificate(digital_signature=True, key_encipherment=True, private_key=True)
    with slot.open() as card:
        assert card.signing_certificate() == pki.card_certificate(demo)  # 01, though 00 comes first
        assert card.encryption_certificate() == pki.card_encryption_certificate(demo)
        result = signer.sign(card, demo.pin, _request("PKCS7"))
    assert _verifies("PKCS7", result) == pki.card_certificate(demo)


def test_a_signing_certificate_with_only_a_public_key_fails_clearly_after_the_pin(extra_certificate):
    slot, demo, lone = extra_certificate(digital_signature=True, key_encipherment=False, private_key=False)
    with slot.open() as card:
        assert card.signing_certificate() == lone  # its public key is all a token shows before the PIN
        with pytest.raises(UnsupportedCard, match="CKA_ID 00 but no private key for it, even with the PIN"):
            signer.sign(card, demo.pin, _request("PKCS1"))


def test_a_wrong_pin_is_refused_without_a_count_softhsm_does_not_give(token_of, pki):
    slot, demo = token_of(pki, "A123456789")
    with slot.open() as card:
        with pytest.raises(WrongPin) as refused:
            card.verify_pin("000000")
    assert refused.value.tries_left is None  # SoftHSM says only CKF_USER_PIN_COUNT_LOW
    with slot.open() as card:
        card.verify_pin(demo.pin)  # and never locks


def _session_handle(slot) -> int:
    session = slot._slot.get_token().open()
    try:
        return session.handle
    finally:
        session.close()


def test_wrong_pins_leave_no_session_open_behind_them(softhsm, token_of, pki):
    slot, demo = token_of(pki, "A123456789")
    first = _session_handle(slot)
    with slot.open() as card:
        for _ in range(5):
            with pytest.raises(WrongPin):
                card.verify_pin("000000")
        card.verify_pin(demo.pin)
    assert open_sessions(str(softhsm.module.resolve()), range(first, _session_handle(slot))) == []


def test_a_token_left_logged_in_still_checks_the_pin(softhsm, token_of, pki):
    slot, demo = token_of(pki, "A123456789")
    # A session of this process logged in and never logged out (as when C_Logout fails in Session.close):
    # the token stays logged in and the next C_Login answers CKR_USER_ALREADY_LOGGED_IN.
    slot._slot.get_token().open(user_pin=demo.pin)
    with slot.open() as card:
        with pytest.raises(WrongPin):  # not taken as logged in on the strength of the other session
            card.verify_pin("000000")
    first = slot._slot.get_token().open(user_pin=demo.pin).handle
    with slot.open() as card:
        card.verify_pin(demo.pin)
        assert verify_pkcs7(TBS.encode(), signer.sign(card, demo.pin, _request("PKCS7")).signature)
    assert open_sessions(str(softhsm.module.resolve()), range(first, _session_handle(slot))) == []


def test_a_pin_not_of_6_to_8_digits_never_reaches_the_token(token_of, pki):
    slot, _ = token_of(pki, "A123456789")
    with slot.open() as card:
        for pin in ("12345", "123456789", "12345a"):
            with pytest.raises(MalformedPin):
                card.verify_pin(pin)


def test_signing_before_the_pin_is_refused(token_of, pki):
    slot, _ = token_of(pki, "A123456789")
    with slot.open() as card, pytest.raises(PinRequired):
        card.sign(b"\x30" * 51)


def test_a_changed_pin_works_and_the_old_one_is_refused(token_of, pki):
    slot, demo = token_of(pki, "F131313136")  # 林志豪's valid card: no other test signs with it
    with slot.open() as card:
        card.change_pin(demo.pin, "24681357")
    try:
        with slot.open() as card:
            with pytest.raises(WrongPin):
                card.verify_pin(demo.pin)
            card.verify_pin("24681357")
            assert verify_pkcs7(TBS.encode(), signer.sign(card, "24681357", _request("PKCS7")).signature)
    finally:
        with slot.open() as card:
            card.change_pin("24681357", demo.pin)


def test_a_pin_change_with_a_wrong_old_pin_counts_as_a_wrong_pin(token_of, pki):
    slot, demo = token_of(pki, "F131313136")
    with slot.open() as card, pytest.raises(WrongPin):
        card.change_pin("000000", "24681357")
    with slot.open() as card:
        card.verify_pin(demo.pin)


def test_a_module_that_does_not_exist_is_named_in_the_error(tmp_path):
    from iccard.pkcs11 import Pkcs11Module

    with pytest.raises(ModuleUnavailable, match="no-such-module.so"):
        Pkcs11Module(tmp_path / "no-such-module.so")


def test_a_library_that_is_no_pkcs11_module_is_refused_with_the_reason(tmp_path):
    from iccard.pkcs11 import Pkcs11Module

    not_a_module = tmp_path / "libnotpkcs11.so"
    not_a_module.write_bytes(b"\x7fELF not really")
    with pytest.raises(ModuleUnavailable, match=r"libnotpkcs11\.so.*: .+"):
        Pkcs11Module(not_a_module)


# -- OpenSC's module over the emulated PIV card in vpcd ------------------------------------------------


@pytest.fixture
def opensc_module(opensc, pcsc_stack):
    """OpenSC's module for one test, finalized afterwards (still under the vpcd lock): a handle OpenSC kept
    on the card would stop the next test in another worker from connecting to the reader."""
    from iccard.pkcs11 import Pkcs11Module

    module = Pkcs11Module(opensc)
    yield module
    module.close()


@pytest.fixture
def opensc_slot(opensc_module, pcsc_stack, virtual_card):
    return next(slot for slot in opensc_module() if slot.name == pcsc_stack.reader_name)


def test_opensc_lists_the_card_reader_with_the_card_and_the_empty_reader_too(opensc_module, opensc_slot):
    slots = opensc_module()
    assert opensc_slot.has_card()
    empty = [slot for slot in slots if not slot.has_card()]
    assert all(slot.name.startswith("Virtual PCD") for slot in empty)  # vpcd's second reader: "insert a card"


def test_opensc_gives_the_card_number_from_the_chuid_and_the_certificate(opensc_slot, pki, demo_card):
    with opensc_slot.open() as card:
        # OpenSC's token label is 王小明 and its serial 3030303030303031: the CHUID says TEST000000000001.
        assert card.card_number() == demo_card.card_number
        assert card.signing_certificate() == pki.card_certificate(demo_card)
        assert card.encryption_certificate() == pki.card_encryption_certificate(demo_card)  # 9D
        # 5FC10D; OpenSC makes up a private key beside it, which must not make it a signing certificate
        assert card.ca_certificates() == [pki.issuer_certificate]


def test_opensc_decrypts_with_the_emulated_cards_encryption_key(opensc_slot, pki, demo_card):
    secret = b"a session key for DecryptData"
    ciphertext = pki.card_encryption_certificate(demo_card).public_key().encrypt(secret, padding.PKCS1v15())
    with opensc_slot.open() as card:
        card.verify_pin(demo_card.pin)
        assert card.decrypt(ciphertext) == secret


def test_opensc_changes_the_pin_on_the_emulated_card(opensc_slot, emulator, demo_card):
    with opensc_slot.open() as card:
        card.change_pin(demo_card.pin, "24681357")
    with opensc_slot.open() as card:
        with pytest.raises(WrongPin):
            card.verify_pin(demo_card.pin)
        card.verify_pin("24681357")
    assert emulator.pin_tries_left == 3  # the right PIN counted the wrong one off again


@pytest.mark.parametrize("signature_type", ["PKCS1", "PKCS7"])
def test_opensc_signs_with_the_emulated_card_and_the_signature_verifies(opensc_slot, pki, demo_card, signature_type):
    with opensc_slot.open() as card:
        result = signer.sign(card, demo_card.pin, _request(signature_type))
    assert result.card_number == demo_card.card_number
    assert _verifies(signature_type, result) == pki.card_certificate(demo_card)


def test_opensc_tells_the_final_try_and_then_the_blocked_pin(opensc_slot, emulator, demo_card):
    with opensc_slot.open() as card:
        with pytest.raises(WrongPin) as first:
            card.verify_pin("000000")
        assert first.value.tries_left is None  # 2 left, but OpenSC does not know PIV's maximum: no flag
        with pytest.raises(WrongPin) as second:
            card.verify_pin("000000")
        assert second.value.tries_left == 1  # CKF_USER_PIN_FINAL_TRY
        with pytest.raises(PinBlocked):  # CKR_PIN_INCORRECT, and the flags say CKF_USER_PIN_LOCKED
            card.verify_pin("000000")
    assert emulator.pin_tries_left == 0
    with opensc_slot.open() as card, pytest.raises(PinBlocked):  # CKR_PIN_LOCKED, even for the right PIN
        card.verify_pin(demo_card.pin)


def test_opensc_says_the_card_was_removed_during_a_conversation(opensc_module, opensc_slot, pcsc_stack,
                                                                  virtual_card, demo_card):
    with opensc_slot.open() as card:
        card.verify_pin(demo_card.pin)
        virtual_card.remove()
        pcsc_stack.wait_for_card(present=False)
        with pytest.raises((CardRemoved, NoCard)):
            card.sign(bytes.fromhex("3031300d060960864801650304020105000420") + bytes(32))
    # pcscd tells OpenSC of the removal in its own time: polled, with a deadline
    deadline = time.monotonic() + 10
    while opensc_slot.name in [slot.name for slot in opensc_module() if slot.has_card()]:
        assert time.monotonic() < deadline, "OpenSC still lists the card 10 s after it was taken out"
        time.sleep(0.05)
    with pytest.raises(NoCard):
        with opensc_slot.open():
            pass


def test_only_iccard_pkcs11_imports_the_binding():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    importers = set()
    for package in ("iccard", "app", "webauthn"):
        for path in (root / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
                if any(name.split(".")[0] == "pkcs11" for name in names):
                    importers.add(str(path.relative_to(root)))
    assert importers == {"iccard/pkcs11.py"}
