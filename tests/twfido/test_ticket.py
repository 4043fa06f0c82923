"""twfido.ticket: the sp_ticket format, read as an agency's client reads it."""

import base64
import hashlib
import json

import pytest

from twfido import ticket

FIELDS = {
    "transaction_id": "t-1", "op_code": "ATH", "op_mode": "I-SCAN", "sp_service_id": "SP0001",
    "sp_ticket_id": "0f8fad5b-d9cb-469f-a165-70867728950e", "sp_name": "臺灣雲市集", "hint": "登入",
    "expiration_time": "20261201120000", "hashed_id_num": ticket.hashed_id_num("a123456789"), "version": "1.0",
}


def test_a_ticket_is_base64url_json_and_the_base64url_sha256_of_that_part():
    made = ticket.encode(FIELDS)
    body, check = made.split(".")
    # As tw-did's client parses it: split on ".", base64url-decode the first part.
    assert json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))) == FIELDS
    assert base64.urlsafe_b64decode(check + "=" * (-len(check) % 4)) == hashlib.sha256(body.encode()).digest()
    assert ticket.decode(made) == FIELDS


@pytest.mark.parametrize(
    "damage",
    [lambda t: t[:-3], lambda t: t.replace(".", ""), lambda t: "x" + t, lambda t: t + ".x", lambda t: 7],
    ids=["cut", "no-dot", "altered", "three-parts", "not-text"],
)
def test_a_cut_or_altered_ticket_is_refused(damage):
    with pytest.raises(ticket.TicketError):
        ticket.decode(damage(ticket.encode(FIELDS)))


def test_a_well_formed_ticket_without_a_ticket_id_is_refused():
    with pytest.raises(ticket.TicketError, match="sp_ticket_id"):
        ticket.decode(ticket.encode({"op_code": "ATH"}))


def test_the_hashed_id_num_is_the_sha256_of_the_upper_case_national_id():
    assert ticket.hashed_id_num(" a123456789") == hashlib.sha256(b"A123456789").hexdigest()
