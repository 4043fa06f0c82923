"""twfido.checksum against the contract's own worked check, and computed independently in the test."""

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from twfido import checksum

ZERO_KEY = bytes(32)
ZERO_IV = bytes(12)
TICKET_REQUEST = {
    "transaction_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "sp_service_id": "SP0001", "id_num": "A123456789",
    "op_code": "SIGN", "op_mode": "I-SCAN", "hint": "簽署公文", "sign_info": {"sign_data": "x"},
}


def test_the_published_worked_check_seals_the_sha256_of_the_fields_concatenated():
    sealed = bytes.fromhex(checksum.seal(ZERO_KEY, ["a", "b"], iv=ZERO_IV))
    assert sealed[:12] == ZERO_IV and len(sealed) == 12 + 64 + 16
    plain = AESGCM(ZERO_KEY).decrypt(sealed[:12], sealed[12:], None)
    assert plain == b"fb8e20fc2e4c3f248c60c39bd652f3c1347298bb977b8b4d5903b85055620603"


def test_a_checksum_an_agency_made_on_its_own_verifies():
    fields = checksum.fields_of({**TICKET_REQUEST, "sign_data": "x"}, checksum.REQUEST_FIELDS["getSpTicket"])
    # What an agency's client does, written from the contract alone.
    text = "7c9e6679-7425-40de-944b-e07fc1f90ae7SP0001A123456789SIGNI-SCAN簽署公文x"
    iv = bytes(range(12))
    theirs = (iv + AESGCM(ZERO_KEY).encrypt(iv, hashlib.sha256(text.encode()).hexdigest().encode(), None)).hex()
    checksum.verify(ZERO_KEY, fields, theirs)


def test_an_absent_field_counts_as_the_empty_string():
    fields = checksum.fields_of({"transaction_id": "t", "sp_ticket_id": None}, checksum.REQUEST_FIELDS["getAthOrSignResult"])
    assert fields == ["t", "", ""]


def test_our_answers_use_a_fresh_random_iv():
    first, second = (checksum.seal(ZERO_KEY, ["t", "0", "ticket"]) for _ in range(2))
    assert first[:24] != second[:24]
    checksum.verify(ZERO_KEY, ["t", "0", "ticket"], first)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda c: c[:-2] + ("00" if c[-2:] != "00" else "01"), "not made with this agency's key"),
        (lambda c: c[:10], "hex digits"),
        (lambda c: "zz" + c[2:], "hex digits"),
        (lambda c: None, "hex digits"),
    ],
    ids=["altered-tag", "short", "not-hex", "absent"],
)
def test_a_damaged_checksum_is_refused(change, reason):
    good = checksum.seal(ZERO_KEY, ["a", "b"])
    with pytest.raises(checksum.ChecksumError, match=reason):
        checksum.verify(ZERO_KEY, ["a", "b"], change(good))


def test_a_checksum_of_other_fields_or_under_another_key_is_refused():
    good = checksum.seal(ZERO_KEY, ["a", "b"])
    with pytest.raises(checksum.ChecksumError, match="not of these fields"):
        checksum.verify(ZERO_KEY, ["a", "c"], good)
    with pytest.raises(checksum.ChecksumError, match="agency's key"):
        checksum.verify(bytes([1]) * 32, ["a", "b"], good)


def test_the_agency_key_is_base64_of_32_bytes():
    assert checksum.agency_key(base64.b64encode(ZERO_KEY).decode()) == ZERO_KEY
    for bad in ("not base64!", base64.b64encode(bytes(16)).decode()):
        with pytest.raises(checksum.InvalidAgencyKey):
            checksum.agency_key(bad)
